"""The gateway outbox at its edges (gateway/outbox.py), each case one the
mutation run could change with every test green: reading in pieces and
past a record larger than the read chunk, duplicates inside one batch or
one ack, the segment roll at the byte, what a roll may delete, descriptors
and modes, frames that check but hold something else, and the repair's
fsync. Fast (no kill -9 here): test_outbox.py holds the fault campaigns."""

from __future__ import annotations

import os
from pathlib import Path

import cbor2
import pytest

from gateway import logframe, outbox
from gateway.outbox import GroupCommitter, Outbox, OutboxError


def _recs(device: str, lo: int, hi: int, size: int = 5) -> list[tuple[str, int, bytes]]:
    return [(device, s, b"%d-" % s + b"r" * size) for s in range(lo, hi)]


def _keys(entries: list[outbox.Entry]) -> list[tuple[str, int]]:
    return [(e.device, e.seq) for e in entries]


def _open_fds() -> int:
    return len(os.listdir("/proc/self/fd"))


def test_reading_in_pieces_gives_what_one_read_gives(tmp_path: Path) -> None:
    """Across segments, with acknowledged holes and whole segments
    acknowledged between others: a reader that continues from each
    cursor, a few records at a time, sees every unacked record once, in
    append order, and a cursor at the end gives nothing more."""
    ob = Outbox(tmp_path, segment_bytes=600, fsync=False)
    try:
        for lo in range(1, 120, 7):
            ob.append(_recs("lock-1", lo, lo + 7) + _recs("gate-A", lo, lo + 3))
        segs = sorted(ob.seg_unacked)
        assert len(segs) >= 6
        whole = [(e.device, e.seq) for e in ob.read(None, 10_000)[0] if e.segment == segs[2]]
        ob.ack(whole + [("lock-1", s) for s in range(1, 120, 5)])  # a segment and scattered holes
        entries = ob.read(None, 10_000)[0]
        want = _keys(entries)
        assert len(want) == ob.backlog() and len(set(want)) == len(want)
        assert all(e.segment == ob.unacked[e.device][e.seq] and e.appended_at > 1e9 for e in entries)
        # The active segment fully acknowledged too: a cursor past it stays there.
        ob.ack([k for k in want if ob.unacked[k[0]][k[1]] == ob._active])
        want = _keys(ob.read(None, 10_000)[0])
        assert want and ob.seg_unacked[ob._active] == 0
        for step in (1, 2, 3, 7, 50):
            got: list[tuple[str, int]] = []
            cur = None
            while True:
                part, cur = ob.read(cur, step)
                assert len(part) <= step
                if not part:
                    break
                got += _keys(part)
            assert got == want, step
            assert ob.read(cur, 10)[0] == [], step
    finally:
        ob.close()


