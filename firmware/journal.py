# The lock's pass-record journal on flash (MicroPython; also runs on CPython
# under the simulator).
#
# Append-only segments "jNNNNN.log" of frames; the first frame of a segment
# is its header, [0, floor]: the next sequence number when the segment was
# begun. Acks from the gateway go to "jNNNNN.ack" (frames of u32 sequence
# numbers); a segment whose records are all acked is deleted with its ack
# file, but only once a newer segment exists, so the newest header always
# bounds every deleted number. The meta (a two-copy state file,
# firmware/statefile.py) keeps the next sequence number, the overflow
# counters and a damage report still to be journaled.
#
#   frames: firmware/frame.py (no erased run of 0x00 or 0xFF parses as one)
#
# Durability: a record is appended, flushed and synced before `append`
# returns; the caller energises the strike only after that.
#
# Recovery never stops the lock from booting. A torn tail (a frame the power
# cut short) is dropped: its number was never handed out. Any other damage
# (flipped bits, erased runs, a damaged meta) costs only the damaged frames;
# the parser resynchronises on the next frame that checks. Because damaged
# bytes may have held records whose numbers the gateway already has, the
# next number then skips past every number those bytes could have held, so a
# number is never used twice; the skip shows in the cloud as a gap, and a
# "journal-damage" record says why. Damaged files are rewritten with their
# valid frames (after the meta is saved), so opening twice gives the state
# opening once gave.
#
# What a torn tail cannot tell: completed frames cut off exactly as a torn
# append would be (flash losing synced data) look the same, so their numbers
# can come back; numbers the gateway acknowledged cannot (the ack file bounds
# the next number too).
#
# Size: by default 32 segments of 4 KiB, 128 KiB of the lock's flash
# (firmware/main.py takes the defaults; tests/shared/test_documented_defaults.py).
#
# Full journal (max_segments * segment_bytes): the lock still decides - a
# resident is not locked out because the gateway has been away for days -
# but a decision that does not fit is counted, not stored: per outcome, in
# the meta, with an alarm; when space returns, one summary record
# ("journal-overflow", with the counts in its reference) is appended. Nothing
# unacknowledged is ever deleted to make room.

import struct

from firmware.frame import HEAD as _HEAD
from firmware.frame import HEAD_LEN as _HEAD_LEN
from firmware.frame import MAGIC
from firmware.frame import crc as _crc
from firmware.frame import frame as _frame
from firmware.statefile import StateFile
from protocol import cbor, record
from protocol.record import PassRecord

# The smallest frame a record can take (protocol/record.py's encoding of the
# shortest fields, plus the head; tests/shared/test_journal.py checks it):
# damaged bytes can have held at most n // this + 1 records.
_MIN_RECORD_FRAME = 29


def _frames(data) -> tuple:  # type: ignore[no-untyped-def]
    """(payloads, damaged bytes, damaged runs, torn, tail): every frame that
    checks, resynchronising past damage. `torn` when the only damage is a
    frame cut off at the end (a power cut mid-append); `tail` is where the
    damage that ends the file begins (the file's length if it ends well)."""
    out = []
    mv = memoryview(data)
    n = len(data)
    pos = 0
    bad = 0
    runs = 0
    bad_start = -1
    torn = False
    while pos < n:
        ok = False
        end = n
        if pos + _HEAD_LEN <= n and mv[pos] == MAGIC:
            _m, ln, crc = struct.unpack(_HEAD, mv[pos : pos + _HEAD_LEN])
            end = pos + _HEAD_LEN + ln
            if ln >= 1 and end <= n:
                ok = _crc(bytes(mv[pos + 1 : pos + 3]), mv[pos + _HEAD_LEN : end]) == crc
            elif ln >= 1 and bad_start < 0:
                torn = True  # a header whose frame the file never finished
        elif pos + _HEAD_LEN > n and mv[pos] == MAGIC and bad_start < 0:
            torn = True  # a header cut short
        if ok:
            if bad_start >= 0:
                bad += pos - bad_start
                runs += 1
                bad_start = -1
                torn = False
            out.append(bytes(mv[pos + _HEAD_LEN : end]))
            pos = end
            continue
        if bad_start < 0:
            bad_start = pos
        nxt = data.find(bytes((MAGIC,)), pos + 1)
        pos = n if nxt < 0 else nxt
    tail = n
    if bad_start >= 0:
        bad += n - bad_start
        runs += 1
        tail = bad_start
    return out, bad, runs, torn and runs == 1, tail


def _is_header(p) -> bool:  # type: ignore[no-untyped-def]
    return len(p) > 0 and p[0] == 0x82


def _header_floor(p) -> int:  # type: ignore[no-untyped-def]
    """A segment header's floor, 0 if the frame only looks like one (a CRC
    collision): damage is reported by the frames around it."""
    try:
        h = cbor.decode(p)
    except Exception:  # not a header: no floor
        return 0
    return h[1] if isinstance(h, list) and len(h) == 2 and isinstance(h[1], int) else 0


