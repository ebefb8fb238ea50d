# What the protocol's objects show of themselves when logged or printed in a
# traceback, exactly, on both interpreters: the identifiers an operator
# needs and never a credential (a keypad code's digits, a long code's MAC,
# an envelope's body or tag, a template's bytes).
from protocol import envelope, keys, seal
from protocol import passcode as pc
from protocol.record import PassRecord
from protocol.verifier import Decision

ROOT = bytes(range(32))


def test_an_envelope_shows_its_header_not_its_body_or_tag():
    key = bytes(32)
    data = envelope.seal(key, "cmd", "gw-1", 7, 1795000000, {1: "secret-body"})
    env = envelope.parse(data)
    assert repr(env) == "Envelope(type=cmd sender=gw-1 seq=7 ts=1795000000 verified=False)"
    env = envelope.verify(env, key)
    assert repr(env) == "Envelope(type=cmd sender=gw-1 seq=7 ts=1795000000 verified=True)"
    assert "secret" not in repr(env)


def test_a_decision_shows_its_outcome_reason_and_code_id():
    assert repr(Decision(True, "ok", "code", "pc-0a1b")) == "Decision(granted ok pc-0a1b)"
    assert repr(Decision(False, "expired", "qr", "qr-99")) == "Decision(denied expired qr-99)"


def test_issued_codes_show_their_id_kind_and_window_never_the_code():
    k = keys.derive(ROOT, keys.CODE, "lock-1")
    p = pc.find_profile(pc.WINDOW, pc.DEVICE, pc.HOUR, 5)
    code = pc.make_keypad(k, "lock-1", p, 498624, 0, 1)
    want = "KeypadCode(%s window %d..%d)" % (code.code_id, code.start, code.end)
    assert repr(code) == want
    assert code.digits not in repr(code)
    once = pc.make_keypad(k, "lock-1", pc.find_profile(pc.ONCE, pc.DEVICE, pc.HOUR, 2), 498624, 0, 1)
    assert repr(once).split(" ")[1] == "once"
    lc = pc.make_long(k, "lock-1", pc.DAILY, "h-1", 498624, 498672, daily=[8, 4])
    assert repr(lc) == "LongCode(%s daily holder=h-1 498624h..498672h)" % lc.code_id
    for b in lc.mac[6:]:
        assert ("%02x" % b) not in repr(lc).split(lc.code_id)[1]


def test_a_pass_record_and_a_sealed_entry_show_who_and_what_not_templates():
    r = PassRecord("lock-1", 42, 1795000000, "door-1", "finger", "p-7", False, "no-match")
    assert repr(r) == "PassRecord(lock-1#42 finger denied no-match)"
    g = PassRecord("lock-1", 43, 1795000000, "door-1", "code", "pc-1", True, "ok")
    assert repr(g) == "PassRecord(lock-1#43 code granted ok)"
    e = seal.Entry("lock-1", bytes(16), 9, 2, "add", "p-7", 0, [(1, b"\xab" * 40), (2, b"\xcd" * 40)])
    assert repr(e) == "Entry(lock-1 #9.2 add p-7, 2 templates)"
