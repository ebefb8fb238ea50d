"""The durable outbox: pass records and events on their way to the cloud.

Records from locks and from the gate are appended here, and fsynced, before
their producer gets an ack; they leave only when the cloud has acknowledged
them by (device, sequence). At-least-once end to end; the receiver removes
duplicates by (device, sequence).

Layout (one directory):

    seg-<n>.log   frames of records, append-only
    seg-<n>.ack   frames of acks for the records of segment n
    devices.json  per device: highest sequence seen, and the holes below it
                  (sequences never stored), kept across compaction

    frame = u32 length | u32 CRC-32 of payload | payload (CBOR)
    record payload = [device, seq, appended_at, data]
    ack payload    = [device, seq]

Appends are group-committed: one write and one fsync for everything queued
(`append` takes a batch; `GroupCommitter` batches concurrent producers).
The cost per record does not depend on the backlog. A segment and its ack
file are deleted together once every record in it is acknowledged, so there
is nothing to compact. On open, each file is scanned; a torn or corrupt tail
(power cut mid-write) is truncated and reported, and everything before it
is kept.
"""

from __future__ import annotations

import json
import logging
import os
import struct
import threading
import time
import zlib
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import cbor2

from gateway.store import atomic_write

log = logging.getLogger("lockedge.outbox")

_HEAD = struct.Struct(">II")
MAX_FRAME = 1 << 20
MAX_HOLES = 100_000  # a sequence jump larger than this is a loss, not holes to wait for
SEGMENT_BYTES = 4 << 20


class OutboxError(Exception):
    pass


@dataclass(frozen=True)
class Entry:
    device: str
    seq: int
    appended_at: float
    data: bytes
    segment: int


@dataclass
class RecoveryReport:
    segments: int = 0
    records: int = 0
    acked: int = 0
    torn_bytes: int = 0
    corrupt_frames: int = 0
    files_truncated: list[str] = field(default_factory=list)


def _frame(payload: bytes) -> bytes:
    return _HEAD.pack(len(payload), zlib.crc32(payload)) + payload


def _scan(path: Path) -> tuple[list[bytes], int, int]:
    """Valid payloads, the offset where the valid prefix ends, bad frames skipped."""
    data = path.read_bytes()
    out = []
    pos = 0
    bad = 0
    good_end = 0
    while pos + _HEAD.size <= len(data):
        n, crc = _HEAD.unpack_from(data, pos)
        end = pos + _HEAD.size + n
        if n > MAX_FRAME or end > len(data):
            break  # torn or garbage length: cannot resynchronise past it
        payload = data[pos + _HEAD.size : end]
        if zlib.crc32(payload) != crc:
            bad += 1
            if end == len(data):
                break  # torn last frame
            pos = end  # a flipped byte inside an intact frame: skip just it
            good_end = end
            continue
        out.append(payload)
        pos = end
        good_end = end
    return out, good_end, bad


