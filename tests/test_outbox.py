"""The durable outbox: ordering, acks, compaction, torn tails, kill -9."""

from __future__ import annotations

import os
import random
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import cbor2
import pytest

from gateway import logframe
from gateway.outbox import GroupCommitter, Outbox

ROOT = Path(__file__).resolve().parent.parent
SOAK = os.environ.get("LOCKEDGE_SOAK") == "1"  # `make soak`: the long runs
# `make mutation`: the damage sweep at a stride (every 7th offset, and every
# frame boundary), so an outbox mutant costs seconds; the rest keep all.
STRIDE = 7 if os.environ.get("LOCKEDGE_MUTATION") == "1" else 1


def _recs(device: str, lo: int, hi: int) -> list[tuple[str, int, bytes]]:
    return [(device, s, b"rec-%d" % s) for s in range(lo, hi)]


def test_append_read_ack_and_compaction(tmp_path: Path) -> None:
    ob = Outbox(tmp_path, segment_bytes=2000)
    assert ob.append(_recs("lock-1", 1, 101)) == [True] * 100
    assert ob.append(_recs("lock-1", 50, 52)) == [False, False]  # retransmission
    ob.append(_recs("gate-A", 1, 51))
    assert ob.backlog() == 150
    got, cur = ob.read(None, 60)
    assert [(e.device, e.seq) for e in got] == [("lock-1", s) for s in range(1, 61)]
    more, _ = ob.read(cur, 1000)
    assert len(got) + len(more) == 150
    segs_before = len(list(tmp_path.glob("seg-*.log")))
    assert ob.ack([("lock-1", s) for s in range(1, 101)]) == 100
    assert ob.ack([("lock-1", 5)]) == 0  # idempotent
    assert ob.backlog() == 50
    assert len(list(tmp_path.glob("seg-*.log"))) < segs_before  # acked segments deleted
    assert [e.seq for e in ob.pending(1000)] == list(range(1, 51))
    ob.close()
    ob2 = Outbox(tmp_path, segment_bytes=2000)
    assert ob2.backlog() == 50
    assert ob2.append(_recs("lock-1", 100, 102)) == [False, True]  # high-water mark survived compaction


def test_out_of_order_acks_and_gaps(tmp_path: Path) -> None:
    ob = Outbox(tmp_path, segment_bytes=500)
    ob.append([("l", 1, b"a"), ("l", 2, b"b"), ("l", 5, b"c")])  # 3, 4 never existed
    ob.ack([("l", 5), ("l", 1)])
    assert [e.seq for e in ob.pending()] == [2]
    ob.ack([("l", 2)])
    assert ob.backlog() == 0


def test_group_committer_acks_producers_after_durable_write(tmp_path: Path) -> None:
    ob = Outbox(tmp_path)
    gc = GroupCommitter(ob)
    results: dict[str, list[bool]] = {}

    def done_for(k: str) -> Callable[[list[bool]], None]:
        return lambda r: results.__setitem__(k, r)

    for i in range(50):
        gc.submit(_recs(f"lock-{i}", 1, 11), done_for(f"lock-{i}"))
    gc.close()
    assert len(results) == 50 and all(r == [True] * 10 for r in results.values())
    assert ob.backlog() == 500


PRODUCER = """
import sys
from gateway.outbox import Outbox
ob = Outbox(sys.argv[1], segment_bytes=20000)
dev = sys.argv[2]
start = ob.last_seq.get(dev, 0) + 1
s = start
while True:
    ob.append([(dev, q, b"x" * 40) for q in range(s, s + 7)])
    print(s + 6, flush=True)  # acked to the producer only after fsync
    s += 7
    acks = [(e.device, e.seq) for e in ob.pending(5)]
    if s % 3 == 0:
        print("ACK", *[q for _, q in acks], flush=True)  # the cloud's acks, then applied
        ob.ack(acks)
"""


