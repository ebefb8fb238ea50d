# The keypad throttle's schedule exactly (protocol/lockout.py), on both
# interpreters: the strike count after each wrong code, the decay from the
# first strike, each lockout's length and event, and the cap. From the
# mutation run (docs/testing.md): each line here was a change no test saw.
from protocol.lockout import Throttle


def test_strikes_decay_one_per_period_from_the_first_strike():
    t = Throttle(threshold=5, decay=1800)
    assert t.failure(1000) is None and t.strikes == 1
    assert t.state(1000) == [1, 0, 0]  # the decay clock starts at the first strike
    t.failure(2799)  # 1,799 s later: nothing has decayed
    assert t.strikes == 2
    t.failure(2800)  # one period after the first strike: one strike gone, this one added
    assert t.strikes == 2
    assert t.state(2800) == [2, 0, 0]
    t.failure(2800 + 3 * 1800)  # three periods: both strikes gone
    assert t.strikes == 1
    t2 = Throttle(threshold=5, decay=1800)
    t2.failure(0)
    t2.failure(3 * 1800)  # a lone strike decays too
    assert t2.strikes == 1


def test_each_lockout_doubles_to_the_cap_and_says_so():
    t = Throttle(threshold=5, base=60, cap=900, decay=1800)
    events = [t.failure(10) for _ in range(9)]
    assert events[:4] == [None] * 4
    assert events[4:] == [
        {"event": "keypad-lockout", "seconds": 60, "strikes": 5},
        {"event": "keypad-lockout", "seconds": 120, "strikes": 6},
        {"event": "keypad-lockout", "seconds": 240, "strikes": 7},
        {"event": "keypad-lockout", "seconds": 480, "strikes": 8},
        {"event": "keypad-lockout", "seconds": 900, "strikes": 9},
    ]
    assert t.remaining(10) == 900 and t.remaining(909) == 1 and t.remaining(910) == 0


def test_thirty_doublings_and_more_are_the_cap():
    # base << exp for exp >= 30 is not computed (a small int on the lock):
    # the lockout is the cap, however large.
    t = Throttle(threshold=1, base=1, cap=1 << 40, decay=1 << 40)
    for strikes in range(1, 33):
        ev = t.failure(0)
        assert ev is not None
        exp = strikes - 1
        assert ev["seconds"] == ((1 << 40) if exp >= 30 else 1 << exp), (strikes, ev)
