"""Visitor flows of the cloud backend simulator (issue 8), each with its
refusals, and the codes they issue checked by the device-side verifier."""

from __future__ import annotations

from pathlib import Path

import pytest

from gateway.issuer import CodeIssuer
from protocol import keys
from protocol import passcode as pc
from protocol.record import PassRecord
from protocol.verifier import CodeVerifier
from simulators.cloud.backend import CloudBackend, FlowError, Request, visitor_id

ROOT = bytes(range(32))
GATE = "gate-1"
ROOT_DIR = Path(__file__).resolve().parent.parent
NOW = 1_795_000_000 - 1_795_000_000 % 3600 + 600


def _key(target: str) -> bytes:
    return keys.derive(ROOT, keys.CODE, target)


def _backend(tmp: Path, approve: bool = True) -> CloudBackend:
    return CloudBackend(
        tmp / "cloud.db", CodeIssuer(_key), {GATE, "lock-7", "lock-1"}, platform=lambda r: approve
    )


def _verifier(target: str = GATE) -> CodeVerifier:
    return CodeVerifier(target, _key(target))


def test_invitation_gives_a_code_the_gate_accepts(tmp_path: Path) -> None:
    b = _backend(tmp_path)
    tok = b.invite("r-12", "Eve Moss", "P-555", GATE, NOW, NOW + 6 * 3600)
    issued = b.accept(tok, " eve  MOSS", "p-555 ", NOW)
    assert issued.keypad and issued.long
    d = _verifier().keypad(issued.keypad, NOW + 60, 1)
    assert d.granted, d.reason
    assert _verifier().long(issued.long, NOW + 60, 1).granted


def test_invitation_refusals(tmp_path: Path) -> None:
    b = _backend(tmp_path)
    tok = b.invite("r-12", "Eve Moss", "P-555", GATE, NOW, NOW + 3600)
    for args, reason in (
        (("nope", "Eve Moss", "P-555", NOW), "unknown-invitation"),
        ((tok, "Eve Moss", "P-556", NOW), "identity-mismatch"),
        ((tok, "Eva Moss", "P-555", NOW), "identity-mismatch"),
        ((tok, "Eve Moss", "P-555", NOW + 3600), "expired"),
    ):
        with pytest.raises(FlowError) as e:
            b.accept(*args)
        assert e.value.reason == reason
    b.accept(tok, "Eve Moss", "P-555", NOW)
    with pytest.raises(FlowError) as e:
        b.accept(tok, "Eve Moss", "P-555", NOW)
    assert e.value.reason == "used"
    with pytest.raises(FlowError) as e:
        b.invite("r-12", "X", "Y", "gate-9", NOW, NOW + 60)
    assert e.value.reason == "unknown-position"


def test_self_service_validity_comes_from_the_policy(tmp_path: Path) -> None:
    b = _backend(tmp_path)
    courier = b.request(Request("Kim Lee", "C-1", GATE, "courier", "delivery", "frequent"), NOW)
    assert courier.end - courier.start == 31 * 24 * 3600  # a frequent courier gets a month
    plumber = b.request(Request("Al Ray", "C-2", GATE, "repair", "repair", "rare"), NOW)
    assert plumber.end - plumber.start == 24 * 3600
    assert _verifier().long(courier.long, NOW + 20 * 86400, 1).granted  # still valid on day 20
    for r, reason in (
        (Request("Al Ray", "C-2", "gate-9", "repair", "repair", "rare"), "unknown-position"),
        (Request("Al Ray", "C-2", GATE, "repair", "repair", "sometimes"), "policy"),
    ):
        with pytest.raises(FlowError) as e:
            b.request(r, NOW)
        assert e.value.reason == reason
    refusing = CloudBackend(tmp_path / "c2.db", CodeIssuer(_key), {GATE}, platform=lambda r: False)
    with pytest.raises(FlowError) as e:
        refusing.request(Request("Kim Lee", "C-1", GATE, "courier", "delivery", "frequent"), NOW)
    assert e.value.reason == "community-refused"
    assert b.report()["requests"] == {"approved": 2, "unknown-position": 1, "policy": 1}


def test_blacklisting_mid_validity_revokes_issued_codes_and_refuses_new_ones(tmp_path: Path) -> None:
    b = _backend(tmp_path)
    issued = b.request(Request("Kim Lee", "C-1", GATE, "courier", "delivery", "frequent"), NOW)
    v = _verifier()
    assert issued.keypad and v.keypad(issued.keypad, NOW + 60, 1).granted
    body = b.blacklist("c-1", 0, "theft reported", NOW + 3 * 86400)
    v.blacklist.apply(body, NOW + 3 * 86400)
    assert v.keypad(issued.keypad, NOW + 3 * 86400 + 60, 2).reason == "revoked"
    assert v.long(issued.long, NOW + 3 * 86400 + 60, 3).reason == "revoked"
    with pytest.raises(FlowError) as e:
        b.request(Request("Kim Lee", "C-1", GATE, "courier", "delivery", "frequent"), NOW + 4 * 86400)
    assert e.value.reason == "blacklisted"
    tok = b.invite("r-1", "Kim Lee", "C-1", GATE, NOW, NOW + 30 * 86400)
    with pytest.raises(FlowError) as e:
        b.accept(tok, "Kim Lee", "C-1", NOW + 4 * 86400)
    assert e.value.reason == "blacklisted"
    # A second blacklisting is a delta from the first.
    body2 = b.blacklist("P-9", 0, "x", NOW)
    assert body2[1] == "delta" and body2[3] == 1
    v.blacklist.apply(body2, NOW)
    assert visitor_id("c-1") == visitor_id("C-1 ")


