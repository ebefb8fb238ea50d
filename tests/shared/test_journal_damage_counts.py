# What the journal's frame reader reports of damage, exactly (firmware/
# journal.py _frames: kept payloads, damaged bytes, damaged runs, torn,
# tail), on both interpreters. These counts become the "journal-damage"
# record's reference, which tells the cloud a skipped range from a loss;
# the every-offset sweeps check that nothing acknowledged is lost, these
# check the accounting. From the mutation run (docs/testing.md).
from firmware.frame import HEAD_LEN, frame
from firmware.journal import _frames

P1, P2, P3 = b"\x11" * 20, b"\x22" * 30, b"\x33" * 25
F1, F2, F3 = frame(P1), frame(P2), frame(P3)
CLEAN = F1 + F2 + F3


def _flip(data, at):
    b = bytearray(data)
    b[at] ^= 0xFF  # every bit of one byte
    return bytes(b)


def test_a_clean_log_has_every_payload_and_no_damage():
    assert _frames(CLEAN) == ([P1, P2, P3], 0, 0, False, len(CLEAN))
    assert _frames(b"") == ([], 0, 0, False, 0)


def test_damage_inside_is_one_run_of_the_bad_frames_bytes_and_not_a_tear():
    for frame_at, name in ((0, "first"), (len(F1), "middle")):
        hit = F1 if name == "first" else F2
        for off in (0, 1, 3, HEAD_LEN, len(hit) - 1):  # magic, length, crc, payload, last byte
            data = _flip(CLEAN, frame_at + off)
            kept = [P2, P3] if name == "first" else [P1, P3]
            assert _frames(data) == (kept, len(hit), 1, False, len(CLEAN)), (name, off)


def test_two_damaged_frames_are_two_runs():
    data = _flip(_flip(CLEAN, HEAD_LEN + 2), len(F1) + len(F2) + HEAD_LEN + 1)
    assert _frames(data) == ([P2], len(F1) + len(F3), 2, False, len(F1) + len(F2))


def test_a_frame_cut_off_at_the_end_is_a_tear_at_its_start():
    start = len(F1) + len(F2)
    for keep in (1, 2, HEAD_LEN - 1, HEAD_LEN, HEAD_LEN + 1, len(F3) - 1):
        data = CLEAN[: start + keep]
        assert _frames(data) == ([P1, P2], keep, 1, True, start), keep


def test_a_tear_after_other_damage_is_not_reported_as_a_tear():
    start = len(F1) + len(F2)
    data = _flip(CLEAN, HEAD_LEN)[: start + 10]
    assert _frames(data) == ([P2], len(F1) + 10, 2, False, start)


def test_junk_before_the_first_frame_is_one_run():
    for junk in (b"\x00", b"\x00\x01\x02", bytes((0xA5,)) + b"\x01"):  # the last looks like a frame start
        data = junk + CLEAN
        assert _frames(data) == ([P1, P2, P3], len(junk), 1, False, len(data)), junk
