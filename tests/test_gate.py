"""The gate on gpiozero's MockFactory pins."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from gpiozero.pins.mock import MockFactory

from gateway.gate import Gate, GatePins
from gateway.issuer import CodeIssuer
from gateway.outbox import Outbox
from gateway.store import open_db
from protocol import keys
from protocol import passcode as pc
from protocol.lockout import Throttle
from protocol.record import PassRecord
from protocol.verifier import CodeVerifier

ROOT = bytes(range(32))
NOW = 1_795_000_000


class Clock:
    def __init__(self) -> None:
        self.wall = float(NOW)
        self.mono = 1000.0

    def advance(self, s: float) -> None:
        self.wall += s
        self.mono += s


@pytest.fixture
def rig(tmp_path: Path) -> Iterator[tuple[Gate, MockFactory, Clock, list[dict[str, Any]], Outbox, Path]]:
    factory = MockFactory()
    clock = Clock()
    events: list[dict[str, Any]] = []
    ob = Outbox(tmp_path / "outbox")
    g = _gate(tmp_path, factory, clock, events, ob)
    factory.pin(27).drive_low()  # door shut (reed switch closed)
    yield g, factory, clock, events, ob, tmp_path
    g.close()


def _gate(tmp: Path, factory: MockFactory, clock: Clock, events: list[dict[str, Any]], ob: Outbox) -> Gate:
    v = CodeVerifier("gate-A", keys.derive(ROOT, keys.CODE, "gate-A"), throttle=Throttle(5, 60, 900, 1800))
    return Gate(
        "gate-A", v, ob, open_db(tmp / "state.json"), GatePins(), factory, open_seconds=5, held_open_limit=60,
        clock=lambda: clock.wall, monotonic=lambda: clock.mono, on_event=events.append,
    )  # fmt: skip


def _records(ob: Outbox) -> list[PassRecord]:
    return [PassRecord.decode(e.data) for e in ob.pending(1000)]


def test_valid_code_records_then_opens_and_closes(rig: Any) -> None:
    g, factory, clock, _ev, ob, _ = rig
    code = CodeIssuer(lambda t: keys.derive(ROOT, keys.CODE, t)).issue(
        "gate-A", pc.ONCE, NOW, NOW + 7200, NOW
    )
    assert code.keypad
    d = g.keypad(code.keypad)
    assert d.granted and factory.pin(17).state  # strike energised
    recs = _records(ob)
    assert (recs[-1].granted, recs[-1].kind, recs[-1].ref) == (True, "code", code.code_id)
    clock.advance(5)
    g.tick()
    assert not factory.pin(17).state
    assert g.keypad(code.keypad).reason == "used"
    assert code.keypad not in repr(recs)


def test_wrong_codes_throttle_the_keypad_but_not_the_exit_button(rig: Any) -> None:
    g, factory, _clock, events, ob, _ = rig
    for i in range(5):
        assert not g.keypad("%010d" % i).granted
    assert any(e["event"] == "keypad-lockout" for e in events)
    assert g.keypad("0000000009").reason == "lockout"
    assert not factory.pin(17).state
    factory.pin(22).drive_low()  # exit button
    g.tick()
    assert factory.pin(17).state
    assert _records(ob)[-1].kind == "exit"


def test_door_held_open_and_forced_door_raise_alarms(rig: Any) -> None:
    g, factory, clock, events, ob, _ = rig
    factory.pin(27).drive_high()  # door opens with the strike off: forced
    g.tick()
    assert events[-1]["event"] == "door-forced"
    clock.advance(61)
    g.tick()
    assert events[-1]["event"] == "door-held-open" and factory.pin(24).state
    factory.pin(27).drive_low()
    # Both are records in the durable outbox, not only messages in memory.
    assert [(r.kind, r.granted, r.reason) for r in _records(ob)[-2:]] == [
        ("none", False, "door-forced"),
        ("none", False, "door-held-open"),
    ]


def test_state_survives_restart(tmp_path: Path) -> None:
    factory = MockFactory()
    clock = Clock()
    ob = Outbox(tmp_path / "outbox")
    g = _gate(tmp_path, factory, clock, [], ob)
    code = CodeIssuer(lambda t: keys.derive(ROOT, keys.CODE, t)).issue(
        "gate-A", pc.ONCE, NOW, NOW + 7200, NOW
    )
    assert code.keypad and g.keypad(code.keypad).granted
    g.close()
    ob.close()
    ob2 = Outbox(tmp_path / "outbox")
    g2 = _gate(tmp_path, MockFactory(), clock, [], ob2)
    assert g2.keypad(code.keypad).reason == "used"
    assert [r.seq for r in _records(ob2)] == [1, 2]  # sequence continues, nothing lost
    g2.close()


def test_gateway_daemon_runs_the_gate_and_uploads_its_records(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The daemon starts the gate from [gate] in its config (gpiozero's mock
    pins via GPIOZERO_PIN_FACTORY), uploads the gate's pass records and
    sends its alarms to the cloud as signed events."""
    import time as _time

    from gpiozero import Device

    from tests.gwfixtures import Site, wait_for

    monkeypatch.setenv("GPIOZERO_PIN_FACTORY", "mock")
    Device.pin_factory = None  # let gpiozero pick the factory from the environment
    os_tmp = tmp_path
    os_tmp.chmod(0o700)
    s = Site(os_tmp, 1, extra_config='\n[gate]\nid = "gate-A"\nopen_seconds = 1\n')
    s.start_brokers()
    s.start_cloud()
    try:
        gw = s.start_gateway()
        assert gw.gate is not None
        issuer = CodeIssuer(lambda t: keys.derive(s.gw_root, keys.CODE, t))
        now = int(_time.time())
        code = issuer.issue("gate-A", pc.WINDOW, now, now + 3600, now)
        assert code.keypad
        assert gw.gate.keypad(code.keypad).granted
        assert not gw.gate.keypad("1234567890").granted
        wait_for(
            lambda: s.cloud is not None and len([k for k in s.cloud.records() if k[0] == "gate-A"]) == 2,
            what="gate records in the cloud",
        )
        assert s.cloud and s.cloud.received[("gate-A", 1)].granted
        assert s.cloud.received[("gate-A", 2)].reason == "wrong-code"
        gw.gate.contact.pin.drive_low()  # door shut ...
        _time.sleep(1.5)  # ... strike released after open_seconds
        gw.gate.contact.pin.drive_high()  # ... and opened with the strike off

        def forced() -> bool:
            return s.cloud is not None and any(
                isinstance(e, dict) and e.get("event") == "door-forced" for _g, e in s.cloud.events
            )

        wait_for(forced, what="alarm")
    finally:
        s.close()
        Device.pin_factory = None


