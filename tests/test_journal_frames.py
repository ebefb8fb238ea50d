"""The lock journal's frame reader (firmware/journal.py `_frames`) against a
second, deliberately simple reading written from firmware/frame.py's format
alone, on random logs with random damage: same frames kept, same damaged
bytes, runs, tear and tail. The reader's accounting becomes the
"journal-damage" record and decides how many sequence numbers the lock
skips after damage, so a miscount is a number used twice or a gap the cloud
cannot explain. (Hypothesis runs on CPython only; the shared tests in
tests/shared/test_journal_damage_counts.py pin cases on both interpreters.)
"""

from __future__ import annotations

import struct
import zlib

from hypothesis import given, settings
from hypothesis import strategies as st

from firmware.frame import frame
from firmware.journal import _frames

MAGIC = 0xA5
HEAD = 7  # magic, u16 length, u32 CRC-32 of (length bytes + payload)


def _frame_at(data: bytes, pos: int) -> int:
    """The end of the whole, checking frame that starts at pos, or -1."""
    if pos + HEAD > len(data) or data[pos] != MAGIC:
        return -1
    ln = int.from_bytes(data[pos + 1 : pos + 3], "big")
    end = pos + HEAD + ln
    if ln < 1 or end > len(data):
        return -1
    crc = int.from_bytes(data[pos + 3 : pos + 7], "big")
    return end if zlib.crc32(data[pos + 1 : pos + 3] + data[pos + HEAD : end]) == crc else -1


def _cut_header(data: bytes, pos: int) -> bool:
    """A frame head at pos that the end of the data cut off."""
    if data[pos] != MAGIC:
        return False
    if pos + HEAD > len(data):
        return True
    ln = int.from_bytes(data[pos + 1 : pos + 3], "big")
    return ln >= 1 and pos + HEAD + ln > len(data)


def reference(data: bytes) -> tuple[list[bytes], int, int, bool, int]:
    """Take a frame where one checks; otherwise the bytes up to the next
    magic byte are damage. Runs are the maximal damaged stretches; the tail
    is where a run that reaches the end begins; a tear is a log whose only
    damage is one such run that begins with a cut-off frame head."""
    kept: list[bytes] = []
    gaps: list[tuple[int, int]] = []  # [start, end) of each damaged run
    pos = 0
    while pos < len(data):
        end = _frame_at(data, pos)
        if end > 0:
            kept.append(data[pos + HEAD : end])
            pos = end
            continue
        nxt = data.find(bytes([MAGIC]), pos + 1)
        stop = len(data) if nxt < 0 else nxt
        if gaps and gaps[-1][1] == pos:
            gaps[-1] = (gaps[-1][0], stop)
        else:
            gaps.append((pos, stop))
        pos = stop
    bad = sum(e - s for s, e in gaps)
    tail = gaps[-1][0] if gaps and gaps[-1][1] == len(data) else len(data)
    torn = len(gaps) == 1 and tail < len(data) and _cut_header(data, tail)
    return kept, bad, len(gaps), torn, tail


def test_the_reference_reads_frame_format_as_documented() -> None:
    f = frame(b"\x01\x02\x03")
    assert f[0] == MAGIC and struct.unpack(">H", f[1:3])[0] == 3 and len(f) == HEAD + 3
    assert reference(f) == ([b"\x01\x02\x03"], 0, 0, False, len(f))
    assert reference(f[:-1]) == ([], len(f) - 1, 1, True, 0)


payloads = st.lists(st.binary(min_size=1, max_size=40), max_size=8)
# Damage of the kinds flash and power cuts leave, anywhere: a flipped byte,
# an erased (0x00 / 0xFF) run, junk that may hold the magic byte, a cut.
damage = st.lists(
    st.tuples(
        st.sampled_from(["flip", "zero", "ff", "junk", "cut"]),
        st.floats(0, 1, exclude_max=True),
        st.integers(1, 24),
        st.binary(min_size=1, max_size=8),
    ),
    max_size=4,
)


def _damaged(log: bytes, hits: list[tuple[str, float, int, bytes]]) -> bytes:
    b = bytearray(log)
    for kind, where, n, junk in hits:
        if not b:
            break
        at = int(where * len(b))
        if kind == "flip":
            b[at] ^= 1 + (n % 255)
        elif kind == "cut":
            del b[at:]
        elif kind == "junk":
            b[at:at] = junk.replace(b"\x00", bytes([MAGIC]))
        else:
            b[at : at + n] = bytes([0 if kind == "zero" else 0xFF]) * len(b[at : at + n])
    return bytes(b)


@settings(max_examples=1000)
@given(payloads, damage)
def test_the_reader_agrees_with_the_reference_on_damaged_logs(ps: list[bytes], hits: list) -> None:
    data = _damaged(b"".join(frame(p) for p in ps), hits)
    got = _frames(data)
    assert got == reference(data)
    kept, bad = got[0], got[1]
    assert bad + sum(HEAD + len(p) for p in kept) == len(data)  # every byte is kept or counted


@settings(max_examples=300)
@given(st.binary(max_size=200))
def test_the_reader_agrees_with_the_reference_on_any_bytes(data: bytes) -> None:
    assert _frames(data) == reference(data)


def test_damage_that_fills_the_whole_log_is_all_counted() -> None:
    # An erased or zero-filled segment: every byte damaged, from byte 0.
    for data in (b"\x00" * 50, b"\xff" * 50, bytes([MAGIC]) + b"\x00" * 20, frame(b"x" * 9)[:-1]):
        assert _frames(data) == reference(data)
        assert _frames(data)[1:3] == (len(data), 1)


def test_three_runs_between_good_frames_are_each_counted() -> None:
    fs = [frame(bytes([i]) * (5 + i)) for i in range(6)]
    b = bytearray(b"".join(fs))
    starts = [sum(len(f) for f in fs[:i]) for i in range(6)]
    for i in (0, 2, 4):
        b[starts[i] + HEAD] ^= 0xFF  # frames 0, 2, 4 fail their CRC
    data = bytes(b)
    assert _frames(data) == reference(data)
    assert _frames(data)[1:3] == (len(fs[0]) + len(fs[2]) + len(fs[4]), 3)
