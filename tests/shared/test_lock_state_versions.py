# The lock's core state file of each version it has written (3: 7 fields,
# 4: 8, 5: 10) loads field by field after a firmware update, and the uplink
# sequence resumes above anything the saved one could have used, on both
# interpreters. From the mutation run: no test loaded a version 3 or 4 file.
from firmware.core import UP_SEQ_AFTER_LOSS, LockCore
from firmware.fsio import FlashFS
from firmware.journal import Journal
from firmware.statefile import StateFile
from protocol import envelope, keys
from tests.shared.test_lock_core import FakeHAL, _reopen
from tests.shared.util import fresh_dir

ROOT = bytes(range(32))
NOW = 1795000000


def _boot(fs):
    return _reopen(fs, FakeHAL())  # the lock as test_lock_core boots it


def _cmd(seq, cmd_id):
    k = keys.derive(ROOT, keys.CMD, "lock-1")
    return envelope.seal(k, "cmd", "cloud", seq, NOW, {1: "unlock", 2: cmd_id, 3: NOW + 30}, "lock-1")


def _saved(fs):
    core = _boot(fs)
    assert core.command(_cmd(7, "c-7"), NOW, 1) == "ok"
    core.slots[3] = ["p-42", 1]
    core.entry_mark = 11
    core.up_seq = 4321
    core.save(2)
    return StateFile(fs, "core").load(8)


def test_each_saved_version_of_the_core_state_loads_field_by_field():
    fs = FlashFS(fresh_dir("stv"))
    v5 = _saved(fs)
    assert v5[0] == 5 and len(v5) == 10
    for version, fields in ((3, 7), (4, 8), (5, 10)):
        d = fresh_dir("stv%d" % version)
        fs2 = FlashFS(d)
        st = [version] + v5[1:fields]
        StateFile(fs2, "core").save(st)
        core = _boot(fs2)
        assert [e for e in core.events if e.get("event") == "state-damaged"] == [], version
        assert core.done == [("c-7", "ok")], version
        assert core.slots == {3: ["p-42", 1]}, version
        assert core.entry_mark == 11, version
        assert core.up_seq == 4321 + 1000, version  # a reserve above any ack sent after the save
        assert core.command(_cmd(7, "c-7"), NOW, 3) == "replay", version  # the replay window came back
    for bad in ([3] + v5[1:8], [4] + v5[1:7], [6] + v5[1:10], [5] + v5[1:9]):
        fs3 = FlashFS(fresh_dir("stvbad"))
        StateFile(fs3, "core").save(bad)
        core = _boot(fs3)
        assert {"event": "state-damaged", "files": "core"} in core.events, bad[0]


def test_a_lost_core_state_resumes_the_uplink_far_past_any_used():
    fs = FlashFS(fresh_dir("stloss"))
    core = _boot(fs)
    for i in range(3):
        core.journal.append(NOW + i, "door-1", "exit", "", True, "ok")
    records = core.journal.next_seq - 1
    StateFile(fs, "core").save(None)  # every copy of the core state unreadable as state
    core = _boot(fs)
    # With the core state gone, so is the proof no one-time code was used.
    assert core.events == [{"event": "state-damaged", "files": "core+codes"}]
    # 1,000 acks per journal number, above 2^40: past any number it can have used.
    assert core.up_seq == UP_SEQ_AFTER_LOSS + (records + 1) * 1000


def test_a_missing_codes_file_the_core_state_says_was_written_is_reported_lost():
    fs = FlashFS(fresh_dir("stcodes"))
    v5 = _saved(fs)
    for version, fields, reported in ((3, 7, False), (4, 8, True), (5, 10, True)):
        fs2 = FlashFS(fresh_dir("stc%d" % version))
        st = [version] + v5[1:fields]
        if fields > 7:
            st[7] = 3  # the codes file's generation: it was saved three times
        StateFile(fs2, "core").save(st)
        core = _boot(fs2)  # ... and is not there
        want = [{"event": "state-damaged", "files": "codes"}] if reported else []
        assert core.events == want, version


class _ClockHAL(FakeHAL):
    def time(self):
        return NOW + 77


def test_a_damaged_state_is_recorded_at_the_hals_time_when_it_has_one():
    fs = FlashFS(fresh_dir("stclock"))
    StateFile(fs, "core").save([9, "not a state"])
    core = LockCore("lock-1", ROOT, Journal(fs, "lock-1"), _ClockHAL(), fs, open_s=5, held_open_s=60)
    [rec] = core.journal.pending(10)
    assert (rec.time, rec.reason, rec.ref) == (NOW + 77, "state-damaged", "core")
