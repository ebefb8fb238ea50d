"""The durable outbox: pass records and events on their way to the cloud.

Records from locks and from the gate are appended here, and fsynced, before
their producer gets an ack; they leave only when the cloud has acknowledged
them by (device, sequence). At-least-once end to end; the receiver removes
duplicates by (device, sequence).

Layout (one directory, one writer: the `LOCK` file is flock'ed):

    seg-<n>.log   frames, append-only: first a checkpoint, then records
    seg-<n>.ack   frames of acks for the records of segment n

    frames: gateway/logframe.py (magic, length, CRC over both)
    checkpoint payload = {"cp": 1, "m": {device: [lo, hi, lo, hi, ...]}}
    record payload     = [device, seq, appended_at, data]
    ack payload        = [device, seq]

The rule that decides "duplicate": per device, the set of every sequence
ever stored durably (`SeqSet`). A record is refused as a duplicate exactly
when its sequence is in that set, whatever order records arrive in. The set
only grows, so every checkpoint in every surviving segment is a valid lower
bound of it, and recovery takes the union of all of them and of every
record frame: nothing else to keep in step, no side file that can disagree
with the log. Every segment starts with a checkpoint (written twice, so one
flipped bit cannot lose it), and a segment is only ever deleted when a newer
one exists, so the set survives compaction.

Appends are group-committed: one write and one fsync for everything queued
(`append` takes a batch; `GroupCommitter` batches concurrent producers).
The cost per record does not depend on the backlog. A segment and its ack
file are deleted together once every record in it is acknowledged.

Recovery never stops the gateway: any damage (torn tail, zero- or
0xFF-filled run, flipped bits) costs the damaged frames only; every frame
that checks is kept; the file is rewritten with its valid frames, so a
second open finds exactly the state the first one left; and the damage is
reported (`report`, the status counters, a warning). Each open starts a new
segment whose checkpoint holds everything recovered.
"""

from __future__ import annotations

import logging
import os
import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import cbor2

from gateway import logframe
from gateway.seqset import SeqSet
from gateway.statelock import StateLock
from gateway.store import atomic_write
from protocol.record import PassRecord

log = logging.getLogger("lockedge.outbox")

SEGMENT_BYTES = 4 << 20
_CHECKPOINT_BYTES = 256 << 10  # split a large checkpoint into frames this big
_READ_CHUNK = 1 << 18


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
    torn_bytes: int = 0  # a frame cut by a power loss at a file's end
    corrupt_bytes: int = 0  # any other bytes that belong to no valid frame
    corrupt_frames: int = 0  # runs of such bytes, torn tails included
    undecodable: int = 0  # frames whose CRC checks but whose content does not
    legacy_meta: str = ""  # what became of a devices.json from an older version
    files_repaired: list[str] = field(default_factory=list)

    @property
    def damaged(self) -> bool:
        lost_meta = self.legacy_meta == "damaged"
        return bool(self.torn_bytes or self.corrupt_bytes or self.undecodable or lost_meta)


def _is_record(x: Any) -> bool:
    return (
        isinstance(x, list)
        and len(x) == 4
        and isinstance(x[0], str)
        and type(x[1]) is int
        and x[1] >= 1
        and isinstance(x[2], (int, float))
        and isinstance(x[3], bytes)
    )


def _is_ack(x: Any) -> bool:
    return isinstance(x, list) and len(x) == 2 and isinstance(x[0], str) and type(x[1]) is int


def _checkpoint_marks(x: Any) -> dict[str, SeqSet] | None:
    if not (isinstance(x, dict) and x.get("cp") == 1 and isinstance(x.get("m"), dict)):
        return None
    out = {}
    for dev, flat in x["m"].items():
        if not (
            isinstance(dev, str)
            and isinstance(flat, list)
            and len(flat) % 2 == 0
            and all(type(v) is int and v >= 1 for v in flat)
            and all(flat[i] <= flat[i + 1] for i in range(0, len(flat), 2))
        ):
            return None
        out[dev] = SeqSet(flat)
    return out