def test_kill_9_during_ingestion_and_upload_loses_nothing_acked(tmp_path: Path) -> None:
    rng = random.Random(5)
    acked_to_producer = 0
    cloud_acked: set[int] = set()
    in_flight: set[int] = set()
    for _ in range(5 if STRIDE > 1 else 15):  # fewer kills per mutant under make mutation
        p = subprocess.Popen(
            [sys.executable, "-c", PRODUCER, str(tmp_path), "lock-1"],
            stdout=subprocess.PIPE,
            text=True,
            cwd=ROOT,
        )
        assert p.stdout is not None
        first = p.stdout.readline()
        time.sleep(rng.uniform(0.0, 0.05))
        os.kill(p.pid, signal.SIGKILL)
        lines = (first + p.stdout.read()).splitlines()
        p.wait()
        for line in lines:
            if line.startswith("ACK"):
                cloud_acked.update(int(x) for x in line.split()[1:])
            elif line.strip():
                acked_to_producer = max(acked_to_producer, int(line))
        if lines and lines[-1].startswith("ACK"):
            # Killed between the cloud's ack and applying it: those records
            # stay and go up again (the cloud drops repeats by sequence).
            in_flight.update(int(x) for x in lines[-1].split()[1:])
    ob = Outbox(tmp_path, segment_bytes=20000)
    remaining = {e.seq for e in ob.pending(10**6)}
    # Every record acknowledged to its producer is either still in the outbox
    # or was acknowledged by the cloud; a record the cloud acknowledged is
    # still held only if the kill came before the ack was applied.
    for s in range(1, acked_to_producer + 1):
        assert s in remaining or s in cloud_acked, s
    assert remaining & cloud_acked <= in_flight
    assert ob.last_seq["lock-1"] >= acked_to_producer


def test_old_record_resent_after_newer_ones_is_stored_not_called_duplicate(tmp_path: Path) -> None:
    ob = Outbox(tmp_path, segment_bytes=300)
    ob.append(_recs("l", 1, 51))
    ob.append(_recs("l", 101, 151))  # 51..100 lost in a gateway crash, newer ones arrived
    assert ob.append(_recs("l", 51, 101)) == [True] * 50  # the lock's resend
    assert ob.append(_recs("l", 51, 53)) == [False, False]  # now they are duplicates
    ob.ack([("l", s) for s in range(1, 51)])  # compaction: those records' segments go
    ob.close()
    ob = Outbox(tmp_path, segment_bytes=300)
    assert sorted(e.seq for e in ob.pending(1000)) == list(range(51, 151))
    ob.close()
    # Holes survive compaction and restart: a gap still open is still open.
    d2 = tmp_path / "b"
    ob = Outbox(d2, segment_bytes=200)
    ob.append(_recs("m", 1, 21))
    ob.append(_recs("m", 30, 41))  # 21..29 missing
    ob.ack([("m", s) for s in list(range(1, 21)) + list(range(30, 41))])
    ob.close()
    ob = Outbox(d2, segment_bytes=200)
    assert ob.append(_recs("m", 25, 26)) == [True]
    assert ob.append(_recs("m", 35, 36)) == [False]


# -- issue 16: the reproductions, each failing on the outbox before it ---------


def test_first_batch_above_one_then_lower_records_are_stored(tmp_path: Path) -> None:
    ob = Outbox(tmp_path)
    ob.append([("d", s, b"x") for s in range(51, 61)])
    assert ob.append([("d", 1, b"x")]) == [True]  # was [False]: never stored, yet acked
    assert ob.append([("d", 1, b"x")]) == [False]
    ob.close()
    ob = Outbox(tmp_path)  # recovery gives the same answers as the live path
    assert ob.append([("d", 2, b"x")]) == [True]
    assert ob.append([("d", s, b"x") for s in (1, 2, 51, 60)]) == [False] * 4
    assert sorted(e.seq for e in ob.pending(100)) == [1, 2, *range(51, 61)]


