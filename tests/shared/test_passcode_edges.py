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


H = 3600
D0 = 20000  # a UTC day number (2024-10-04)


def _plans(kind, tc, start, end):
    """plan_keypad's answer as (unit, duration, start unit) per plan, best first."""
    out = []
    for p, su in pc.plan_keypad(kind, tc, start, end):
        prof = pc.PROFILES[p]
        assert (prof[0], prof[1]) == (kind, tc)
        out.append((prof[2], prof[3], su))
    return out


def test_a_keypad_plan_is_the_longest_fit_per_unit_ranked_by_its_end():
    s = D0 * DAY
    h0 = s // H
    W, ONE, DEV, GRP = pc.WINDOW, pc.ONCE, pc.DEVICE, pc.GROUP
    cases = (
        # (kind, class, start, end) -> plans, each (unit, duration, start unit)
        ((W, DEV, s, s + H), [(H, 1, h0)]),
        ((W, DEV, s + 1800, s + 1800 + H), [(H, 1, h0)]),  # the start rounds down to its hour
        ((W, DEV, s, s + 5 * H), [(H, 5, h0)]),
        ((W, DEV, s, s + 25 * H), [(H, 24, h0)]),  # 25 h is no profile: 24 h, ending sooner
        # Three days: both units fit exactly; equal ends, the hour plan first as found.
        ((W, DEV, s, s + 72 * H), [(H, 72, h0), (DAY, 3, D0)]),
        ((W, DEV, s, s + 72 * H + 1800), [(H, 72, h0), (DAY, 3, D0)]),  # 72.5 h: still 72
        # Equal ends: the plan that starts later (hour-precise) first.
        ((W, DEV, s + 12 * H, s + 48 * H), [(H, 36, h0 + 12), (DAY, 2, D0)]),
        # Over 72 hours a window code is day-aligned only; a one-time code may still be hourly.
        ((W, DEV, s, s + 73 * H), [(DAY, 3, D0)]),
        ((W, DEV, s + 10 * H, s + 106 * H), [(DAY, 4, D0)]),
        ((ONE, DEV, s + 10 * H, s + 106 * H), [(DAY, 4, D0), (H, 72, h0 + 10)]),
        ((ONE, DEV, s + 10 * H, s + 87 * H), [(H, 72, h0 + 10), (DAY, 3, D0)]),  # the hour plan ends later
        ((ONE, DEV, s, s + 10 * DAY), [(DAY, 7, D0), (H, 72, h0)]),  # one-time codes last at most 7 days
        ((W, DEV, s, s + 100 * DAY), [(DAY, 92, D0)]),
        ((W, GRP, s, s + 100 * DAY), []),  # group codes stop at 31 days
        ((W, GRP, s, s + 31 * DAY), [(DAY, 31, D0)]),
        ((W, DEV, s, s + 366 * DAY), [(DAY, 366, D0)]),
        ((pc.DAILY, DEV, s, s + 5 * H), []),  # daily codes are planned by plan_daily
        ((pc.SETUP, DEV, s, s + 5 * H), []),
    )
    for (kind, tc, start, end), want in cases:
        got = _plans(kind, tc, start, end)
        assert got == want, ((kind, tc, start - s, end - s), got)
        for p, su in pc.plan_keypad(kind, tc, start, end):
            assert pc.window_of(p, su, 0)[1] <= end  # never ends later than asked
    raises("invalid-field", pc.plan_keypad, W, DEV, s, s + H - 1)
    raises("invalid-field", pc.plan_keypad, W, DEV, s, s + 366 * DAY + 1)
    raises("invalid-field", pc.plan_keypad, W, DEV, s + H, s)


def test_find_profile_finds_each_profile_and_says_minus_one_for_none():
    for i, p in enumerate(pc.PROFILES):
        if p[0] != pc.SETUP:
            assert pc.find_profile(p[0], p[1], p[2], p[3]) == i
    assert pc.find_profile(pc.DAILY, pc.GROUP, DAY, 7) == -1
    assert pc.find_profile(pc.WINDOW, pc.GROUP, DAY, 92) == -1
    assert pc.find_profile(pc.ONCE, pc.DEVICE, DAY, 1) == -1


def test_make_keypad_takes_each_bound_and_refuses_one_past():
    key = bytes(32)
    p = pc.find_profile(pc.WINDOW, pc.DEVICE, H, 5)
    serials = pc.PROFILES[p][6]
    assert pc.make_keypad(key, "lock-1", p, 7).digits == pc.make_keypad(key, "lock-1", p, 7, 0, 0).digits
    top = pc.make_keypad(key, "lock-1", p, 0, 0, serials - 1)
    assert (top.serial, top.profile, top.start, top.end) == (serials - 1, p, 0, 5 * H)
    daily = pc.find_profile(pc.DAILY, pc.DEVICE, DAY, 7)
    variants = pc.PROFILES[daily][5]
    assert pc.make_keypad(key, "lock-1", daily, D0, variants - 1, 0).profile == daily
    for args, what in (
        ((len(pc.PROFILES), 0, 0, 0), "unknown pass-code profile"),
        ((-1, 0, 0, 0), "unknown pass-code profile"),
        ((p, 0, 1, 0), "pass-code variant, serial or start out of range"),
        ((p, 0, -1, 0), "pass-code variant, serial or start out of range"),
        ((daily, D0, variants, 0), "pass-code variant, serial or start out of range"),
        ((p, 0, 0, serials), "pass-code variant, serial or start out of range"),
        ((p, 0, 0, -1), "pass-code variant, serial or start out of range"),
        ((p, -1, 0, 0), "pass-code variant, serial or start out of range"),
    ):
        e = raises("invalid-field", pc.make_keypad, key, "lock-1", *args)
        assert e.message == what, (args, e.message)


def test_every_daily_variant_is_its_hour_and_length():
    seen = []
    for v in range(24 * len(pc.DAILY_LENGTHS)):
        fh, ln = pc._daily_variant(v)
        assert pc.daily_variant(fh, ln) == v
        seen.append((fh, ln))
    assert len(set(seen)) == len(seen) == 96
    assert pc._daily_variant(24) == (0, 4) and pc._daily_variant(95) == (23, 12)
