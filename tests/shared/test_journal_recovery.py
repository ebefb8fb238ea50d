# The lock journal's recovery, on CPython and on MicroPython: a boot on
# undamaged flash leaves the journal exactly as if the lock had never
# rebooted (same files, byte for byte, same numbers, same backlog), and the
# segments keep their documented layout; then recovery's own cases (left-
# over temporary files, orphaned acks, frames that check but are not
# records, a cut after a new segment's header, the skip after damage).
# From the mutation run (docs/testing.md): these were its survivors.
from firmware import journal
from firmware.frame import frame
from firmware.fsio import FlashFS
from firmware.journal import Journal
from firmware.statefile import StateFile
from protocol import cbor
from protocol.record import PassRecord
from tests.shared.util import fresh_dir

SEG = 300
MAX = 4


def _dir():
    return fresh_dir("jrec")


def _files(d):
    fs = FlashFS(d)
    return sorted((n, fs.read(n)) for n in fs.listdir())


def _fill(d, name, data):
    with open(d + "/" + name, "wb") as f:
        f.write(data)


def _lcg(seed):
    s = [seed]

    def nxt(n):
        s[0] = (s[0] * 1103515245 + 12345) & 0x7FFFFFFF
        return (s[0] >> 8) % n

    return nxt


def _open(d, seg=SEG, mx=MAX):
    return Journal(FlashFS(d), "lock-1", segment_bytes=seg, max_segments=mx)


def _append(j, i, rnd):
    # References of varied length, so segments fill at every byte count.
    ref = "r" * rnd(24)
    granted = rnd(3) != 0
    return j.append(1795000000 + i, "door-1", "code", ref, granted, "ok" if granted else "wrong-code")


def _check_layout(j, d):
    """Every segment begins with one header, [0, its first record's number],
    holds no other header, and fits its size unless the frame that began it
    did not; the bookkeeping names the same segments for counts and sizes."""
    for name, data in _files(d):
        if not name.endswith(".log"):
            continue
        payloads, bad, _runs, _torn, _tail = journal._frames(data)
        assert bad == 0, name
        assert journal._is_header(payloads[0]), name
        first = PassRecord.decode(payloads[1]).seq
        assert payloads[0] == cbor.encode([0, first]), name
        assert not any(journal._is_header(p) for p in payloads[1:]), name
        assert len(data) <= j.segment_bytes or len(payloads) == 2, name
    assert sorted(j.seg_size) == sorted(j.seg_count) and j.active in j.seg_size


def _state(j):
    return [r.encode() for r in j.pending(1000)], j.next_seq, j.backlog(), sorted(j.overflow.items())


def test_a_boot_on_undamaged_flash_changes_nothing():
    """Two journals given the same appends and acks, one rebooted between
    them at random: after every step their flash is identical and so is
    what they upload next. Over 3 seeds, with a journal small enough to
    fill (overflow counted, then summarised) and to rotate often."""
    for seed in (1, 2, 3):
        rnd = _lcg(seed)
        da, db = _dir(), _dir()
        a, b = _open(da), _open(db)
        boots = 0
        counted = 0
        for step in range(160):
            op = rnd(10)
            if op < 6:
                r1 = _append(a, step, _lcg(seed * 1000 + step))
                r2 = _append(b, step, _lcg(seed * 1000 + step))
                assert (r1 is None) == (r2 is None), (seed, step)
                counted += r1 is None
            elif op < 8:
                pend = [r.seq for r in a.pending(50)]
                take = pend[: rnd(len(pend) + 1)] if op == 6 else pend[rnd(2) :: 2]
                assert a.ack(take) == b.ack(take), (seed, step)
            elif op == 8:
                b = _open(db)
                boots += 1
            ctx = (seed, step, op)
            assert _files(da) == _files(db), ctx
            assert _state(a) == _state(b), ctx
            _check_layout(a, da)
            _check_layout(b, db)
        # The walk rebooted often and ran the journal full (decisions counted).
        assert boots >= 10 and counted >= 1, (seed, boots, counted)