def _record_seq(p) -> int:  # type: ignore[no-untyped-def]
    try:
        return record.peek_seq(p)
    except Exception:  # a frame that checks but holds no record of ours
        return 0


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
        # Damage found and not yet journaled: bytes lost, runs, meta copies
        # unreadable, numbers skipped. Kept in the meta until journaled.
        self.damage: dict = {}
        self.active = 1
        self.meta = StateFile(fs, "meta")
        self._recover()

    # -- files -------------------------------------------------------------

    def _log(self, seg: int) -> str:
        return "j%05d.log" % seg

    def _ack(self, seg: int) -> str:
        return "j%05d.ack" % seg

    def _save_meta(self) -> None:
        d = self.damage
        ov = self.overflow
        damage = [d.get("b", 0), d.get("r", 0), d.get("m", 0), d.get("s", 0), d.get("e", 0)]
        self.meta.save([self.next_seq, ov.get("granted", 0), ov.get("denied", 0)] + damage)

    def _load_meta(self) -> int:
        """Load the newest readable meta copy; returns how many copies that
        exist could not be read."""
        m = self.meta.load()
        if not (isinstance(m, list) and len(m) == 8 and all(isinstance(x, int) for x in m)):
            return self.meta.unreadable + (1 if m is not None else 0)
        self.next_seq = max(1, m[0])
        if m[1]:
            self.overflow["granted"] = m[1]
        if m[2]:
            self.overflow["denied"] = m[2]
        for k, v in zip("brmse", m[3:]):
            if v:
                self.damage[k] = v
        return self.meta.unreadable

    def _recover(self) -> None:
        meta_bad = self._load_meta()
        segs = []
        names = self.fs.listdir()
        for name in names:
            # Segment numbers only grow: past 99999 the name has more digits.
            if name.startswith("j") and name.endswith(".log") and len(name) >= 10 and name[1:-4].isdigit():
                segs.append(int(name[1:-4]))
            elif name.endswith(".tmp"):
                self.fs.remove(name)  # an atomic write cut before its rename
        for name in names:
            if name.startswith("j") and name.endswith(".ack") and name[:-4] + ".log" not in names:
                self.fs.remove(name)  # a deletion cut between its two files
        segs.sort()
        bad_bytes = 0
        bad_runs = 0
        skip = 0
        repair = []
        top = self.next_seq
        for seg in segs:
            data = self.fs.read(self._log(seg))
            payloads, bad, runs, torn, tail = _frames(data)
            if bad:
                repair.append((self._log(seg), payloads))
            if bad and torn:
                # A frame cut off at the end and nothing else: a power cut
                # mid-append. Its append never returned, so its number was
                # never handed out and the strike never moved: nothing to
                # skip, nothing lost.
                self.torn += bad
            elif bad:
                bad_bytes += bad
                bad_runs += runs
                if seg == segs[-1] and tail < len(data):
                    # Damaged bytes after the last good frame of the newest
                    # segment may have held records the gateway has: skip
                    # every number they (or frames past a cut) could hold.
                    lost = max(len(data), self.segment_bytes) - tail
                    skip = lost // _MIN_RECORD_FRAME + 1
            acked = {}
            adata = self.fs.read(self._ack(seg))
            apay, abad, aruns, _atorn, _atail = _frames(adata)
            if abad:
                bad_bytes += abad  # acks lost: those records go up again, none is lost
                bad_runs += aruns
                repair.append((self._ack(seg), apay))
            for p in apay:
                if len(p) == 4:
                    a = struct.unpack(">I", p)[0]
                    acked[a] = True
                    if a + 1 > top:
                        top = a + 1  # acked, so the gateway has it: never reused
            count = 0
            size = 0
            for p in payloads:
                size += _HEAD_LEN + len(p)
                if _is_header(p):
                    h = _header_floor(p)
                    if h > top:
                        top = h
                    continue
                seq = _record_seq(p)
                if seq < 1:
                    continue  # checks, but is not ours: never counted as a record
                if seq + 1 > top:
                    top = seq + 1
                if seq not in acked and seq not in self.seg_of:
                    self.seg_of[seq] = seg
                    count += 1
            self.seg_count[seg] = count
            self.seg_size[seg] = size
        if meta_bad == len(self.meta.names) and not segs:
            # Neither meta copy nor any segment survived: the numbers used
            # are unknown, so skip past all a full journal can hold.
            skip += self.max_segments * self.segment_bytes // _MIN_RECORD_FRAME
        if bad_bytes or meta_bad:
            d = self.damage
            for k, v in (("b", bad_bytes), ("r", bad_runs), ("m", meta_bad)):
                if v:
                    d[k] = d.get(k, 0) + v
            if skip:
                d["s"] = d.get("s", top)  # the first number skipped...
                d["e"] = top + skip - 1  # ...and the last
        self.next_seq = top + skip
        if bad_bytes or meta_bad:
            self._save_meta()  # the skipped numbers and the report first: then the repairs
            if meta_bad:
                self._save_meta()  # both copies readable again
        for name, payloads in repair:
            self.fs.write_atomic(name, b"".join(_frame(p) for p in payloads))
        # The newest segment stays active even when full: the next append
        # rotates, as it would had the lock not rebooted (a boot leaves the
        # journal as it was; tests/shared/test_journal_recovery.py).
        if segs:
            self.active = segs[-1]
        self.seg_count.setdefault(self.active, 0)
        self.seg_size.setdefault(self.active, 0)
        for seg in segs:
            if self.seg_count[seg] == 0 and seg != self.active:
                self._drop(seg)

    def _drop(self, seg: int) -> None:
        self.fs.remove(self._log(seg))
        self.fs.remove(self._ack(seg))
        self.seg_count.pop(seg, None)
        self.seg_size.pop(seg, None)

    # -- append ------------------------------------------------------------

    def full(self, extra: int) -> bool:
        live = len(self.seg_count)
        room = self.seg_size[self.active] + extra <= self.segment_bytes
        return live >= self.max_segments and not room

    def append(
        self, time: int, door: str, kind: str, ref: str, granted: bool, reason: str
    ) -> "PassRecord | None":
        """Journal one decision durably; returns the record, or None when the
        journal is full (the decision is then counted in the overflow)."""
        if self.damage and not self.full(200):
            self.flush_damage(time, door)
        if self.overflow and not self.full(200):
            self._flush_overflow(time, door)
        rec = PassRecord(self.device, self.next_seq, time, door, kind, ref, granted, reason)
        frame = _frame(rec.encode())
        if self.full(len(frame) + 20):
            k = "granted" if granted else "denied"
            self.overflow[k] = self.overflow.get(k, 0) + 1
            self._save_meta()
            return None
        self._write(frame, rec.seq)
        return rec

    def flush_damage(self, time: int, door: str) -> None:
        """Journal the damage recovery found, as one "journal-damage" record
        (reference "b<bytes lost>/r<damaged runs>/m<meta copies unreadable>
        [/s<first>-<last number skipped>]", so the cloud can tell a skipped
        range from a lost one). The boot calls it; an append does if the
        boot could not."""
        d = self.damage
        if not d or self.full(200):
            return
        # bytes lost / damaged runs / meta copies unreadable / numbers skipped
        ref = "b%d/r%d/m%d" % (d.get("b", 0), d.get("r", 0), d.get("m", 0))
        if d.get("s"):
            ref += "/s%d-%d" % (d["s"], d["e"])
        rec = PassRecord(self.device, self.next_seq, time, door, "none", ref[:40], False, "journal-damage")
        self._write(_frame(rec.encode()), rec.seq)
        self.damage = {}
        self._save_meta()

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
        # The active segment is always in the bookkeeping (the boot and each
        # rotation put it there), so it is indexed, not looked up.
        size = self.seg_size[self.active]
        if size and size + len(frame) > self.segment_bytes:
            self.active += 1
            self.seg_count[self.active] = 0
            self.seg_size[self.active] = 0
        if self.seg_size[self.active] == 0:
            # A segment begins with its floor, in the same write as its first record.
            frame = _frame(cbor.encode([0, seq])) + frame
        self.fs.append(self._log(self.active), frame)  # flushed and synced
        self.seg_size[self.active] += len(frame)
        self.seg_count[self.active] += 1
        self.seg_of[seq] = self.active
        self.next_seq = seq + 1
        # Fully acknowledged segments may go once a newer segment's header
        # bounds every number in them: after a write the active one has it.
        stale = [s for s in self.seg_count if self.seg_count[s] == 0 and s != self.active]
        if stale:
            self._save_meta()
            for s in stale:
                self._drop(s)

    # -- upload ------------------------------------------------------------

    def pending(self, limit: int = 50) -> list:
        """Oldest unacked records first (what the link uploads next)."""
        out = []
        for seg in sorted(self.seg_count):
            if not self.seg_count[seg]:
                continue
            payloads = _frames(self.fs.read(self._log(seg)))[0]
            for p in payloads:
                # Recovery counted only frames that hold a record's number:
                # a frame that checks but is not ours is passed over here too.
                if _is_header(p) or self.seg_of.get(_record_seq(p)) != seg:
                    continue
                out.append(PassRecord.decode(p))
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
                ln = (data[pos + 1] << 8) | data[pos + 2]
                end = pos + _HEAD_LEN + ln
                payload = data[pos + _HEAD_LEN : end]
                pos = end
                if _is_header(payload):
                    continue
                seq = _record_seq(payload)  # 0 for a frame that checks but is not ours
                if self.seg_of.get(seq) == seg:  # recovery checked (and repaired) every frame
                    seqs.append(seq)
                    parts.append(payload)
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
            if self.seg_count[seg] == 0 and seg != self.active and self.seg_size[self.active]:
                self._save_meta()  # the sequence floor outlives the records
                self._drop(seg)
        return n

    def backlog(self) -> int:
        return len(self.seg_of)
