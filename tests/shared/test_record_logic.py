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
