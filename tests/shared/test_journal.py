# The lock's flash journal, on CPython and on MicroPython: durability,
# acks, bounded size, and power cuts at many byte positions.
import os

from firmware.fsio import FlashFS
from firmware.journal import Journal
from simulators.lockfs import PowerCut, PowerCutFS
from tests.shared.util import fresh_dir

# `make soak` (CPython): every damage kind at every offset; the quick run
# (and MicroPython, which has no environment) takes the kinds in turn.
_getenv = getattr(os, "getenv", None)
SOAK = bool(_getenv and _getenv("LOCKEDGE_SOAK") == "1")
# `make mutation`: the damage sweeps at a stride (every 7th offset and the
# last), so a journal mutant costs seconds, not minutes; make test and make
# soak keep every offset.
STRIDE = 7 if (_getenv and _getenv("LOCKEDGE_MUTATION") == "1") else 1


def _offsets(n):
    return [o for o in range(n) if o % STRIDE == 0 or o == n - 1]


def _dir():
    return fresh_dir("journal")


def _rec(j, i, granted=True):
    return j.append(1795000000 + i, "door-1", "code", "pc-%d" % i, granted, "ok" if granted else "wrong-code")


def test_append_ack_delete_and_sequence_never_reused():
    d = _dir()
    j = Journal(FlashFS(d), "lock-1", segment_bytes=400, max_segments=50)
    recs = [_rec(j, i) for i in range(30)]
    assert [r.seq for r in recs] == list(range(1, 31))
    assert [r.seq for r in j.pending(100)] == list(range(1, 31))
    assert j.ack(list(range(1, 21))) == 20
    assert j.ack([5]) == 0
    assert [r.seq for r in j.pending(100)] == list(range(21, 31))
    j2 = Journal(FlashFS(d), "lock-1", segment_bytes=400, max_segments=50)
    assert [r.seq for r in j2.pending(100)] == list(range(21, 31))
    j2.ack(list(range(21, 31)))
    assert j2.backlog() == 0
    j3 = Journal(FlashFS(d), "lock-1", segment_bytes=400, max_segments=50)
    assert _rec(j3, 99).seq == 31  # numbers survive the deletion of every record


def test_full_journal_counts_instead_of_dropping_and_reports_later():
    d = _dir()
    j = Journal(FlashFS(d), "lock-1", segment_bytes=300, max_segments=2)
    stored = []
    lost = 0
    for i in range(40):
        r = _rec(j, i, granted=(i % 3 != 0))
        if r is None:
            lost += 1
        else:
            stored.append(r.seq)
    assert lost > 0 and len(stored) + lost == 40
    j = Journal(FlashFS(d), "lock-1", segment_bytes=300, max_segments=2)  # counts survive a reboot
    j.ack(stored)
    r = _rec(j, 100)
    summary = [x for x in j.pending(100) if x.reason == "journal-overflow"]
    assert len(summary) == 1
    g, dn = summary[0].ref.split("/")
    assert int(g[1:]) + int(dn[1:]) == lost
    assert r is not None and r.seq == summary[0].seq + 1


def test_power_cut_at_many_bytes_loses_nothing_acknowledged():
    # Each round: write and ack until the power fails at byte k, reboot, check.
    rounds = 0
    torn_seen = 0
    for k in range(0, 1400, 5):
        d = _dir()
        fs = PowerCutFS(d)
        j = Journal(fs, "lock-1", segment_bytes=250, max_segments=50)
        done = []  # appends that returned: the door may have opened for these
        ack_requested = set()
        fs.arm(k)
        cut = False
        try:
            for i in range(40):
                done.append(_rec(j, i).seq)
                if i % 7 == 6:
                    batch = done[-5:-2]
                    ack_requested.update(batch)
                    j.ack(batch)
        except PowerCut:
            cut = True
        if not cut:
            continue
        rounds += 1
        j2 = Journal(PowerCutFS(d), "lock-1", segment_bytes=250, max_segments=50)
        torn_seen += 1 if j2.torn else 0
        left = [r.seq for r in j2.pending(1000)]
        for s in done:
            assert s in left or s in ack_requested, (k, s)  # never lost unless acked
        for s in left:
            assert s in done or s == (done[-1] + 1 if done else 1), (k, s)  # nothing invented
        assert left == sorted(left)
        nxt = _rec(j2, 999)
        assert nxt.seq > max(done + left + [0]), (k, nxt.seq)  # never reused
    assert rounds > 200 and torn_seen > 50


