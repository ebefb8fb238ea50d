# Daily codes' window bounds at their edges and one past (issue 21: the
# mutation run found them untested), shared by both interpreters.
from protocol import passcode as pc
from tests.shared.util import raises

DAY = 86400


def test_a_daily_window_starts_on_any_utc_hour_and_lasts_a_listed_length():
    seen = set()
    for hour in (0, 1, 23):
        for length in pc.DAILY_LENGTHS:
            v = pc.daily_variant(hour, length)
            assert v == hour + 24 * pc.DAILY_LENGTHS.index(length)
            seen.add(v)
    assert len(seen) == 3 * len(pc.DAILY_LENGTHS)
    for hour, length in ((-1, 2), (24, 2), (25, 2), (0, 3), (0, 0), (0, 24), (23, 1)):
        e = raises("invalid-field", pc.daily_variant, hour, length)
        assert "UTC hour" in e.message


def test_a_plan_may_end_exactly_at_the_end_and_never_after():
    d0 = 20000
    start = d0 * DAY
    v = pc.daily_variant(8, 4)
    for r in pc.DAILY_RANGES:
        p = pc.find_profile(pc.DAILY, pc.DEVICE, DAY, r)
        end = pc.window_of(p, d0, v)[1]
        assert (p, d0, v) in pc.plan_daily(start, end, 8, 4)  # ends exactly at `end`: allowed
        assert (p, d0, v) not in pc.plan_daily(start, end - 1, 8, 4)  # one second past: not
    raises("invalid-field", pc.plan_daily, start, start + 90 * DAY, 24, 4)
