"""The gateway's log frames and sequence sets: properties over any input.
400 examples each (not the ci profile's 1,000): the damage at every byte
offset in test_outbox.py is exhaustive where these sample."""

from __future__ import annotations

from hypothesis import assume, given, settings
from hypothesis import strategies as st

from gateway import logframe
from gateway.seqset import SeqSet

payloads = st.lists(st.binary(min_size=1, max_size=80), max_size=12)


@settings(max_examples=400)  # the byte-offset sweeps in test_outbox.py are exhaustive
@given(payloads)
def test_frames_round_trip(ps: list[bytes]) -> None:
    buf = b"".join(logframe.frame(p) for p in ps)
    got = logframe.parse(buf)
    assert [p for _o, p in got.frames] == ps
    assert got.skipped == 0 and got.resume == len(buf)


@settings(max_examples=400)  # the byte-offset sweeps in test_outbox.py are exhaustive
@given(st.integers(0, 4096), st.sampled_from([0x00, 0xFF]))
def test_erased_runs_never_parse_as_frames(n: int, byte: int) -> None:
    got = logframe.parse(bytes([byte]) * n)
    assert got.frames == [] and got.skipped == n


@settings(max_examples=400)  # the byte-offset sweeps in test_outbox.py are exhaustive
@given(payloads, st.data())
def test_any_damage_keeps_every_frame_it_does_not_touch(ps: list[bytes], data: st.DataObject) -> None:
    frames = [logframe.frame(p) for p in ps]
    buf = bytearray(b"".join(frames))
    assume(buf)  # counted as dropped by hypothesis, not as a pass
    lo = data.draw(st.integers(0, len(buf) - 1))
    hi = data.draw(st.integers(lo + 1, min(len(buf), lo + 40)))
    kind = data.draw(st.sampled_from(["zero", "ff", "flip", "random", "cut"]))
    if kind == "cut":
        damaged = bytes(buf[:lo])
    else:
        for i in range(lo, hi):
            rnd = data.draw(st.integers(0, 255))
            buf[i] = {"zero": 0, "ff": 0xFF, "flip": buf[i] ^ 0x10, "random": rnd}[kind]
        damaged = bytes(buf)
    got = logframe.parse(damaged)
    found = [p for _o, p in got.frames]
    # Nothing invented: every frame found is one that was written, in order.
    it = iter(ps)
    assert all(any(f == p for p in it) for f in found)
    # Every frame wholly outside the damaged bytes is found.
    pos = 0
    end_of_damage = len(buf) if kind == "cut" else hi
    for f, p in zip(frames, ps, strict=True):
        if pos + len(f) <= lo or pos >= end_of_damage:
            if not (kind == "cut" and pos >= lo):
                assert p in found, (kind, lo, hi, pos)
        pos += len(f)


@settings(max_examples=400)  # the byte-offset sweeps in test_outbox.py are exhaustive
@given(payloads, st.integers(1, 64))
def test_chunked_parse_finds_what_a_whole_parse_finds(ps: list[bytes], chunk: int) -> None:
    buf = b"".join(logframe.frame(p) for p in ps)
    out: list[bytes] = []
    off = 0
    want = chunk
    while off < len(buf):
        part = buf[off : off + want]
        final = off + len(part) >= len(buf)
        got = logframe.parse(part, 0, final)
        if not got.frames and got.resume == 0:
            want = logframe.HEAD + int.from_bytes(part[2:6], "big") if len(part) >= 6 else want + chunk
            continue
        want = chunk
        out += [p for _o, p in got.frames]
        off += got.resume
    assert out == ps


@settings(max_examples=400)  # the byte-offset sweeps in test_outbox.py are exhaustive
@given(st.lists(st.integers(1, 300), max_size=200))
def test_seqset_is_a_set(seqs: list[int]) -> None:
    s = SeqSet()
    ref: set[int] = set()
    for q in seqs:
        assert s.add(q) == (q not in ref)
        ref.add(q)
    assert all((q in s) == (q in ref) for q in range(0, 302))
    assert len(s) == len(ref) and s.high == max(ref, default=0)
    assert SeqSet(s.flat()) == s
    assert s.missing_below_high() == (max(ref) - len(ref) if ref else 0)
    flat = s.flat()
    assert all(flat[i] <= flat[i + 1] for i in range(len(flat) - 1))
    assert all(flat[i] + 1 < flat[i + 1] for i in range(1, len(flat) - 1, 2))  # disjoint, not adjacent