def test_records_framed_over_255_bytes_upload_whole():
    # The longest record the format allows: 64-character ids and a reference
    # of 40 characters that are 4 bytes each in UTF-8 (a frame of about 330
    # bytes, so its length's high byte is not zero).
    from protocol import cbor, record

    fs = FlashFS(fresh_dir("jbig"))
    device, door = "l" * 64, "d" * 64
    j = Journal(fs, device, segment_bytes=4096, max_segments=4)
    refs = ["\U0001f511" * 40, "short", "\u00e9" * 40]
    for i, ref in enumerate(refs):
        assert j.append(1795000000 + i, door, "code", ref, True, "ok") is not None
    assert len(record.PassRecord(device, 1, 1795000000, door, "code", refs[0], True, "ok").encode()) > 255
    for jj in (j, Journal(fs, device, segment_bytes=4096, max_segments=4)):  # and after a reboot
        seqs, body = jj.pending_encoded(10)
        assert seqs == [1, 2, 3]
        assert [r.ref for r in record.batch_from_body(cbor.decode(body))] == refs


def test_encoded_upload_equals_the_decoded_batch():
    from protocol import cbor, record

    fs = FlashFS(fresh_dir("jenc"))
    j = Journal(fs, "lock-1", segment_bytes=600, max_segments=64)
    for i in range(40):
        j.append(
            1795000000 + i * 977,
            "door-1",
            "code",
            "pc-%d" % (i * 7919),
            i % 3 != 0,
            "ok" if i % 3 else "wrong-code",
        )
    j.ack([2, 3, 10, 11, 12])
    for limit in (1, 7, 30, 50):
        seqs, body = j.pending_encoded(limit)
        recs = j.pending(limit)
        assert seqs == [r.seq for r in recs]
        assert body == cbor.encode(record.batch_body(recs))
        assert [r.seq for r in record.batch_from_body(cbor.decode(body))] == seqs
    j2 = Journal(fs, "lock-1", segment_bytes=600, max_segments=64)  # after a reboot too
    assert j2.pending_encoded(50)[0] == j.pending_encoded(50)[0]
    assert Journal(FlashFS(fresh_dir("jenc2")), "x").pending_encoded(5) == ([], bytes((0x82, 1, 0x80)))
    big = [
        record.PassRecord("lock-1", s, 1, "d", "code", "", False, "wrong-code")
        for s in (1, 23, 24, 255, 256, 65536, 2**32, 2**40)
    ]
    for r in big:
        assert record.peek_seq(r.encode()) == r.seq


# -- issue 16: damage never stops the lock, never reuses a number ----------------


def _fill(d, name, data):
    with open(d + "/" + name, "wb") as f:
        f.write(data)


def _get(d, name):
    try:
        with open(d + "/" + name, "rb") as f:
            return f.read()
    except OSError:
        return b""


def _jstate(j):
    return (
        [r.encode() for r in j.pending(1000)],
        j.next_seq,
        sorted(j.damage.items()),
        sorted(j.overflow.items()),
    )


def test_smallest_record_frame_bounds_the_skip():
    from firmware import journal
    from protocol.record import PassRecord

    shortest = PassRecord("a", 1, 0, "a", "qr", "", False, "a").encode()
    assert len(shortest) + journal._HEAD_LEN >= journal._MIN_RECORD_FRAME


def test_zero_and_erased_tails_do_not_stop_the_lock():
    for fill in (0x00, 0xFF):
        d = _dir()
        j = Journal(FlashFS(d), "lock-1")
        for i in range(5):
            _rec(j, i)
        with open(d + "/j00001.log", "ab") as f:
            f.write(bytes([fill]) * 6)
        j2 = Journal(FlashFS(d), "lock-1")  # raised ProtocolError / struct.error
        assert [r.seq for r in j2.pending(100)] == [1, 2, 3, 4, 5]
        assert j2.damage["b"] == 6 and j2.next_seq > 6
        r = _rec(j2, 9)
        reasons = [x.reason for x in j2.pending(100)]
        assert reasons[-2:] == ["journal-damage", "ok"] and r.seq > 6


