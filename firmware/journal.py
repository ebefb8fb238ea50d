# The lock's pass-record journal on flash (MicroPython; also runs on CPython
# under the simulator).
#
# Append-only segments "jNNNNN.log" of frames: u16 length | u32 CRC-32 |
# record CBOR. Acks from the gateway go to "jNNNNN.ack" (frames of u32
# sequence numbers); a segment whose records are all acked is deleted with
# its ack file. "meta" (written atomically) keeps the next sequence number
# and the overflow counters, so numbers are never reused after deletion.
#
# Durability: a record is appended, flushed and synced before `append`
# returns; the caller energises the strike only after that.
# Power cut at any byte: recovery keeps every whole frame and drops (and
# reports) a torn tail.
# Full journal (max_segments * segment_bytes): the lock still decides - a
# resident is not locked out because the gateway has been away for days -
# but a decision that does not fit is counted, not stored: per outcome, in
# "meta", with an alarm; when space returns, one summary record
# ("journal-overflow", with the counts in its reference) is appended. Nothing
# unacknowledged is ever deleted to make room.

import binascii
import struct

from protocol import cbor, record
from protocol.record import PassRecord

_HEAD = ">HI"
_HEAD_LEN = 6


def _frame(payload: bytes) -> bytes:
    return struct.pack(_HEAD, len(payload), binascii.crc32(payload) & 0xFFFFFFFF) + payload


def _frames(data: bytes) -> tuple:
    """(payloads, end of the valid prefix)."""
    out = []
    pos = 0
    n = len(data)
    while pos + _HEAD_LEN <= n:
        ln, crc = struct.unpack(_HEAD, data[pos : pos + _HEAD_LEN])
        end = pos + _HEAD_LEN + ln
        if end > n:
            break
        payload = data[pos + _HEAD_LEN : end]
        if binascii.crc32(payload) & 0xFFFFFFFF != crc:
            break
        out.append(payload)
        pos = end
    return out, pos