def test_marks_never_go_backwards_across_restarts(tmp_path: Path) -> None:
    ob = Outbox(tmp_path)
    ob.append([("d", s, b"x") for s in range(1, 11)])
    ob.ack([("d", s) for s in range(1, 11)])
    ob.close()
    Outbox(tmp_path).close()
    ob = Outbox(tmp_path)
    assert ob.last_seq == {"d": 10}
    assert ob.append([("d", 5, b"x")]) == [False]  # was [True]: stored (and uploaded) twice
    assert ob.next_seq("d") == 11


def test_zero_and_erased_tails_do_not_stop_the_outbox(tmp_path: Path) -> None:
    for fill in (0x00, 0xFF):
        d = tmp_path / f"f{fill}"
        ob = Outbox(d)
        ob.append(_recs("lock-1", 1, 11))
        ob.close()
        for seg in d.glob("seg-*.log"):
            with open(seg, "ab") as f:
                f.write(bytes([fill]) * 8)
        ob = Outbox(d)  # raised CBORDecodeEOF on zeros
        assert [e.seq for e in ob.pending(100)] == list(range(1, 11))
        assert ob.report.damaged and ob.report.corrupt_bytes >= 8
        ob.close()
        ob = Outbox(d)
        assert not ob.report.damaged  # repaired: the second open finds nothing to do
        ob.close()


def test_a_damaged_legacy_devices_json_does_not_stop_the_outbox(tmp_path: Path) -> None:
    for junk in (b"{not json", b'{"last": 5}', b'{"holes": {}}', b"", b"\x00" * 40, b'{"last": {"d": "x"}}'):
        d = tmp_path / f"j{len(junk)}{junk[:3].hex()}"
        d.mkdir()
        (d / "devices.json").write_bytes(junk)
        ob = Outbox(d)
        assert ob.report.legacy_meta == "damaged"
        assert ob.append([("d", 1, b"x")]) == [True]
        ob.close()
        assert not (d / "devices.json").exists()
    d = tmp_path / "good"
    d.mkdir()
    (d / "devices.json").write_text('{"last": {"d": 10}, "holes": {"d": [4, 7]}}')
    ob = Outbox(d)
    assert ob.append([("d", s, b"x") for s in (3, 4, 7, 10, 11)]) == [False, True, True, False, True]


def test_recovery_is_idempotent(tmp_path: Path) -> None:
    ob = Outbox(tmp_path)
    ob.append(_recs("lock-1", 1, 21))
    ob.close()
    seg = max(tmp_path.glob("seg-*.log"))
    b = bytearray(seg.read_bytes())
    b[len(b) // 2] ^= 0x40  # one record's frame
    b += b"\x00\x00\x00\x07garbage"
    seg.write_bytes(bytes(b))
    first = Outbox(tmp_path)
    state1 = _state(first)
    assert first.report.damaged and len(state1[0]) == 19
    first.close()
    second = Outbox(tmp_path)
    assert _state(second) == state1
    assert not second.report.damaged


def test_status_age_is_that_of_the_oldest_unacked_record(tmp_path: Path) -> None:
    ob = Outbox(tmp_path)
    ob.append(_recs("d", 1, 3), now=1000.0)
    ob.append(_recs("d", 3, 5), now=1349.0)
    assert ob.oldest_unacked_age(now=1352.0) == 352.0
    ob.ack([("d", 1), ("d", 2)])
    assert ob.oldest_unacked_age(now=1352.0) == 3.0  # was 352: the segment's first record
    ob.close()
    ob = Outbox(tmp_path)
    assert ob.oldest_unacked_age(now=1352.0) == 3.0


def test_a_second_writer_is_refused_with_the_holders_pid(tmp_path: Path) -> None:
    from gateway.statelock import StateLocked

    ob = Outbox(tmp_path)
    try:
        Outbox(tmp_path)
        raise AssertionError("a second writer was let in")
    except StateLocked as e:
        assert e.pid == os.getpid() and str(os.getpid()) in str(e)
    code = (
        "import sys\nfrom gateway.outbox import Outbox\nfrom gateway.statelock import StateLocked\n"
        "try:\n    Outbox(sys.argv[1])\nexcept StateLocked as e:\n    print('refused', e.pid)\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", code, str(tmp_path)], capture_output=True, text=True, cwd=ROOT, check=True
    )
    assert out.stdout.split() == ["refused", str(os.getpid())]
    ob.close()
    Outbox(tmp_path).close()  # released on close; and the kernel releases it on kill -9


