# The envelope's limits at their edges and one past, each refusal by its
# reason (issue 21: the mutation run found these bounds untested), shared
# by both interpreters.
from protocol import cbor, envelope, keys
from protocol.errors import ProtocolError
from tests.shared.util import raises

ROOT = bytes(range(32))
K = keys.derive(ROOT, keys.UPLINK, "lock-0001")


def _seal(typ="evt", seq=1, body=None, sender="lock-0001"):
    return envelope.seal(K, typ, sender, seq, 1795000000, {1: "x"} if body is None else body)


def test_message_types_from_one_to_sixteen_characters_a_to_z_first():
    for typ in ("a", "z", "a" * 16, "rec-ack", "a.b-c9"):
        assert envelope.parse(_seal(typ)).type == typ
    for typ in ("", "a" * 17, "1a", "-a", ".a", "Aa", "a_b", "a b", "é"):
        raises("invalid-field", _seal, typ)
    raises("invalid-field", envelope.seal, K, 7, "lock-0001", 1, 0, {})


def _raw(protected, body, tag):
    return cbor.encode([protected, body, tag])


def _header(**fields):
    h = {1: 1, 2: "evt", 3: "lock-0001", 4: 1, 5: 0}
    for k, v in fields.items():
        h[int(k[1:])] = v
    return cbor.encode(h)


def test_each_part_of_the_outer_array_must_be_a_byte_string():
    good = _header()
    for parts in (
        (1, b"", bytes(envelope.TAG_LEN)),
        (good, 1, bytes(envelope.TAG_LEN)),
        (good, b"", 1),
        (good, b"", "t" * envelope.TAG_LEN),
    ):
        raises("malformed", envelope.parse, _raw(parts[0], parts[1], parts[2]))
    raises("malformed", envelope.parse, cbor.encode([good, b""]))
    raises("malformed", envelope.parse, cbor.encode({1: good}))


def test_the_outer_array_is_decoded_two_deep_and_the_header_one_deep():
    # A nested item where a byte string belongs is refused for its depth,
    # before its type is looked at: the decoder never walks attacker nesting.
    raises("too-deep", envelope.parse, cbor.encode([_header(), [[1]], bytes(envelope.TAG_LEN)]))
    assert envelope.parse(cbor.encode([_header(), b"", bytes(envelope.TAG_LEN)])).seq == 1
    raises("too-deep", envelope.parse, _raw(cbor.encode({1: 1, 2: [1]}), b"", bytes(envelope.TAG_LEN)))
    raises("malformed", envelope.parse, _raw(cbor.encode([1, 2]), b"", bytes(envelope.TAG_LEN)))


def test_the_size_limit_is_the_callers():
    wire = _seal()
    assert envelope.parse(wire, len(wire)).seq == 1
    raises("too-large", envelope.parse, wire, len(wire) - 1)
    raises("too-large", envelope.Receiver(lambda s, t: K).open, wire, len(wire) - 1)


def test_version_is_exactly_one_and_is_kept():
    env = envelope.parse(_seal())
    assert env.version == 1 and env.body is None and env.verified is False
    for v in (0, 2, True, False, "1"):
        raises("version", envelope.parse, _raw(_header(f1=v), b"", bytes(envelope.TAG_LEN)))


def test_sequence_and_timestamp_bounds_at_seal_and_at_parse():
    raises("invalid-field", envelope.seal, K, "evt", "lock-0001", 0, 0, {})
    assert envelope.parse(
        envelope.seal(K, "evt", "lock-0001", envelope.MAX_SEQ, envelope.MAX_TS, {})
    ).seq == (envelope.MAX_SEQ)
    raises("invalid-field", envelope.seal, K, "evt", "lock-0001", envelope.MAX_SEQ + 1, 0, {})
    raises("invalid-field", envelope.seal, K, "evt", "lock-0001", 1, envelope.MAX_TS + 1, {})
    raises("invalid-field", envelope.seal, K, "evt", "lock-0001", 1, -1, {})
    raises("invalid-field", envelope.parse, _raw(_header(f4=0), b"", bytes(envelope.TAG_LEN)))
    raises("invalid-field", envelope.parse, _raw(_header(f5=-1), b"", bytes(envelope.TAG_LEN)))
    raises("invalid-field", envelope.parse, _raw(_header(f4=True), b"", bytes(envelope.TAG_LEN)))