def _finger_gate(tmp: Path, factory: MockFactory, clock: Clock, ob: Outbox, allowed: set[str]) -> Gate:
    """A gate whose matcher knows two fingers: b"alice" and b"bob" (stand-ins
    for templates; the real gallery is tested in test_biometrics)."""
    from gateway.biometrics.iso19794 import TemplateError

    def identify(t: bytes) -> str | None:
        if t == b"junk":
            raise TemplateError("not a finger minutiae record")
        return {b"alice": "p-alice/2", b"bob": "p-bob/7"}.get(t)

    v = CodeVerifier("gate-A", keys.derive(ROOT, keys.CODE, "gate-A"))
    return Gate(
        "gate-A", v, ob, open_db(tmp / "state.json"), GatePins(), factory, open_seconds=5,
        clock=lambda: clock.wall, monotonic=lambda: clock.mono, identify=identify,
        authorized=lambda person, now: person in allowed,
    )  # fmt: skip


def test_a_finger_opens_the_gate_only_with_an_authorization_in_force(tmp_path: Path) -> None:
    factory, clock, ob = MockFactory(), Clock(), Outbox(tmp_path / "outbox")
    g = _finger_gate(tmp_path, factory, clock, ob, allowed={"p-alice"})
    try:
        assert g.finger(b"alice").reason == "ok" and g.strike.value == 1
        clock.advance(10)
        g.tick()
        assert g.strike.value == 0
        assert g.finger(b"bob").reason == "not-authorized"  # enrolled, not permitted
        assert g.finger(b"carol").reason == "no-match"
        assert g.finger(b"junk").reason == "bad-template"
        assert g.strike.value == 0
        recs = [(r.kind, r.ref, r.granted, r.reason) for r in _records(ob)]
        assert recs == [
            ("finger", "p-alice", True, "ok"),
            ("finger", "p-bob", False, "not-authorized"),
            ("finger", "", False, "no-match"),
            ("finger", "", False, "bad-template"),
        ]
    finally:
        g.close()


def test_a_blacklisted_person_is_refused_and_the_list_survives_a_restart(tmp_path: Path) -> None:
    from protocol import blacklist
    from protocol.errors import ProtocolError

    factory, clock, ob = MockFactory(), Clock(), Outbox(tmp_path / "outbox")
    g = _finger_gate(tmp_path, factory, clock, ob, allowed={"p-alice"})
    assert g.apply_blacklist({1: "full", 2: 1, 4: [["p-alice", 0]]}) == 1
    with pytest.raises(ProtocolError) as e:
        g.apply_blacklist({1: "delta", 2: 3, 3: 2, 4: []})  # a delta on a base it does not hold
    assert e.value.reason == blacklist.GAP
    assert g.finger(b"alice").reason == "revoked"
    g.close()
    g2 = _finger_gate(tmp_path, MockFactory(), clock, ob, allowed={"p-alice"})
    try:
        assert g2.verifier.blacklist.version == 1
        assert g2.finger(b"alice").reason == "revoked"
    finally:
        g2.close()


def test_fingers_at_the_gate_have_an_attempt_limit_that_survives_a_restart(tmp_path: Path) -> None:
    """Was: no limit, so a stranger could try finger after finger; each try
    is a chance at a false accept against the whole gallery."""
    factory, clock, ob = MockFactory(), Clock(), Outbox(tmp_path / "outbox")
    g = _finger_gate(tmp_path, factory, clock, ob, allowed={"p-alice"})
    try:
        for _ in range(5):
            assert g.finger(b"stranger").reason == "no-match"
        assert g.finger(b"stranger").reason == "lockout"
        assert g.finger(b"alice").reason == "lockout"  # a finger waits out the lockout like a code
        assert g.keypad("0000000000").reason == "wrong-code"  # the keypad has its own limit
        g.exit_button.pin.drive_low()  # the exit button always works
        g.tick()
        assert g.strike.value == 1
        recs = [(r.kind, r.granted, r.reason) for r in _records(ob)]
        assert recs.count(("finger", False, "lockout")) == 2
        assert recs.count(("finger", False, "no-match")) == 5
    finally:
        g.close()
    clock.advance(30)
    g2 = _finger_gate(tmp_path, MockFactory(), clock, ob, allowed={"p-alice"})
    try:
        assert g2.finger(b"alice").reason == "lockout"  # persisted: a restart does not reset it
        clock.advance(g2.finger_throttle.remaining(int(clock.mono)))  # resumes in full, then ends
        assert g2.finger(b"alice").reason == "ok"
    finally:
        g2.close()