def test_every_invitation_token_can_be_typed_after_token_on_the_command_line(tmp_path: Path) -> None:
    # CI once drew a token starting with '-' (1 in 64 with base64url); argparse
    # read it as an option and the visitor could not accept the invitation.
    import argparse

    from simulators.cloud.cli import add_parser

    b = _backend(tmp_path)
    parser = argparse.ArgumentParser(prog="lockedge")
    add_parser(parser.add_subparsers(dest="cmd"))
    for _ in range(2000):
        tok = b.invite("r-1", "Eve", "P-1", GATE, NOW, NOW + 3600)
        assert not tok.startswith("-")
        args = parser.parse_args(
            ["cloud", "--db", "x", "--roots", "y", "accept", "--token", tok, "--name", "E", "--document", "P"]
        )
        assert args.token == tok


def test_records_are_kept_once_and_gaps_show(tmp_path: Path) -> None:
    b = _backend(tmp_path)
    recs = [PassRecord("lock-7", s, NOW, "door-7", "code", "pc-1", True, "ok") for s in (1, 2, 4)]
    assert [b.store_record(r, 0.0) for r in recs] == [True, True, True]
    assert b.store_record(recs[0], 1.0) is False
    rep = b.report()
    assert rep["records"] == 3 and rep["duplicates_dropped"] == 1 and rep["gaps"] == {"lock-7": 1}
    b2 = CloudBackend(tmp_path / "cloud.db", CodeIssuer(_key), {GATE})  # kept in SQLite
    assert b2.report()["records"] == 3