def test_the_largest_envelope_is_the_limit_and_one_byte_more_is_refused():
    # Find the body length whose envelope is exactly MAX_ENVELOPE bytes.
    body = bytes(envelope.MAX_ENVELOPE - 200)
    n = len(envelope.seal_encoded(K, "evt", "lock-0001", 1, 0, body))
    body = bytes(len(body) + envelope.MAX_ENVELOPE - n)
    wire = envelope.seal_encoded(K, "evt", "lock-0001", 1, 0, body)
    assert len(wire) == envelope.MAX_ENVELOPE
    assert envelope.parse(wire).body_bytes == body
    raises("invalid-field", envelope.seal_encoded, K, "evt", "lock-0001", 1, 0, body + b"\x00")


def test_replay_window_sizes_from_one_to_1024():
    for size in (1, 1024):
        assert envelope.ReplayWindow(size).size == size
    for size in (0, -1, 1025):
        raises("invalid-field", envelope.ReplayWindow, size)
    w = envelope.ReplayWindow()
    assert w.size == 64 and w.state() == [0, 0]  # the documented default: 64 behind the highest


def test_a_restored_window_keeps_only_its_own_bits():
    w = envelope.ReplayWindow(8, 100, (1 << 8) | (1 << 20) | 1)
    assert w.state() == [100, 1]
    raises("duplicate", w.accept, 100)
    w.accept(99)  # its bit was not set: not seen before
    raises("duplicate", w.accept, 99)
    raises("stale", w.accept, 92)
    w.accept(93)
    assert w.state() == [100, 1 | 2 | (1 << 7)]


def test_the_window_slides_and_never_holds_a_bit_past_its_size():
    w = envelope.ReplayWindow(8)
    for seq in (1, 2, 3, 5, 8, 13, 14, 30, 31, 37):
        w.accept(seq)
        assert 0 <= w.state()[1] < (1 << 8)
    assert w.state() == [37, 1 | (1 << 6) | (1 << 7)]
    w.accept(36)
    raises("duplicate", w.accept, 31)
    raises("stale", w.accept, 29)


def test_a_receiver_tracks_at_most_max_senders():
    table = {}
    for i in range(3):
        sid = "lock-%04d" % i
        table[sid] = keys.derive(ROOT, keys.UPLINK, sid)
    rx = envelope.Receiver(lambda s, t: table.get(s), window=8, max_senders=2)
    for i in range(2):
        sid = "lock-%04d" % i
        rx.open(envelope.seal(table[sid], "evt", sid, 1, 0, {}))
    e = raises("invalid-field", rx.open, envelope.seal(table["lock-0002"], "evt", "lock-0002", 1, 0, {}))
    assert "too many senders" in e.message
    assert sorted(rx.state()) == ["lock-0000", "lock-0001"]
    rx.open(envelope.seal(table["lock-0001"], "evt", "lock-0001", 2, 0, {}))  # one already tracked: fine


def test_a_body_is_decoded_only_to_the_callers_depth():
    deep = [[[[1]]]]
    wire = envelope.seal(K, "evt", "lock-0001", 1, 0, deep)
    assert envelope.verify(envelope.parse(wire), K, 5).body == deep
    raises("too-deep", envelope.verify, envelope.parse(wire), K, 3)


def test_protocol_error_carries_reason_and_message():
    try:
        envelope.parse(b"\x00")
    except ProtocolError as e:
        assert e.reason == "malformed" and e.message
        return
    raise AssertionError("not refused")


def test_keys_of_sixteen_bytes_or_more_and_no_shorter():
    k16 = bytes(range(16))
    env = envelope.verify(envelope.parse(envelope.seal(k16, "evt", "lock-0001", 1, 0, {1: 2})), k16)
    assert env.body == {1: 2}
    raises("bad-key", envelope.seal, bytes(15), "evt", "lock-0001", 1, 0, {})
    raises("bad-key", envelope.verify, envelope.parse(_seal()), bytes(15))
    raises("bad-key", envelope.seal, "k" * 32, "evt", "lock-0001", 1, 0, {})


def test_booleans_are_not_numbers_in_the_header():
    for ts in (False, True):
        raises("invalid-field", envelope.seal, K, "evt", "lock-0001", 1, ts, {})
        raises("invalid-field", envelope.parse, _raw(_header(f5=ts), b"", bytes(envelope.TAG_LEN)))
    raises("invalid-field", envelope.seal, K, "evt", "lock-0001", False, 0, {})
