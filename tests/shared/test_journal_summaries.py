# What the lock's journal says of what it could not keep (firmware/journal.py),
# exactly, on both interpreters: the overflow summary when only denied or
# only granted decisions were lost, the damage record's reference, and the
# upload batch's default size. From the mutation run (docs/testing.md).
from firmware.fsio import FlashFS
from firmware.journal import Journal
from tests.shared.util import fresh_dir

NOW = 1795000000


def _fill(j, granted):
    stored, lost = [], 0
    for i in range(40):
        r = j.append(NOW + i, "door-1", "code", "pc-%d" % i, granted, "ok" if granted else "wrong-code")
        if r is None:
            lost += 1
        else:
            stored.append(r.seq)
    return stored, lost


def test_an_overflow_of_one_kind_only_is_summarised_with_zero_for_the_other():
    for granted, fmt in ((False, "g0/d%d"), (True, "g%d/d0")):
        d = fresh_dir("jsum")
        j = Journal(FlashFS(d), "lock-1", segment_bytes=300, max_segments=2)
        stored, lost = _fill(j, granted)
        assert lost > 0
        j.ack(stored)
        j.append(NOW + 100, "door-1", "exit", "", True, "ok")
        [summary] = [r for r in j.pending(100) if r.reason == "journal-overflow"]
        assert summary.ref == fmt % lost, summary.ref


def test_the_damage_record_names_bytes_runs_meta_copies_and_the_skipped_range():
    for damage, ref in (
        ({"b": 17, "r": 2, "m": 1}, "b17/r2/m1"),
        ({"b": 5}, "b5/r0/m0"),
        ({"r": 3}, "b0/r3/m0"),
        ({"m": 2}, "b0/r0/m2"),
        ({"b": 40, "r": 1, "m": 0, "s": 12, "e": 19}, "b40/r1/m0/s12-19"),
    ):
        j = Journal(FlashFS(fresh_dir("jdmg")), "lock-1")
        j.damage = dict(damage)
        j.flush_damage(NOW, "door-1")
        [rec] = j.pending(10)
        assert (rec.kind, rec.ref, rec.granted, rec.reason) == ("none", ref, False, "journal-damage"), rec.ref
        assert j.damage == {}


def test_an_upload_batch_holds_fifty_records_by_default():
    j = Journal(FlashFS(fresh_dir("jbatch")), "lock-1")
    for i in range(60):
        j.append(NOW + i, "door-1", "code", "pc-%d" % i, False, "wrong-code")
    seqs, _body = j.pending_encoded()
    assert seqs == list(range(1, 51))
    assert [r.seq for r in j.pending()] == seqs


def test_the_journal_is_full_only_with_every_segment_live_and_no_room_left():
    j = Journal(FlashFS(fresh_dir("jfull")), "lock-1", segment_bytes=300, max_segments=2)
    assert not j.full(10**6)  # one live segment of two: a new one can always start
    while len(j.seg_count) < 2:
        j.append(NOW, "door-1", "exit", "", True, "ok")
    used = j.seg_size[j.active]
    assert not j.full(300 - used)  # exactly the room left
    assert j.full(301 - used)
    assert j.full(10**6)