class Outbox:
    def __init__(
        self, directory: str | os.PathLike[str], segment_bytes: int = SEGMENT_BYTES, fsync: bool = True
    ):
        self.dir = Path(directory)
        self.dir.mkdir(parents=True, exist_ok=True)
        os.chmod(self.dir, 0o700)
        self.segment_bytes = segment_bytes
        self.fsync = fsync
        self._lock = threading.RLock()
        self.last_seq: dict[str, int] = {}
        # Sequences below last_seq that were never stored: a producer that
        # resends an old record after newer ones arrived must not be told
        # "duplicate" (that would lose it). Bounded per device.
        self.holes: dict[str, set[int]] = {}
        # device -> {seq: segment}; segment -> unacked count
        self.unacked: dict[str, dict[int, int]] = {}
        self.seg_unacked: dict[int, int] = {}
        self.oldest: dict[int, float] = {}  # segment -> earliest appended_at
        self._ack_fds: dict[int, int] = {}
        self.report = self._recover()
        self._active = max(self.seg_unacked, default=0)
        if not self.seg_unacked:
            self._active = self._next_segment_id()
            self.seg_unacked[self._active] = 0
        self._fd = os.open(self._log(self._active), os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
        self._size = os.fstat(self._fd).st_size

    # -- files ---------------------------------------------------------------

    def _log(self, seg: int) -> Path:
        return self.dir / f"seg-{seg:010d}.log"

    def _ack(self, seg: int) -> Path:
        return self.dir / f"seg-{seg:010d}.ack"

    def _segments(self) -> list[int]:
        return sorted(int(p.name[4:14]) for p in self.dir.glob("seg-*.log"))

    def _next_segment_id(self) -> int:
        segs = self._segments()
        return (segs[-1] + 1) if segs else 1

    def _fsync_dir(self) -> None:
        if self.fsync:
            fd = os.open(self.dir, os.O_RDONLY)
            try:
                os.fsync(fd)
            finally:
                os.close(fd)

    # -- recovery ------------------------------------------------------------

    def _recover(self) -> RecoveryReport:
        rep = RecoveryReport()
        dev_file = self.dir / "devices.json"
        persisted_last: dict[str, int] = {}
        if dev_file.exists():
            saved = json.loads(dev_file.read_text())
            persisted_last = {k: int(v) for k, v in saved["last"].items()}
            self.holes = {k: set(v) for k, v in saved["holes"].items()}
        self.last_seq = dict(persisted_last)
        stored: dict[str, set[int]] = {}
        for seg in self._segments():
            rep.segments += 1
            for path in (self._log(seg), self._ack(seg)):
                if not path.exists():
                    continue
                payloads, good_end, bad = _scan(path)
                rep.corrupt_frames += bad
                size = path.stat().st_size
                if good_end < size:
                    rep.torn_bytes += size - good_end
                    rep.files_truncated.append(path.name)
                    with open(path, "r+b") as f:
                        f.truncate(good_end)
                        if self.fsync:
                            os.fsync(f.fileno())
                if path.suffix == ".log":
                    count = 0
                    for p in payloads:
                        device, seq, at, _data = cbor2.loads(p)
                        self.unacked.setdefault(device, {})[seq] = seg
                        self.last_seq[device] = max(self.last_seq.get(device, 0), seq)
                        stored.setdefault(device, set()).add(seq)
                        self.oldest.setdefault(seg, at)
                        count += 1
                    rep.records += count
                    self.seg_unacked[seg] = count
                else:
                    for p in payloads:
                        device, seq = cbor2.loads(p)
                        if self.unacked.get(device, {}).pop(seq, None) is not None:
                            self.seg_unacked[seg] -= 1
                            rep.acked += 1
        for device, seqs in stored.items():
            lo = persisted_last.get(device, 0)
            gaps = (
                set(range(lo + 1, self.last_seq[device] + 1)) - seqs
                if self.last_seq[device] - lo <= MAX_HOLES
                else set()
            )
            h = (self.holes.get(device, set()) | gaps) - seqs
            if h:
                self.holes[device] = h
            else:
                self.holes.pop(device, None)
        for seg in [s for s, n in self.seg_unacked.items() if n == 0]:
            self._drop_segment(seg)
        if rep.torn_bytes or rep.corrupt_frames:
            log.warning(
                "outbox recovery: dropped %d torn bytes, skipped %d corrupt frames in %s",
                rep.torn_bytes,
                rep.corrupt_frames,
                ", ".join(rep.files_truncated) or "-",
            )
        return rep

    def _drop_segment(self, seg: int) -> None:
        fd = self._ack_fds.pop(seg, None)
        if fd is not None:
            os.close(fd)
        self._log(seg).unlink(missing_ok=True)
        self._ack(seg).unlink(missing_ok=True)
        self.seg_unacked.pop(seg, None)
        self.oldest.pop(seg, None)

    # -- append --------------------------------------------------------------

    def append(self, items: list[tuple[str, int, bytes]], now: float | None = None) -> list[bool]:
        """Durably append records (one fsync for the batch). Returns, per item,
        True if appended, False if (device, seq) was already taken (a producer
        retransmitting: ack it again, do not store it twice)."""
        at = time.time() if now is None else now
        with self._lock:
            out = []
            buf = bytearray()
            new: list[tuple[str, int]] = []
            undo: list[tuple[str, int, int | None]] = []  # (device, old last, filled hole)
            for device, seq, data in items:
                last = self.last_seq.get(device, 0)
                holes = self.holes.get(device)
                if seq <= last and not (holes and seq in holes):
                    out.append(False)
                    continue
                buf += _frame(cbor2.dumps([device, seq, at, data]))
                if seq > last:
                    if last and seq - last - 1 <= MAX_HOLES:
                        self.holes.setdefault(device, set()).update(range(last + 1, seq))
                    self.last_seq[device] = seq
                    undo.append((device, last, None))
                else:
                    holes.discard(seq)  # type: ignore[union-attr]
                    undo.append((device, last, seq))
                new.append((device, seq))
                out.append(True)
            if buf:
                try:
                    os.write(self._fd, buf)
                    if self.fsync:
                        os.fsync(self._fd)
                except OSError:
                    for device, last, hole in reversed(undo):  # not durable: not taken
                        if hole is not None:
                            self.holes.setdefault(device, set()).add(hole)
                        else:
                            self.last_seq[device] = last
                    raise
                self._size += len(buf)
                for device, seq in new:
                    self.unacked.setdefault(device, {})[seq] = self._active
                self.seg_unacked[self._active] += len(new)
                self.oldest.setdefault(self._active, at)
                if self._size >= self.segment_bytes:
                    self._roll()
            return out

    def _roll(self) -> None:
        os.close(self._fd)
        if self.seg_unacked.get(self._active) == 0:
            self._drop_segment(self._active)
        self._active += 1  # ids only grow: segment order is append order
        self.seg_unacked[self._active] = 0
        self._fd = os.open(self._log(self._active), os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
        self._size = 0
        self._fsync_dir()

    # -- read and ack --------------------------------------------------------

    def read(self, cursor: tuple[int, int] | None, limit: int = 500) -> tuple[list[Entry], tuple[int, int]]:
        """Up to `limit` unacknowledged records after `cursor` (None = the
        oldest), in append order, and the cursor to continue from. The cost
        is proportional to what is read, not to the backlog."""
        out: list[Entry] = []
        with self._lock:
            segs = sorted(s for s in self.seg_unacked if cursor is None or s >= cursor[0])
            pos = cursor if cursor is not None else (segs[0] if segs else self._active, 0)
            for seg in segs:
                off = pos[1] if seg == pos[0] else 0
                pos = (seg, off)
                if self.seg_unacked.get(seg, 0) == 0:
                    pos = (seg, self._log(seg).stat().st_size if seg != self._active else self._size)
                    continue
                with open(self._log(seg), "rb") as f:
                    f.seek(off)
                    while len(out) < limit:
                        chunk = f.read(1 << 18)
                        if len(chunk) >= _HEAD.size and _HEAD.size + _HEAD.unpack_from(chunk)[0] > len(chunk):
                            f.seek(off)  # one frame larger than the chunk
                            chunk = f.read(_HEAD.size + _HEAD.unpack_from(chunk)[0])
                        if not chunk:
                            break
                        used = 0
                        while used + _HEAD.size <= len(chunk) and len(out) < limit:
                            n, crc = _HEAD.unpack_from(chunk, used)
                            end = used + _HEAD.size + n
                            if end > len(chunk):
                                break
                            payload = chunk[used + _HEAD.size : end]
                            used = end
                            if zlib.crc32(payload) != crc:
                                continue
                            device, seq, at, data = cbor2.loads(payload)
                            if self.unacked.get(device, {}).get(seq) == seg:
                                out.append(Entry(device, seq, at, data, seg))
                        off += used
                        pos = (seg, off)
                        f.seek(off)
                        if used == 0:
                            break
                if len(out) >= limit:
                    break
            return out, pos

    def pending(self, limit: int = 500) -> list[Entry]:
        return self.read(None, limit)[0]

    def ack(self, acks: list[tuple[str, int]]) -> int:
        """Record cloud acknowledgements; returns how many were new."""
        with self._lock:
            per_seg: dict[int, bytearray] = {}
            done = []
            for device, seq in acks:
                seg = self.unacked.get(device, {}).get(seq)
                if seg is None:
                    continue  # unknown or already acked: idempotent
                per_seg.setdefault(seg, bytearray()).extend(_frame(cbor2.dumps([device, seq])))
                done.append((device, seq, seg))
            for seg, buf in per_seg.items():
                fd = self._ack_fds.get(seg)
                if fd is None:
                    fd = os.open(self._ack(seg), os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
                    self._ack_fds[seg] = fd
                os.write(fd, buf)
                if self.fsync:
                    os.fsync(fd)
            dropped = False
            for device, seq, seg in done:
                del self.unacked[device][seq]
                if not self.unacked[device]:
                    del self.unacked[device]
                self.seg_unacked[seg] -= 1
            for seg in list(per_seg):
                if self.seg_unacked.get(seg) == 0 and seg != self._active:
                    self._drop_segment(seg)
                    dropped = True
            if dropped:
                # The records that told us each device's last sequence may be
                # gone now; keep the high-water marks so a retransmission of an
                # acknowledged record is still recognised as a duplicate.
                state = {"last": self.last_seq, "holes": {d: sorted(h) for d, h in self.holes.items() if h}}
                atomic_write(self.dir / "devices.json", json.dumps(state).encode())
                self._fsync_dir()
            return len(done)

    # -- status --------------------------------------------------------------

    def backlog(self) -> int:
        with self._lock:
            return sum(self.seg_unacked.values())

    def oldest_unacked_age(self, now: float | None = None) -> float | None:
        with self._lock:
            live = [self.oldest[s] for s, n in self.seg_unacked.items() if n and s in self.oldest]
            if not live:
                return None
            return (time.time() if now is None else now) - min(live)

    def close(self) -> None:
        with self._lock:
            os.close(self._fd)
            for fd in self._ack_fds.values():
                os.close(fd)
            self._ack_fds.clear()


class GroupCommitter:
    """Batches appends from many producers (e.g. MQTT callbacks, which must
    not block) into one write + fsync, then calls each producer back."""

    def __init__(self, outbox: Outbox, max_batch: int = 2000) -> None:
        self.outbox = outbox
        self.max_batch = max_batch
        self._cv = threading.Condition()
        self._queue: list[tuple[list[tuple[str, int, bytes]], Callable[[list[bool]], None]]] = []
        self._stop = False
        self._thread = threading.Thread(target=self._run, name="outbox-commit", daemon=True)
        self._thread.start()

    def submit(self, items: list[tuple[str, int, bytes]], done: Callable[[list[bool]], None]) -> None:
        with self._cv:
            if self._stop:
                raise OutboxError("outbox is closing")
            self._queue.append((items, done))
            self._cv.notify()

    def _run(self) -> None:
        while True:
            with self._cv:
                while not self._queue and not self._stop:
                    self._cv.wait()
                if not self._queue and self._stop:
                    return
                batch = []
                n = 0
                while self._queue and n < self.max_batch:
                    items, done = self._queue.pop(0)
                    batch.append((items, done))
                    n += len(items)
            flat = [it for items, _ in batch for it in items]
            try:
                res = self.outbox.append(flat)
            except OSError:
                log.exception("outbox append failed; %d records not acknowledged", len(flat))
                continue  # producers get no ack and will retransmit
            i = 0
            for items, done in batch:
                done(res[i : i + len(items)])
                i += len(items)

    def close(self) -> None:
        """Drain what is queued, then stop."""
        with self._cv:
            self._stop = True
            self._cv.notify()
        self._thread.join()
