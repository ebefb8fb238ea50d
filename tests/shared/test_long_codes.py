# A scanned long code's decision field by field (protocol/verifier.py
# CodeVerifier.long), on both interpreters: every outcome is a "qr" record
# with its exact reason, HMAC count and window; a daily code's last day ends
# as "expired", not "outside-hours"; a counted code is remembered until its
# end and revoked only while its blacklist entry lasts. From the mutation
# run (docs/testing.md): each assertion here was a change no test noticed.
from protocol import keys
from protocol import passcode as pc
from protocol.blacklist import Blacklist
from protocol.verifier import CodeVerifier

ROOT = bytes(range(32))
DAY0 = 1795046400 - 1795046400 % 86400  # 00:00 UTC
H = 3600


def _key(dev):
    return keys.derive(ROOT, keys.CODE, dev)


def _verifier(**kw):
    return CodeVerifier("lock-1", _key("lock-1"), tolerance=0, **kw)


def test_every_outcome_of_a_long_code_is_a_qr_record_with_its_cost():
    v = _verifier()
    start_h = DAY0 // H
    good = pc.make_long(_key("lock-1"), "lock-1", pc.WINDOW, "h-1", start_h, start_h + 10)
    forged = pc.make_long(_key("lock-9"), "lock-1", pc.WINDOW, "h-1", start_h, start_h + 10)
    other = pc.make_long(_key("lock-2"), "lock-2", pc.WINDOW, "h-1", start_h, start_h + 10)
    w = (DAY0, DAY0 + 10 * H)
    g = good.code_id
    # (granted, reason, kind, HMACs, ref, window): a forged code names no
    # code id (its id would be the forger's choice) and no window.
    cases = (
        ("not a code", DAY0 + 60, (False, "malformed", "qr", 0, "", (0, 0))),
        (other.text(), DAY0 + 60, (False, "wrong-target", "qr", 0, "", (0, 0))),
        (forged.text(), DAY0 + 60, (False, "wrong-code", "qr", 1, "", (0, 0))),
        (good.text(), None, (False, "clock-unset", "qr", 1, g, w)),
        (good.text(), DAY0 - 1, (False, "not-yet-valid", "qr", 1, g, w)),
        (good.text(), DAY0 + 10 * H, (False, "expired", "qr", 1, g, w)),
        (good.text(), DAY0, (True, "ok", "qr", 1, g, w)),
        (good.text(), DAY0 + 10 * H - 1, (True, "ok", "qr", 1, g, w)),
    )
    for text, now, want in cases:
        d = v.long(text, now, 1)
        got = (d.granted, d.reason, d.kind, d.hmacs, d.ref, d.window)
        assert got == want, (text[:12], now, got)


def test_a_daily_long_code_opens_in_its_hours_and_its_last_day_ends_expired():
    v = _verifier()
    start_h = DAY0 // H
    # Three days, 08:00 to 12:00 UTC each day.
    code = pc.make_long(_key("lock-1"), "lock-1", pc.DAILY, "h-1", start_h, start_h + 72, daily=[8, 4])
    cases = (
        (8 * H - 1, "not-yet-valid"),
        (8 * H, "ok"),
        (12 * H - 1, "ok"),
        (12 * H, "outside-hours"),
        (86400 + 7 * H, "outside-hours"),
        (86400 + 10 * H, "ok"),
        (2 * 86400 + 8 * H, "ok"),
        (2 * 86400 + 12 * H - 1, "ok"),
        (2 * 86400 + 12 * H, "expired"),
        (2 * 86400 + 23 * H, "expired"),
        (3 * 86400 + 9 * H, "expired"),
    )
    for at, want in cases:
        d = v.long(code.text(), DAY0 + at, 1)
        assert (d.reason, d.granted) == (want, want == "ok"), (at, d.reason)
    # Ending mid-day (day 2 at 10:00): the last occurrence is cut short.
    short = pc.make_long(_key("lock-1"), "lock-1", pc.DAILY, "h-2", start_h, start_h + 58, daily=[8, 4])
    for at, want in ((2 * 86400 + 9 * H, "ok"), (2 * 86400 + 10 * H, "expired")):
        assert v.long(short.text(), DAY0 + at, 1).reason == want, at