def _fill_exactly(j, seg, size):
    """Append until segment `seg` is filled to the byte: the last record's
    reference is sized to the room left (0..23 characters, one CBOR byte
    each)."""
    i = 0
    while True:
        i += 1
        t = 1795000000 + i
        room = size - j.seg_size[j.active]
        base = len(frame(PassRecord("lock-1", j.next_seq, t, "door-1", "code", "", True, "ok").encode()))
        if j.active == seg and base <= room < base + 24:
            j.append(t, "door-1", "code", "r" * (room - base), True, "ok")
            return
        j.append(t, "door-1", "code", "", True, "ok")


def test_a_boot_with_the_newest_segment_filled_to_the_byte_changes_nothing():
    """The case the random walk above rarely meets: the boot finds the
    newest segment exactly full. Rebooted or not, the next records go to
    the same new segment and the flash stays the same."""
    for size in (200, 251, 300):
        da, db = _dir(), _dir()
        a = _open(da, seg=size, mx=3)
        b = _open(db, seg=size, mx=3)
        _fill_exactly(a, 2, size)
        _fill_exactly(b, 2, size)
        assert len(FlashFS(db).read("j00002.log")) == size
        b = _open(db, seg=size, mx=3)
        assert _state(a) == _state(b) and a.full(40) == b.full(40), size
        for i in range(8):
            a.ack([r.seq for r in a.pending(3)])
            b.ack([r.seq for r in b.pending(3)])
            r1 = a.append(1795000100 + i, "door-1", "code", "", True, "ok")
            r2 = b.append(1795000100 + i, "door-1", "code", "", True, "ok")
            assert (r1 is None) == (r2 is None), (size, i)
            assert _files(da) == _files(db) and _state(a) == _state(b), (size, i)
            _check_layout(b, db)


def test_leftover_temporary_files_and_orphaned_acks_are_removed_at_boot():
    d = _dir()
    j = _open(d)
    for i in range(3):
        _append(j, i, _lcg(i))
    j.ack([1])
    _fill(d, "meta.tmp", b"\xa5cut short")  # an atomic write cut before its rename
    _fill(d, "j00001.log.tmp", b"\x00" * 9)
    _fill(d, "j00007.ack", frame(b"\x00\x00\x00\x09"))  # its segment's deletion was cut
    before = _state(j)
    j2 = _open(d)
    names = sorted(n for n, _ in _files(d))
    assert names == ["j00001.ack", "j00001.log", "meta", "meta.b"] or names == [
        "j00001.ack",
        "j00001.log",
    ], names
    assert _state(j2) == before and j2.damage == {}


def test_segments_numbered_past_five_digits_are_found_at_boot():
    """Segment numbers only grow (a deleted segment's number is not reused):
    a lock that has rotated 100,000 segments still finds its records."""
    for first in (12345, 99999):
        d = _dir()
        j = _open(d)
        j.active = first
        j.seg_count = {first: 0}
        j.seg_size = {first: 0}
        for i in range(20):
            _append(j, i, _lcg(i))
        nums = sorted(int(n[1:-4]) for n, _ in _files(d) if n.endswith(".log"))
        assert nums[0] == first and len(nums) >= 3, nums
        before = _state(j)
        j2 = _open(d)
        assert _state(j2) == before, first
        assert j2.active == j.active and j2.damage == {}, first


def test_frames_that_check_but_are_not_records_are_skipped():
    """A frame that passes its CRC but holds no record of ours (a CRC
    collision in damaged bytes): the records around it are kept, pending
    and uploadable; it is never counted or uploaded."""
    foreign = (b"\x01", b"\x82", cbor.encode([0, "x"]), cbor.encode([1, 2, 3]), b"\xa8\x01")
    for junk in foreign:
        d = _dir()
        j = _open(d, seg=4096)
        for i in range(4):
            _append(j, i, _lcg(i))
        data = FlashFS(d).read("j00001.log")
        payloads = journal._frames(data)[0]
        cut = len(frame(payloads[0])) + len(frame(payloads[1]))  # after the header and record 1
        _fill(d, "j00001.log", data[:cut] + frame(junk) + data[cut:])
        j2 = _open(d, seg=4096)
        assert [r.seq for r in j2.pending(100)] == [1, 2, 3, 4], junk
        assert j2.backlog() == 4 and j2.next_seq == 5, junk
        seqs, body = j2.pending_encoded(100)
        assert seqs == [1, 2, 3, 4], junk
        assert body == j.pending_encoded(100)[1], junk


