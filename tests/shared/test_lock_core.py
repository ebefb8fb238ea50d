# The lock's decision core on CPython and MicroPython, with a fake HAL and
# the real journal.
from firmware.core import LockCore
from firmware.fsio import FlashFS
from firmware.journal import Journal
from protocol import envelope, keys
from protocol import passcode as pc
from tests.shared.util import fresh_dir

ROOT = bytes(range(32))
NOW = 1795000000 - 1795000000 % 3600


class FakeHAL:
    def __init__(self):
        self.strike_on = False
        self.beeps = 0

    def strike(self, on):
        self.strike_on = on

    def beep(self, n):
        self.beeps += n


def _lock():
    fs = FlashFS(fresh_dir("core"))
    hal = FakeHAL()
    core = LockCore("lock-1", ROOT, Journal(fs, "lock-1"), hal, fs, open_s=5, held_open_s=60)
    return core, hal, fs


def _reopen(fs, hal):
    return LockCore("lock-1", ROOT, Journal(fs, "lock-1"), hal, fs, open_s=5, held_open_s=60)


def _cmd(seq, cmd_id, deadline, key=None):
    k = key or keys.derive(ROOT, keys.CMD, "lock-1")
    return envelope.seal(k, "cmd", "cloud", seq, NOW, {1: "unlock", 2: cmd_id, 3: deadline}, "lock-1")