def _decode(payload: bytes) -> Any:
    try:
        return cbor2.loads(payload)
    except Exception:  # a CRC collision or a bug elsewhere: never fatal here
        return None


class Outbox:
    def __init__(
        self, directory: str | os.PathLike[str], segment_bytes: int = SEGMENT_BYTES, fsync: bool = True
    ):
        self.dir = Path(directory)
        self.dir.mkdir(parents=True, exist_ok=True)
        os.chmod(self.dir, 0o700)
        self._state_lock = StateLock(self.dir / "LOCK")
        self.segment_bytes = segment_bytes
        self.fsync = fsync
        self._lock = threading.RLock()
        self.marks: dict[str, SeqSet] = {}  # device -> every sequence ever stored
        # device -> {seq: segment}; segment -> unacked count
        self.unacked: dict[str, dict[int, int]] = {}
        self.seg_unacked: dict[int, int] = {}
        # segment -> (appended_at, device, seq) in append order; entries
        # acknowledged since are skipped lazily when the oldest is asked for.
        self._order: dict[int, deque[tuple[float, str, int]]] = {}
        self._ack_fds: dict[int, int] = {}
        self._fd = -1
        self._tail_left = False  # a failed batch's bytes are still in the active file
        try:
            self.report = self._recover()
            self._start_segment(self._next_segment_id())
            self._drop_acked_segments()
            legacy = self.dir / "devices.json"
            if legacy.exists():
                legacy.unlink()  # folded into the checkpoint just written
                self._fsync_dir()
        except BaseException:
            self._close_fds()
            self._state_lock.release()
            raise

    # -- files ---------------------------------------------------------------

    def _log(self, seg: int) -> Path:
        return self.dir / f"seg-{seg:010d}.log"

    def _ack(self, seg: int) -> Path:
        return self.dir / f"seg-{seg:010d}.ack"

    def _segments(self) -> list[int]:
        out = []
        for p in self.dir.glob("seg-*.log"):
            digits = p.name[4:14]
            if len(p.name) == 18 and digits.isdigit() and digits.isascii():
                out.append(int(digits))
        return sorted(out)

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

    def _write_all(self, fd: int, data: bytes | bytearray) -> None:
        view = memoryview(data)
        while view:
            view = view[os.write(fd, view) :]
        if self.fsync:
            os.fsync(fd)

    # -- recovery ------------------------------------------------------------

    def _recover(self) -> RecoveryReport:
        rep = RecoveryReport()
        for stale in self.dir.glob(".seg-*.tmp-*"):
            stale.unlink()  # a repair cut before its rename: the original is intact
        self._fold_legacy_meta(rep)
        logs = self._segments()
        names = {self._log(s).name for s in logs}
        for p in self.dir.glob("seg-*.ack"):
            if p.with_suffix(".log").name not in names:
                p.unlink()  # its log was deleted, the crash came before the ack file
        for seg in logs:
            rep.segments += 1
            order: deque[tuple[float, str, int]] = deque()
            count = 0
            for payload in self._scan(self._log(seg), rep):
                obj = _decode(payload)
                cp = _checkpoint_marks(obj)
                if cp is not None:
                    for dev, s in cp.items():
                        self.marks.setdefault(dev, SeqSet()).update(s)
                    continue
                if not _is_record(obj):
                    rep.undecodable += 1
                    continue
                device, seq, at, _data = obj
                self.marks.setdefault(device, SeqSet()).add(seq)
                per = self.unacked.setdefault(device, {})
                if seq in per:
                    continue  # the same record framed twice: it counts once
                per[seq] = seg
                order.append((float(at), device, seq))
                count += 1
            rep.records += count
            self.seg_unacked[seg] = count
            self._order[seg] = order
            ack_path = self._ack(seg)
            if ack_path.exists():
                for payload in self._scan(ack_path, rep):
                    obj = _decode(payload)
                    if not _is_ack(obj):
                        rep.undecodable += 1
                        continue
                    device, seq = obj
                    if self.unacked.get(device, {}).get(seq) == seg:
                        del self.unacked[device][seq]
                        self.seg_unacked[seg] -= 1
                        rep.acked += 1
        for device in [d for d, per in self.unacked.items() if not per]:
            del self.unacked[device]
        if rep.damaged:
            log.warning(
                "outbox recovery: %d torn and %d damaged bytes (%d runs), %d undecodable frames%s; "
                "every frame that checks was kept%s",
                rep.torn_bytes,
                rep.corrupt_bytes,
                rep.corrupt_frames,
                rep.undecodable,
                ", damaged devices.json ignored" if rep.legacy_meta == "damaged" else "",
                f"; repaired {', '.join(rep.files_repaired)}" if rep.files_repaired else "",
            )
        return rep

    def _scan(self, path: Path, rep: RecoveryReport) -> list[bytes]:
        """The valid frames of one file; a damaged file is rewritten with
        exactly those, so the next open sees what this one saw."""
        data = path.read_bytes()
        p = logframe.parse(data)
        if p.skipped:
            rep.corrupt_frames += p.regions
            if p.torn and p.regions == 1:
                rep.torn_bytes += p.skipped  # a power cut mid-append, nothing else
            else:
                rep.corrupt_bytes += p.skipped
            atomic_write(path, b"".join(logframe.frame(pl) for _off, pl in p.frames), durable=self.fsync)
            rep.files_repaired.append(path.name)
        return [pl for _off, pl in p.frames]

    def _fold_legacy_meta(self, rep: RecoveryReport) -> None:
        # Outboxes written before checkpoints kept the marks in devices.json
        # as a high-water mark and the holes below it.
        path = self.dir / "devices.json"
        if not path.exists():
            return
        import json

        try:
            saved = json.loads(path.read_bytes())
            for dev, last in saved["last"].items():
                holes = sorted(int(h) for h in saved.get("holes", {}).get(dev, ()))
                s = SeqSet()
                lo = 1
                for h in [*holes, int(last) + 1]:
                    if lo <= h - 1:
                        s.add_range(lo, h - 1)
                    lo = h + 1
                self.marks.setdefault(str(dev), SeqSet()).update(s)
            rep.legacy_meta = "folded"
        except (ValueError, KeyError, TypeError, AttributeError):
            # What it held is also in any newer segment's records; what only
            # it held (marks of records acked and deleted) can make a resent
            # old record be stored again: a duplicate the cloud drops, never a loss.
            rep.legacy_meta = "damaged"

    def _checkpoint(self) -> bytes:
        frames = bytearray()
        part: dict[str, list[int]] = {}
        size = 0
        for dev, s in self.marks.items():
            flat = s.flat()
            for i in range(0, len(flat), 4096):
                chunk = flat[i : i + 4096]
                part.setdefault(dev, []).extend(chunk)
                size += len(dev) + 9 * len(chunk)
                if size >= _CHECKPOINT_BYTES:
                    frames += logframe.frame(cbor2.dumps({"cp": 1, "m": part}))
                    part, size = {}, 0
        if part or not frames:
            frames += logframe.frame(cbor2.dumps({"cp": 1, "m": part}))
        return bytes(frames)

    def _start_segment(self, seg: int) -> None:
        """Open segment `seg` for appends, its checkpoint durable first."""
        cp = self._checkpoint()
        fd = os.open(self._log(seg), os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_APPEND, 0o600)
        try:
            self._write_all(fd, cp + cp)
        except BaseException:
            # It holds no record, only part of a checkpoint: gone, so a
            # later roll can take its number (O_EXCL).
            os.close(fd)
            os.unlink(self._log(seg))
            raise
        self._fsync_dir()
        if self._fd >= 0:
            os.close(self._fd)
        self._fd = fd
        self._active = seg
        self._size = 2 * len(cp)
        self.seg_unacked[seg] = 0
        self._order[seg] = deque()

    def _drop_acked_segments(self) -> None:
        for seg in [s for s, n in self.seg_unacked.items() if n == 0 and s != self._active]:
            self._drop_segment(seg)

    def _drop_segment(self, seg: int) -> None:
        fd = self._ack_fds.pop(seg, None)
        if fd is not None:
            os.close(fd)
        # The log first: a crash between the two leaves an ack file with no
        # log, which recovery deletes. The other order would bring back
        # records the cloud acknowledged (kill -9 harness, round 9).
        self._log(seg).unlink(missing_ok=True)
        self._ack(seg).unlink(missing_ok=True)
        self.seg_unacked.pop(seg, None)
        self._order.pop(seg, None)

    # -- append --------------------------------------------------------------

    @property
    def last_seq(self) -> dict[str, int]:
        """Per device, the highest sequence ever stored (a snapshot)."""
        with self._lock:
            return {d: s.high for d, s in self.marks.items()}

    def next_seq(self, device: str) -> int:
        """The sequence a producer that lives in this process (the gate, the
        import audit) gives its next record: never one stored before."""
        with self._lock:
            s = self.marks.get(device)
            return (s.high if s is not None else 0) + 1

    def append_own(
        self, device: str, time: int, door: str, kind: str, ref: str, granted: bool, reason: str
    ) -> PassRecord:
        """A record made in this process (the gate's decisions, the gateway's
        alarms and audits): numbered, built and made durable in one step."""
        with self._lock:
            rec = PassRecord(device, self.next_seq(device), time, door, kind, ref, granted, reason)
            self.append([(rec.device, rec.seq, rec.encode())])
            return rec

    def append(self, items: list[tuple[str, int, bytes]], now: float | None = None) -> list[bool]:
        """Durably append records (one fsync for the batch). Returns, per item,
        True if appended, False if (device, seq) was stored before (a producer
        retransmitting: ack it again, do not store it twice)."""
        at = time.time() if now is None else now
        with self._lock:
            out = []
            buf = bytearray()
            new: list[tuple[str, int]] = []
            taken: set[tuple[str, int]] = set()
            for device, seq, data in items:
                if type(seq) is not int or seq < 1:
                    raise ValueError("a sequence number is an integer >= 1")
                s = self.marks.get(device)
                if (s is not None and seq in s) or (device, seq) in taken:
                    out.append(False)
                    continue
                buf += logframe.frame(cbor2.dumps([device, seq, at, data]))
                taken.add((device, seq))
                new.append((device, seq))
                out.append(True)
            if buf:
                if self._tail_left:
                    # A failed batch's bytes could not be cut off: seal that
                    # segment where it really ends (its reader and the next
                    # recovery pass over the partial frame) and go on in a
                    # new one, so nothing follows the partial frame.
                    self._size = os.fstat(self._fd).st_size
                    self._roll()
                    self._tail_left = False
                try:
                    self._write_all(self._fd, buf)
                except OSError:
                    # Not durable, so not taken; cut what reached the file so
                    # the next batch does not follow a partial frame.
                    try:
                        os.ftruncate(self._fd, self._size)
                    except OSError:
                        self._tail_left = True
                    raise
                self._size += len(buf)
                order = self._order[self._active]
                for device, seq in new:
                    self.marks.setdefault(device, SeqSet()).add(seq)
                    self.unacked.setdefault(device, {})[seq] = self._active
                    order.append((at, device, seq))
                self.seg_unacked[self._active] += len(new)
                if self._size >= self.segment_bytes:
                    try:
                        self._roll()
                    except OSError as e:
                        # The batch is durable, so it is taken; this segment
                        # grows past its size until an append's roll succeeds.
                        log.warning(
                            "outbox: cannot start a new segment (%s); the current one grows until it can",
                            e.strerror or type(e).__name__,
                        )
            return out

    def _roll(self) -> None:
        # Rolled from append, the old segment has just taken the batch that
        # filled it, so it has unacked records: the acks delete it, not the
        # roll. (Sealed after a failed cut-back it may hold none; the next
        # start deletes it then.)
        self._start_segment(self._active + 1)  # ids only grow: segment order is append order

    # -- read and ack --------------------------------------------------------

    def read(self, cursor: tuple[int, int] | None, limit: int = 500) -> tuple[list[Entry], tuple[int, int]]:
        """Up to `limit` unacknowledged records after `cursor` (None = the
        oldest), in append order, and the cursor to continue from. The cost
        is proportional to what is read, not to the backlog."""
        out: list[Entry] = []
        taken: set[tuple[str, int]] = set()
        with self._lock:
            # The active segment is always listed, and no cursor is past it.
            segs = sorted(s for s in self.seg_unacked if cursor is None or s >= cursor[0])
            pos = cursor if cursor is not None else (segs[0], 0)
            for seg in segs:
                off = pos[1] if seg == pos[0] else 0
                size = self._size if seg == self._active else self._log(seg).stat().st_size
                if self.seg_unacked[seg] == 0:
                    pos = (seg, size)
                    continue
                with open(self._log(seg), "rb") as f:
                    want = _READ_CHUNK
                    while len(out) < limit and off < size:
                        f.seek(off)
                        chunk = f.read(min(want, size - off))
                        if not chunk:
                            break  # the file is shorter than its count (cut under us): nothing more
                        final = off + len(chunk) >= size
                        p = logframe.parse(chunk, 0, final, limit=limit - len(out))
                        if not p.frames and p.resume == 0:
                            # One frame larger than the chunk: read all of it.
                            want = logframe.HEAD + int.from_bytes(chunk[2:6], "big")
                            continue
                        want = _READ_CHUNK
                        for _o, payload in p.frames:
                            obj = _decode(payload)
                            if not _is_record(obj):
                                continue
                            device, seq, at, data = obj
                            # A record framed twice in one segment (recovery
                            # counts it once) is returned once per read; a
                            # later read may send it again, as any resend
                            # (the cloud acks by device and sequence).
                            if self.unacked.get(device, {}).get(seq) == seg and (device, seq) not in taken:
                                taken.add((device, seq))
                                out.append(Entry(device, seq, at, data, seg))
                        off += p.resume  # a final chunk is parsed to its end
                pos = (seg, off)
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
            seen: set[tuple[str, int]] = set()
            for device, seq in acks:
                seg = self.unacked.get(device, {}).get(seq)
                if seg is None or (device, seq) in seen:
                    continue  # unknown or already acked: idempotent
                seen.add((device, seq))
                per_seg.setdefault(seg, bytearray()).extend(logframe.frame(cbor2.dumps([device, seq])))
                done.append((device, seq, seg))
            for seg, buf in per_seg.items():
                fd = self._ack_fds.get(seg)
                if fd is None:
                    fd = os.open(self._ack(seg), os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
                    self._ack_fds[seg] = fd
                self._write_all(fd, buf)
            for device, seq, seg in done:
                del self.unacked[device][seq]
                if not self.unacked[device]:
                    del self.unacked[device]
                self.seg_unacked[seg] -= 1
            for seg in list(per_seg):
                if self.seg_unacked.get(seg) == 0 and seg != self._active:
                    # Safe to delete: the active segment's checkpoint holds
                    # every mark this one held.
                    self._drop_segment(seg)
            return len(done)

    # -- status --------------------------------------------------------------

    def backlog(self) -> int:
        with self._lock:
            return sum(self.seg_unacked.values())

    def oldest_unacked_age(self, now: float | None = None) -> float | None:
        """Age of the oldest record not yet acknowledged by the cloud."""
        with self._lock:
            for seg in sorted(self.seg_unacked):
                if not self.seg_unacked[seg]:
                    continue
                order = self._order[seg]
                while order and self.unacked.get(order[0][1], {}).get(order[0][2]) != seg:
                    order.popleft()
                if order:
                    return (time.time() if now is None else now) - order[0][0]
            return None

    def gaps(self) -> dict[str, int]:
        """Per device, sequences below its highest that were never stored."""
        with self._lock:
            return {d: n for d, s in self.marks.items() if (n := s.missing_below_high())}

    def _close_fds(self) -> None:
        if self._fd >= 0:
            os.close(self._fd)
            self._fd = -1
        for fd in self._ack_fds.values():
            os.close(fd)
        self._ack_fds.clear()

    def close(self) -> None:
        with self._lock:
            self._close_fds()
            self._state_lock.release()


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
