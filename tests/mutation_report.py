"""`make mutation`'s report (docs/testing.md): the mutation score per file of
the security core, from mutmut's results in mutants/, and every mutant that
survived, with the line it changed and, where the change cannot matter to a
user, why (a class named in docs/testing.md). Writes docs/mutation-survivors.md
and exits 1 if a file is below the goal.

Reads mutmut 3.8's result files; the version is pinned in pyproject.toml.
"""

from __future__ import annotations

import json
import re
import sys
import tomllib
from collections import Counter
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
GOAL = 0.90
KILLED = {"killed", "timeout", "caught by type check", "segfault"}

# The classes of surviving mutant that cannot change a decision, each with
# its reason (docs/testing.md). Anything else is "open".
LOG = re.compile(r"\blog\.(debug|info|warning|error|exception)\(")
_CALL = re.compile(
    r"(ProtocolError|FPError|ValueError|OfficeError|ConfigError|StoreError|BundleError|_bad)\(\s*([A-Z_][A-Z_]*|\"[a-z-]+\")?"
)


# envelope._check_uint(value, hi, what, lo): `what` only names the field in the refusal's message.
_UINT = re.compile(r'_check_uint\(([^,]+), ([^,]+), ("[^"]*"|None)(, \d+)?\)')
# The importer's report of a refused file: Report(file, reason, message=...).
_REPORT = re.compile(r"Report\(([\w.]+), (\"[a-z-]+\"|e\.reason)")
_REASON_ARG = re.compile(r"^\s*([A-Z][A-Z_]+|\"[a-z-]+\"),")
# Run once at import (module-level tables), before mutmut selects a mutant:
# such mutants never run under test. What they build is checked directly
# (tests/test_passcode_independent.py for the pass-code table).
IMPORT_TIME = {("protocol/passcode.py", "x__build_profiles")}
# Mutants checked by hand and equivalent (same behaviour for every input),
# keyed by (file, function, the mutated line); each with its reason.
# Reasons shared by several outbox mutants (below).
_FRAME_ENDS = (
    "every file read ends at a frame boundary (recovery rewrites a damaged one, a failed append "
    "is cut back) and read holds the lock: no chunk ends in a cut frame at a file's end, where "
    "this matters"
)
_CHECKPOINT_FIRST = (
    "a segment begins with its checkpoint frames, which read passes over: one byte in, the "
    "parser resynchronises on the next frame"
)
_ACTIVE_SIZE = (
    "the active file's size is the count kept: appends are written whole under the lock, a "
    "failed one cut back"
)
EQUIVALENT = {
    ("protocol/record.py", "x_batch_from_encoded", "size = len(p)"): (
        "the buffer is presized for speed; a short one is grown by the slice assignments, same bytes"
    ),
    ("protocol/passcode.py", "x_b32decode", "v = _B32.rfind(ch)"): (
        "the alphabet has 32 distinct characters: find and rfind agree"
    ),
    ("firmware/core.py", "xǁLockCoreǁfinger", "hit = fp.search(1, 0, )"): (
        "the module's search covers 200 pages by default, the lock's capacity"
    ),
    ("firmware/core.py", "xǁLockCoreǁload_entry", "fp.delete(p, )"): "delete's count defaults to 1",
    (
        "protocol/envelope.py",
        "x__check_type",
        'if not isinstance(t, str) or not (0 < len(t) <= 16) or not ("XXaXX" <= t[0] <= "z"):',
    ): "the character set check after it admits only a-z, 0-9, '.', '-': with either lower bound a-z first",
    (
        "protocol/envelope.py",
        "x__check_type",
        'if not isinstance(t, str) or not (0 < len(t) <= 16) or not ("A" <= t[0] <= "z"):',
    ): "the character set check after it admits only a-z, 0-9, '.', '-': with either lower bound a-z first",
    ("protocol/envelope.py", "x_parse", "h = cbor.decode(protected, 1, )"): (
        "the header is part of data, already held to max_size; no caller passes more than cbor.MAX_SIZE"
    ),
    ("protocol/envelope.py", "x_verify", "env.body = cbor.decode(env.body_bytes, max_depth, )"): (
        "the body is part of an envelope already held to its limit; cbor.MAX_SIZE equals MAX_ENVELOPE"
    ),
    ("protocol/passcode.py", "x_b32decode", "acc = 1"): (
        "acc is masked to 12 bits and each byte to 8: the stray bit never reaches an output byte, and"
        " the tail check reads only bits below the 5 it would sit above"
    ),
    ("protocol/envelope.py", "xǁReplayWindowǁaccept", "if seq >= self.highest:"): (
        "seq == highest reaches here only with its bit clear (a restored window): shifting by 0 and setting"
        " bit 0 is what the other branch does"
    ),
    ("protocol/envelope.py", "xǁReplayWindowǁaccept", "if shift > self.size:"): (
        "at shift == size every old bit shifts past the mask: both leave the bitmap 1"
    ),
    (
        "protocol/envelope.py",
        "xǁReplayWindowǁ__init__",
        "def __init__(self, size: int = 64, highest: int = 1, bitmap: int = 0) -> None:",
    ): "sequences start at 1 (parse refuses 0): highest 1, its bit clear, accepts what highest 0 does",
    (
        "protocol/envelope.py",
        "xǁReplayWindowǁ__init__",
        "def __init__(self, size: int = 64, highest: int = 0, bitmap: int = 1) -> None:",
    ): "that bit stands for sequence 0, which no envelope carries (parse refuses it); it only ever shifts",
    (
        "protocol/seal.py",
        "x_open_receipt",
        "if not isinstance(data, (bytes, bytearray)) or len(data) >= MAX_RECEIPT:",
    ): ("a genuine receipt is under 200 bytes; at exactly 512 both refuse it as malformed"),
    ("protocol/passcode.py", "x_b32encode", "while bits > 5:"): (
        "a 5-bit remainder left in the loop is the tail the code after it emits, the same character"
    ),
    ("protocol/passcode.py", "x_b32encode", "while bits >= 6:"): (
        "a 5-bit remainder left in the loop is the tail the code after it emits, the same character"
    ),
    ("protocol/passcode.py", "x_b32encode", "acc = 1"): (
        "acc is never masked but each character reads 5 bits below the stray one: it never shows"
    ),
    (
        "protocol/passcode.py",
        "x_parse_long",
        "v = cbor.decode(b32decode(text[len(LONG_PREFIX) :]), 2, 129)",
    ): "the text limit (106 characters) bounds the CBOR to 64 bytes: 128 is never reached",
    ("protocol/passcode.py", "x_parse_long", "v = cbor.decode(b32decode(text[len(LONG_PREFIX) :]), 2, )"): (
        "the text limit (106 characters) bounds the CBOR to 64 bytes, under any size limit"
    ),
    (
        "protocol/verifier.py",
        "xǁCodeVerifierǁlong",
        "uses = 1 if (code.kind == ONCE) and False else code.uses",
    ): ("parse_long refuses a one-time code whose uses is not 1"),
    (
        "protocol/verifier.py",
        "xǁCodeVerifierǁlong",
        "first_day, (end - first_day + DAY - 2) // DAY, fh, ln, now, self.tolerance",
    ): "end and first_day are whole hours: end - first_day is never 1 more than a multiple of a day",
    ("protocol/verifier.py", "xǁCodeVerifierǁlong", 'd = Decision(False, None, "qr", code.code_id, 1)'): (
        "the reason is set on every path below before the decision is returned"
    ),
    ("protocol/record.py", "x_peek_seq", "elif ai >= 24:"): "ai == 24 is taken by the branch above",
    ("protocol/seal.py", "x_check_plain", "for k in range(2, 10):"): (
        "field 1 is the version, checked above: a map without it is refused as 'version'"
    ),
    ("protocol/seal.py", "x_open_entry", "for i in range(2, pad + 1 if ok else 1):"): (
        "plain[-1] is pad by definition: the loop's first comparison is always true"
    ),
    ("protocol/seal.py", "x_open_entry", "for i in range(1, pad + 1 if ok else 2):"): (
        "when ok is false the loop's `ok and ...` keeps it false"
    ),
    (
        "protocol/seal.py",
        "x_open_entry",
        "if n < 1 + 8 + 16 + 16 + 32 or (n - 1 - 8 - 16 + 32) % 16:",
    ): "n - 57 and n + 7 differ by 64: the same remainder mod 16",
    (
        "protocol/seal.py",
        "x_open_entry",
        "if n < 1 + 8 + 16 + 16 + 32 or (n - 1 - 8 + 16 - 32) % 16:",
    ): "n - 57 and n - 25 differ by 32: the same remainder mod 16",
    (
        "protocol/seal.py",
        "x_open_entry",
        "if n < 1 + 8 + 16 + 16 + 32 or (n - 1 + 8 - 16 - 32) % 16:",
    ): "n - 57 and n - 41 differ by 16: the same remainder mod 16",
    ("protocol/seal.py", "x_open_entry", "for i in range(1, pad + 1 if (ok) or True else 1):"): (
        "with ok false, `ok and plain[-i] == pad` never reads plain: the extra turns change nothing"
    ),
    (
        "protocol/passcode.py",
        "x__check_long_fields",
        "if fh is True or fh is False or ln is True or ln is True:",
    ): ("ln False is 0, which the range check after it refuses (1 <= ln)"),
    ("protocol/passcode.py", "x__plan_key", "return (plan[1] * p[2] + p[3] * p[2], plan[1] / p[2])"): (
        "the tiebreak: an hour plan starts no earlier than the day plan, and start/unit keeps it above"
        " as start*unit (with the stable sort) does"
    ),
    ("protocol/passcode.py", "x_plan_keypad", "best_h = None"): "1 hour, the first entry, always fits",
    ("protocol/passcode.py", "x_plan_keypad", "best_h = +1"): "1 hour, the first entry, always fits",
    ("protocol/passcode.py", "x_plan_keypad", "best_h = -2"): "1 hour, the first entry, always fits",
    ("protocol/passcode.py", "x_plan_keypad", "if best_h >= 0 and (hours <= 72 or kind == ONCE):"): (
        "best_h is at least 1 (1 hour always fits)"
    ),
    (
        "protocol/passcode.py",
        "x_plan_keypad",
        "best_d = +1",
    ): "there is no 1-day profile: find_profile gives -1",
    ("protocol/passcode.py", "x_plan_keypad", "best_d = -2"): "any negative start means none fits",
    (
        "protocol/passcode.py",
        "x_plan_keypad",
        "if best_d >= 0:",
    ): "best_d is -1 or a listed duration of 2 or more",
    (
        "protocol/passcode.py",
        "x_plan_keypad",
        "if best_d > 1:",
    ): "best_d is -1 or a listed duration of 2 or more",
    (
        "protocol/passcode.py",
        "x_plan_keypad",
        "if p > 0:",
    ): "profile 0 is an hourly one; a day profile is never 0",
    (
        "protocol/passcode.py",
        "x_plan_keypad",
        "if p >= 1:",
    ): "profile 0 is an hourly one; a day profile is never 0",
    ("protocol/passcode.py", "x_plan_keypad", "days = (end - d0 * DAY) / DAY"): (
        "only compared with whole durations (d <= days): the fraction never decides"
    ),
    ("protocol/passcode.py", "x__plan_key", "return (plan[1] * p[2] + p[3] * p[2], plan[1] * p[3])"): (
        "the tiebreak only orders plans that end together, where the hour plan starts no earlier:"
        " start * duration ranks it first as start * unit does (checked over every window of 1 hour to"
        " a year, at each half hour of the day)"
    ),
    ("protocol/lockout.py", "xǁThrottleǁ_decay", "self.decay_mark = None"): (
        "with no strikes, failure() sets the decay mark to now right after: the value set here is never read"
    ),
    (
        "protocol/lockout.py",
        "xǁThrottleǁ_decay",
        "if steps >= 0:",
    ): "zero steps subtract nothing and move the mark by nothing",
    ("protocol/verifier.py", "xǁCodeVerifierǁ_admit", "wall = now or 1"): (
        "with the clock unset, the blacklist is asked at 1 s after the epoch instead of 0: only an entry"
        " expiring at 1970-01-01T00:00:01 could tell, and no issuer writes one"
    ),
    (
        "protocol/verifier.py",
        "xǁCodeVerifierǁ_state_of",
        "start, end = passcode.window_of(p, start_unit, None)",
    ): ("daily codes return above; window_of reads the variant for daily codes only"),
    ("protocol/verifier.py", "x__bisect_profile", "mid = (lo + hi + 2) // 2"): (
        "any midpoint in (lo, hi] keeps the search correct: (lo + hi + 2) // 2 is one when lo < hi"
    ),
    (
        "protocol/verifier.py",
        "xǁCodeVerifierǁkeypad",
        'return self._wrong(Decision(False, "wrong-code", "code", hmacs=2), mono, None)',
    ): "the decision already says 2 HMACs; _wrong keeps it (d.hmacs or hmacs)",
    (
        "protocol/verifier.py",
        "xǁCodeVerifierǁkeypad",
        'return self._wrong(Decision(False, "wrong-code", "code", hmacs=2), mono, 1)',
    ): "the decision already says 2 HMACs; _wrong keeps it (d.hmacs or hmacs)",
    ("protocol/verifier.py", "xǁCodeVerifierǁkeypad", "d.reason = None"): (
        "a guard for a case the candidates exclude (the other slot is never the live one)"
    ),
    ("protocol/verifier.py", "xǁCodeVerifierǁkeypad", 'd.reason = "XXexpiredXX"'): (
        "a guard for a case the candidates exclude (the other slot is never the live one)"
    ),
    ("protocol/verifier.py", "xǁCodeVerifierǁkeypad", 'd.reason = "EXPIRED"'): (
        "a guard for a case the candidates exclude (the other slot is never the live one)"
    ),
    ("protocol/passcode.py", "x__mac_digits", "return int.from_bytes(h[:8], ) % MAC_MOD"): (
        "CPython 3.11's int.from_bytes defaults to big-endian; MicroPython needs the argument"
    ),
    ("gateway/relay.py", "xǁCommandRelayǁ_finish", "st.done.popitem(last=None)"): (
        "None is false: popitem pops the oldest, as with last=False"
    ),
    ("gateway/relay.py", "x__command_fields", "body = cbor.decode(env.body_bytes, 4, )"): (
        "the body is part of an envelope parse already held to its size limit: no smaller limit applies"
    ),
    ("gateway/relay.py", "x_ack_fields", "body = cbor.decode(env.body_bytes, 4, )"): (
        "the body is part of an envelope parse already held to its size limit: no smaller limit applies"
    ),
    ("gateway/outbox.py", "xǁGroupCommitterǁsubmit", "raise OutboxError(None)"): (
        "raised to a writer racing the shutdown; no decision reads its text"
    ),
    ("gateway/outbox.py", "xǁGroupCommitterǁsubmit", 'raise OutboxError("XXoutbox is closingXX")'): (
        "raised to a writer racing the shutdown; no decision reads its text"
    ),
    ("gateway/outbox.py", "xǁGroupCommitterǁsubmit", 'raise OutboxError("OUTBOX IS CLOSING")'): (
        "raised to a writer racing the shutdown; no decision reads its text"
    ),
    (
        "firmware/journal.py",
        "xǁJournalǁpending_encoded",
        "while pos + _HEAD_LEN < n and len(seqs) < limit:",
    ): ("recovery checked every frame: no segment ends in a bare frame head (pos + head == n)"),
    ("firmware/journal.py", "xǁJournalǁpending_encoded", "if len(seqs) > limit:"): (
        "at len == limit the next segment's loop adds nothing (len(seqs) < limit fails first)"
    ),
    (
        "firmware/journal.py",
        "xǁJournalǁack",
        'self.fs.append(self._ack(seg), b"".join(_frame(struct.pack(">i", s)) for s in ss))',
    ): "signed and unsigned 4-byte packing agree below 2^31, which no journal's sequence reaches",
    ("firmware/journal.py", "x__frames", "bad_start = -2"): (
        "bad_start is only compared with 0 (< 0: no damaged run open): -1 and -2 read alike"
    ),
    ("firmware/journal.py", "x__frames", "ok = None"): "only tested for truth: None and False read alike",
    ("firmware/journal.py", "x__frames", "end = None"): (
        "end is read only when a frame checked, and every path to that sets it"
    ),
    ("firmware/journal.py", "x__frames", "pos = n if nxt <= 0 else nxt"): (
        "the search starts at pos + 1 >= 1: it finds -1 or a position >= 1, never 0"
    ),
    ("firmware/journal.py", "x__frames", "pos = n if nxt < 1 else nxt"): (
        "the search starts at pos + 1 >= 1: it finds -1 or a position >= 1, never 0"
    ),
    ("firmware/journal.py", "x__header_floor", "return 1"): (
        "a header-like frame that does not decode: a floor of 1 bounds nothing, numbers start at 1"
    ),
    (
        "firmware/journal.py",
        "x__header_floor",
        "return h[1] if isinstance(h, list) and len(h) == 2 and isinstance(h[1], int) else 1",
    ): "a header-like frame that is not a header: a floor of 1 bounds nothing, numbers start at 1",
    ("firmware/journal.py", "xǁJournalǁ_drop", "self.seg_count.pop(seg, )"): (
        "only segments in the bookkeeping are dropped: the default is never used"
    ),
    ("firmware/journal.py", "xǁJournalǁ_drop", "self.seg_size.pop(seg, )"): (
        "only segments in the bookkeeping are dropped: the default is never used"
    ),
    ("firmware/journal.py", "xǁJournalǁ_recover", "if a + 2 > top:"): (
        "at a + 1 == top the assignment sets top to what it is"
    ),
    ("firmware/journal.py", "xǁJournalǁ_recover", "if a + 1 >= top:"): (
        "at a + 1 == top the assignment sets top to what it is"
    ),
    ("firmware/journal.py", "xǁJournalǁ_recover", "if h >= top:"): (
        "at h == top the assignment sets top to what it is"
    ),
    ("firmware/journal.py", "xǁJournalǁ_recover", "if seq + 2 > top:"): (
        "at seq + 1 == top the assignment sets top to what it is"
    ),
    ("firmware/journal.py", "xǁJournalǁ_recover", "if seq + 1 >= top:"): (
        "at seq + 1 == top the assignment sets top to what it is"
    ),
    ("firmware/journal.py", "xǁJournalǁappend", "if self.damage or not self.full(200):"): (
        "flush_damage returns at once when there is no damage to report"
    ),
    (
        "firmware/journal.py",
        "xǁJournalǁ_recover",
        "acked[a] = None",
    ): "only membership is read, never the value",
    (
        "firmware/journal.py",
        "xǁJournalǁ_recover",
        "acked[a] = False",
    ): "only membership is read, never the value",
    ("firmware/journal.py", "xǁJournalǁpending", "break"): (
        "the only segment kept with nothing unacked is the active one, the last in order"
    ),
    ("gateway/outbox.py", "xǁGroupCommitterǁ__init__", "self._stop = None"): "only ever read for its truth",
    (
        "gateway/outbox.py",
        "xǁOutboxǁ_close_fds",
        "if self._fd > 0:",
    ): "descriptor 0 is standard input, never the outbox's",
    (
        "gateway/outbox.py",
        "xǁOutboxǁ_close_fds",
        "if self._fd >= 1:",
    ): "descriptor 0 is standard input, never the outbox's",
    ("gateway/outbox.py", "xǁOutboxǁ_close_fds", "self._fd = -2"): "any negative value means closed",
    (
        "gateway/outbox.py",
        "xǁOutboxǁ_drop_segment",
        "self.seg_unacked.pop(seg, )",
    ): "only live segments are dropped: the default is never used",
    (
        "gateway/outbox.py",
        "xǁOutboxǁ_drop_segment",
        "self._order.pop(seg, )",
    ): "only live segments are dropped: the default is never used",
    (
        "gateway/outbox.py",
        "xǁOutboxǁ_drop_segment",
        "self._log(seg).unlink(missing_ok=None)",
    ): "a live segment's log exists (the outbox holds its folder's lock)",
    (
        "gateway/outbox.py",
        "xǁOutboxǁ_drop_segment",
        "self._log(seg).unlink(missing_ok=False)",
    ): "a live segment's log exists (the outbox holds its folder's lock)",
    (
        "gateway/outbox.py",
        "xǁOutboxǁ_scan",
        'atomic_write(path, b"".join(logframe.frame(pl) for _off, pl in p.frames), )',
    ): "atomic_write is durable by default: only the tests' fsync=False outboxes sync more, same bytes",
    (
        "gateway/outbox.py",
        "xǁOutboxǁpending",
        "return self.read(None, )[0]",
    ): "read's default limit is the same 500 (pinned by a test)",
    (
        "gateway/outbox.py",
        "xǁOutboxǁread",
        "pos = cursor if cursor is not None else (segs[0], 1)",
    ): _CHECKPOINT_FIRST,
    (
        "gateway/outbox.py",
        "xǁOutboxǁread",
        "off = pos[1] if seg == pos[0] else 1",
    ): _CHECKPOINT_FIRST,
    (
        "gateway/outbox.py",
        "xǁOutboxǁread",
        "size = self._size if (seg == self._active) and False else self._log(seg).stat().st_size",
    ): _ACTIVE_SIZE,
    (
        "gateway/outbox.py",
        "xǁOutboxǁread",
        "continue",
    ): "the only fully acknowledged segment still listed is the active one, the last in order",
    (
        "gateway/outbox.py",
        "xǁOutboxǁread",
        "break",
    ): "the only fully acknowledged segment still listed is the active one, the last in order",
    (
        "gateway/outbox.py",
        "xǁOutboxǁread",
        "chunk = f.read(None)",
    ): "the file holds exactly `size` bytes: the bound limits memory, not what is read",
    (
        "gateway/outbox.py",
        "xǁOutboxǁread",
        "chunk = f.read(min(want, size + off))",
    ): "the file holds exactly `size` bytes: the bound limits memory, not what is read",
    (
        "gateway/outbox.py",
        "xǁOutboxǁread",
        "final = None",
    ): _FRAME_ENDS,
    (
        "gateway/outbox.py",
        "xǁOutboxǁread",
        "final = off - len(chunk) >= size",
    ): _FRAME_ENDS,
    (
        "gateway/outbox.py",
        "xǁOutboxǁread",
        "final = off + len(chunk) > size",
    ): _FRAME_ENDS,
    (
        "gateway/outbox.py",
        "xǁOutboxǁread",
        "p = logframe.parse(chunk, 0, None, limit=limit - len(out))",
    ): _FRAME_ENDS,
    (
        "gateway/outbox.py",
        "xǁOutboxǁread",
        "p = logframe.parse(chunk, 0, limit=limit - len(out))",
    ): _FRAME_ENDS,
    (
        "gateway/outbox.py",
        "xǁOutboxǁread",
        "if not p.frames or p.resume == 0:",
    ): _FRAME_ENDS,
    (
        "gateway/outbox.py",
        "xǁOutboxǁread",
        "want = logframe.HEAD + int.from_bytes(chunk[2:6], )",
    ): "big-endian is int.from_bytes' default byte order",
    (
        "gateway/outbox.py",
        "xǁOutboxǁread",
        "while len(out) < limit and off <= size:",
    ): "at off == size the read asks for 0 bytes, gets b'' and stops on the empty chunk: one more call",
    (
        "gateway/outbox.py",
        "xǁOutboxǁread",
        'want = logframe.HEAD + int.from_bytes(chunk[3:6], "big")',
    ): "a frame is at most 1 MiB (logframe.MAX_FRAME): the top byte of its length is always 0",
    (
        "firmware/journal.py",
        "x__is_header",
        "return len(p) >= 0 and p[0] == 0x82",
    ): "a frame's payload has at least one byte (a length of 0 is refused)",
    (
        "firmware/journal.py",
        "x__is_header",
        "return len(p) > 1 and p[0] == 0x82",
    ): "a one-byte 0x82 frame is passed over either way: no record decodes from it",
    (
        "firmware/journal.py",
        "xǁJournalǁ_recover",
        "skip = self.max_segments * self.segment_bytes // _MIN_RECORD_FRAME",
    ): "with no segment on flash no tail damage was counted: skip is 0 before this line",
    (
        "firmware/journal.py",
        "xǁJournalǁ_recover",
        "self.torn = bad",
    ): "only the newest segment can end in a cut append, and the boot repairs it: one torn segment per boot",
    (
        "firmware/journal.py",
        "xǁJournalǁpending_encoded",
        "break",
    ): "the only segment kept with nothing unacked is the active one, the last in order",
    (
        "gateway/outbox.py",
        "x__is_record",
        "and x[2] >= 1",
    ): "append refuses sequences below 1 and stores wall-clock times: both are >= 1 in every record written",
    ("gateway/outbox.py", "xǁOutboxǁ__init__", "self._fd = -2"): "any negative value means closed",
    (
        "gateway/outbox.py",
        "xǁOutboxǁ__init__",
        "self._tail_left = None  # a failed batch's bytes are still in the active file",
    ): "only ever read for its truth",
    ("gateway/outbox.py", "xǁOutboxǁappend", "self._tail_left = None"): "only ever read for its truth",
    (
        "gateway/outbox.py",
        "xǁOutboxǁappend",
        "self._size = None",
    ): "the roll on the next line sets the size of the new segment",
    (
        "gateway/outbox.py",
        "xǁOutboxǁ_next_segment_id",
        "return (segs[-1] + 2) if segs else 1",
    ): "segment ids need only grow (each start takes the largest plus one): a skipped id changes nothing",
    (
        "gateway/outbox.py",
        "xǁOutboxǁ_roll",
        "self._start_segment(self._active + 2)  # ids only grow: segment order is append order",
    ): "segment ids need only grow (each start takes the largest plus one): a skipped id changes nothing",
    (
        "gateway/outbox.py",
        "xǁOutboxǁ_segments",
        "digits = p.name[5:14]",
    ): "below 10^9 segments (4 PB of records) the first digit is 0",
    (
        "gateway/outbox.py",
        "xǁOutboxǁ_start_segment",
        "if self._fd > 0:",
    ): "descriptor 0 is standard input, never the outbox's",
    (
        "gateway/outbox.py",
        "xǁOutboxǁ_start_segment",
        "if self._fd >= 1:",
    ): "descriptor 0 is standard input, never the outbox's",
    (
        "gateway/outbox.py",
        "xǁOutboxǁ_checkpoint",
        "size = 1",
    ): "moves where a large checkpoint splits by a byte: every frame stays far below the frame limit",
    (
        "gateway/outbox.py",
        "xǁOutboxǁ_checkpoint",
        "part, size = {}, 1",
    ): "moves where a large checkpoint splits by a byte: every frame stays far below the frame limit",
    (
        "gateway/outbox.py",
        "xǁOutboxǁ_checkpoint",
        "if size > _CHECKPOINT_BYTES:",
    ): "moves where a large checkpoint splits by a byte: every frame stays far below the frame limit",
    (
        "gateway/outbox.py",
        "xǁOutboxǁ_checkpoint",
        "size += len(dev) + 10 * len(chunk)",
    ): "overestimates a checkpoint's size by a ninth: it splits earlier, every frame still read back",
    (
        "gateway/outbox.py",
        "xǁOutboxǁread",
        'want = logframe.HEAD + int.from_bytes(chunk[2:7], "big")',
    ): "asks for more than the frame: the read is bounded by the file's end and the parser takes the frame",
    ("gateway/outbox.py", "xǁOutboxǁoldest_unacked_age", "break"): (
        "a segment with nothing unacked is deleted on its last ack and on recovery, unless it is the active"
        " one, the last in order: stopping there or going on finds nothing more"
    ),
    ("gateway/usb_import.py", "x_find_sticks", "dev.ctrl_transfer(0x80, 6, 0x0300, 0, None)"): (
        "the language-id request is there to fail on a device the daemon may not open; its answer is not read"
    ),
    ("gateway/usb_import.py", "x_find_sticks", "dev.ctrl_transfer(0x80, 6, 0x0300, 0, )"): (
        "the language-id request is there to fail on a device the daemon may not open; its answer is not read"
    ),
    ("gateway/usb_import.py", "x_find_sticks", "dev.ctrl_transfer(0x80, 6, 0x0300, 0, 256)"): (
        "the language-id request is there to fail on a device the daemon may not open; its answer is not read"
    ),
    ("gateway/usb_import.py", "x_find_sticks", "serial = None"): 'the Stick is built with `serial or ""`',
    (
        "gateway/usb_import.py",
        "xǁImporterǁ_read_at",
        'if len(name) > MAX_NAME or not name.isprintable() or "XX/XX" in name:',
    ): "names come from listdir (or a Path's last part): they never hold a '/'",
    ("gateway/usb_import.py", "xǁImporterǁ_read_at", "chunk = os.read(fd, min(left, 2 << 20))"): (
        "the chunk size bounds one read, not the total: the data read is the same"
    ),
    ("gateway/usb_import.py", "xǁImporterǁ_read_at", "chunk = os.read(fd, min(left, 1 << 21))"): (
        "the chunk size bounds one read, not the total: the data read is the same"
    ),
    ("gateway/usb_import.py", "xǁImporterǁ_read_at", "while left >= 0:"): (
        "at left == 0 the read asks for 0 bytes, gets b'' and stops: the same data"
    ),
    ("gateway/bundle.py", "x_open_bundle", "if hdr.seq <= last_seq.get(hdr.issuer, -2):"): (
        "the header's sequence is checked to be 0 or more: -1 and -2 both let a first bundle in"
    ),
    ("firmware/core.py", "xǁLockCoreǁ__init__", "self._codes_sig: tuple = None"): (
        "_load sets it before any save reads it"
    ),
    ("firmware/core.py", "xǁLockCoreǁ__init__", "self._codes_sig: tuple = (1, 0, 0)"): (
        "_load sets it before any save reads it"
    ),
    ("firmware/core.py", "xǁLockCoreǁ__init__", "self._codes_sig: tuple = (0, 1, 0)"): (
        "_load sets it before any save reads it"
    ),
    ("firmware/core.py", "xǁLockCoreǁ__init__", "self._codes_sig: tuple = (0, 0, 1)"): (
        "_load sets it before any save reads it"
    ),
    ("firmware/core.py", "xǁLockCoreǁ__init__", "self.held_alarmed = None"): ("only ever read for its truth"),
    ("firmware/core.py", "xǁLockCoreǁ_load", "first_boot = None"): ("only ever read for its truth"),
    (
        "firmware/core.py",
        "xǁLockCoreǁ_load",
        "self._codes_sig = None  # write both files again: the next boot finds them whole",
    ): ("any value no signature takes forces the rewrite"),
    (
        "firmware/core.py",
        "xǁLockCoreǁ_load",
        "self._codes_sig = (+1,)  # write both files again: the next boot finds them whole",
    ): ("any value no signature takes forces the rewrite"),
    (
        "firmware/core.py",
        "xǁLockCoreǁ_load",
        "self._codes_sig = (-2,)  # write both files again: the next boot finds them whole",
    ): ("any value no signature takes forces the rewrite"),
    (
        "firmware/core.py",
        "xǁLockCoreǁ__init__",
        "self.rx = envelope.Receiver(self._key_for, max_senders=2)",
    ): ("the receiver's window defaults to 64, the value given"),
    ("firmware/core.py", "xǁLockCoreǁ__init__", "self.last_mono = None"): (
        "read only by next_seq's periodic save; the main loop's first step saves or ticks (setting it)"
        " before the link or an event takes a sequence number"
    ),
    ("firmware/core.py", "xǁLockCoreǁ__init__", "self.last_mono = 1"): (
        "read only by next_seq's periodic save; the main loop's first step saves or ticks (setting it)"
        " before the link or an event takes a sequence number"
    ),
    ("firmware/core.py", "xǁLockCoreǁ_load", "first_boot = True"): (
        "read only when the core state is missing, and then set from `lost` first"
    ),
    ("firmware/core.py", "xǁLockCoreǁ_load", "if st is None or first_boot:"): (
        "first_boot is true only when the core state is missing (st is None)"
    ),
    (
        "firmware/core.py",
        "xǁLockCoreǁ_load",
        "self._save(1)  # from now on a missing core file means a lost one",
    ): (
        "the boot's saves keep the loaded throttle (or a fresh one, which has no strikes to shift);"
        " nothing else saved depends on the monotonic time"
    ),
    ("firmware/core.py", "xǁLockCoreǁ_load", "self._save(1)"): (
        "the boot's saves keep the loaded throttle (or a fresh one, which has no strikes to shift);"
        " nothing else saved depends on the monotonic time"
    ),
    ("firmware/core.py", "xǁLockCoreǁ_load", "fresh = self.verifier.throttle.state(1)"): (
        "a fresh throttle has no strikes: its time base shifts nothing"
    ),
    ("firmware/core.py", "xǁLockCoreǁ_load", "st = self._core.load(9)"): (
        "the lock's state nests 4 deep: a depth bound of 8 or 9 stops only a runaway decode"
    ),
    ("firmware/core.py", "xǁLockCoreǁ_load", "codes = self._codes.load(9)"): (
        "the lock's state nests 4 deep: a depth bound of 8 or 9 stops only a runaway decode"
    ),
    ("firmware/core.py", "xǁLockCoreǁload_entry", "drop = None"): (
        "every operation the seal admits sets drop in its branch below"
    ),
    (
        "firmware/journal.py",
        "x__frames",
        "elif pos + _HEAD_LEN >= n and mv[pos] == MAGIC and bad_start < 0:",
    ): "at pos + head == n the branch above takes the frame (a whole header): this one is never reached",
    ("protocol/verifier.py", "xǁCodeVerifierǁ_admit", "self.changes += 2"): (
        "the count is only compared for equality with the last saved one: any step up tells a change"
    ),
    ("protocol/verifier.py", "xǁCodeVerifierǁ_prune", "self.changes += 2"): (
        "the count is only compared for equality with the last saved one: any step up tells a change"
    ),
    ("protocol/verifier.py", "xǁCodeVerifierǁ__init__", "self.changes = 1"): (
        "only compared with the count at the last save, which the lock takes after loading: the start is free"
    ),
    ("firmware/core.py", "xǁLockCoreǁ_load", "lost = 1"): "lost is 0 here: += 1 and = 1 give the same",
    (
        "gateway/bundle.py",
        "xǁRecipientKeyǁ__init__",
        "if not isinstance(v, list) or not v and v[0] not in _KEMS:",
    ): "any error inside (an index, a key) is turned into the same refusal by the except around it",
    (
        "gateway/bundle.py",
        "xǁRecipientKeyǁ__init__",
        "if not isinstance(v, list) and not v or v[0] not in _KEMS:",
    ): "any error inside (an index, a key) is turned into the same refusal by the except around it",
    ("gateway/bundle.py", "x_read_header", "h = cbor.decode(prot, 4, )"): (
        "the decoder's default size limit is 64 KiB, the same bound"
    ),
}