def test_files_named_almost_like_segments_are_left_alone():
    # Only "j" + digits + ".log" is a segment: a name with a letter among
    # its digits (a copy, a stray upload) must neither stop the lock at
    # boot nor be read, numbered or deleted as one.
    d = _dir()
    j = Journal(FlashFS(d), "lock-1")
    for i in range(3):
        _rec(j, i)
    for name in ("jx0001.log", "j0000x.log", "j00a01.log", "j.log", "jj00001.log"):
        _fill(d, name, b"not a segment")
    j2 = Journal(FlashFS(d), "lock-1")
    assert [r.seq for r in j2.pending(100)] == [1, 2, 3]
    assert _rec(j2, 9).seq == 4
    j2.ack([1, 2, 3, 4])
    assert j2.backlog() == 0
    for name in ("jx0001.log", "j0000x.log", "j00a01.log", "j.log", "jj00001.log"):
        assert _get(d, name) == b"not a segment"


def test_damaged_meta_does_not_stop_the_lock():
    for junk in (b"", b"\x00" * 12, b"\xff" * 30, b"\x82\x01", b"junk that is not a frame"):
        d = _dir()
        j = Journal(FlashFS(d), "lock-1", segment_bytes=300, max_segments=2)
        for i in range(20):
            _rec(j, i, granted=False)  # fills the journal: the overflow lives in the meta
        j.ack([r.seq for r in j.pending(100)][:3])
        before = j.next_seq
        for name in ("meta", "meta.b"):
            if _get(d, name):
                _fill(d, name, junk)
        j2 = Journal(FlashFS(d), "lock-1", segment_bytes=300, max_segments=2)
        assert j2.next_seq >= before  # the segments' headers and records still bound it
        if junk:
            assert j2.damage["m"] >= 1
        j3 = Journal(FlashFS(d), "lock-1", segment_bytes=300, max_segments=2)
        assert _jstate(j3) == _jstate(j2)