def test_cloud_command_line(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    import json

    from gateway.config import write_secret
    from lockedge.cli import main

    write_secret(tmp_path / "roots.json", json.dumps({GATE: ROOT.hex()}).encode())
    base = ["cloud", "--db", str(tmp_path / "c.db"), "--roots", str(tmp_path / "roots.json")]
    assert (
        main([*base, "invite", "--resident", "r-1", "--name", "Eve", "--document", "P-1", "--target", GATE])
        == 0
    )
    tok = capsys.readouterr().out.split()[-1]
    assert main([*base, "accept", "--token", tok, "--name", "Eve", "--document", "P-2"]) == 2
    assert "identity-mismatch" in capsys.readouterr().err
    assert main([*base, "accept", "--token", tok, "--name", "Eve", "--document", "P-1"]) == 0
    assert "keypad:" in capsys.readouterr().out
    req = [
        *base,
        "request",
        "--name",
        "Kim",
        "--document",
        "C-1",
        "--position",
        GATE,
        "--occupation",
        "courier",
    ]
    assert main([*req, "--purpose", "delivery", "--frequency", "frequent"]) == 0
    assert main([*base, "blacklist", "--document", "C-1"]) == 0
    assert main([*req, "--purpose", "delivery"]) == 2
    assert main([*base, "report"]) == 0
    assert '"blacklisted": 1' in capsys.readouterr().out


def test_remote_unlock_only_for_a_current_resident_of_that_door(tmp_path: Path) -> None:
    b = _backend(tmp_path)
    b.register_resident("t-1", "lock-1", NOW)
    cmd = b.remote_unlock("t-1", "lock-1", NOW, ttl=30)
    assert cmd.lock == "lock-1" and cmd.deadline == NOW + 30
    for who, door, reason in (("t-2", "lock-1", "not-resident"), ("t-1", "lock-9", "unknown-position")):
        with pytest.raises(FlowError) as e:
            b.remote_unlock(who, door, NOW)
        assert e.value.reason == reason
    code = b.issuer.issue("lock-1", pc.WINDOW, NOW, NOW + 86400 * 30, NOW, holder="t-1")
    b.remember(code, "t-1", "resident")
    assert b.move_out("t-1", NOW + 60) == [code.code_id]
    with pytest.raises(FlowError) as e:
        b.remote_unlock("t-1", "lock-1", NOW + 61)
    assert e.value.reason == "moved-out"
    # The code is revoked on the devices by the next blacklist update, a delta on the first.
    first = b.revoke_codes([code.code_id], 0)
    assert first == {1: "full", 2: 1, 4: [[code.code_id, 0]]}
    assert b.revoke_codes(["x"], 0) == {1: "delta", 2: 2, 3: 1, 4: [["x", 0]]}
    b.command_done(cmd.cmd_id, "done")
    assert b.report()["commands"] == {"done": 1}


def test_cloud_command_line_remote_unlock_reaches_the_broker_sealed_for_the_lock(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    import json
    import threading

    import paho.mqtt.client as mqtt
    from paho.mqtt.enums import CallbackAPIVersion

    from gateway.config import write_secret
    from lockedge.cli import main
    from protocol import envelope
    from simulators.broker import Mosquitto

    write_secret(tmp_path / "roots.json", json.dumps({"lock-1": ROOT.hex()}).encode())
    base = ["cloud", "--db", str(tmp_path / "c.db"), "--roots", str(tmp_path / "roots.json")]
    broker = Mosquitto("cloud", workdir=tmp_path / "broker").start()
    got: list[bytes] = []
    arrived = threading.Event()
    sub = mqtt.Client(CallbackAPIVersion.VERSION2, client_id="watch")

    def on_message(c: mqtt.Client, u: object, m: mqtt.MQTTMessage) -> None:
        got.append(bytes(m.payload))
        arrived.set()

    sub.on_message = on_message
    sub.on_connect = lambda c, u, f, rc, p: c.subscribe("site/site-7/lock/+/cmd", qos=1)
    subscribed = threading.Event()
    sub.on_subscribe = lambda c, u, mid, rcs, p: subscribed.set()  # the broker's SUBACK
    try:
        sub.connect("127.0.0.1", broker.port)
        sub.loop_start()
        assert main([*base, "unlock", "--resident", "t-1", "--lock", "lock-1"]) == 2
        assert "not-resident" in capsys.readouterr().err
        assert main([*base, "resident", "--resident", "t-1", "--lock", "lock-1"]) == 0
        assert subscribed.wait(10)  # the subscription is in place
        assert main([*base, "unlock", "--resident", "t-1", "--lock", "lock-1", "--broker",
                     f"127.0.0.1:{broker.port}"]) == 0  # fmt: skip
        assert arrived.wait(10)
        env = envelope.Receiver(lambda s, t: keys.derive(ROOT, keys.CMD, "lock-1")).open(got[0])
        assert env.rcpt == "lock-1" and isinstance(env.body, dict) and env.body[1] == "unlock"
        assert main([*base, "move-out", "--resident", "t-1"]) == 0
        assert main([*base, "unlock", "--resident", "t-1", "--lock", "lock-1"]) == 2
        assert "moved-out" in capsys.readouterr().err
    finally:
        sub.loop_stop()
        broker.close()


ISSUE_IN_ANOTHER_PROCESS = """
import sys
from protocol import keys
from gateway.issuer import CodeIssuer
from simulators.cloud.backend import CloudBackend, Request
root = bytes(range(32))
issuer = CodeIssuer(lambda t: keys.derive(root, keys.CODE, t))
b = CloudBackend(sys.argv[1], issuer, {"gate-A"}, platform=lambda r: True)
for i in range(10):
    r = Request("x", "P-%s-%d" % (sys.argv[2], i), "gate-A", "courier", "delivery", "frequent")
    print(b.request(r, int(sys.argv[3])).keypad)
"""


def test_two_visitors_never_get_the_same_code_across_restarts_and_processes(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """Was: `lockedge cloud accept` (a new issuer each run) gave two invited
    visitors the identical keypad code; the database row was overwritten, so
    blacklisting one would not revoke the other's."""
    import json
    import subprocess
    import sys

    from gateway.config import write_secret
    from lockedge.cli import main

    write_secret(tmp_path / "roots.json", json.dumps({GATE: ROOT.hex()}).encode())
    base = ["cloud", "--db", str(tmp_path / "c.db"), "--roots", str(tmp_path / "roots.json")]
    codes = []
    for i in range(2):
        assert main([*base, "invite", "--resident", "r-1", "--name", f"V{i}", "--document", f"D-{i}",
                     "--target", GATE]) == 0  # fmt: skip
        tok = capsys.readouterr().out.split()[-1]
        assert main([*base, "accept", "--token", tok, "--name", f"V{i}", "--document", f"D-{i}"]) == 0
        out = capsys.readouterr().out
        codes.append(next(w for w in out.split() if w.isdigit() and len(w) == 10))
    assert codes[0] != codes[1]
    # Two processes issuing at once on one database: the allocation and the
    # grant are one transaction, so each gets its own serial.
    script = ISSUE_IN_ANOTHER_PROCESS
    db = str(tmp_path / "c2.db")
    procs = [subprocess.Popen([sys.executable, "-c", script, db, str(k), str(NOW)], stdout=subprocess.PIPE,
                              text=True, cwd=ROOT_DIR) for k in range(2)]  # fmt: skip
    got = [c for p in procs for c in p.communicate(timeout=120)[0].split()]
    assert len(got) == 20 and len(set(got)) == 20, got