def test_a_record_larger_than_the_read_chunk_is_read_whole(tmp_path: Path) -> None:
    big = bytes(range(256)) * ((outbox._READ_CHUNK * 2 + 77) // 256)
    ob = Outbox(tmp_path, segment_bytes=1 << 24, fsync=False)
    try:
        ob.append(_recs("lock-1", 1, 3))
        ob.append([("lock-1", 3, big)])
        ob.append(_recs("lock-1", 4, 6))
        got = ob.read(None, 100)[0]
        assert [e.seq for e in got] == [1, 2, 3, 4, 5]
        assert got[2].data == big
        one, cur = ob.read(None, 3)
        rest, _ = ob.read(cur, 100)
        assert [e.seq for e in one + rest] == [1, 2, 3, 4, 5] and one[2].data == big
    finally:
        ob.close()
    ob = Outbox(tmp_path, segment_bytes=1 << 24, fsync=False)  # and from a closed segment after restart
    try:
        got = ob.read(None, 100)[0]
        assert [e.seq for e in got] == [1, 2, 3, 4, 5] and got[2].data == big
    finally:
        ob.close()


def test_a_record_twice_in_one_batch_or_one_ack_counts_once(tmp_path: Path) -> None:
    ob = Outbox(tmp_path, fsync=False)
    try:
        assert ob.append([("l", 1, b"a"), ("l", 1, b"a"), ("l", 2, b"b")]) == [True, False, True]
        assert ob.backlog() == 2 and [e.seq for e in ob.pending()] == [1, 2]
        assert ob.ack([("l", 1), ("l", 1)]) == 1
        assert ob.backlog() == 1 and [e.seq for e in ob.pending()] == [2]
    finally:
        ob.close()


def test_a_segment_rolls_when_it_reaches_its_size_exactly(tmp_path: Path) -> None:
    probe = Outbox(tmp_path / "probe", fsync=False)
    start = probe._size
    probe.append([("l", 1, b"x" * 20)])
    frame = probe._size - start
    probe.close()
    for extra, rolled in ((0, True), (1, False)):
        d = tmp_path / f"exact-{extra}"
        ob = Outbox(d, segment_bytes=start + 3 * frame + extra, fsync=False)
        try:
            for s in (1, 2, 3):
                ob.append([("l", s, b"x" * 20)])
            assert len(list(d.glob("seg-*.log"))) == (2 if rolled else 1), extra
        finally:
            ob.close()


def test_a_roll_deletes_the_old_segment_only_when_nothing_in_it_is_unacked(tmp_path: Path) -> None:
    # One record left unacked in it (the one whose batch filled it): it
    # stays, and the record is read, before and after a restart. Once that
    # is acked the segment goes.
    d = tmp_path / "one-left"
    ob = Outbox(d, segment_bytes=300, fsync=False)
    try:
        ob.append([("l", 1, b"a")])
        ob.ack([("l", 1)])
        seg = ob._active
        n = 2
        while ob._active == seg:
            ob.append([("l", n, b"b" * 30)])
            if ob._active == seg:
                ob.ack([("l", n)])  # all but the one that fills it
            n += 1
        assert ob.seg_unacked[seg] == 1 and ob._log(seg).exists()
        assert [e.seq for e in ob.pending()] == [n - 1]
    finally:
        ob.close()
    ob = Outbox(d, segment_bytes=300, fsync=False)
    try:
        assert [e.seq for e in ob.pending()] == [n - 1]
        assert ob.ack([("l", n - 1)]) == 1 and not ob._log(seg).exists()
    finally:
        ob.close()


def test_marks_of_single_sequences_survive_in_the_checkpoint(tmp_path: Path) -> None:
    """A device's marks are ranges [lo, hi]; a lone sequence is [s, s].
    Once the segments that held them are gone, the checkpoint alone keeps
    them: a resend of any of them is still known after a restart."""
    ob = Outbox(tmp_path, segment_bytes=300, fsync=False)
    ob.append([("l", 1, b"a"), ("l", 3, b"b"), ("l", 7, b"c"), ("l", 8, b"d")])
    ob.ack([("l", 1), ("l", 3), ("l", 7), ("l", 8)])
    first = ob._log(ob._active)
    s = 100
    while first.exists():  # until the segment that held l's records is deleted
        ob.append([("m", s, b"x" * 40)])
        ob.ack([("m", s)])
        s += 1
    ob.close()
    ob = Outbox(tmp_path, segment_bytes=300, fsync=False)
    try:
        assert ob.append([("l", s, b"again") for s in (1, 3, 7, 8)]) == [False] * 4
        assert ob.append([("l", 2, b"new")]) == [True]
    finally:
        ob.close()


def test_the_documented_defaults_of_reads_and_the_committer(tmp_path: Path) -> None:
    ob = Outbox(tmp_path, fsync=False)
    try:
        ob.append(_recs("l", 1, 601))
        assert len(ob.pending()) == 500 and len(ob.read(None)[0]) == 500
        gc = GroupCommitter(ob)
        assert gc.max_batch == 2000
        gc.close()
    finally:
        ob.close()


def test_descriptors_are_not_leaked_and_ack_files_are_private(tmp_path: Path) -> None:
    """One ack descriptor per live segment, closed when its segment goes,
    and none left after close (a gateway runs for months)."""
    before = _open_fds()
    ob = Outbox(tmp_path, segment_bytes=400, fsync=False)
    for s in range(1, 400):
        ob.append([("l", s, b"r" * 30)])
        ob.ack([("l", s)])  # each segment fully acked, then deleted
        if s % 50 == 0:
            assert _open_fds() <= before + 4, s  # the lock, the active log, its ack file
    assert sorted(ob._order) == sorted(ob.seg_unacked)  # nothing kept for deleted segments
    ob.append([("l", 500, b"z")])
    for seg in ob.seg_unacked:
        ob.ack([("l", 500)])
        assert oct(ob._ack(seg).stat().st_mode & 0o777) == "0o600"
    logs = list(tmp_path.glob("seg-*.log"))  # the logs hold the records: private too
    assert logs and {oct(p.stat().st_mode & 0o777) for p in logs} == {"0o600"}
    ob.close()
    assert _open_fds() == before
    ob.close()  # a second close changes nothing
    assert _open_fds() == before
    os.fstat(1)  # and closed nothing of anyone else's


def test_frames_that_check_but_hold_something_else_are_counted_and_ignored(tmp_path: Path) -> None:
    """A frame that passes its CRC (a collision, a bug) but is neither a
    record nor a well-formed checkpoint or ack: counted as undecodable,
    and no mark, record or ack taken from it."""
    ob = Outbox(tmp_path, segment_bytes=1 << 20, fsync=False)
    ob.append(_recs("l", 1, 4))
    seg = ob._active
    ob.close()
    bad_checkpoints = [
        {"cp": 1, "m": {"l": [9, 5]}},  # a range that runs backwards
        {"cp": 1, "m": {"l": [0, 5]}},  # sequence 0
        {"cp": 1, "m": {"l": [9]}},  # an odd count
        {"cp": 1, "m": {"l": [True, 9]}},  # a bool is not a number
        {"cp": 1, "m": {"l": "9-12"}},
        {"cp": 1, "m": {7: [20, 30]}},  # not a device name
        {"cp": 1, "m": {"l": [9, 12, 20, 15]}},  # the second range backwards
        {"cp": 2, "m": {"l": [90, 99]}},
    ]
    bad_acks = [["l"], ["l", "1"], [1, 2], ["l", 1, 2], "l/1", ["l", True]]
    log = ob._log(seg)
    log.write_bytes(log.read_bytes() + b"".join(logframe.frame(cbor2.dumps(c)) for c in bad_checkpoints))
    ob._ack(seg).write_bytes(b"".join(logframe.frame(cbor2.dumps(a)) for a in bad_acks))
    ob = Outbox(tmp_path, segment_bytes=1 << 20, fsync=False)
    try:
        assert ob.report.undecodable == len(bad_checkpoints) + len(bad_acks)
        assert ob.report.acked == 0 and [e.seq for e in ob.pending()] == [1, 2, 3]
        assert ob.append(_recs("l", 4, 6) + _recs("l", 9, 10) + _recs("l", 20, 21)) == [True] * 4
    finally:
        ob.close()


def test_damage_in_two_files_is_summed_in_the_report(tmp_path: Path) -> None:
    ob = Outbox(tmp_path, segment_bytes=400, fsync=False)
    for i in range(1, 31):
        ob.append([("lock-1", i, b"r" * 40)])
    ob.close()
    logs = sorted(tmp_path.glob("seg-*.log"))[:2]
    want = 0
    for p in logs:
        b = bytearray(p.read_bytes())
        b[len(b) // 2] ^= 0xFF
        p.write_bytes(bytes(b))
        want += logframe.parse(bytes(b)).skipped
    ob = Outbox(tmp_path, segment_bytes=400, fsync=False)
    try:
        assert ob.report.corrupt_bytes == want and ob.report.torn_bytes == 0
    finally:
        ob.close()


def test_a_repaired_file_is_synced_before_it_replaces_the_damaged_one(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    ob = Outbox(tmp_path, segment_bytes=1 << 20)
    ob.append(_recs("l", 1, 5))
    seg = ob._active
    ob.close()
    log = ob._log(seg)
    log.write_bytes(log.read_bytes() + b"\x00" * 9)
    synced: list[str] = []
    real = os.fsync

    def spy(fd: int) -> None:
        synced.append(os.readlink(f"/proc/self/fd/{fd}"))
        real(fd)

    monkeypatch.setattr(os, "fsync", spy)
    ob = Outbox(tmp_path, segment_bytes=1 << 20)
    try:
        assert log.name in ob.report.files_repaired
        assert any(f".{log.name}.tmp-" in p for p in synced)
    finally:
        ob.close()


def test_the_oldest_age_passes_over_a_device_whose_records_are_all_acked(tmp_path: Path) -> None:
    ob = Outbox(tmp_path, fsync=False)
    try:
        ob.append([("a", 1, b"x"), ("a", 2, b"x")], now=100.0)
        ob.append([("b", 1, b"y")], now=150.0)
        ob.ack([("a", 1), ("a", 2)])
        assert ob.oldest_unacked_age(now=200.0) == 50.0
    finally:
        ob.close()


def test_a_closed_committer_refuses_new_work_with_a_clear_error(tmp_path: Path) -> None:
    ob = Outbox(tmp_path, fsync=False)
    gc = GroupCommitter(ob)
    gc.close()
    try:
        with pytest.raises(OutboxError, match=r"^outbox is closing$"):
            gc.submit([("l", 1, b"x")], lambda r: None)
    finally:
        ob.close()


def test_a_batch_takes_submissions_until_it_holds_its_bound() -> None:
    """Single-record submissions piled up behind a slow write go out in
    batches of exactly max_batch records."""
    import threading

    from tests.test_outbox import _GatedOutbox

    ob = _GatedOutbox()
    gc = GroupCommitter(ob, max_batch=3)  # type: ignore[arg-type]
    answered = threading.Semaphore(0)
    try:
        gc.submit([("a", 1, b"")], lambda r: answered.release())
        assert ob.entered.wait(10)
        for s in range(2, 9):
            gc.submit([("a", s, b"")], lambda r: answered.release())
        ob.gate.set()
        for _ in range(8):
            assert answered.acquire(timeout=10)
    finally:
        gc.close()
    assert [len(b) for b in ob.batches] == [1, 3, 3, 1]


def test_a_failed_write_whose_cut_back_fails_too_loses_nothing_and_hangs_nothing(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A disk error mid-batch, and the cut-back of the partial frame fails
    as well: the partial frame stays in the file. The batch is not taken;
    the records before it and every later batch are read, whole and once,
    before and after a restart (a reader used to stop at the partial frame,
    or cut the later records short)."""
    ob = Outbox(tmp_path, segment_bytes=1 << 20)
    assert ob.append(_recs("l", 1, 3)) == [True, True]
    real_write = Outbox._write_all

    def half_then_fail(self: Outbox, fd: int, buf: bytes | bytearray) -> None:
        os.write(fd, bytes(buf[: len(buf) // 2]))
        raise OSError(5, "Input/output error")

    def no_truncate(fd: int, size: int) -> None:
        raise OSError(5, "Input/output error")

    monkeypatch.setattr(Outbox, "_write_all", half_then_fail)
    monkeypatch.setattr(os, "ftruncate", no_truncate)
    with pytest.raises(OSError):
        ob.append(_recs("l", 3, 6))
    monkeypatch.undo()
    assert Outbox._write_all is real_write
    assert ob.append(_recs("l", 3, 6)) == [True] * 3  # not taken before: stored now
    assert ob.append(_recs("l", 6, 8)) == [True] * 2
    assert len(list(tmp_path.glob("seg-*.log"))) == 2  # one roll past the partial frame, no more
    want = list(range(1, 8))
    assert [e.seq for e in ob.read(None, 100)[0]] == want
    got, cur = [], None
    while True:
        part, cur = ob.read(cur, 2)
        if not part:
            break
        got += [e.seq for e in part]
    assert got == want
    ob.close()
    ob = Outbox(tmp_path, segment_bytes=1 << 20)
    try:
        assert [e.seq for e in ob.pending(100)] == want
        # The partial frame ends the sealed segment: a tear, found and cut out.
        assert ob.report.torn_bytes > 0 and ob.report.files_repaired == [ob._log(1).name]
    finally:
        ob.close()


def test_a_legacy_devices_json_folds_into_exactly_its_marks(tmp_path: Path) -> None:
    """devices.json (outboxes before checkpoints) kept a high-water mark and
    the holes below it; each device's marks are exactly 1..last without
    the holes, with or without a holes table or an entry in it."""
    from gateway.seqset import SeqSet

    cases = [
        ('{"last": {"d": 10}, "holes": {"d": [4, 7]}}', {"d": [1, 3, 5, 6, 8, 10]}),
        ('{"last": {"d": 10}, "holes": {"d": [1, 2, 10]}}', {"d": [3, 9]}),
        ('{"last": {"d": 5, "e": 3}, "holes": {"d": [5, 3]}}', {"d": [1, 2, 4, 4], "e": [1, 3]}),
        ('{"last": {"d": 4}}', {"d": [1, 4]}),
        ('{"last": {"d": 1}, "holes": {}}', {"d": [1, 1]}),
    ]
    for i, (text, want) in enumerate(cases):
        d = tmp_path / f"legacy-{i}"
        d.mkdir()
        (d / "devices.json").write_text(text)
        ob = Outbox(d, fsync=False)
        try:
            assert ob.report.legacy_meta == "folded", text
            assert ob.marks == {k: SeqSet(v) for k, v in want.items()}, text
        finally:
            ob.close()
        assert not (d / "devices.json").exists()
        ob = Outbox(d, fsync=False)  # folded into the checkpoint: the same after a restart
        try:
            assert ob.marks == {k: SeqSet(v) for k, v in want.items()}, text
        finally:
            ob.close()


def test_the_recovery_report_counts_segments_records_acks_and_bad_frames_exactly(tmp_path: Path) -> None:
    """Over several segments: a frame that is not a record placed before
    the records (the scan goes on past it), a record framed twice, acks
    with a malformed one among them; every count exact, every record
    after them kept."""
    ob = Outbox(tmp_path, segment_bytes=400, fsync=False)
    for s in range(1, 25):
        ob.append([("l", s, b"r" * 30)])
    segs = sorted(ob.seg_unacked)
    assert len(segs) >= 4
    ob.ack([("l", 2), ("l", 3)])
    ob.close()
    first = ob._log(segs[0])
    frames = logframe.parse(first.read_bytes()).frames
    cps = [pl for _o, pl in frames if isinstance(cbor2.loads(pl), dict)]
    recs = [pl for _o, pl in frames if not isinstance(cbor2.loads(pl), dict)]
    junk = logframe.frame(cbor2.dumps(["not", "a", "record"]))
    first.write_bytes(
        b"".join(logframe.frame(c) for c in cps)
        + junk
        + b"".join(logframe.frame(r) for r in recs)
        + logframe.frame(recs[0])  # framed twice
        + junk
    )
    ack = ob._ack(segs[0])
    ack.write_bytes(logframe.frame(cbor2.dumps("junk")) + ack.read_bytes())
    ob = Outbox(tmp_path, segment_bytes=400, fsync=False)
    try:
        r = ob.report
        assert r.segments == len(segs) and r.undecodable == 3
        assert r.records == 24 and r.acked == 2
        assert [e.seq for e in ob.pending(100)] == [1, *range(4, 25)]
        assert ob.seg_unacked[segs[0]] == len(recs) - 2
    finally:
        ob.close()


def test_a_checkpoint_too_big_for_one_frame_is_split_and_read_back_whole(tmp_path: Path) -> None:
    """Marks with many gaps (every other sequence) make a checkpoint of
    more than a frame may hold (1 MiB): it is split into frames of at most
    256 KiB, and once the segments that held the records are gone, the
    checkpoint alone still knows every one of them."""
    ob = Outbox(tmp_path, segment_bytes=1 << 22, fsync=False)
    n = 70_000  # 70,000 single-sequence ranges: 140,000 numbers, > 1 MiB as CBOR
    ob.append([("l", 2 * i + 1, b"") for i in range(n)] + [("m", 1, b"")])
    ob.ack([("l", 2 * i + 1) for i in range(n)] + [("m", 1)])
    ob.close()
    # The next start drops the acknowledged segment after writing a new
    # one's checkpoint; from the start after that, only checkpoints hold l.
    Outbox(tmp_path, segment_bytes=1 << 22, fsync=False).close()
    logs = sorted(tmp_path.glob("seg-*.log"))
    assert len(logs) == 1
    frames = [cbor2.loads(pl) for _o, pl in logframe.parse(logs[0].read_bytes()).frames]
    assert all(isinstance(f, dict) and f.get("cp") == 1 and isinstance(f.get("m"), dict) for f in frames)
    assert len(frames) >= 2 * 3  # written twice, each copy in several frames
    sizes = [len(pl) for _o, pl in logframe.parse(logs[0].read_bytes()).frames]
    assert all(n_ <= outbox._CHECKPOINT_BYTES + 64 * 1024 for n_ in sizes)
    ob = Outbox(tmp_path, segment_bytes=1 << 22, fsync=False)
    try:
        assert len(ob.marks["l"]) == n and ob.marks["l"].high == 2 * n - 1
        assert ob.append([("l", 2 * n - 1, b""), ("l", 2, b""), ("m", 1, b"")]) == [False, True, False]
    finally:
        ob.close()


def _recovery_warning(d: Path, caplog: pytest.LogCaptureFixture) -> str:
    """The one warning an outbox's recovery logs when it opens `d`."""
    import logging

    caplog.clear()
    with caplog.at_level(logging.WARNING, logger=outbox.log.name):
        Outbox(d, fsync=False).close()
    [msg] = [r.getMessage() for r in caplog.records if r.getMessage().startswith("outbox recovery")]
    return msg


def test_the_recovery_warning_says_what_was_found_and_repaired(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    ob = Outbox(tmp_path, fsync=False)
    ob.append(_recs("l", 1, 3))
    ob.close()
    log = next(tmp_path.glob("seg-*.log"))
    log.write_bytes(log.read_bytes() + b"\x00" * 5)
    (tmp_path / "devices.json").write_bytes(b"{broken")
    assert _recovery_warning(tmp_path, caplog) == (
        "outbox recovery: 0 torn and 5 damaged bytes (1 runs), 0 undecodable frames, damaged devices.json"
        f" ignored; every frame that checks was kept; repaired {log.name}"
    )
    log.write_bytes(log.read_bytes() + b"\x00" * 3)
    assert _recovery_warning(tmp_path, caplog) == (
        "outbox recovery: 0 torn and 3 damaged bytes (1 runs), 0 undecodable frames;"
        f" every frame that checks was kept; repaired {log.name}"
    )
    (tmp_path / "devices.json").write_bytes(b"{broken")  # damage that repairs no file
    assert _recovery_warning(tmp_path, caplog) == (
        "outbox recovery: 0 torn and 0 damaged bytes (0 runs), 0 undecodable frames, damaged devices.json"
        " ignored; every frame that checks was kept"
    )


def test_files_that_only_look_like_segments_are_left_alone(tmp_path: Path) -> None:
    ob = Outbox(tmp_path, fsync=False)
    ob.append(_recs("l", 1, 3))
    ob.close()
    junk = [
        "seg-000000000x.log",
        "seg-12.log",
        "seg-0000000001.log.bak",
        "seg-" + "\uff10" * 9 + "\uff11" + ".log",
    ]  # full-width digits
    for name in junk:
        (tmp_path / name).write_bytes(b"junk")
    (tmp_path / ".seg-0000000001.log.tmp-999").write_bytes(b"a repair cut before its rename")
    (tmp_path / "seg-0000000099.ack").write_bytes(b"an ack file whose log was deleted")
    ob = Outbox(tmp_path, fsync=False)
    try:
        assert [e.seq for e in ob.pending()] == [1, 2] and ob.report.segments == 1
        names = {p.name for p in tmp_path.iterdir()}
        assert set(junk) <= names
        assert ".seg-0000000001.log.tmp-999" not in names and "seg-0000000099.ack" not in names
    finally:
        ob.close()


def test_a_new_outbox_folder_is_made_with_its_parents_private(tmp_path: Path) -> None:
    d = tmp_path / "not" / "yet" / "there"
    ob = Outbox(d, fsync=False)
    try:
        assert oct(d.stat().st_mode & 0o777) == "0o700"
        assert (d / "LOCK").exists()  # the state lock the daemon and the CLI share
    finally:
        ob.close()


def test_a_durable_outbox_syncs_each_batch_and_a_scratch_one_does_not(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    calls: list[int] = []
    real = os.fsync

    def spy(fd: int) -> None:
        calls.append(fd)
        real(fd)

    monkeypatch.setattr(os, "fsync", spy)
    for fsync, synced in ((True, True), (False, False)):
        ob = Outbox(tmp_path / str(fsync), fsync=fsync)
        try:
            calls.clear()
            ob.append(_recs("l", 1, 3))
            assert bool(calls) == synced, fsync
        finally:
            ob.close()
    ob = Outbox(tmp_path / "default")
    try:
        assert ob.fsync is True and ob.segment_bytes == outbox.SEGMENT_BYTES == 4 << 20  # durable by default
    finally:
        ob.close()


def test_a_roll_that_cannot_write_its_checkpoint_takes_the_batch_and_rolls_later(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    """The disk full just as a segment fills: the batch that filled it is
    durable, so it is taken; the new segment's file, holding part of a
    checkpoint, is closed and removed (not left to make every later roll
    fail on its name), and the next append rolls."""
    import errno
    import logging

    ob = Outbox(tmp_path, segment_bytes=400, fsync=False)
    real = ob._write_all
    full = [True]

    def write_all(fd: int, data: bytes | bytearray) -> None:
        if fd != ob._fd and full[0]:  # the new segment's checkpoint
            full[0] = False
            os.write(fd, bytes(data[:3]))
            raise OSError(errno.ENOSPC, "No space left on device")
        real(fd, data)

    monkeypatch.setattr(ob, "_write_all", write_all)
    before = _open_fds()
    [first] = [p.name for p in tmp_path.glob("seg-*.log")]
    with caplog.at_level(logging.WARNING, logger=outbox.log.name):
        assert ob.append(_recs("l", 1, 30, size=20)) == [True] * 29
    assert not full[0], "the roll was tried"
    assert [r.getMessage() for r in caplog.records] == [
        "outbox: cannot start a new segment (No space left on device); the current one grows until it can"
    ]
    assert _open_fds() == before
    assert [p.name for p in tmp_path.glob("seg-*.log")] == [first]
    assert ob.append(_recs("l", 30, 31)) == [True]
    assert len(list(tmp_path.glob("seg-*.log"))) == 2
    assert _open_fds() == before  # the new log replaced the old one
    ob.close()
    assert _keys(Outbox(tmp_path, fsync=False).pending()) == [("l", s) for s in range(1, 31)]


def test_a_roll_failure_without_an_os_message_names_the_error(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    """An OSError raised without errno text (a filesystem layer's own): the
    warning names its type, not "None"."""
    import logging

    ob = Outbox(tmp_path, segment_bytes=400, fsync=False)
    real = ob._write_all
    failed = [False]

    def write_all(fd: int, data: bytes | bytearray) -> None:
        if fd != ob._fd and not failed[0]:
            failed[0] = True
            raise BlockingIOError()
        real(fd, data)

    monkeypatch.setattr(ob, "_write_all", write_all)
    with caplog.at_level(logging.WARNING, logger=outbox.log.name):
        assert ob.append(_recs("l", 1, 30, size=20)) == [True] * 29
    assert failed[0]
    assert [r.getMessage() for r in caplog.records] == [
        "outbox: cannot start a new segment (BlockingIOError); the current one grows until it can"
    ]
    ob.close()


def test_the_recovery_warning_names_every_file_it_repaired(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    ob = Outbox(tmp_path, segment_bytes=200, fsync=False)
    ob.append(_recs("l", 1, 20, size=20))
    ob.append(_recs("l", 20, 21))
    ob.close()
    logs = sorted(tmp_path.glob("seg-*.log"))[:2]
    assert len(logs) == 2
    for log in logs:
        log.write_bytes(log.read_bytes() + b"\x00" * 2)
    assert _recovery_warning(tmp_path, caplog).endswith(f"; repaired {logs[0].name}, {logs[1].name}")


def test_a_log_cut_shorter_under_a_running_outbox_is_read_without_hanging(tmp_path: Path) -> None:
    """Something outside cuts the active segment (a disk repair, a person):
    a read returns what the file still holds instead of waiting forever,
    under the outbox's lock, for bytes that will not come."""
    import threading

    ob = Outbox(tmp_path, fsync=False)
    ob.append(_recs("l", 1, 40, size=30))
    [log] = tmp_path.glob("seg-*.log")
    os.truncate(log, logframe.parse(log.read_bytes()).frames[-1][0])  # at the last record's start
    got: list[list[outbox.Entry]] = []
    t = threading.Thread(target=lambda: got.append(ob.read(None)[0]), daemon=True)
    t.start()
    t.join(10)
    assert not t.is_alive(), "the read hung"
    assert _keys(got[0]) == [("l", s) for s in range(1, 39)]
    ob.close()
