"""The unchanged firmware on the simulated HAL, against a real gateway and
real Mosquitto brokers (issue 4's "done when", first part)."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from gateway.issuer import CodeIssuer
from protocol import keys
from protocol import passcode as pc
from simulators.locksim import SimLock
from tests.gwfixtures import GW, Site, open_site, wait_for


@pytest.fixture
def rig(tmp_path: Path) -> Iterator[tuple[Site, SimLock]]:
    (tmp_path / "site").mkdir()
    s = open_site(tmp_path / "site", n_locks=1)
    for lk in s.locks.values():
        lk.stop()  # the stub gives way to the real firmware
    s.locks.clear()
    assert s.local_broker
    lid = "lock-0000"
    sim = SimLock(
        lid, s.lock_roots[lid], tmp_path / "flash", GW, s.local_broker.port, s.passwords[lid]
    ).boot()
    assert sim.app is not None
    app = sim.app
    wait_for(lambda: app.link.connected and app.link.time_set > 0, what="lock online with gateway time")
    # The lock asked the cloud at boot; the answer came back through the gateway.
    wait_for(lambda: app.core.clock.trusted, what="the cloud's signed time")
    yield s, sim
    sim.power_cut()
    s.close()


def _cloud_records(s: Site, lid: str) -> list[tuple[int, bool, str]]:
    assert s.cloud
    return [(k[1], r.granted, r.reason) for k, r in sorted(s.cloud.received.items()) if k[0] == lid]


def test_valid_code_opens_and_the_record_reaches_the_cloud(rig: tuple[Site, SimLock]) -> None:
    s, sim = rig
    now = int(time.time())
    issued = CodeIssuer(lambda t: keys.derive(s.lock_roots[t], keys.CODE, t)).issue(
        sim.id, pc.WINDOW, now, now + 3600, now
    )
    assert issued.keypad
    sim.type_code(issued.keypad)
    wait_for(lambda: sim.hal.strike_on, what="strike energised")
    wait_for(lambda: not sim.hal.strike_on, timeout=5, what="strike released")
    sim.type_code("0000000000")
    wait_for(lambda: len(_cloud_records(s, sim.id)) == 2, what="records in the cloud")
    assert _cloud_records(s, sim.id) == [(1, True, "ok"), (2, False, "wrong-code")]


def test_remote_unlock_end_to_end_and_forgeries_refused(rig: tuple[Site, SimLock]) -> None:
    s, sim = rig
    assert s.cloud
    s.cloud.send_command(sim.id, "r-1", int(time.time()) + 30)
    wait_for(lambda: s.cloud is not None and bool(s.cloud.acks_for("r-1")), what="ack")
    assert s.cloud.acks_for("r-1")[0][1].body == {1: "r-1", 2: "done"}
    assert any(on for _t, on in sim.hal.strike_log)
    s.cloud.send_command(sim.id, "r-old", int(time.time()) - 5)  # expired: the gateway answers
    wait_for(lambda: s.cloud is not None and bool(s.cloud.acks_for("r-old")), what="expired")
    assert s.cloud.acks_for("r-old")[0][1].body[2] == "expired"  # type: ignore[index]
    wait_for(lambda: len(_cloud_records(s, sim.id)) >= 1, what="record")
    assert _cloud_records(s, sim.id)[0] == (1, True, "ok")


def test_a_command_that_timed_out_never_runs_when_the_lock_comes_back(rig: tuple[Site, SimLock]) -> None:
    """Issue 17 item 1, with real brokers: the lock goes offline, the gateway
    publishes its time (it did at QoS 1, queued in the lock's session) and
    relays a command the cloud is then told timed out. When the lock came
    back, the old time set its clock back and the command ran 53 s late."""
    s, sim = rig
    assert s.cloud and s.gateway
    sim.power_cut()
    gw = s.gateway
    wait_for(lambda: gw.availability.get(sim.id) == "offline", what="offline")
    gw.send_time(sim.id)
    s.cloud.send_command(sim.id, "r-late", int(time.time()) + 3)
    wait_for(lambda: s.cloud is not None and bool(s.cloud.acks_for("r-late")), what="timeout answer")
    assert s.cloud.acks_for("r-late")[0][1].body[2] == "timeout"  # type: ignore[index]
    time.sleep(4)  # past the deadline
    sim.boot()
    app = sim.app
    assert app is not None
    wait_for(lambda: app.link.connected, what="back online")
    time.sleep(3)
    assert not sim.hal.strike_on and not any(on for _t, on in sim.hal.strike_log)
    remote = [r for r in app.journal.pending(1000) if r.kind == "remote"]
    assert all(not r.granted for r in remote)  # at most a "deadline" refusal, never a late unlock
    assert [e.body[2] for _l, e in s.cloud.acks_for("r-late")] == ["timeout"]  # type: ignore[index]


def test_1000_records_made_while_the_broker_is_down_all_arrive_once(rig: tuple[Site, SimLock]) -> None:
    s, sim = rig
    assert s.local_broker and sim.app
    s.local_broker.stop()
    app = sim.app
    wait_for(lambda: not app.link.connected, what="link down")
    for _ in range(1000):
        sim.hal.press_exit()
        deadline = time.monotonic() + 2
        while sim.hal._exit.is_set() and time.monotonic() < deadline:
            time.sleep(0.0005)
    wait_for(lambda: app.journal.backlog() == 1000, timeout=30, what="journaled")
    s.local_broker.start()
    wait_for(lambda: len(_cloud_records(s, sim.id)) == 1000, timeout=120, what="all delivered")
    recs = _cloud_records(s, sim.id)
    assert [r[0] for r in recs] == list(range(1, 1001))  # in order, none missing
    assert s.cloud is not None and s.cloud.order[sim.id] == list(range(1, 1001))  # arrival order too
    wait_for(lambda: app.journal.backlog() == 0, timeout=30, what="acked back to the lock")


def test_sim_lock_cli_is_scriptable(tmp_path: Path) -> None:
    """`lockedge sim lock` driven from a script, with no broker reachable:
    the lock still decides offline and journals; power cut and boot keep it."""
    import json
    import subprocess
    import sys

    from gateway.config import write_secret
    from simulators.broker import free_port

    root = bytes(range(32))
    write_secret(tmp_path / "root.key", root)
    write_secret(tmp_path / "pw", b"x")
    now = int(time.time())
    code = CodeIssuer(lambda t: keys.derive(root, keys.CODE, t)).issue("L1", pc.WINDOW, now, now + 3600, now)
    script = f"code {code.keypad}\nwait 0.5\nexit\nwait 0.3\npower-cut\nboot\nwait 0.3\nstatus\nquit\n"
    cmd = [sys.executable, "-m", "gateway.cli", "sim", "lock", "--id", "L1"]
    cmd += ["--broker", f"127.0.0.1:{free_port()}", "--flash", str(tmp_path / "flash")]
    cmd += ["--root-key-file", str(tmp_path / "root.key"), "--password-file", str(tmp_path / "pw")]
    out = subprocess.run(
        cmd,
        input=script,
        capture_output=True,
        text=True,
        timeout=60,
        cwd=Path(__file__).resolve().parent.parent,
    )
    assert out.returncode == 0, out.stderr
    st = json.loads(out.stdout.strip().splitlines()[-1])
    assert st["opened"] == 2 and st["backlog"] == 2 and st["running"] and not st["link"]


def test_sealed_entry_over_the_local_link_enrols_a_finger_that_opens(rig: tuple[Site, SimLock]) -> None:
    from gateway import lockentry

    s, sim = rig
    assert s.gateway and s.cloud
    now = int(time.time())
    from gateway.biometrics import iso19794
    from simulators import fingerprints as fpg

    def iso(finger: int, i: int) -> bytes:
        im = fpg.impression(fpg.master(finger, 5), i, 5)
        return iso19794.single(im.minutiae, im.width, im.height)

    m = lockentry.plain(
        sim.id, lockentry.random_bundle_id(), 1, 0, "add", "p-31", now + 600, [(1, iso(31, 0))]
    )
    token = lockentry.seal_entry(lockentry.seal_key(s.lock_roots[sim.id], sim.id), m, now)
    forged = token[:-1] + bytes((token[-1] ^ 1,))
    s.gateway.local.publish(f"lock/{sim.id}/ent", forged)
    s.gateway.local.publish(f"lock/{sim.id}/ent", token)

    def results() -> list[object]:
        assert s.cloud
        return [b.get("result") for lk, b in s.cloud.events if lk == sim.id and isinstance(b, dict)]

    wait_for(lambda: len(results()) == 2, what="entry events")
    assert results() == ["bad-tag", "ok"]
    sim.present_finger(iso(31, 4))  # another impression of the enrolled finger
    wait_for(lambda: sim.hal.strike_on, what="strike energised by the finger")
    sim.present_finger(iso(32, 0))  # someone else's finger
    wait_for(lambda: len(_cloud_records(s, sim.id)) == 2, what="finger records")
    assert _cloud_records(s, sim.id) == [(1, True, "ok"), (2, False, "no-match")]
    assert s.cloud.received[(sim.id, 1)].ref == "p-31"
