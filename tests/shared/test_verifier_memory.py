# What the code verifier remembers of used codes (protocol/verifier.py
# CodeVerifier.used), on both interpreters: a one-time code stays used up
# to its end and the clock tolerance past it; a setup code, which has no
# end, stays used for good, however the clock comes and goes; a full store
# refuses with its event. From the mutation run (docs/testing.md).
from protocol import keys
from protocol import passcode as pc
from protocol.verifier import CodeVerifier

ROOT = bytes(range(32))
NOW = 1795000000 - 1795000000 % 3600
KEY = keys.derive(ROOT, keys.CODE, "lock-1")


def _once(hours, start_h, serial=0):
    return pc.make_keypad(
        KEY, "lock-1", pc.find_profile(pc.ONCE, pc.DEVICE, pc.HOUR, hours), start_h, 0, serial
    )


def test_a_one_time_code_stays_used_until_its_end_and_the_tolerance_past_it():
    v = CodeVerifier("lock-1", KEY, tolerance=300)
    code = _once(2, NOW // 3600)
    assert v.keypad(code.digits, NOW + 60, 1).granted
    assert v.used == {code.code_id: [code.end, 1]}
    # Within its window and within the tolerance after its end: still used.
    for at in (code.end - 100, code.end, code.end + 299):
        assert v.keypad(code.digits, at, 1).reason == "used", at - code.end
        assert code.code_id in v.used
    # Another one-time decision prunes only what ended more than the tolerance ago.
    other = _once(2, NOW // 3600 + 1, serial=1)
    assert v.keypad(other.digits, code.end + 299, 1).granted
    assert sorted(v.used) == sorted([code.code_id, other.code_id])
    third = _once(3, NOW // 3600 + 1, serial=2)
    assert v.keypad(third.digits, code.end + 300, 1).granted
    assert sorted(v.used) == sorted([other.code_id, third.code_id])


def test_a_setup_code_is_used_once_whatever_the_clock_does_after():
    v = CodeVerifier("lock-1", KEY)
    setup = pc.make_keypad(KEY, "lock-1", pc.find_profile(pc.SETUP, pc.DEVICE, pc.DAY, 0), 0, 0, 3)
    assert v.keypad(setup.digits, None, 1).granted  # a lock with no time
    assert v.used == {setup.code_id: [0, 1]}  # no end: never pruned
    code = _once(2, NOW // 3600)
    assert v.keypad(code.digits, NOW + 60, 1).granted  # the clock is set; a prune runs
    assert setup.code_id in v.used
    assert v.keypad(setup.digits, NOW + 60, 1).reason == "clock-set"
    assert v.keypad(setup.digits, None, 1).reason == "used"  # the clock lost again


def test_a_full_store_refuses_a_new_code_with_its_event_and_keeps_the_old():
    v = CodeVerifier("lock-1", KEY, max_used=2)
    codes = [_once(2, NOW // 3600, serial=i) for i in range(3)]
    assert v.keypad(codes[0].digits, NOW, 1).granted
    assert v.keypad(codes[1].digits, NOW, 1).granted
    d = v.keypad(codes[2].digits, NOW, 1)
    assert (d.granted, d.reason, d.events) == (
        False,
        "store-full",
        [{"event": "code-store-full", "entries": 2}],
    )
    assert sorted(v.used) == sorted([codes[0].code_id, codes[1].code_id])
    assert v.keypad(codes[0].digits, NOW, 1).reason == "used"
