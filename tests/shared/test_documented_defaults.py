# The defaults docs/passcodes.md states, and each constructor's bounds at
# their edges, on both interpreters: the brute-force figure in the docs
# holds only with these values (5 strikes, 60 s doubling to 900 s, decay
# 1,800 s; clock tolerance 300 s; 256 used codes remembered). From the
# mutation run (docs/testing.md): no test read a default.
from protocol import passcode as pc
from protocol.blacklist import Blacklist
from protocol.lockout import Throttle
from protocol.verifier import CodeVerifier
from tests.shared.util import raises


def test_the_throttle_defaults_are_the_documented_ones():
    t = Throttle()
    assert (t.threshold, t.base, t.cap, t.decay) == (5, 60, 900, 1800)
    assert t.state(100) == [0, 0, 100]  # a fresh throttle: no strikes, nothing locked


def test_throttle_parameters_at_their_edges_and_one_past():
    Throttle(threshold=1, base=1, cap=1, decay=1)  # the least of each, cap equal to base
    for kw in ({"threshold": 0}, {"base": 0}, {"base": 61, "cap": 60}, {"decay": 0}, {"cap": 59}):
        e = raises("invalid-field", Throttle, **kw)
        assert e.message == "throttle parameters out of range", kw


def test_the_verifier_defaults_are_the_documented_ones():
    v = CodeVerifier("lock-1", bytes(32))
    assert (v.tolerance, v.max_used, v.groups, v.keypad_group) == (300, 256, {}, None)
    assert (v.throttle.threshold, v.throttle.cap) == (5, 900)
    assert Blacklist().max_entries == 1024


def test_verifier_parameters_at_their_edges_and_one_past():
    CodeVerifier("lock-1", bytes(32), tolerance=0)
    CodeVerifier("lock-1", bytes(32), tolerance=pc.MAX_TOLERANCE)
    for tol in (-1, pc.MAX_TOLERANCE + 1):
        e = raises("invalid-field", CodeVerifier, "lock-1", bytes(32), tolerance=tol)
        assert e.message == "clock tolerance must be 0..3600 s", tol
    e = raises("invalid-field", CodeVerifier, "lock-1", bytes(32), groups={"a": bytes(32)}, keypad_group="b")
    assert e.message == "keypad group has no key"
    assert CodeVerifier("g", bytes(32), groups={"a": bytes(32)}, keypad_group="a").keypad_group == "a"


def test_the_journal_takes_the_documented_flash_by_default():
    # firmware/journal.py: 32 segments of 4 KiB (the lock takes the defaults).
    from firmware.fsio import FlashFS
    from firmware.journal import Journal
    from tests.shared.util import fresh_dir

    j = Journal(FlashFS(fresh_dir("jdefaults")), "lock-1")
    assert (j.segment_bytes, j.max_segments) == (4096, 32)
