"""Frames of the gateway's append-only logs (the outbox's segments and ack
files), and the one parser that reads them back after any damage.

    frame = magic b"\\xa5\\x5a" | u32 length (1..MAX_FRAME)
          | u32 CRC-32 of (length bytes + payload) | payload

Why this shape: power loss on flash and SD cards leaves runs of 0x00 or
0xFF, and a torn write leaves a prefix. None of those can parse as a frame:
the magic is neither byte repeated, a length of 0 is refused (the CRC-32 of
nothing is 0, so a zero header would otherwise be a valid empty frame), and
the CRC covers the length, so a flipped length bit cannot pass off a wrong
extent. After damage the parser resynchronises on the next magic whose frame
checks, so one damaged frame costs that frame, not the rest of the file.

Pure functions over bytes, no I/O.
"""

from __future__ import annotations

import struct
import zlib

MAGIC = b"\xa5\x5a"
_HEAD = struct.Struct(">2sII")
HEAD = _HEAD.size
MAX_FRAME = 1 << 20


def frame(payload: bytes) -> bytes:
    n = len(payload)
    if not 1 <= n <= MAX_FRAME:
        raise ValueError("frame payload must be 1..%d bytes" % MAX_FRAME)
    ln = n.to_bytes(4, "big")
    return MAGIC + ln + zlib.crc32(payload, zlib.crc32(ln)).to_bytes(4, "big") + payload


class Parsed:
    """What `parse` found in a buffer."""

    __slots__ = ("frames", "regions", "resume", "skipped", "torn")

    def __init__(self) -> None:
        self.frames: list[tuple[int, bytes]] = []  # (offset, payload)
        self.resume = 0  # where parsing stopped (more data needed, or the end)
        self.skipped = 0  # bytes that belong to no valid frame
        self.regions = 0  # runs of such bytes (a damaged frame is usually one run)
        self.torn = False  # the skipped bytes end the buffer and look like a cut frame


def parse(buf: bytes | memoryview, pos: int = 0, final: bool = True, limit: int | None = None) -> Parsed:
    """Valid frames in `buf` from `pos`. With `final` False the buffer is a
    chunk of a longer file: a frame that runs past its end stops the parse
    (resume there with more data) instead of counting as damage. `limit`
    stops after that many frames."""
    out = Parsed()
    mv = memoryview(buf)
    n = len(mv)
    bad_start = -1
    while True:
        if limit is not None and len(out.frames) >= limit:
            break
        if pos + HEAD > n:
            if not final:
                break
            if pos < n:
                if bad_start < 0:
                    bad_start = pos
                    out.torn = bytes(mv[pos:n]) == MAGIC[: n - pos] or bytes(mv[pos : pos + 2]) == MAGIC
                pos = n
            break
        magic, ln, crc = _HEAD.unpack_from(mv, pos)
        ok = magic == MAGIC and 1 <= ln <= MAX_FRAME
        end = pos + HEAD + ln
        if ok and end > n:
            if not final:
                break  # the caller reads on from pos
            if bad_start < 0:
                out.torn = True  # a header whose frame the file never finished
                bad_start = pos
            ok = False
        if ok:
            payload = mv[pos + HEAD : end]
            ok = zlib.crc32(payload, zlib.crc32(mv[pos + 2 : pos + 6])) == crc
        if not ok:
            if bad_start < 0:
                bad_start = pos
            nxt = bytes(mv[pos + 1 : n]).find(MAGIC)
            if nxt < 0:
                # No frame can start here; keep the last byte in a chunk, it
                # may be the first byte of a magic cut by the chunk's end.
                pos = n if final else max(pos + 1, n - 1)
                if not final:
                    break
                continue
            pos = pos + 1 + nxt
            continue
        if bad_start >= 0:
            out.skipped += pos - bad_start
            out.regions += 1
            out.torn = False  # damage followed by good frames is not a torn tail
            bad_start = -1
        out.frames.append((pos, bytes(payload)))
        pos = end
    if bad_start >= 0:
        out.skipped += pos - bad_start
        out.regions += 1
    out.resume = pos
    return out
