# What the lock writes for each decision, field by field (firmware/core.py),
# on CPython and MicroPython: time, kind, reference, granted, reason, and the
# live events, exactly. Written from the mutation run (docs/testing.md):
# tests checked that a record existed and its reason, and a record with the
# wrong time, an invented reference or a missing event field passed.
from protocol import envelope, keys
from tests.shared.test_lock_core import NOW, ROOT, _cmd, _code, _entry, _fp_rig, _lock, _tpl


def _last(core):
    r = core.journal.pending(1000)[-1]
    return (r.time, r.kind, r.ref, r.granted, r.reason)


def test_every_decision_is_recorded_with_its_time_and_exact_fields():
    core, hal, _fs = _lock()
    emu, fp = _fp_rig()
    core.fp = fp
    code = _code()
    core.keypad(code.digits, NOW + 1, 10)
    assert _last(core) == (NOW + 1, "code", code.code_id, True, "ok")
    core.tick(20, NOW + 11)
    core.keypad("0000000000", NOW + 12, 21)
    assert _last(core) == (NOW + 12, "code", "", False, "wrong-code")
    core.exit_button(NOW + 13, 30)
    assert _last(core) == (NOW + 13, "exit", "", True, "ok")
    core.tick(40, NOW + 23)
    assert not hal.strike_on
    core.door(True, 41, NOW + 24)  # opened with the strike off: forced
    assert _last(core) == (NOW + 24, "none", "", False, "door-forced")
    core.tick(41 + 60, NOW + 84)  # held open for held_open_s
    assert _last(core) == (NOW + 84, "none", "s60", False, "door-held-open")
    assert {"event": "door-held-open", "seconds": 60} in core.events
    assert {"event": "door-forced"} in core.events
    core.door(False, 110, NOW + 90)
    assert core.held_alarmed is False
    assert core.load_entry(fp, _entry("add-p42"), NOW, 111)[0] == "ok"
    emu.finger = _tpl(7)
    core.finger(fp, NOW + 100, 120)
    assert _last(core) == (NOW + 100, "finger", "p-0042", True, "ok")
    emu.finger = _tpl(8)
    core.finger(fp, NOW + 101, 130)
    assert _last(core) == (NOW + 101, "finger", "", False, "no-match")
    emu.address = 1  # the module stops answering
    core.events.clear()
    core.finger(fp, NOW + 102, 140)
    assert _last(core) == (NOW + 102, "finger", "", False, "sensor-error")
    assert core.events == [{"event": "fingerprint-module-error", "code": -1}]


def test_a_blocked_person_is_revoked_at_the_finger_by_the_clock_it_is_given():
    core, _hal, _fs = _lock()
    emu, fp = _fp_rig()
    assert core.load_entry(fp, _entry("add-p42"), NOW, 1)[0] == "ok"
    core.verifier.blacklist.apply({1: "full", 2: 1, 4: [["p-0042", NOW + 50]]}, NOW)
    emu.finger = _tpl(7)
    assert core.finger(fp, NOW + 49, 10) == "revoked"
    assert core.finger(fp, NOW + 50, 20) == "ok"  # the listing ran out
    core.verifier.blacklist.apply({1: "full", 2: 2, 4: [["p-0042", 5]]}, 0)
    assert core.finger(fp, None, 30) == "revoked"  # clock unset: read as 0, a listing holds


