# What the lock tells the cloud besides its records, exactly (issue 21: the
# mutation run left every event's content and the beeps untested): a full
# journal, damaged state files, a module fault, and the beeps a person hears.
# Shared by both interpreters.
from firmware.core import LockCore
from firmware.fsio import FlashFS
from firmware.journal import Journal
from protocol import keys
from protocol import passcode as pc
from tests.shared.test_lock_core import NOW, ROOT, FakeHAL, _code, _entry, _fp_rig, _lock, _reopen, _tpl
from tests.shared.util import fresh_dir


def test_a_full_journal_says_so_on_each_pass_it_cannot_store():
    fs = FlashFS(fresh_dir("full"))
    hal = FakeHAL()
    core = LockCore("lock-1", ROOT, Journal(fs, "lock-1", segment_bytes=300, max_segments=2), hal, fs)
    stored = 0
    for i in range(40):
        core.exit_button(NOW + i, 1000 + i * 10)
        core.tick(1000 + i * 10 + 6)
        stored = core.journal.next_seq - 1
    full = [e for e in core.events if e.get("event") == "journal-full"]
    assert full and all(e == {"event": "journal-full"} for e in full)
    assert len(full) == 40 - stored  # one per pass that found no room


def test_damaged_state_files_are_named_in_the_event_and_the_record():
    for victims, named in ((("core", "core.b"), "core"), (("codes", "codes.b"), "codes"),
                           (("core", "core.b", "codes", "codes.b"), "core+codes")):  # fmt: skip
        core, hal, fs = _lock()
        k = keys.derive(ROOT, keys.CODE, "lock-1")
        once = pc.make_keypad(k, "lock-1", pc.find_profile(pc.ONCE, pc.DEVICE, pc.HOUR, 5), NOW // 3600, 0, 2)
        assert core.keypad(once.digits, NOW + 60, 100).granted  # a one-time code: the codes file is written
        for name in victims:
            fs.write_atomic(name, b"\x00" * 9)
        c2 = _reopen(fs, hal)
        assert {"event": "state-damaged", "files": named} in c2.events, (victims, c2.events)
        last = c2.journal.pending(100)[-1]
        assert (last.kind, last.ref, last.granted, last.reason) == ("none", named, False, "state-damaged")
        assert last.time == 0  # this core has no HAL clock: the record says "time unknown"


def test_a_module_fault_is_an_event_with_its_code_and_three_beeps():
    core, hal, _fs = _lock()
    emu, fp = _fp_rig()
    assert core.load_entry(fp, _entry("add-p42"), NOW, 1)[0] == "ok"
    emu.finger = _tpl(7)
    emu.address = 1  # the module stops answering
    before = hal.beeps
    assert core.finger(fp, NOW, 10) == "sensor-error"
    assert hal.beeps - before == 3
    faults = [e for e in core.events if e.get("event") == "fingerprint-module-error"]
    assert len(faults) == 1 and set(faults[0]) == {"event", "code"}
    assert isinstance(faults[0]["code"], int) and faults[0]["code"] != 0


def test_refusals_beep_twice_and_passes_do_not_beep():
    core, hal, _fs = _lock()
    emu, fp = _fp_rig()
    core.keypad("0000000000", NOW, 100)
    assert hal.beeps == 2
    assert core.keypad(_code().digits, NOW + 60, 200).granted and hal.beeps == 2
    core.tick(206)
    emu.finger = _tpl(8)  # not enrolled
    assert core.finger(fp, NOW, 300) == "no-match" and hal.beeps == 4