def test_a_counted_long_code_is_remembered_until_its_end_then_forgotten():
    v = _verifier()
    start_h = DAY0 // H
    code = pc.make_long(_key("lock-1"), "lock-1", pc.WINDOW, "h-1", start_h, start_h + 2, uses=2)
    assert v.long(code.text(), DAY0 + 60, 1).granted
    assert v.used == {code.code_id: [DAY0 + 2 * H, 1]}
    assert v.long(code.text(), DAY0 + 120, 1).granted
    assert v.long(code.text(), DAY0 + 180, 1).reason == "used"
    # Any later counted decision prunes what has ended.
    later = pc.make_long(_key("lock-1"), "lock-1", pc.ONCE, "h-3", start_h + 2, start_h + 3)
    assert v.long(later.text(), DAY0 + 2 * H, 1).granted
    assert v.used == {later.code_id: [DAY0 + 3 * H, 1]}


def test_a_long_code_is_revoked_only_while_its_blacklist_entry_lasts():
    bl = Blacklist()
    v = _verifier(blacklist=bl)
    start_h = DAY0 // H
    code = pc.make_long(_key("lock-1"), "lock-1", pc.WINDOW, "h-1", start_h, start_h + 10)
    bl.apply({1: "full", 2: 1, 4: [[code.code_id, DAY0 + 5 * H]]}, DAY0)
    assert v.long(code.text(), DAY0 + 5 * H - 1, 1).reason == "revoked"
    d = v.long(code.text(), DAY0 + 5 * H, 1)  # the entry ended; the list was not pruned
    assert (d.granted, d.reason) == (True, "ok")
    bl.apply({1: "full", 2: 2, 4: [["v:h-1", 0]]}, DAY0)  # the holder, for good
    assert v.long(code.text(), DAY0 + 6 * H, 1).reason == "revoked"


def test_a_daily_long_codes_hours_hold_within_the_clock_tolerance_and_not_past_it():
    tol = 300
    v = CodeVerifier("lock-1", _key("lock-1"), tolerance=tol)
    start_h = DAY0 // H
    code = pc.make_long(_key("lock-1"), "lock-1", pc.DAILY, "h-1", start_h, start_h + 72, daily=[8, 4])
    for at, want in (
        (8 * H - tol - 1, "not-yet-valid"),
        (8 * H - tol, "ok"),  # a clock up to 5 min slow still opens at 08:00
        (12 * H + tol - 1, "ok"),
        (12 * H + tol, "outside-hours"),
        (86400 + 8 * H - 200, "ok"),  # the next day's hours, within the tolerance
        (86400 + 8 * H - tol - 1, "outside-hours"),
    ):
        assert v.long(code.text(), DAY0 + at, 1).reason == want, at


def test_a_daily_window_ending_at_midnight_ends_with_its_last_day_within_the_tolerance():
    # 00:00-23:00 each day for three days, a clock tolerance of an hour: the
    # last day's window ends at 23:00 give or take the hour, and the code
    # with it (its end, midnight, is within the tolerance of 23:00 too).
    tol = 3600
    v = CodeVerifier("lock-1", _key("lock-1"), tolerance=tol)
    start_h = DAY0 // H
    code = pc.make_long(_key("lock-1"), "lock-1", pc.DAILY, "h-1", start_h, start_h + 72, daily=[0, 23])
    end = DAY0 + 3 * 86400
    for now, want in ((end - 1800, "ok"), (end - 1, "ok"), (end, "expired"), (end + tol, "expired")):
        assert v.long(code.text(), now, 1).reason == want, now - end