def classify(path: str, func: str, before: str, after: str) -> tuple[str, str]:
    """A class from docs/testing.md, or "open"."""
    if (path, func) in IMPORT_TIME:
        return (
            "import-time",
            "runs once at import, before a mutant is selected; its output is tested directly",
        )
    key = (path, func, after.strip())
    if key in EQUIVALENT:
        return "equivalent", EQUIVALENT[key]
    if func == "xǁCodeVerifierǁ_dummy" and "passcode._mac(" in before and "passcode._mac(" in after:
        # Still a call of the same cost: only what it MACs changed.
        return (
            "equivalent",
            "the dummy MACs are there for their cost; their inputs and results are never read",
        )
    if func.endswith("__repr__"):
        return "repr", "a repr's text (kept free of secrets by its own test); no decision reads it"
    b, a = _CALL.search(before), _CALL.search(after)
    if b and a and b.group(2) and a.group(2) == b.group(2):
        # Same exception, same reason code: only the message for humans moved
        # (a changed string, None, a dropped argument, a broken % format).
        return (
            "message",
            "the human-readable message of a refusal; tests assert the reason code, unchanged here",
        )
    if b and a and b.group(1) == "ValueError" == a.group(1):
        return "message", "a ValueError's text; its callers branch on the type (the office: not a receipt)"
    if b and a and b.group(1) == "_bad" == a.group(1):
        return (
            "message",
            "the message of record.py's one refusal (its reason is fixed); tests assert the reason",
        )
    ub, ua = _UINT.search(before), _UINT.search(after)
    if ub and ua and (ub.group(1), ub.group(2), ub.group(4)) == (ua.group(1), ua.group(2), ua.group(4)):
        return (
            "message",
            "envelope._check_uint's `what` names the field in the message only; the bounds are the same",
        )
    pb, pa = _REPORT.search(before), _REPORT.search(after)
    if pb and pa and "message=" in before and pb.groups() == pa.groups():
        return "message", "a refused file's message in the import report; tests assert its file and reason"
    rb, ra = _REASON_ARG.match(before), _REASON_ARG.match(after)
    if rb and ra and rb.group(1) == ra.group(1):
        return "message", "the message line of a refusal split over lines; the reason code is unchanged"
    if LOG.search(before) and LOG.search(after):
        return "log", "a log line's text or level; no decision reads it"
    return "open", "no test tells it apart yet"


