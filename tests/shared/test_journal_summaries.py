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


def _record_len(j, ref):
    from firmware.frame import frame
    from protocol.record import PassRecord

    return len(frame(PassRecord("lock-1", j.next_seq, NOW, "door-1", "code", ref, True, "ok").encode()))


def _at_room(room, mx=1, size=400):
    """A journal of `mx` segments, all live, with exactly `room` bytes
    left in the newest: filled with records, the last two sized so the
    last leaves it (a reference of 0..23 characters is one CBOR byte each)."""
    j = Journal(FlashFS(fresh_dir("jroom")), "lock-1", segment_bytes=size, max_segments=mx)
    j.append(NOW, "door-1", "code", "", True, "ok")  # the first write carries the header
    while True:
        assert len(j.seg_count) == mx, "the journal rotated: choose a smaller room"
        left = size - j.seg_size[j.active] - room
        base = _record_len(j, "")
        if base <= left < base + 24:
            j.append(NOW, "door-1", "code", "r" * (left - base), True, "ok")
            assert size - j.seg_size[j.active] == room
            return j
        # Next: a record that leaves the last one's range reachable, if one does.
        k = [k for k in range(24) if base <= left - base - k < base + 24]
        j.append(NOW, "door-1", "code", "r" * (k[0] if k else 0), True, "ok")


def test_a_record_is_stored_while_it_leaves_twenty_bytes_and_counted_past_that():
    """The last 20 bytes of a full journal are kept back (the overflow
    summary's record must fit when space returns); a decision that would
    eat into them is counted, not stored."""
    for room in (70, 85):  # a reference of 0..23 characters sizes the record to the byte
        j = _at_room(room)
        fits = room - 20 - _record_len(j, "")
        assert j.append(NOW, "door-1", "code", "r" * fits, True, "ok") is not None, room
        j = _at_room(room)
        assert j.append(NOW, "door-1", "code", "r" * (fits + 1), True, "ok") is None, room
        assert j.overflow == {"granted": 1}


def test_the_damage_and_overflow_reports_wait_for_two_hundred_bytes_of_room():
    """A report is journaled before the next decision when 200 bytes are
    free, and waits (kept in the meta) when fewer are."""
    for room, written in ((200, True), (199, False)):
        j = _at_room(room, size=500)
        j.damage = {"b": 3, "r": 1}
        j.append(NOW, "door-1", "exit", "", True, "ok")
        reasons = [r.reason for r in j.pending(100)]
        assert ("journal-damage" in reasons) == written, room
        assert (j.damage == {}) == written, room
        j = _at_room(room, size=500)
        j.overflow = {"denied": 2}
        j.append(NOW, "door-1", "exit", "", True, "ok")
        reasons = [r.reason for r in j.pending(100)]
        assert ("journal-overflow" in reasons) == written, room
        j = _at_room(room, size=500)
        j.damage = {"b": 3}
        j.flush_damage(NOW, "door-1")
        assert ("journal-damage" in [r.reason for r in j.pending(100)]) == written, room


def test_a_damage_reference_longer_than_a_record_allows_is_cut_to_forty_characters():
    j = Journal(FlashFS(fresh_dir("jdmg40")), "lock-1")
    j.damage = {"b": 10**9, "r": 10**6, "m": 2, "s": 10**9, "e": 10**9 + 4519}
    j.flush_damage(NOW, "door-1")
    [rec] = j.pending(10)
    full = "b%d/r%d/m2/s%d-%d" % (10**9, 10**6, 10**9, 10**9 + 4519)
    assert len(full) > 40 and rec.ref == full[:40]
