# The keypad throttle restored from its saved state on another clock origin
# (a reboot): strikes decay on the schedule they had (issue 21: the mutation
# run found the restore's decay mark untested). Shared by both interpreters.
from protocol.lockout import Throttle


def test_a_restored_throttle_decays_on_the_schedule_it_had():
    t = Throttle(threshold=5, decay=1800)
    for _ in range(3):
        t.failure(0)
    saved = t.state(1000)  # 1000 s into the decay period
    assert saved == [3, 0, 1000]
    for after, strikes in ((799, 4), (800, 3), (2600, 2)):
        t2 = Throttle(threshold=5, decay=1800)
        t2.load(saved, 50000)  # the clock started again somewhere else
        t2.failure(50000 + after)  # decays first, then counts this one
        assert t2.strikes == strikes, (after, t2.strikes)


def test_a_throttle_saved_at_the_instant_of_a_strike_has_spent_none_of_its_decay():
    t = Throttle(threshold=5, decay=1800)
    t.failure(700)
    assert t.state(700) == [1, 0, 0]
    t2 = Throttle(threshold=5, decay=1800)
    t2.load(t.state(700), 0)
    t2.failure(1799)  # one second short of a decay step: both strikes stand
    assert t2.strikes == 2