def test_a_cut_right_after_a_new_segments_header_hands_that_number_out_again():
    """The append that began a segment (its header and first record, one
    write) was cut inside the record: that number was never handed out,
    so the next record takes it, and the header bounds every older one."""
    d = _dir()
    j = _open(d)
    while "j00002.log" not in [n for n, _ in _files(d)]:
        _append(j, j.next_seq, _lcg(j.next_seq))
    floor = j.next_seq - 1  # the record that began segment 2
    j.ack([r.seq for r in j.pending(100)])  # and the gateway has it, with all before
    data = FlashFS(d).read("j00002.log")
    head = len(frame(cbor.encode([0, floor])))
    _fill(d, "j00002.log", data[: head + 5])
    for name in ("meta", "meta.b", "j00002.ack"):
        FlashFS(d).remove(name)  # so only the header tells the floor
    j2 = _open(d)
    assert j2.next_seq == floor and j2.damage == {} and j2.torn == 5
    r = _append(j2, 99, _lcg(1))
    assert r.seq == floor


def test_the_skip_after_damage_is_exact_and_reported():
    """An erased tail on the newest segment: the damaged bytes could have
    held (bytes lost) // the smallest record frame + 1 records, and exactly
    that many numbers are skipped and reported as the range s..e."""
    d = _dir()
    j = _open(d, seg=4096)
    for i in range(5):
        _append(j, i, _lcg(i))
    data = FlashFS(d).read("j00001.log")
    _fill(d, "j00001.log", data + b"\xff" * 40)
    j2 = _open(d, seg=4096)
    lost = 4096 - len(data)  # everything after the last good frame, to the segment's size
    skip = lost // journal._MIN_RECORD_FRAME + 1
    assert j2.next_seq == 6 + skip
    assert j2.damage == {"b": 40, "r": 1, "s": 6, "e": 5 + skip}
    # A second boot before the report is journaled keeps the first skipped
    # number and adds the new damage to the old.
    data = FlashFS(d).read("j00001.log")
    _fill(d, "j00001.log", data + b"\x00" * 10)
    j3 = _open(d, seg=4096)
    skip3 = (4096 - len(data)) // journal._MIN_RECORD_FRAME + 1
    assert j3.damage == {"b": 50, "r": 2, "s": 6, "e": j2.next_seq + skip3 - 1}
    assert j3.next_seq == j2.next_seq + skip3


def test_damage_inside_a_segment_or_on_an_older_one_skips_nothing():
    """Damaged frames followed by good ones, or at the end of a segment a
    newer one follows: the good frames and the newer header bound every
    number the damaged bytes held, so none is skipped (a gap the cloud
    would otherwise show for nothing)."""
    d = _dir()
    j = _open(d)
    while "j00003.log" not in [n for n, _ in _files(d)]:
        _append(j, j.next_seq, _lcg(j.next_seq))
    for _ in range(2):  # the newest segment holds good frames after the damaged one
        _append(j, j.next_seq, _lcg(j.next_seq))
    assert "j00004.log" not in [n for n, _ in _files(d)]
    used = j.next_seq
    for name, where in (
        ("j00001.log", "inside"),
        ("j00001.log", "end"),
        ("j00002.log", "end"),
        ("j00003.log", "inside"),
    ):
        d2 = _dir()
        for n, data in _files(d):
            _fill(d2, n, data)
        data = bytearray(FlashFS(d).read(name))
        payloads = journal._frames(bytes(data))[0]
        at = len(frame(payloads[0])) + 9 if where == "inside" else len(data) - 3
        data[at] ^= 0x40
        _fill(d2, name, bytes(data))
        j2 = _open(d2)
        assert j2.next_seq == used, (name, where)
        assert j2.damage["b"] > 0 and "s" not in j2.damage, (name, where)


