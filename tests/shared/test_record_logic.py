# Pass-record schema rules, shared by both interpreters.
from protocol import cbor, record
from protocol.record import PassRecord
from tests.shared.util import raises


def _rec(**kw):
    f = {
        "device": "lock-0001",
        "seq": 1,
        "time": 1795000000,
        "door": "door-1",
        "kind": "code",
        "ref": "pc-1",
        "granted": True,
        "reason": "ok",
    }
    f.update(kw)
    return PassRecord(
        f["device"], f["seq"], f["time"], f["door"], f["kind"], f["ref"], f["granted"], f["reason"]
    )


def test_roundtrip():
    r = _rec()
    assert PassRecord.decode(r.encode()) == r
    assert r.key() == ("lock-0001", 1)


def test_field_rules():
    raises("invalid-field", _rec, seq=0)
    raises("invalid-field", _rec, time=-1)
    raises("invalid-field", _rec, kind="retina")
    raises("invalid-field", _rec, granted=1)
    raises("invalid-field", _rec, granted=True, reason="wrong-code")
    raises("invalid-field", _rec, granted=False, reason="ok")
    raises("invalid-field", _rec, reason="Has Spaces")
    raises("bad-key", _rec, device="")


def test_each_field_bound_at_its_edge_and_one_past():
    for ok in (
        {"seq": 1},
        {"seq": 0x7FFFFFFFFFFFFFFF},
        {"time": 0},
        {"time": 0xFFFFFFFF},
        {"reason": "r" * 24, "granted": False},
        {"reason": "a", "granted": False},
        {"ref": ""},
        {"ref": "x" * record.MAX_REF},
    ):
        r = _rec(**ok)
        assert PassRecord.decode(r.encode()) == r
    for bad in (
        {"seq": 0x8000000000000000},
        {"seq": True},
        {"seq": "1"},
        {"time": 0x100000000},
        {"time": True},
        {"time": False},  # a bool is not a time, even where it equals 0
        {"time": "0"},
        {"reason": "r" * 25, "granted": False},
        {"reason": "", "granted": False},
        {"reason": 5, "granted": False},
        {"ref": "x" * (record.MAX_REF + 1)},
        {"ref": 7},
        {"granted": 0},
        {"kind": "Code"},
    ):
        raises("invalid-field", _rec, **bad)


def test_reference_cannot_carry_template_sized_data():
    # A minutiae template is hundreds of bytes; a reference is an id.
    raises("invalid-field", _rec, ref="x" * 41)
    raises("invalid-field", _rec, ref=b"\x01\x02")


def test_decode_rejects_unknown_missing_and_mistyped_fields():
    m = _rec().to_map()
    m[9] = 1
    raises("invalid-field", PassRecord.decode, cbor.encode(m))
    m = _rec().to_map()
    del m[8]
    raises("invalid-field", PassRecord.decode, cbor.encode(m))
    m = _rec().to_map()
    m[2] = "1"
    raises("invalid-field", PassRecord.decode, cbor.encode(m))
    raises("malformed", PassRecord.decode, cbor.encode([1, 2]))


def test_batch_limits_and_versions():
    recs = [_rec(seq=i) for i in range(1, 21)]
    assert record.decode_batch(record.encode_batch(recs)) == recs
    raises("version", record.decode_batch, cbor.encode([2, []]))
    raises("malformed", record.decode_batch, cbor.encode([1]))
    raises("invalid-field", record.encode_batch, [_rec()] * (record.MAX_BATCH + 1))


def test_a_batch_from_records_own_encodings_is_the_batch_at_every_size():
    # The lock builds upload batches from the journal's bytes: every CBOR
    # head size (up to 23 items, 24..255, 256 and more) must give exactly
    # what encoding the batch would.
    for n in (0, 1, 23, 24, 25, 255, 256, 257, record.MAX_BATCH):
        recs = [_rec(seq=i + 1) for i in range(n)]
        got = record.batch_from_encoded([r.encode() for r in recs])
        assert bytes(got) == record.encode_batch(recs), n
        assert record.decode_batch(bytes(got)) == recs, n


