# Envelope authentication and replay protection, shared by both interpreters.
from protocol import cbor, envelope, keys
from protocol.errors import ProtocolError
from tests.shared.util import raises

ROOT = bytes(range(32))
K_UP = keys.derive(ROOT, keys.UPLINK, "lock-0001")
K_OTHER = keys.derive(ROOT, keys.UPLINK, "lock-0002")


def _seal(seq, body=None, key=K_UP, sender="lock-0001", typ="evt"):
    return envelope.seal(key, typ, sender, seq, 1795000000, body if body is not None else {1: "x"})


def _receiver():
    table = {"lock-0001": K_UP, "lock-0002": K_OTHER}
    return envelope.Receiver(lambda sender, typ: table.get(sender), window=8)


def test_roundtrip_and_body():
    rx = _receiver()
    env = rx.open(_seal(1, [1, b"\x00", "t"]))
    assert env.verified and env.body == [1, b"\x00", "t"]


def test_every_single_bit_flip_is_rejected():
    wire = _seal(5)
    for i in range(len(wire)):
        for bit in (0x01, 0x80):
            b = bytearray(wire)
            b[i] ^= bit
            try:
                envelope.verify(envelope.parse(bytes(b)), K_UP)
            except ProtocolError:
                continue
            raise AssertionError("flip at byte %d bit %d accepted" % (i, bit))


def test_wrong_key_is_bad_tag():
    raises("bad-tag", envelope.verify, envelope.parse(_seal(1)), K_OTHER)


def test_sender_cannot_claim_another_identity():
    # lock-0002 MACs with its own key but claims to be lock-0001.
    raises("bad-tag", _receiver().open, _seal(1, key=K_OTHER, sender="lock-0001"))


def test_unknown_sender():
    raises("unknown-sender", _receiver().open, _seal(1, sender="lock-9999"))


def test_duplicate_and_stale_are_distinct():
    rx = _receiver()
    rx.open(_seal(1))
    raises("duplicate", rx.open, _seal(1))
    for s in range(2, 21):
        rx.open(_seal(s))
    raises("stale", rx.open, _seal(5))  # below the 8-wide window
    raises("duplicate", rx.open, _seal(20))


def test_reordering_within_window_is_accepted_once():
    rx = _receiver()
    for s in (10, 7, 9, 3, 8, 4):
        rx.open(_seal(s))
    for s in (10, 7, 9, 8, 4):
        raises("duplicate", rx.open, _seal(s))
    raises("stale", rx.open, _seal(2))


def test_forged_message_does_not_advance_window():
    rx = _receiver()
    rx.open(_seal(1))
    raises("bad-tag", rx.open, _seal(1000, key=K_OTHER))
    rx.open(_seal(2))  # a forged seq 1000 must not have made seq 2 stale


def test_windows_are_per_sender_and_state_survives():
    rx = _receiver()
    rx.open(_seal(3))
    rx.open(_seal(3, key=K_OTHER, sender="lock-0002"))
    rx2 = _receiver()
    rx2.load(rx.state())
    raises("duplicate", rx2.open, _seal(3))
    raises("duplicate", rx2.open, _seal(3, key=K_OTHER, sender="lock-0002"))
    rx2.open(_seal(4))


def test_big_jump_resets_bitmap():
    w = envelope.ReplayWindow(8)
    w.accept(1)
    w.accept(1000)
    raises("stale", w.check, 1)
    w.accept(999)
    raises("duplicate", w.check, 999)


def test_header_validation():
    raises("invalid-field", envelope.seal, K_UP, "BAD TYPE", "lock-0001", 1, 0, None)
    raises("invalid-field", envelope.seal, K_UP, "evt", "lock-0001", 0, 0, None)
    raises("bad-key", envelope.seal, K_UP, "evt", "lock 0001", 1, 0, None)
    raises("bad-key", envelope.seal, b"short", "evt", "lock-0001", 1, 0, None)


def test_structure_errors_have_reasons():
    raises("malformed", envelope.parse, b"")
    raises("malformed", envelope.parse, cbor.encode([b"", b""]))
    raises("malformed", envelope.parse, cbor.encode([b"", b"", bytes(31)]))
    raises("malformed", envelope.parse, cbor.encode([b"", b"", bytes(32)]))
    raises("malformed", envelope.parse, cbor.encode(["a", b"", bytes(32)]))
    prot = cbor.encode({1: 2, 2: "evt", 3: "lock-0001", 4: 1, 5: 0})
    raises("version", envelope.parse, cbor.encode([prot, cbor.encode(None), bytes(32)]))
    prot = cbor.encode({1: 1, 2: "evt", 3: "lock-0001", 4: 1})
    raises("invalid-field", envelope.parse, cbor.encode([prot, cbor.encode(None), bytes(32)]))
    prot = cbor.encode({1: 1, 2: "evt", 3: "lock-0001", 4: 1, 5: 0, 9: 0})
    raises("invalid-field", envelope.parse, cbor.encode([prot, cbor.encode(None), bytes(32)]))
    raises("too-large", envelope.parse, bytes(70000))


def test_body_is_not_decoded_before_the_tag_verifies():
    # A body that would fail to decode is reported as a bad tag when forged,
    # so unauthenticated bytes never reach the body decoder.
    prot = cbor.encode({1: 1, 2: "evt", 3: "lock-0001", 4: 1, 5: 0})
    wire = cbor.encode([prot, b"\x9f\xff", bytes(32)])
    raises("bad-tag", _receiver().open, wire)
