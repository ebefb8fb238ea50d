# Vector checks shared by CPython (pytest) and MicroPython (run_tests.py).
from protocol import cbor, envelope, keys, record
from protocol.crypto import hkdf, hmac_sha256
from tests.shared.util import from_json, load_vectors, raises, tohex, unhex


def test_cbor_valid_vectors_encode_and_decode():
    v = load_vectors("cbor")
    for case in v["valid"]:
        value = from_json(case["value"])
        assert tohex(cbor.encode(value)) == case["hex"], case["hex"]
        assert cbor.decode(unhex(case["hex"])) == value, case["hex"]


def test_cbor_invalid_vectors_raise_with_reason():
    v = load_vectors("cbor")
    for case in v["invalid"]:
        raises(case["reason"], cbor.decode, unhex(case["hex"]))


def test_hmac_sha256_rfc4231():
    for case in load_vectors("crypto")["hmac_sha256"]:
        assert tohex(hmac_sha256(unhex(case["key"]), unhex(case["msg"]))) == case["tag"]


def test_hkdf_sha256_rfc5869():
    for case in load_vectors("crypto")["hkdf_sha256"]:
        okm = hkdf(unhex(case["ikm"]), unhex(case["salt"]), unhex(case["info"]), case["len"])
        assert tohex(okm) == case["okm"]


def test_key_derivation_vectors():
    for case in load_vectors("crypto")["derive"]:
        k = keys.derive(unhex(case["root"]), case["purpose"], case["device"])
        assert tohex(k) == case["key"]


def test_envelope_vectors_seal_and_open():
    for case in load_vectors("envelope")["valid"]:
        key = unhex(case["key"])
        body = from_json(case["body"])
        wire = envelope.seal(key, case["type"], case["sender"], case["seq"], case["ts"], body, case["rcpt"])
        assert tohex(wire) == case["wire"]
        env = envelope.verify(envelope.parse(unhex(case["wire"])), key)
        assert env.type == case["type"] and env.sender == case["sender"]
        assert env.seq == case["seq"] and env.ts == case["ts"] and env.rcpt == case["rcpt"]
        assert env.body == body
        assert tohex(envelope._mac_input(env.protected, env.body_bytes)) == case["mac_input"]


def test_record_vectors():
    v = load_vectors("record")
    recs = []
    for case in v["records"]:
        r = record.PassRecord.decode(unhex(case["hex"]))
        assert r.to_map() == from_json(case["fields"])
        assert tohex(r.encode()) == case["hex"]
        recs.append(r)
    assert tohex(record.encode_batch(recs)) == v["batch"]
    assert record.decode_batch(unhex(v["batch"])) == recs