def test_remote_commands_are_recorded_and_acked_exactly():
    core, _hal, _fs = _lock()
    k_up = keys.derive(ROOT, keys.UPLINK, "lock-1")

    def acks():
        return [envelope.verify(envelope.parse(a), k_up) for t, a in core.outbox if t == "ack"]

    assert core.command(_cmd(1, "c-1", NOW + 10), NOW + 9, 1) == "ok"
    assert _last(core) == (NOW + 9, "remote", "c-1", True, "ok")
    assert core.command(_cmd(2, "c-2", NOW + 10), NOW + 10, 2) == "deadline"  # at the deadline: late
    assert _last(core) == (NOW + 10, "remote", "c-2", False, "deadline")
    forged = _cmd(3, "c-3", NOW + 99, key=bytes(32))
    assert core.command(forged, NOW + 11, 3) == "bad-tag"
    assert _last(core) == (NOW + 11, "remote", "", False, "bad-tag")
    # A refusal the command path does not name is a bad command, recorded so.
    assert core.command(b"\x00not an envelope", NOW + 12, 4) == "bad-command"
    assert _last(core) == (NOW + 12, "remote", "", False, "bad-command")
    long_id = "c-" + "9" * 60
    core.command(_cmd(5, long_id, NOW + 99), NOW + 13, 5)
    assert _last(core)[2] == long_id[:40]  # a reference is at most 40 characters
    got = [(e.body[1], e.body[2], e.ts) for e in acks()]
    assert got[:2] == [("c-1", "done", NOW + 9), ("c-2", "deadline", NOW + 10)]
    # A repeat gets the same answer, under the time it is asked at.
    core.outbox.clear()
    assert core.command(_cmd(6, "c-1", NOW + 10), NOW + 14, 6) == "ok"
    assert [(e.body[1], e.body[2], e.ts) for e in acks()] == [("c-1", "done", NOW + 14)]


def test_a_rekey_is_recorded_acked_and_remembered():
    core, _hal, _fs = _lock()
    body = {1: "rekey", 2: "rk-1", 3: NOW + 99, 4: {keys.LOCAL: 2, keys.SEAL: 1}}
    k = keys.derive(ROOT, keys.CMD, "lock-1")
    wire = envelope.seal(k, "cmd", "cloud", 1, NOW, body, "lock-1")
    assert core.command(wire, NOW + 5, 1) == "ok"
    assert _last(core) == (NOW + 5, "none", "local2,seal1", False, "rekeyed")
    assert {"event": "rekeyed", "epochs": "local2,seal1"} in core.events
    k_up = keys.derive(ROOT, keys.UPLINK, "lock-1")
    acks = [envelope.verify(envelope.parse(a), k_up) for t, a in core.outbox if t == "ack"]
    assert [(a.body[1], a.body[2], a.ts) for a in acks] == [("rk-1", "done", NOW + 5)]
    assert core.done[-1] == ("rk-1", "ok")
    # At the highest epoch a rekey is still taken; past it, refused.
    top_body = {1: "rekey", 2: "rk-2", 3: NOW + 99, 4: {keys.LOCAL: keys.MAX_EPOCH}}
    top = envelope.seal(k, "cmd", "cloud", 2, NOW, top_body, "lock-1")
    assert core.command(top, NOW + 6, 2) == "ok" and core.epochs[keys.LOCAL] == keys.MAX_EPOCH


def test_only_the_cloud_sends_commands():
    core, _hal, _fs = _lock()
    k = keys.derive(ROOT, keys.CMD, "lock-1")
    for sender, typ in (("gw-1", "cmd"), ("cloud", "bl")):
        wire = envelope.seal(k, typ, sender, 1, NOW, {1: "unlock", 2: "x", 3: NOW + 99}, "lock-1")
        assert core.command(wire, NOW, 1) == "bad-command"  # no key for that sender and type


def test_the_uplink_sequence_is_saved_every_500_and_never_reused_after_a_reboot():
    from tests.shared.test_lock_core import _reopen

    core, hal, fs = _lock()
    first = [core.next_seq() for _ in range(3)]
    assert first == [first[0], first[0] + 1, first[0] + 2]
    while core.up_seq % 500 != 499:
        core.next_seq()
    gen = core._core.gen
    core.next_seq()  # reaches a multiple of 500: saved
    assert core._core.gen == gen + 1
    reached = core.up_seq
    again = _reopen(fs, hal)
    assert again.next_seq() > reached
