"""The durable outbox: ordering, acks, compaction, torn tails, kill -9."""

from __future__ import annotations

import os
import random
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

from gateway.outbox import GroupCommitter, Outbox

ROOT = Path(__file__).resolve().parent.parent


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


def test_torn_tail_at_every_byte_loses_nothing_before_it(tmp_path: Path) -> None:
    base = tmp_path / "base"
    ob = Outbox(base)
    ob.append(_recs("lock-1", 1, 11))
    ob.close()
    seg = next(base.glob("seg-*.log"))
    committed = seg.read_bytes()
    ob = Outbox(base)
    ob.append(_recs("lock-1", 11, 14))
    ob.close()
    full = seg.read_bytes()
    bounds = [0]
    while bounds[-1] < len(full):
        bounds.append(bounds[-1] + 8 + int.from_bytes(full[bounds[-1] : bounds[-1] + 4], "big"))
    for cut in range(len(committed), len(full) + 1):
        d = tmp_path / f"cut{cut}"
        d.mkdir()
        (d / seg.name).write_bytes(full[:cut])
        ob = Outbox(d)
        seqs = [e.seq for e in ob.pending(100)]
        # Everything before the cut is intact; a partial frame is dropped.
        assert seqs[:10] == list(range(1, 11)), cut
        assert seqs == list(range(1, 1 + len(seqs)))
        assert ob.report.torn_bytes == cut - max(b for b in bounds if b <= cut)
        # and the outbox keeps working after recovery
        assert ob.append([("lock-1", 100, b"x")]) == [True]
        ob.close()


def test_flipped_byte_in_a_middle_frame_costs_only_that_frame(tmp_path: Path) -> None:
    ob = Outbox(tmp_path)
    ob.append(_recs("lock-1", 1, 21))
    ob.close()
    seg = next(tmp_path.glob("seg-*.log"))
    b = bytearray(seg.read_bytes())
    b[len(b) // 2] ^= 0x40
    seg.write_bytes(bytes(b))
    ob = Outbox(tmp_path)
    assert ob.report.corrupt_frames == 1
    assert len(ob.pending(100)) == 19


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
    for _ in range(15):
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
    ob.ack([("l", s) for s in range(1, 51)])  # compaction writes devices.json
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