def test_sequence_numbers_never_reused_after_damage():
    d = _dir()
    j = Journal(FlashFS(d), "lock-1", segment_bytes=4096)
    for i in range(91):
        _rec(j, i)
    name = sorted(n for n in FlashFS(d).listdir() if n.endswith(".log"))[-1]
    data = bytearray(_get(d, name))
    for k in range(1, 4):  # the last three completed frames
        data[len(data) - k * 40] ^= 0x20
    _fill(d, name, bytes(data))
    j2 = Journal(FlashFS(d), "lock-1", segment_bytes=4096)
    assert j2.next_seq > 91  # was 88: the gateway holds 88..91 and refused the new ones
    nxt = _rec(j2, 100)
    assert nxt.seq > 91 and j2.pending(200)[-2].reason == "journal-damage"
    # Cut exactly at a frame boundary: the ack file still bounds the numbers.
    d = _dir()
    j = Journal(FlashFS(d), "lock-1", segment_bytes=4096)
    for i in range(10):
        _rec(j, i)
    j.ack([9, 10])
    log = _get(d, "j00001.log")
    _fill(d, "j00001.log", log[: len(log) - 2 * len(log) // 11])
    assert Journal(FlashFS(d), "lock-1", segment_bytes=4096).next_seq > 10


def test_recovery_is_idempotent():
    d = _dir()
    j = Journal(FlashFS(d), "lock-1", segment_bytes=400)
    for i in range(30):
        _rec(j, i)
    j.ack([1, 2, 3, 17])
    log = bytearray(_get(d, "j00002.log"))
    log[50] ^= 1
    _fill(d, "j00002.log", bytes(log) + b"\x00" * 9)
    j1 = Journal(FlashFS(d), "lock-1", segment_bytes=400)
    s1 = _jstate(j1)
    assert j1.damage
    j2 = Journal(FlashFS(d), "lock-1", segment_bytes=400)
    assert _jstate(j2) == s1


def _damage(data, off, kind):
    b = bytearray(data)
    if kind == "cut":
        return bytes(b[:off])
    if kind == "flip":
        b[off] ^= 1 << (off % 8)
        return bytes(b)
    fill = 0 if kind in ("zero", "zero-tail") else 0xFF
    if kind.endswith("-tail"):
        return bytes(b[:off]) + bytes([fill]) * 12
    for i in range(off, min(off + 6, len(b))):
        b[i] = fill
    return bytes(b)


def _extents(data):
    """(start, end, seq) of each record frame of an undamaged log."""
    from firmware import journal
    from protocol import record

    out = []
    pos = 0
    while pos + journal._HEAD_LEN <= len(data):
        end = pos + journal._HEAD_LEN + ((data[pos + 1] << 8) | data[pos + 2])
        payload = data[pos + journal._HEAD_LEN : end]
        if payload[0] == 0xA8:
            out.append((pos, end, record.peek_seq(payload)))
        pos = end
    return out


def test_damage_at_every_offset_of_every_file():
    """Every file of a small journal (three segments, an ack file, both meta
    copies), damaged at every offset (the kinds in turn): the lock boots,
    invents nothing, keeps every unacked record outside the damaged bytes,
    never hands out a number it used, and a second boot finds the same."""
    base = _dir()
    j = Journal(FlashFS(base), "lock-1", segment_bytes=250, max_segments=8)
    written = {}
    for i in range(14):
        r = _rec(j, i, granted=i % 3 != 0)
        written[r.seq] = r.encode()
    acked_ever = [1, 2, 3, 4, 5, 9]
    j.ack(acked_ever)
    j._save_meta()  # both meta copies on flash, as after any two saves
    j = Journal(FlashFS(base), "lock-1", segment_bytes=250, max_segments=8)
    reference = [r.seq for r in j.pending(100)]
    used = max(written)
    files = sorted(n for n in FlashFS(base).listdir() if not n.endswith(".tmp"))
    assert "meta" in files and "meta.b" in files and any(n.endswith(".ack") for n in files)
    contents = {n: _get(base, n) for n in files}
    newest = sorted(n for n in files if n.endswith(".log"))[-1]
    kinds = ("cut", "flip", "zero", "ff", "zero-tail", "ff-tail")
    rounds = 0
    for fi, name in enumerate(files):
        data = contents[name]
        for off in _offsets(len(data)):
            for kind in kinds if SOAK else (kinds[(off + fi) % len(kinds)],):
                d = _dir()
                for n in files:
                    _fill(d, n, _damage(data, off, kind) if n == name else contents[n])
                ctx = "%s@%d:%s" % (name, off, kind)
                j1 = Journal(FlashFS(d), "lock-1", segment_bytes=250, max_segments=8)
                pend = j1.pending(100)
                seqs = [r.seq for r in pend]
                assert len(seqs) == len(set(seqs)), ctx
                for r in pend:
                    assert written.get(r.seq) == r.encode(), ctx  # nothing invented or altered
                if not name.endswith(".log"):
                    for s in reference:
                        assert s in seqs, ctx  # meta or acks damaged: no record lost
                else:
                    hit_lo = off
                    hit_hi = (
                        len(data)
                        if kind == "cut" or kind.endswith("-tail")
                        else off + (1 if kind == "flip" else 6)
                    )
                    for start, end, s in _extents(data):
                        if s in reference and (end <= hit_lo or start >= hit_hi):
                            assert s in seqs, ctx  # untouched frames are kept
                # Never reused: not after erased runs or flips, and after a cut
                # (which looks like a torn append) not any number the gateway
                # acknowledged.
                if kind == "cut" and name == newest:
                    assert j1.next_seq > max(acked_ever), ctx
                else:
                    assert j1.next_seq > used, ctx
                s1 = _jstate(j1)
                j2 = Journal(FlashFS(d), "lock-1", segment_bytes=250, max_segments=8)
                assert _jstate(j2) == s1, ctx
                nxt = _rec(j2, 99)
                assert nxt is not None and nxt.seq >= j1.next_seq, ctx
                rounds += 1
    assert rounds == (len(kinds) if SOAK else 1) * sum(len(_offsets(len(c))) for c in contents.values())