# -- damage of every kind at every byte offset -----------------------------------


def _state(ob: Outbox) -> tuple[list[tuple[str, int, bytes]], dict[str, list[int]]]:
    pend = [(e.device, e.seq, e.data) for e in ob.pending(10**6)]
    return pend, {d: s.flat() for d, s in ob.marks.items()}


def _base(d: Path) -> tuple[dict[tuple[str, int], bytes], set[tuple[str, int]]]:
    """Two segments of records for two devices, some acked, a hole or two."""
    ob = Outbox(d, segment_bytes=700, fsync=False)
    written: dict[tuple[str, int], bytes] = {}
    for lo in (1, 6, 14, 9):  # 9..13 after 14..: out of order
        for dev in ("lock-1", "gate"):
            items = [(dev, s, b"%s/%d" % (dev.encode(), s)) for s in range(lo, lo + 5)]
            ob.append(items)
            written.update({(dv, s): x for dv, s, x in items})
    acked = {("lock-1", s) for s in range(1, 7)} | {("gate", 3), ("gate", 14)}
    ob.ack(sorted(acked))
    ob.close()
    return written, acked


def _damage(data: bytes, off: int, kind: str) -> bytes:
    b = bytearray(data)
    if kind == "cut":
        return bytes(b[:off])
    if kind == "flip":
        b[off] ^= 0x01 << (off % 8)
        return bytes(b)
    fill = 0x00 if kind == "zero" else 0xFF
    if kind.endswith("-tail"):
        return bytes(b[:off]) + bytes([fill]) * 16
    for i in range(off, min(off + 8, len(b))):
        b[i] = fill
    return bytes(b)


def _frame_offsets(data: bytes) -> dict[tuple[str, int], int]:
    out = {}
    for off, p in logframe.parse(data).frames:
        x = cbor2.loads(p)
        if isinstance(x, list) and len(x) == 4:
            out[(x[0], x[1])] = off
    return out