class Journal:
    def __init__(self, fs, device: str, segment_bytes: int = 4096, max_segments: int = 32) -> None:  # type: ignore[no-untyped-def]
        self.fs = fs
        self.device = device
        self.segment_bytes = segment_bytes
        self.max_segments = max_segments
        self.next_seq = 1
        self.overflow: dict = {}  # "granted"/"denied" -> count not stored
        self.seg_of: dict = {}  # seq -> segment number, for unacked records
        self.seg_count: dict = {}  # segment -> unacked records
        self.seg_size: dict = {}  # segment -> bytes
        self.torn = 0
        self.active = 1
        self._recover()

    # -- files -------------------------------------------------------------

    def _log(self, seg: int) -> str:
        return "j%05d.log" % seg

    def _ack(self, seg: int) -> str:
        return "j%05d.ack" % seg

    def _save_meta(self) -> None:
        self.fs.write_atomic("meta", cbor.encode([self.next_seq, self.overflow.get("granted", 0),
                                                  self.overflow.get("denied", 0)]))  # fmt: skip

    def _recover(self) -> None:
        meta = self.fs.read("meta")
        if meta:
            m: list = cbor.decode(meta)  # type: ignore[assignment]
            self.next_seq = m[0]
            if m[1]:
                self.overflow["granted"] = m[1]
            if m[2]:
                self.overflow["denied"] = m[2]
        segs = []
        names = self.fs.listdir()
        for name in names:
            if name.startswith("j") and name.endswith(".log"):
                segs.append(int(name[1:6]))
            elif name.endswith(".tmp"):
                self.fs.remove(name)  # an atomic write cut before its rename
        for name in names:
            if name.startswith("j") and name.endswith(".ack") and name[:6] + ".log" not in names:
                self.fs.remove(name)  # a deletion cut between its two files
        segs.sort()
        for seg in segs:
            data = self.fs.read(self._log(seg))
            payloads, end = _frames(data)
            if end < len(data):
                self.torn += len(data) - end
                self.fs.truncate(self._log(seg), end)
            acked = {}
            adata = self.fs.read(self._ack(seg))
            apay, aend = _frames(adata)
            if aend < len(adata):
                self.fs.truncate(self._ack(seg), aend)
            for p in apay:
                acked[struct.unpack(">I", p)[0]] = True
            count = 0
            for p in payloads:
                rmap: dict = cbor.decode(p)  # type: ignore[assignment]
                seq = rmap[2]
                if seq >= self.next_seq:
                    self.next_seq = seq + 1
                if seq not in acked:
                    self.seg_of[seq] = seg
                    count += 1
            self.seg_count[seg] = count
            self.seg_size[seg] = end
        for seg in segs:
            if self.seg_count[seg] == 0 and seg != segs[-1]:
                self._drop(seg)
        if segs:
            self.active = segs[-1]
            if self.seg_size.get(self.active, 0) >= self.segment_bytes:
                self.active += 1
        self.seg_count.setdefault(self.active, 0)
        self.seg_size.setdefault(self.active, 0)

    def _drop(self, seg: int) -> None:
        self.fs.remove(self._log(seg))
        self.fs.remove(self._ack(seg))
        self.seg_count.pop(seg, None)
        self.seg_size.pop(seg, None)

    # -- append ------------------------------------------------------------

    def full(self, extra: int = 0) -> bool:
        live = len(self.seg_count)
        room = self.seg_size.get(self.active, 0) + extra <= self.segment_bytes
        return live >= self.max_segments and not room

    def append(
        self, time: int, door: str, kind: str, ref: str, granted: bool, reason: str
    ) -> "PassRecord | None":
        """Journal one decision durably; returns the record, or None when the
        journal is full (the decision is then counted in the overflow)."""
        if self.overflow and not self.full(160):
            self._flush_overflow(time, door)
        rec = PassRecord(self.device, self.next_seq, time, door, kind, ref, granted, reason)
        frame = _frame(rec.encode())
        if self.full(len(frame)):
            k = "granted" if granted else "denied"
            self.overflow[k] = self.overflow.get(k, 0) + 1
            self._save_meta()
            return None
        self._write(frame, rec.seq)
        return rec

    def _flush_overflow(self, time: int, door: str) -> None:
        g = self.overflow.get("granted", 0)
        d = self.overflow.get("denied", 0)
        rec = PassRecord(
            self.device, self.next_seq, time, door, "none", "g%d/d%d" % (g, d), False, "journal-overflow"
        )
        self._write(_frame(rec.encode()), rec.seq)
        self.overflow = {}
        self._save_meta()

    def _write(self, frame: bytes, seq: int) -> None:
        if self.seg_size.get(self.active, 0) + len(frame) > self.segment_bytes and self.seg_size.get(
            self.active
        ):
            if self.seg_count.get(self.active) == 0:
                self._save_meta()
                self._drop(self.active)
            self.active += 1
            self.seg_count[self.active] = 0
            self.seg_size[self.active] = 0
        self.fs.append(self._log(self.active), frame)  # flushed and synced
        self.seg_size[self.active] += len(frame)
        self.seg_count[self.active] += 1
        self.seg_of[seq] = self.active
        self.next_seq = seq + 1

    # -- upload ------------------------------------------------------------

    def pending(self, limit: int = 50) -> list:
        """Oldest unacked records first (what the link uploads next)."""
        out = []
        for seg in sorted(self.seg_count):
            if not self.seg_count[seg]:
                continue
            payloads, _end = _frames(self.fs.read(self._log(seg)))
            for p in payloads:
                r = PassRecord.decode(p)
                if self.seg_of.get(r.seq) == seg:
                    out.append(r)
                    if len(out) >= limit:
                        return out
        return out

    def pending_encoded(self, limit: int = 50) -> tuple:
        """(seqs, batch body bytes) of the oldest unacked records, built from
        the journaled encodings without decoding them: one segment read and
        one join, so an upload costs the lock a few KB, not a decode of
        every record (115 KB allocated per 50-record batch before)."""
        seqs: list = []
        parts = []
        for seg in sorted(self.seg_count):
            if not self.seg_count[seg]:
                continue
            data = memoryview(self.fs.read(self._log(seg)))
            pos = 0
            n = len(data)
            while pos + _HEAD_LEN <= n and len(seqs) < limit:
                ln = (data[pos] << 8) | data[pos + 1]
                end = pos + _HEAD_LEN + ln
                payload = data[pos + _HEAD_LEN : end]
                seq = record.peek_seq(payload)
                if self.seg_of.get(seq) == seg:  # recovery checked every CRC already
                    seqs.append(seq)
                    parts.append(payload)
                pos = end
            if len(seqs) >= limit:
                break
        return seqs, record.batch_from_encoded(parts)

    def ack(self, seqs: list) -> int:
        """The gateway has journaled these; only now may they go."""
        per_seg: dict = {}
        for s in seqs:
            seg = self.seg_of.get(s)
            if seg is not None:
                per_seg.setdefault(seg, []).append(s)
        n = 0
        for seg, ss in per_seg.items():
            self.fs.append(self._ack(seg), b"".join(_frame(struct.pack(">I", s)) for s in ss))
            for s in ss:
                del self.seg_of[s]
                n += 1
            self.seg_count[seg] -= len(ss)
            if self.seg_count[seg] == 0 and seg != self.active:
                self._save_meta()  # the sequence floor outlives the records
                self._drop(seg)
        return n

    def backlog(self) -> int:
        return len(self.seg_of)
