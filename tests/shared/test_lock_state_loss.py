# What the lock's boot reports and keeps when its state files are lost or
# hold something else (firmware/core.py _load), on CPython and MicroPython.
# From the mutation run (docs/testing.md): each case below could be changed
# without a failing test.
from firmware.statefile import StateFile
from tests.shared.test_lock_core import NOW, _code, _lock, _reopen


def _damage_record(core):
    recs = [r for r in core.journal.pending(1000) if r.reason == "state-damaged"]
    return recs[-1].ref if recs else None


def test_a_codes_file_of_the_wrong_shape_is_reported_as_lost():
    """A codes file whose frame checks but whose value is not the lock's
    (two lists) is as good as lost: the boot says so, even though no code
    was used yet (nothing else tells)."""
    for value in ([1, 2, 3], "codes", [[], 5, 6]):
        _core, hal, fs = _lock()
        StateFile(fs, "codes").save(value)
        c2 = _reopen(fs, hal)
        assert _damage_record(c2) == "codes", value


def test_with_the_core_lost_and_one_record_journaled_the_codes_count_as_lost_too():
    """The core file says whether a one-time code was ever used; with it
    gone and the journal showing the lock has decided before (one record
    is enough), a missing codes file may have held remembered codes."""
    core, hal, fs = _lock()
    core.keypad("0000000001", NOW, 100)  # one decision: record 1
    assert core.journal.next_seq == 2
    for name in ("core", "core.b", "codes", "codes.b"):
        fs.remove(name)
    c2 = _reopen(fs, hal)
    assert _damage_record(c2) == "core+codes"


def test_a_lockout_survives_a_boot_that_repairs_the_codes_file_and_the_next_boot():
    """The boot that finds the codes file damaged saves the state again
    before the main loop's first tick: it must save the lockout it loaded,
    not the fresh throttle the verifier holds until that tick."""
    good = _code().digits
    core, hal, fs = _lock()
    for i in range(6):
        core.keypad("%010d" % (i + 1), NOW, 100 + i)
    assert core.keypad(good, NOW, 107).reason == "lockout"
    left = core.verifier.throttle.remaining(107)
    fs.write_atomic("codes", b"\x00" * 9)
    fs.write_atomic("codes.b", b"\x00" * 9)
    c2 = _reopen(fs, hal)  # repairs the codes file, saving the core state again
    assert _damage_record(c2) == "codes"
    c3 = _reopen(fs, hal)  # and boots again before any tick
    c3.tick(5000)
    assert c3.verifier.throttle.remaining(5000) == left
    assert c3.keypad(good, NOW, 5001).reason == "lockout"


def test_with_the_clock_unset_every_listed_person_stays_blocked():
    """A finger still opens without a clock (the sensor needs none), but
    with no time to compare, a blacklist entry of any expiry blocks: the
    lock cannot tell that it lapsed."""
    from tests.shared.test_lock_core import _entry, _fp_rig, _tpl

    for expiry in (1, 2, NOW):
        core, _hal, _fs = _lock()
        emu, fp = _fp_rig()
        assert core.load_entry(fp, _entry("add-p7"), NOW, 1)[0] == "ok"
        emu.finger = _tpl(1)
        assert core.finger(fp, None, 2) == "ok"
        core.verifier.blacklist.apply({1: "full", 2: 1, 4: [["p-7", expiry]]}, 0)
        assert core.finger(fp, None, 3) == "revoked", expiry
        assert core.finger(fp, NOW + 1, 4) == ("ok" if expiry <= NOW else "revoked"), expiry