def _code():
    k = keys.derive(ROOT, keys.CODE, "lock-1")
    return pc.make_keypad(k, "lock-1", pc.find_profile(pc.WINDOW, pc.DEVICE, pc.HOUR, 5), NOW // 3600, 0, 1)


def test_valid_code_is_journaled_then_opens_and_closes():
    core, hal, _fs = _lock()
    d = core.keypad(_code().digits, NOW + 60, 100)
    assert d.granted and hal.strike_on
    rec = core.journal.pending()[-1]
    assert rec.granted and rec.kind == "code" and rec.ref == d.ref
    core.tick(104)
    assert hal.strike_on
    core.tick(105)
    assert not hal.strike_on


def test_wrong_code_is_refused_recorded_and_throttled():
    core, hal, _fs = _lock()
    for i in range(5):
        assert not core.keypad("%010d" % i, NOW, 100 + i).granted
    assert any(e["event"] == "keypad-lockout" for e in core.events)
    assert core.keypad(_code().digits, NOW, 110).reason == "lockout"
    assert not hal.strike_on
    core.exit_button(NOW, 111)  # the exit button still works
    assert hal.strike_on
    reasons = [r.reason for r in core.journal.pending(100)]
    assert reasons.count("wrong-code") == 5 and "lockout" in reasons


def test_remote_unlock_forged_replayed_expired_are_refused_with_reasons():
    core, hal, fs = _lock()
    assert core.command(_cmd(1, "c-1", NOW + 30), NOW, 10) == "ok" and hal.strike_on
    core.tick(20)
    gw_local = keys.derive(ROOT, keys.LOCAL, "lock-1")  # what a gateway holds
    assert core.command(_cmd(2, "c-2", NOW + 30, gw_local), NOW, 21) == "bad-tag"
    assert core.command(_cmd(1, "c-1", NOW + 30), NOW, 22) == "replay"  # same bytes again
    assert core.command(_cmd(3, "c-3", NOW - 1), NOW, 23) == "deadline"
    assert not hal.strike_on
    assert (
        core.command(_cmd(4, "c-1", NOW + 30), NOW, 24) == "ok"
    )  # same id, new envelope: answered, not re-run
    assert not hal.strike_on
    recs = core.journal.pending(100)
    assert [(r.granted, r.reason) for r in recs if r.kind == "remote"] == [
        (True, "ok"),
        (False, "bad-tag"),
        (False, "replay"),
        (False, "deadline"),
    ]
    acks = [
        envelope.verify(envelope.parse(a), keys.derive(ROOT, keys.UPLINK, "lock-1")).body
        for _t, a in core.outbox
    ]
    assert acks[0] == acks[-1] == {1: "c-1", 2: "done"}  # a repeat gets the same answer
    core2 = _reopen(fs, hal)  # reboot: the replay window survives
    assert core2.command(_cmd(1, "c-1", NOW + 30), NOW, 5) == "replay"
    assert core2.command(_cmd(5, "c-5", NOW + 30), NOW, 6) == "ok"


def test_remote_unlock_needs_a_clock():
    core, hal, _fs = _lock()
    assert core.command(_cmd(1, "c-1", NOW + 30), None, 1) == "clock-unset"
    assert not hal.strike_on


def test_door_alarms():
    core, _hal, _fs = _lock()
    core.door(True, 10)
    assert core.events[-1]["event"] == "door-forced"
    core.door(False, 11)
    core.exit_button(NOW, 20)
    core.door(True, 21)
    core.tick(80)
    assert core.events[-1]["event"] != "door-held-open"
    core.tick(81)
    assert core.events[-1]["event"] == "door-held-open"


def _entry(name):
    from tests.shared.util import load_vectors, unhex

    return unhex(load_vectors("seal")["entries"][name])


def _fp_rig():
    from firmware.fpmodule import FingerprintModule
    from simulators.fpemu import FingerprintEmulator, VirtualUART

    emu = FingerprintEmulator()
    t = [0]

    def ticks():
        t[0] += 1
        return t[0]

    return emu, FingerprintModule(VirtualUART(emu), ticks, timeout_ms=50)


def _tpl(seed):
    return bytes((seed * 13 + i) & 0xFF for i in range(512))


def test_fingerprint_match_opens_and_records_the_person_not_the_template():
    core, hal, fs = _lock()
    emu, fp = _fp_rig()
    assert core.load_entry(fp, _entry("add-p42"), NOW, 1)[0] == "ok"
    emu.finger = _tpl(7)
    assert core.finger(fp, NOW, 10) == "ok" and hal.strike_on
    rec = core.journal.pending()[-1]
    assert (rec.kind, rec.ref, rec.granted) == ("finger", "p-0042", True)
    emu.finger = _tpl(8)  # not enrolled
    assert core.finger(fp, NOW, 11) == "no-match"
    emu.finger = None
    assert core.finger(fp, NOW, 12) is None  # lifted: nothing to decide
    core2 = _reopen(fs, hal)  # the slot table survives a reboot
    emu.finger = _tpl(7)
    assert core2.finger(fp, NOW, 13) == "ok"
    assert core2.load_entry(fp, _entry("replace-p42"), NOW, 14)[0] == "ok"  # the old finger is gone
    assert core2.finger(fp, NOW, 15) == "no-match"


def test_fingerprint_works_through_a_keypad_lockout_and_respects_revocation():
    core, _hal, _fs = _lock()
    emu, fp = _fp_rig()
    assert core.load_entry(fp, _entry("add-p7"), NOW, 1)[0] == "ok"
    for i in range(5):
        core.keypad("%010d" % i, NOW, 100 + i)
    assert core.keypad(_code().digits, NOW, 110).reason == "lockout"
    emu.finger = _tpl(1)
    assert core.finger(fp, NOW, 111) == "ok"
    core.verifier.blacklist.apply({1: "full", 2: 1, 4: [["v:p-7", 0]]}, NOW)
    assert core.finger(fp, NOW, 112) == "revoked"
    emu.address = 1  # the module stops answering
    assert core.finger(fp, NOW, 113) == "sensor-error"
    assert core.journal.pending(100)[-1].reason == "sensor-error"


def test_remembered_codes_are_rewritten_only_when_they_change():
    core, _hal, fs = _lock()
    writes = []
    orig = fs.write_atomic

    def counting(name, data):
        writes.append(name)
        orig(name, data)

    fs.write_atomic = counting
    for i in range(3):
        core.keypad("%010d" % i, NOW, 100 + i)  # wrong codes: throttle state only
    core_writes = [w for w in writes if w.startswith("core")]
    assert len(core_writes) == 3 and "codes" not in writes and "codes.b" not in writes
    k = keys.derive(ROOT, keys.CODE, "lock-1")
    once = pc.make_keypad(k, "lock-1", pc.find_profile(pc.ONCE, pc.DEVICE, pc.HOUR, 5), NOW // 3600, 0, 2)
    assert core.keypad(once.digits, NOW + 60, 200).granted
    assert len([w for w in writes if w.startswith("codes")]) == 1
    # After a change is saved, a save that changes nothing leaves the file
    # alone (one wrong code more: four strikes, short of a lockout).
    core.keypad("0000000005", NOW + 65, 250)
    assert len([w for w in writes if w.startswith("codes")]) == 1
    assert len([w for w in writes if w.startswith("core")]) == 5
    fs.write_atomic = orig
    core2 = _reopen(fs, _hal)
    assert core2.keypad(once.digits, NOW + 70, 300).reason == "used"  # remembered across a reboot


def test_damaged_state_files_never_stop_the_lock():
    # One damaged copy: the other holds the state (at most one save old).
    # Every copy damaged: the lock boots on defaults, says so in a record,
    # and its uplink numbers jump past any it used.
    for junk in (b"", b"\x00" * 9, b"\xff" * 40, b"\xa5\x00\x01\x00\x00\x00\x00x"):
        cases = (
            (("core",), ""),
            (("core.b",), ""),
            (("core", "core.b"), "core"),
            (("codes", "codes.b"), "codes"),
            (("core", "core.b", "codes", "codes.b"), "core+codes"),
        )
        for victims, lost in cases:
            core, hal, fs = _lock()
            for i in range(3):
                core.keypad("%010d" % i, NOW, 100 + i)
            k = keys.derive(ROOT, keys.CODE, "lock-1")
            once = pc.make_keypad(
                k, "lock-1", pc.find_profile(pc.ONCE, pc.DEVICE, pc.HOUR, 5), NOW // 3600, 0, 2
            )
            assert core.keypad(once.digits, NOW + 60, 200).granted
            seq_before = core.up_seq
            for name in victims:
                fs.write_atomic(name, junk)
            c2 = _reopen(fs, hal)  # raised on any damage before
            last = c2.journal.pending(100)[-1]
            detected = lost
            if detected:
                assert (last.reason, last.ref) == ("state-damaged", lost), (victims, junk)
            else:
                assert last.reason != "state-damaged", (victims, junk)
            if "core" in detected:
                assert c2.up_seq > 1 << 40
            else:
                assert c2.up_seq > seq_before
            if "codes" not in lost:
                assert c2.keypad(once.digits, NOW + 70, 300).reason == "used"
            assert c2.keypad("0000000000", NOW + 80, 500).reason in ("wrong-code", "lockout")
            c3 = _reopen(fs, hal)  # and the repaired files load cleanly
            assert c3.journal.pending(100)[-1].reason != "state-damaged"


def test_a_keypad_lockout_resumes_in_full_after_a_reboot_whatever_the_clock_origin():
    # Was: the throttle was loaded at monotonic 0, so a HAL whose clock does
    # not restart at 0 (an RTC-backed one, the simulator) lost the lockout.
    good = _code().digits
    for before, after in ((100, 0), (0, 10**6), (5000, 5), (2**31, 77), (123, 123)):
        core, hal, fs = _lock()
        for i in range(6):
            core.keypad("%010d" % (i + 1), NOW, before + i)  # locked: 60 s, then 120 s
        locked_for = core.verifier.throttle.remaining(before + 6)
        assert locked_for >= 50
        assert core.keypad(good, NOW, before + 7).reason == "lockout"
        left = core.verifier.throttle.remaining(before + 7)  # as saved by that last attempt
        core2 = _reopen(fs, hal)  # power cut and boot, clock origin moved
        core2.tick(after)
        assert core2.verifier.throttle.remaining(after) == left, (before, after)  # resumes in full
        assert core2.keypad(good, NOW, after + 1).reason == "lockout", (before, after)
        left = core2.verifier.throttle.remaining(after + 1)
        core3 = _reopen(fs, hal)  # another boot, another origin
        core3.tick(after + 1000)
        assert core3.keypad(good, NOW, after + 1000 + left - 1).reason == "lockout", (before, after)
        assert core3.keypad(good, NOW, after + 1000 + left).granted, (before, after)


def test_only_ascii_digits_are_keypad_digits():
    core, _hal, _fs = _lock()
    for entry in (
        "\u00b2051120468",
        "\uff10" * 10,
        "\u07c0" * 10,
        "\u0660" * 10,
        "12345678\u00b9\u00b2",
        "1234 56789",
    ):
        d = core.keypad(entry, NOW, 100)  # was ValueError for the superscript
        assert (d.granted, d.reason) == (False, "wrong-code"), entry
    assert core.verifier.throttle.strikes == 0  # not a code, not a guess


def test_a_command_whose_action_is_not_unlock_never_opens_the_door():
    # With the action check removed, any command action opened the door and
    # every lock test still passed (the audit's mutant): now one fails.
    core, hal, _fs = _lock()
    k = keys.derive(ROOT, keys.CMD, "lock-1")
    for seq, action in ((1, "open-all"), (2, "Unlock"), (3, ""), (4, 1)):
        body = {1: action, 2: "c-%d" % seq, 3: NOW + 30}
        assert (
            core.command(envelope.seal(k, "cmd", "cloud", seq, NOW, body, "lock-1"), NOW, 10 + seq)
            == "bad-command"
        )
        assert not hal.strike_on
    recs = [(r.kind, r.granted, r.reason) for r in core.journal.pending(100)]
    assert recs == [("remote", False, "bad-command")] * 4


def test_codes_outside_their_window_or_for_another_target_or_setup_with_a_clock():
    from protocol.verifier import CodeVerifier

    k = keys.derive(ROOT, keys.CODE, "lock-1")
    v = CodeVerifier("lock-1", k)
    later = pc.make_keypad(
        k, "lock-1", pc.find_profile(pc.WINDOW, pc.DEVICE, pc.HOUR, 5), NOW // 3600 + 1, 0, 1
    )
    assert v.keypad(later.digits, NOW, 1).reason == "not-yet-valid"
    setup = pc.make_keypad(k, "lock-1", pc.find_profile(pc.SETUP, pc.DEVICE, pc.DAY, 0), 0, 0, 3)
    assert v.keypad(setup.digits, NOW, 2).reason == "clock-set"  # setup codes serve a lock with no time
    other = pc.make_long(keys.derive(ROOT, keys.CODE, "lock-2"), "lock-2", pc.WINDOW, "h-1",
                         NOW // 3600, NOW // 3600 + 2)  # fmt: skip
    assert v.long(other.text(), NOW, 3).reason == "wrong-target"