def test_the_batch_limit_is_exact_everywhere():
    full = [_rec(seq=i + 1) for i in range(record.MAX_BATCH)]
    body = record.batch_body(full)  # exactly the limit: fine
    assert len(record.batch_from_body(body)) == record.MAX_BATCH
    over = full + [_rec(seq=record.MAX_BATCH + 1)]
    raises("invalid-field", record.batch_body, over)
    raises("invalid-field", record.batch_from_encoded, [r.encode() for r in over])
    raises("invalid-field", record.batch_from_body, [1, [r.to_map() for r in over]])
    raises("version", record.batch_from_body, [True, []])
    raises("malformed", record.batch_from_body, [1, "records"])
    raises("malformed", record.batch_from_body, "batch")


def test_a_batch_nested_deeper_than_a_batch_is_refused_before_its_fields():
    # A batch is [version, [record map, ...]]: depth 3. Anything deeper is
    # refused by the decoder's depth limit (4), not left to the field checks.
    deep = cbor.encode([1, [{1: [[["x"]]]}]])
    raises("too-deep", record.decode_batch, deep)


def test_records_compare_by_content_only():
    r = _rec()
    assert r == _rec() and r != _rec(seq=2)
    assert (r == r.to_map()) is False  # a map with the same fields is not a record


def _seq_payload(device_head: bytes, seq_item: bytes) -> bytes:
    # The bytes peek_seq reads: a map of 8, key 1, the device text, key 2, the seq.
    return b"\xa8\x01" + device_head + b"\x02" + seq_item + b"\x03\x00"


def test_peek_seq_reads_the_seq_of_every_encoding_width_and_device_length():
    seqs = (1, 23, 24, 255, 256, 65535, 65536, 0xFFFFFFFF, 0x100000000, 0x7FFFFFFFFFFFFFFF)
    # Lengths 1..23 have the length in the head byte, 24..64 in a second byte;
    # a leading digit is not text's major type when read as a head.
    for n in (1, 2, 23, 24, 25, 64):
        for first in ("0", "l", "Z"):
            dev = (first + "x" * 64)[:n]
            for seq in seqs:
                r = _rec(device=dev, seq=seq)
                assert record.peek_seq(r.encode()) == seq, (n, first, seq)


def test_peek_seq_refuses_each_byte_that_is_not_a_record_head():
    text = b"\x65lock1"
    assert record.peek_seq(_seq_payload(text, b"\x05")) == 5
    long_text = b"\x78\x18" + b"a" * 24
    assert record.peek_seq(_seq_payload(long_text, b"\x19\x01\x00")) == 256
    # Each case differs from a readable payload in one place only.
    for bad in (
        b"\xa7" + _seq_payload(text, b"\x05")[1:],  # a map of 7
        b"\xa8\x03" + _seq_payload(text, b"\x05")[2:],  # the first key is not 1
        _seq_payload(b"\x45lock1", b"\x05"),  # the device is bytes, not text
        _seq_payload(b"\x85\x01\x01\x01\x01\x01", b"\x05"),  # ... or an array
        _seq_payload(text, b"\x25"),  # the seq is negative
        _seq_payload(text, b"\x45\x00\x00\x00\x00\x05"),  # ... or bytes
        b"\xa8\x01" + text + b"\x03\x05\x03\x00",  # the second key is not 2
    ):
        raises("malformed", record.peek_seq, bad)
    for head in (b"\x79\x00\x18", b"\x7a\x00\x00\x00\x18", b"\x7b" + b"\x00" * 7 + b"\x18", b"\x7f"):
        e = raises("malformed", record.peek_seq, _seq_payload(head + b"a" * 24, b"\x05"))
        assert e.message == "device id too long", e


def test_a_record_nested_or_sized_past_its_limits_is_refused_by_the_decoder():
    # A record's fields are scalars: the decoder takes a map and one level
    # below it (depth 2), anything deeper is refused before the field checks.
    shallow = cbor.encode({1: ["x"]})
    raises("invalid-field", PassRecord.decode, shallow)
    raises("too-deep", PassRecord.decode, cbor.encode({1: [["x"]]}))
    # A batch is [version, [map, ...]] and the same one level below (depth 4).
    raises("invalid-field", record.decode_batch, cbor.encode([1, [{1: ["x"]}]]))
    raises("too-deep", record.decode_batch, cbor.encode([1, [{1: [["x"]]}]]))
    # 1,024 bytes at most: the decoder refuses more before reading a field.
    for n, reason in ((1024, "invalid-field"), (1025, "too-large")):
        m = _rec().to_map()
        m[6] = "r" * (n - 100)
        while len(cbor.encode(m)) < n:
            m[6] += "r"
        data = cbor.encode(m)
        assert len(data) == n, len(data)
        raises(reason, PassRecord.decode, data)