def test_damage_at_every_offset_of_every_file(tmp_path: Path) -> None:
    """Each file of a two-segment outbox (records, acks, checkpoints), damaged
    at every byte offset by a cut, a bit flip, an 8-byte run of 0x00 or 0xFF,
    and a 0x00 or 0xFF tail: the outbox opens, invents nothing, keeps every
    record outside the damaged frames, loses no record to a damaged ack
    file, and a second open finds the state the first one left."""
    base = tmp_path / "base"
    written, acked = _base(base)
    ob = Outbox(base, segment_bytes=700, fsync=False)
    reference = [(dv, s) for dv, s, _x in _state(ob)[0]]
    ob.close()
    files = sorted(p.name for p in base.iterdir() if p.name.startswith("seg-"))
    assert sum(f.endswith(".ack") for f in files) >= 1 and sum(f.endswith(".log") for f in files) >= 2
    contents = {f: (base / f).read_bytes() for f in files}
    kinds = ("cut", "flip", "zero", "ff", "zero-tail", "ff-tail")
    rounds = 0
    for name in files:
        data = contents[name]
        starts = sorted(logframe.parse(data).frames[i][0] for i in range(len(logframe.parse(data).frames)))
        where = _frame_offsets(data)
        edges = {b + k for b in starts for k in (-1, 0)}
        offsets = [o for o in range(len(data)) if o % STRIDE == 0 or o in edges or o == len(data) - 1]
        for off in offsets:
            # Quick run: every offset, the kinds in turn, all of them at and
            # around frame boundaries; `make soak`: every kind at every offset.
            chosen = kinds if SOAK or off in edges else (kinds[off % len(kinds)],)
            for kind in chosen:
                d = tmp_path / f"w{rounds}"
                d.mkdir()
                for f in files:
                    (d / f).write_bytes(_damage(data, off, kind) if f == name else contents[f])
                ctx = f"{name}@{off}:{kind}"
                ob = Outbox(d, segment_bytes=700, fsync=False)
                pend, marks = _state(ob)
                keys = [(dv, s) for dv, s, _x in pend]
                assert len(keys) == len(set(keys)), ctx  # each once
                assert all(written.get((dv, s)) == x for dv, s, x in pend), ctx  # nothing invented or altered
                if name.endswith(".log"):
                    touched = max(b for b in starts if b <= off) if starts and off >= starts[0] else 0
                    for key in reference:
                        if key not in keys:  # lost only if its own frame lies at or after the damage
                            assert key in where and where[key] >= touched, ctx
                else:
                    assert set(reference) <= set(keys), ctx  # an ack lost brings a record back
                if kind in ("flip", "zero", "ff"):
                    # Local damage never costs a mark: a resend of an acked
                    # record is still a duplicate (checkpoints come in pairs).
                    assert all(dv in ob.marks and s in ob.marks[dv] for dv, s in acked), ctx
                ob.close()
                again = Outbox(d, segment_bytes=700, fsync=False)
                assert _state(again) == (pend, marks), ctx
                assert not again.report.damaged, ctx
                again.close()
                shutil.rmtree(d)
                rounds += 1
    assert rounds >= (6 if SOAK else 1) * sum(len(c) for c in contents.values()) // STRIDE


def test_randomised_kill_9_harness_quick_run(tmp_path: Path) -> None:
    """20 rounds of the harness in tests/outbox_crash.py (`make soak`: 300)."""
    from tests import outbox_crash

    rounds = 300 if SOAK else 8 if STRIDE > 1 else 20  # fewer under make mutation: a run per mutant
    stats = outbox_crash.run(tmp_path, rounds=rounds, seed=16)
    assert stats["records_acked_to_producers"] > 10 * rounds and stats["cloud_acked"] > rounds
    assert stats["killed_in_recovery_window"] >= rounds // 4


def test_the_harness_with_a_slow_writer_kills_between_a_batchs_offer_and_its_store(tmp_path: Path) -> None:
    """Under mutmut's tracing the writer slowed down, kills landed between
    a batch's "B" line and its store, and the harness called the outbox
    out of order: its model kept the first, never-stored offer's place for
    records stored later from a new batch. A slow writer does that every
    round; the model now forgets an offer the reopened outbox does not hold."""
    from tests import outbox_crash

    for seed in (0,) if STRIDE > 1 else (0, 1, 3):  # each failed within 15 rounds before
        stats = outbox_crash.run(tmp_path / str(seed), rounds=15, seed=seed, pause=0.05)
        assert stats["records_acked_to_producers"] > 30


def test_the_oldest_unacked_age_follows_the_acks_across_segments(tmp_path: Path) -> None:
    """What the status and the metrics report as the backlog's age: the
    oldest record the cloud has not acknowledged, segment after segment."""
    ob = Outbox(tmp_path, segment_bytes=300)
    try:
        assert ob.oldest_unacked_age(1000.0) is None
        for i in range(1, 11):
            ob.append([("lock-1", i, b"x" * 60)], now=100.0 + i)
        assert len(ob._order) > 2  # several segments
        assert ob.oldest_unacked_age(1000.0) == 1000.0 - 101.0
        ob.ack([("lock-1", 1)])
        assert ob.oldest_unacked_age(1000.0) == 1000.0 - 102.0
        first = min(ob._order)
        in_first = [s for s in range(1, 11) if ob.unacked["lock-1"].get(s) == first]
        ob.ack([("lock-1", s) for s in in_first])  # the first segment all acked
        nxt = max(in_first) + 1
        assert ob.oldest_unacked_age(1000.0) == 1000.0 - (100.0 + nxt)
        ob.ack([("lock-1", s) for s in range(1, 10)])
        assert ob.oldest_unacked_age(1000.0) == 1000.0 - 110.0
        assert abs(ob.oldest_unacked_age() - (time.time() - 110.0)) < 5  # type: ignore[operator]
        ob.ack([("lock-1", 10)])
        assert ob.oldest_unacked_age(1000.0) is None
    finally:
        ob.close()