def test_damage_in_two_segments_and_an_ack_file_is_summed():
    d = _dir()
    j = _open(d)
    while "j00003.log" not in [n for n, _ in _files(d)]:
        _append(j, j.next_seq, _lcg(j.next_seq))
    j.ack([2])
    want_b = 0
    for name in ("j00001.log", "j00002.log", "j00001.ack"):
        data = bytearray(FlashFS(d).read(name))
        payloads = journal._frames(bytes(data))[0]
        i = 1 if name.endswith(".log") else 0  # a record frame (or the ack)
        start = sum(len(frame(p)) for p in payloads[:i])
        data[start + 8] ^= 0x01
        want_b += len(frame(payloads[i]))
        _fill(d, name, bytes(data))
    j2 = _open(d)
    assert j2.damage["b"] == want_b and j2.damage["r"] == 3
    assert 2 in [r.seq for r in j2.pending(100)]  # its ack was lost: it goes up again


def test_acks_above_two_to_the_31_are_read_as_unsigned():
    d = _dir()
    fs = FlashFS(d)
    StateFile(fs, "meta").save([2**31 + 5, 0, 0, 0, 0, 0, 0, 0])
    j = Journal(fs, "lock-1")
    r = _append(j, 1, _lcg(1))
    assert r.seq == 2**31 + 5
    j.ack([r.seq])
    j2 = Journal(FlashFS(d), "lock-1")
    assert j2.pending(10) == [] and j2.next_seq == r.seq + 1


def test_a_meta_of_the_wrong_shape_counts_as_unreadable():
    for value in ([1, 2, 3], "x", [1, 0, 0, 0, 0, 0, 0, "s"]):
        d = _dir()
        fs = FlashFS(d)
        StateFile(fs, "meta").save(value)
        j = Journal(fs, "lock-1")
        # One copy existed and could not be used; the other never did.
        assert j.damage.get("m") == 1, value
    # Both copies unreadable and no segment left: the numbers used are
    # unknown, so the lock skips past all a full journal can hold.
    d = _dir()
    _fill(d, "meta", b"\xa5\x00\x05junk!")
    _fill(d, "meta.b", b"\x00" * 9)
    j = Journal(FlashFS(d), "lock-1", segment_bytes=4096, max_segments=32)
    skip = 32 * 4096 // journal._MIN_RECORD_FRAME
    assert j.next_seq == 1 + skip
    assert j.damage == {"m": 2, "s": 1, "e": skip}


def test_a_meta_restores_granted_and_denied_overflow_separately():
    for granted, denied in ((3, 0), (0, 2), (4, 1)):
        d = _dir()
        fs = FlashFS(d)
        StateFile(fs, "meta").save([7, granted, denied, 0, 0, 0, 0, 0])
        j = Journal(fs, "lock-1")
        want = {}
        if granted:
            want["granted"] = granted
        if denied:
            want["denied"] = denied
        assert j.overflow == want and j.next_seq == 7
    d = _dir()
    StateFile(FlashFS(d), "meta").save([1, 0, 0, 0, 0, 0, 0, 0])
    assert Journal(FlashFS(d), "lock-1").next_seq == 1


def test_files_that_only_look_like_segments_do_not_stop_the_boot():
    d = _dir()
    j = _open(d)
    for i in range(3):
        _append(j, i, _lcg(i))
    before = _state(j)
    for name in ("j0000x.log", "j000ab.log", "jabcde.log", "j00001.log.old", "x00002.log"):
        _fill(d, name, b"junk")
    j2 = _open(d)
    assert _state(j2) == before and j2.damage == {}