def _changed_lines(diff: str) -> tuple[str, str]:
    minus = [ln[1:] for ln in diff.splitlines() if ln.startswith("-") and not ln.startswith("---")]
    plus = [ln[1:] for ln in diff.splitlines() if ln.startswith("+") and not ln.startswith("+++")]
    return " / ".join(s.strip() for s in minus), " / ".join(s.strip() for s in plus)


def reset_survivors() -> int:
    """Mark every mutant that was not killed as untested, so the next run
    tries it against the tests as they are now (mutmut keeps a verdict until
    the function's own code changes, not when a test is added)."""
    from mutmut.stats import status_by_exit_code  # type: ignore[import-not-found,unused-ignore]

    n = 0
    for meta in (ROOT / "mutants").rglob("*.py.meta"):
        data = json.loads(meta.read_text())
        codes = data["exit_code_by_key"]
        for name, code in codes.items():
            if code is not None and status_by_exit_code[code] not in KILLED:
                codes[name] = None
                n += 1
        meta.write_text(json.dumps(data, indent=4))
    print(f"{n} mutants that were not killed will be tried again")
    return 0


def main() -> int:
    if sys.argv[1:] == ["--reset-survivors"]:
        return reset_survivors()
    # Installed by `make mutation` only (not by `make test`, which type-checks this file).
    from mutmut.mutation.diff_apply import get_diff_for_mutant  # type: ignore[import-not-found,unused-ignore]
    from mutmut.stats import status_by_exit_code  # type: ignore[import-not-found,unused-ignore]

    cfg = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["mutmut"]
    rows, survivors, low = [], [], []
    for f in cfg["only_mutate"]:
        meta = ROOT / "mutants" / (f + ".meta")
        if not meta.exists():
            print(f"{f}: no results (run `make mutation`)")
            continue
        codes = json.loads(meta.read_text())["exit_code_by_key"]
        st = Counter(status_by_exit_code[v] for v in codes.values())
        counted = sum(st.values()) - st["skipped"] - st["not checked"]
        killed = sum(st[s] for s in KILLED)
        harmless = 0
        for name, code in sorted(codes.items()):
            status = status_by_exit_code[code]
            if status in KILLED or status in ("skipped", "not checked"):
                continue
            try:
                before, after = _changed_lines(get_diff_for_mutant(name, path=Path(f)))
            except Exception as e:  # a diff mutmut cannot rebuild is listed, not hidden
                before, after = f"(no diff: {type(e).__name__})", ""
            cls, why = classify(f, name.split("__mutmut_")[0].split(".")[-1], before, after)
            harmless += cls != "open"
            survivors.append(
                (f, name.split("__mutmut_")[0].split(".")[-1], name, status, cls, why, before, after)
            )
        score = killed / counted if counted else 0.0
        with_harmless = (killed + harmless) / counted if counted else 0.0
        rows.append(
            (f, counted, killed, st["survived"], st["no tests"], score, with_harmless, st["not checked"])
        )
        open_here = sum(1 for s in survivors if s[0] == f and s[4] == "open")
        # The goal (docs/testing.md): every survivor explained (none "open"),
        # and, over a whole file, at least 90 % killed. A run of some
        # functions only (make mutation-changed) is held to the first.
        if open_here or (counted and not st["not checked"] and score < GOAL):
            low.append(f)
    head = (
        f"{'file':<26}{'mutants':>8}{'killed':>8}{'survived':>9}{'no test':>8}{'score':>8}{'+harmless':>10}"
    )
    print(head + f"{'unrun':>7}")
    for f, n, k, s, nt, sc, wh, un in rows:
        print(f"{f:<26}{n:>8}{k:>8}{s:>9}{nt:>8}{sc * 100:7.1f}%{wh * 100:9.1f}%{un:>7}")
    total = sum(r[1] for r in rows)
    killed_all = sum(r[2] for r in rows)
    print(f"{'all':<26}{total:>8}{killed_all:>8}{sum(r[3] for r in rows):>9}{sum(r[4] for r in rows):>8}"
          f"{killed_all / max(total, 1) * 100:7.1f}%")  # fmt: skip
    unrun = sum(r[7] for r in rows)
    if unrun:
        print(f"{unrun} mutants not run yet (an interrupted run: `make mutation` resumes it)")
    out = [
        "# Surviving mutants",
        "",
        "Written by `make mutation` (tests/mutation_report.py) from the results in mutants/;",
        "a file with no results there is not listed. See docs/testing.md for the classes and",
        "the runs; `open` means no test tells the mutant apart from the code yet.",
        "",
        "| file | function | mutant | status | class | changed from | to |",
        "|---|---|---|---|---|---|---|",
    ]
    for f, fn, name, status, cls, _why, before, after in survivors:
        was, now = (x.replace("|", "\\|")[:120] for x in (before, after))
        n = name.rsplit("_", 1)[-1]
        out.append(f"| {f} | {fn} | {n} | {status} | {cls} | `{was}` | `{now}` |")
    (ROOT / "docs" / "mutation-survivors.md").write_text("\n".join(out) + "\n")
    print(
        f"{len(survivors)} survivors listed in docs/mutation-survivors.md;"
        f" goal: {GOAL:.0%} killed per file, no survivor unexplained"
    )
    if low:
        print("below the goal: " + ", ".join(low))
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