def test_a_lone_submission_is_committed_and_acknowledged_without_waiting_for_another(tmp_path: Path) -> None:
    import threading

    ob = Outbox(tmp_path)
    gc = GroupCommitter(ob)
    got: list[list[bool]] = []
    done = threading.Event()

    def ack(res: list[bool]) -> None:
        got.append(res)
        done.set()

    try:
        gc.submit([("lock-1", 1, b"r1")], ack)
        assert done.wait(10), "no ack for a lone submission"
        assert got == [[True]] and ob.backlog() == 1
        assert gc._thread.name == "outbox-commit" and gc._thread.daemon
    finally:
        gc.close()
        ob.close()


def test_a_write_that_fails_part_way_is_cut_back_and_takes_nothing(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A full disk mid-batch: the batch is not acknowledged, the bytes that
    reached the file are cut off, and the next batch and a restart see a
    log with no damage."""
    from gateway import outbox as outbox_mod

    ob = Outbox(tmp_path)
    assert ob.append([("lock-1", 1, b"one")]) == [True]
    size = os.path.getsize(next(tmp_path.glob("*.log")))
    real = outbox_mod.Outbox._write_all

    def half_then_full(self: Outbox, fd: int, buf: bytes | bytearray) -> None:
        os.write(fd, bytes(buf[: len(buf) // 2]))
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(outbox_mod.Outbox, "_write_all", half_then_full)
    with pytest.raises(OSError):
        ob.append([("lock-1", 2, b"two"), ("lock-1", 3, b"three")])
    monkeypatch.setattr(outbox_mod.Outbox, "_write_all", real)
    assert os.path.getsize(next(tmp_path.glob("*.log"))) == size  # cut back
    assert ob.append([("lock-1", 2, b"two")]) == [True]  # not taken before: stored now
    ob.close()
    ob = Outbox(tmp_path)
    try:
        assert [(e.seq, e.data) for e in ob.pending(10)] == [(1, b"one"), (2, b"two")]
        assert (ob.report.torn_bytes, ob.report.corrupt_bytes, ob.report.corrupt_frames) == (0, 0, 0)
    finally:
        ob.close()


def test_a_sequence_number_is_an_integer_of_one_or_more() -> None:
    import tempfile

    with tempfile.TemporaryDirectory() as d:
        ob = Outbox(Path(d))
        try:
            for bad in (0, -1, "1", 1.0, True):
                with pytest.raises(ValueError, match="a sequence number is an integer >= 1"):
                    ob.append([("lock-1", bad, b"x")])  # type: ignore[list-item]
            assert ob.backlog() == 0
        finally:
            ob.close()


class _GatedOutbox:
    """An outbox stand-in whose first append waits for the test, so later
    submissions pile up and go out together; a failing batch raises OSError."""

    def __init__(self, fail_first: bool = False) -> None:
        import threading

        self.gate = threading.Event()
        self.entered = threading.Event()  # the first append has begun (and waits at the gate)
        self.batches: list[list[tuple[str, int, bytes]]] = []
        self.fail_first = fail_first
        self.seen: set[tuple[str, int]] = set()

    def append(self, items: list[tuple[str, int, bytes]]) -> list[bool]:
        if not self.batches:
            self.entered.set()
            self.gate.wait(10)
        self.batches.append(list(items))
        if self.fail_first and len(self.batches) == 1:
            raise OSError(5, "Input/output error")
        out = [(d, s) not in self.seen for d, s, _x in items]
        self.seen.update((d, s) for d, s, _x in items)
        return out


def test_the_group_committer_batches_up_to_its_bound_and_answers_each_submitter_its_own() -> None:
    import threading

    ob = _GatedOutbox()
    gc = GroupCommitter(ob, max_batch=5)  # type: ignore[arg-type]
    got: dict[str, list[bool]] = {}
    done = threading.Event()

    def ack(name: str) -> Callable[[list[bool]], None]:
        def f(res: list[bool]) -> None:
            got[name] = res
            if len(got) == 5:
                done.set()

        return f

    try:
        gc.submit([("a", 1, b"")], ack("first"))  # taken alone; its append waits at the gate
        assert ob.entered.wait(10)
        gc.submit([("b", 1, b""), ("b", 2, b"")], ack("two"))
        gc.submit([("d", 1, b"")], ack("one"))
        gc.submit([("c", 1, b""), ("a", 1, b"")], ack("dup"))  # a:1 is a resend
        gc.submit([("e", 1, b""), ("e", 2, b""), ("e", 3, b"")], ack("three"))
        ob.gate.set()
        assert done.wait(10)
    finally:
        gc.close()
    assert got == {"first": [True], "two": [True, True], "dup": [True, False], "one": [True],
                   "three": [True, True, True]}  # fmt: skip
    # Whole submissions (never split), taken while the batch holds fewer than 5 records.
    assert [len(b) for b in ob.batches] == [1, 5, 3]


def test_a_failed_batch_is_not_acknowledged_and_the_committer_goes_on() -> None:
    import threading

    ob = _GatedOutbox(fail_first=True)
    ob.gate.set()
    gc = GroupCommitter(ob)  # type: ignore[arg-type]
    acked: list[list[bool]] = []
    later = threading.Event()
    try:
        gc.submit([("a", 1, b"")], acked.append)
        assert ob.entered.wait(10)

        def second(res: list[bool]) -> None:
            acked.append(res)
            later.set()

        gc.submit([("a", 2, b"")], second)
        assert later.wait(10)
    finally:
        gc.close()
    assert acked == [[True]]  # only the second: the first producer resends


def test_the_recovery_report_adds_up_the_damage_of_every_file(tmp_path: Path) -> None:
    """What the gateway logs and reports after a power cut: torn bytes (a
    frame cut at a file's end, nothing else wrong with the file) apart from
    other damage, summed over every damaged file, and each file rewritten."""
    ob = Outbox(tmp_path, segment_bytes=400)
    for i in range(1, 31):
        ob.append([("lock-1", i, b"r" * 40)])
    ob.close()
    logs = sorted(tmp_path.glob("*.log"), key=lambda p: int(p.stem.split("-")[-1]) if "-" in p.stem else 0)
    assert len(logs) >= 3
    torn_a, torn_b, mid = logs[0], logs[1], logs[2]
    for p in (torn_a, torn_b):
        p.write_bytes(p.read_bytes()[:-7])  # a frame cut short at the end
    b = bytearray(mid.read_bytes())
    b[len(b) // 2] ^= 0xFF
    mid.write_bytes(bytes(b))
    want = [logframe.parse(p.read_bytes()) for p in (torn_a, torn_b, mid)]
    assert [w.torn and w.regions == 1 for w in want] == [True, True, False]
    ob = Outbox(tmp_path, segment_bytes=400)
    try:
        r = ob.report
        assert r.torn_bytes == want[0].skipped + want[1].skipped
        assert r.corrupt_bytes == want[2].skipped
        assert r.corrupt_frames == sum(w.regions for w in want) == 3
        assert sorted(r.files_repaired) == sorted(p.name for p in (torn_a, torn_b, mid))
    finally:
        ob.close()
    for p in (torn_a, torn_b, mid):
        assert logframe.parse(p.read_bytes()).skipped == 0  # rewritten whole
