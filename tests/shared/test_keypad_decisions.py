# A typed keypad code's decision field by field (protocol/verifier.py
# CodeVerifier.keypad), on both interpreters: each refusal's reason, record
# kind, cost in HMACs and whether it counts as a guess. From the mutation
# run (docs/testing.md): each assertion was a change no test noticed.
from protocol import keys
from protocol import passcode as pc
from protocol.verifier import CodeVerifier

ROOT = bytes(range(32))
NOW = 1795000000 - 1795000000 % 3600
KEY = keys.derive(ROOT, keys.CODE, "lock-1")


def _fields(d):
    return (d.granted, d.reason, d.kind, d.ref, d.hmacs)


def test_entries_that_are_not_ten_ascii_digits_cost_nothing_and_are_no_guess():
    v = CodeVerifier("lock-1", KEY)
    for entry in (
        "123456789:",
        "A234567890",
        "12345678/9",
        "123456789",
        "12345678901",
        "",
    ):
        d = v.keypad(entry, NOW, 100)
        assert _fields(d) == (False, "wrong-code", "code", "", 0), entry
    assert v.throttle.strikes == 0


def test_an_entry_past_the_profile_table_is_refused_even_with_the_mac_it_would_have():
    # The first payload past the table decodes as serial 100 of the setup
    # profile, which does not exist: refused before any MAC is compared,
    # at the same cost as any other entry, and counted as a guess.
    v = CodeVerifier("lock-1", KEY)
    p = len(pc.PROFILES) - 1
    assert pc.PAYLOAD_USED - pc._OFFSETS[p] == pc.SETUP_SERIALS
    h = pc._mac(KEY, "lock-1", p, 0, 0, pc.SETUP_SERIALS)
    entry = "%010d" % (pc.PAYLOAD_USED * pc.MAC_MOD + pc._mac_digits(h))
    d = v.keypad(entry, None, 100)
    assert _fields(d) == (False, "wrong-code", "code", "", 2)
    assert v.throttle.state(100) == [1, 0, 0]
    last = pc.make_keypad(KEY, "lock-1", p, 0, 0, pc.SETUP_SERIALS - 1)  # the last real one
    assert v.keypad(last.digits, None, 100).granted


def test_a_group_code_at_a_lock_with_no_keypad_group_is_a_wrong_guess_at_full_cost():
    gk = keys.derive(ROOT, keys.CODE, "gates")
    v = CodeVerifier("lock-1", KEY, groups={"gates": gk})  # a group for long codes only
    code = pc.make_keypad(gk, "gates", pc.find_profile(pc.WINDOW, pc.GROUP, pc.HOUR, 5), NOW // 3600)
    d = v.keypad(code.digits, NOW + 60, 100)
    assert _fields(d) == (False, "wrong-code", "code", "", 2)
    assert v.throttle.state(100) == [1, 0, 0]
    g = CodeVerifier(
        "gate-1", keys.derive(ROOT, keys.CODE, "gate-1"), groups={"gates": gk}, keypad_group="gates"
    )
    assert g.keypad(code.digits, NOW + 60, 100).granted


def test_a_code_whose_live_slot_has_passed_is_expired_even_at_the_first_slots():
    # The two candidate starts are the current slot and the one before (or
    # after, near time zero): a code for start 0 read at its third slot.
    v = CodeVerifier("lock-1", KEY, tolerance=0)
    p = pc.find_profile(pc.ONCE, pc.DEVICE, pc.HOUR, 1)  # M = 3 hours
    code = pc.make_keypad(KEY, "lock-1", p, 0)
    d = v.keypad(code.digits, 3 * 3600, 100)
    assert _fields(d) == (False, "expired", "code", code.code_id, 2)
    assert v.keypad(code.digits, 1800, 100).granted
