"""Generate tests/vectors/*.json from the CPython side (run via `make vectors`).

Each vector is cross-checked here against an independent implementation
(cbor2 for CBOR bytes, `cryptography` for HMAC and HKDF, published RFC
outputs for the crypto vectors) before it is written, so the vectors pin
the protocol to the standards rather than to our own code. The same JSON is
then checked by tests/shared/test_vectors.py on CPython and on MicroPython.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

import cbor2
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives import hmac as c_hmac
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))

from protocol import cbor, envelope, keys, record  # noqa: E402
from protocol.crypto import hkdf, hmac_sha256  # noqa: E402
from protocol.errors import ProtocolError  # noqa: E402
from tests.cbor2_reference import dumps as cbor2_bytewise  # noqa: E402
from tests.shared.util import to_json  # noqa: E402

OUT = Path(__file__).resolve().parent


def write(name: str, data: Any) -> None:
    # ensure_ascii=False: MicroPython's json does not join \ud800-style
    # surrogate-pair escapes, so non-BMP text is written as UTF-8.
    text = json.dumps(data, indent=1, sort_keys=True, ensure_ascii=False)
    (OUT / f"{name}.json").write_text(text + "\n", encoding="utf-8")
    print(f"wrote tests/vectors/{name}.json")


def _key_majors_uniform(v: Any) -> bool:
    if isinstance(v, list):
        return all(_key_majors_uniform(x) for x in v)
    if isinstance(v, dict):
        majors = {cbor.encode(k)[0] >> 5 for k in v}
        return len(majors) <= 1 and all(_key_majors_uniform(x) for x in v.values())
    return True


def cbor_vectors() -> None:
    values: list[Any] = [
        0,
        1,
        10,
        23,
        24,
        25,
        100,
        255,
        256,
        1000,
        65535,
        65536,
        1000000,
        4294967295,
        4294967296,
        1000000000000,
        18446744073709551615,
        -1,
        -10,
        -24,
        -25,
        -100,
        -256,
        -257,
        -1000,
        -4294967296,
        -4294967297,
        -18446744073709551616,
        b"",
        b"\x01\x02\x03\x04",
        bytes(range(24)),
        bytes(256),
        "",
        "a",
        "IETF",
        '"\\',
        "\u00fc",
        "\u6c34",
        "\U00010151",
        "x" * 24,
        "y" * 300,
        [],
        [1, 2, 3],
        [1, [2, 3], [4, 5]],
        list(range(1, 26)),
        {},
        {1: 2, 3: 4},
        {"a": 1, "b": [2, 3]},
        {"a": "A", "b": "B", "c": "C", "d": "D", "e": "E"},
        # Bytewise (RFC 8949 4.2.1) vs length-first (RFC 7049) orders differ:
        {256: 1, "a": 2},
        {100: "x", -1: "y"},
        {"b": 1, "aa": 2},
        {b"k": 1, 10: 2, "k": 3, -5: 4},
        False,
        True,
        None,
        [False, True, None],
        {1: {2: {3: [b"deep", None]}}},
    ]
    good = []
    for v in values:
        ours = cbor.encode(v)
        ref = cbor2_bytewise(v)
        assert ours == ref, (v, ours.hex(), ref.hex())
        # Where the two key orders coincide (no map mixes CBOR major types),
        # cbor2's own canonical mode must agree too.
        if _key_majors_uniform(v):
            assert cbor2.dumps(v, canonical=True) == ours, v
        assert cbor2.loads(ours) == v
        good.append({"value": to_json(v), "hex": ours.hex()})
    bad = [
        ("", "malformed", "empty input"),
        ("18", "malformed", "truncated argument"),
        ("1817", "non-canonical", "24 in two bytes"),
        ("190017", "non-canonical", "uint16 holding a small value"),
        ("1a0000ffff", "non-canonical", "uint32 holding a uint16"),
        ("1b00000000ffffffff", "non-canonical", "uint64 holding a uint32"),
        ("1c", "malformed", "reserved additional info 28"),
        ("5f4101ff", "unsupported", "indefinite byte string"),
        ("9f01ff", "unsupported", "indefinite array"),
        ("bf6161 01ff", "unsupported", "indefinite map"),
        ("ff", "malformed", "stray break"),
        ("c11a514b67b0", "unsupported", "tag 1 (epoch time)"),
        ("c249010000000000000000", "unsupported", "bignum tag"),
        ("f93c00", "unsupported", "half float"),
        ("fb3ff199999999999a", "unsupported", "double float"),
        ("f7", "unsupported", "undefined"),
        ("f0", "unsupported", "simple value 16"),
        ("f818", "unsupported", "simple value in one byte"),
        ("0001", "malformed", "trailing bytes"),
        ("4401", "malformed", "byte string longer than input"),
        ("7a7fffffff", "malformed", "huge text length"),
        ("9b7fffffffffffffff", "malformed", "huge array count"),
        ("bb7fffffffffffffff", "malformed", "huge map count"),
        ("62c080", "malformed", "overlong UTF-8"),
        ("63eda080", "malformed", "UTF-8 surrogate"),
        ("64f4908080", "malformed", "code point above U+10FFFF"),
        ("61ff", "malformed", "invalid UTF-8 byte"),
        ("a2616101616101", "non-canonical", "duplicate map key"),
        ("a2616201616102", "non-canonical", "map keys out of order"),
        ("a2616101190100 02", "non-canonical", "length-first order, not bytewise"),
        ("a1f501", "unsupported", "bool map key"),
        ("a18001", "unsupported", "array map key"),
        ("81" * 17 + "00", "too-deep", "nesting bomb"),
    ]
    bad_out = []
    for h, reason, what in bad:
        data = bytes.fromhex(h.replace(" ", ""))
        try:
            cbor.decode(data)
        except ProtocolError as e:
            assert e.reason == reason, (h, e)
        else:
            raise AssertionError(f"accepted {what}")
        bad_out.append({"hex": data.hex(), "reason": reason, "what": what})
    write("cbor", {"valid": good, "invalid": bad_out})


def crypto_vectors() -> None:
    # RFC 4231 HMAC-SHA256 test cases 1, 2, 3, 4, 6, 7.
    rfc4231 = [
        ("0b" * 20, b"Hi There".hex(), "b0344c61d8db38535ca8afceaf0bf12b881dc200c9833da726e9376c2e32cff7"),
        (
            b"Jefe".hex(),
            b"what do ya want for nothing?".hex(),
            "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843",
        ),
        ("aa" * 20, "dd" * 50, "773ea91e36800e46854db8ebd09181a72959098b3ef8c122d9635514ced565fe"),
        (
            "0102030405060708090a0b0c0d0e0f10111213141516171819",
            "cd" * 50,
            "82558a389a443c0ea4cc819899f2083a85f0faa3e578f8077a2e3ff46729665b",
        ),
        (
            "aa" * 131,
            b"Test Using Larger Than Block-Size Key - Hash Key First".hex(),
            "60e431591ee0b67f0d8a26aacbf5b77f8e0bc6213728c5140546040f0ee37f54",
        ),
        (
            "aa" * 131,
            b"This is a test using a larger than block-size key and a larger than block-size data. "
            b"The key needs to be hashed before being used by the HMAC algorithm.".hex(),
            "9b09ffa71b942fcb27635fbcd5b0e944bfdc63644f0713938a7f51535c3a35e2",
        ),
    ]
    hm = []
    for hk_key, m, t in rfc4231:
        h = c_hmac.HMAC(bytes.fromhex(hk_key), hashes.SHA256())
        h.update(bytes.fromhex(m))
        assert h.finalize().hex() == t == hmac_sha256(bytes.fromhex(hk_key), bytes.fromhex(m)).hex()
        hm.append({"key": hk_key, "msg": m, "tag": t})
    # RFC 5869 test cases 1-3.
    rfc5869 = [
        (
            "0b" * 22,
            "000102030405060708090a0b0c",
            "f0f1f2f3f4f5f6f7f8f9",
            42,
            "3cb25f25faacd57a90434f64d0362f2a2d2d0a90cf1a5a4c5db02d56ecc4c5bf34007208d5b887185865",
        ),
        (
            bytes(range(0x00, 0x50)).hex(),
            bytes(range(0x60, 0xB0)).hex(),
            bytes(range(0xB0, 0x100)).hex(),
            82,
            "b11e398dc80327a1c8e7f78c596a49344f012eda2d4efad8a050cc4c19afa97c59045a99cac7827271cb41c65e590e09"
            "da3275600c2f09b8367793a9aca3db71cc30c58179ec3e87c14c01d5c1f3434f1d87",
        ),
        (
            "0b" * 22,
            "",
            "",
            42,
            "8da4e775a563c18f715f802a063c5a31b8a11f5c5ee1879ec3454e5f3c738d2d9d201395faa4b61a96c8",
        ),
    ]
    hk = []
    for ikm, salt, info, n, okm in rfc5869:
        b_ikm, b_salt, b_info = bytes.fromhex(ikm), bytes.fromhex(salt), bytes.fromhex(info)
        ref = HKDF(hashes.SHA256(), n, b_salt or None, b_info).derive(b_ikm)
        assert ref.hex() == okm == hkdf(b_ikm, b_salt, b_info, n).hex()
        hk.append({"ikm": ikm, "salt": salt, "info": info, "len": n, "okm": okm})
    derived = []
    root = bytes(range(32))
    for purpose in keys.PURPOSES:
        for dev in ("lock-0001", "gate-A", "gw.site-7"):
            k = keys.derive(root, purpose, dev)
            label = b"lockedge/v1/" + purpose.encode() + b"/" + dev.encode()
            assert k == HKDF(hashes.SHA256(), 32, keys.SALT, label).derive(root)
            derived.append({"root": root.hex(), "purpose": purpose, "device": dev, "key": k.hex()})
    write("crypto", {"hmac_sha256": hm, "hkdf_sha256": hk, "derive": derived})


def envelope_vectors() -> None:
    root = bytes(range(32))
    cases = [
        (
            "cmd",
            "cloud",
            1,
            1795000000,
            {1: "unlock", 2: "c-0001", 3: 1795000030},
            "lock-0001",
            keys.derive(root, keys.CMD, "lock-0001"),
        ),
        (
            "ack",
            "lock-0001",
            7,
            1795000001,
            {1: "c-0001", 2: "done"},
            None,
            keys.derive(root, keys.UPLINK, "lock-0001"),
        ),
        (
            "evt",
            "lock-0001",
            4294967296,
            0,
            [b"\x00\xff", None, True],
            None,
            keys.derive(root, keys.UPLINK, "lock-0001"),
        ),
    ]
    out = []
    for typ, sender, seq, ts, body, rcpt, key in cases:
        wire = envelope.seal(key, typ, sender, seq, ts, body, rcpt)
        outer = cbor2.loads(wire)
        prot, body_b, tag = outer
        mac_input = cbor2_bytewise(["LEMac1", prot, body_b])
        h = c_hmac.HMAC(key, hashes.SHA256())
        h.update(mac_input)
        assert h.finalize() == tag
        out.append(
            {
                "key": key.hex(),
                "type": typ,
                "sender": sender,
                "seq": seq,
                "ts": ts,
                "body": to_json(body),
                "rcpt": rcpt,
                "wire": wire.hex(),
                "mac_input": mac_input.hex(),
            }
        )
    write("envelope", {"valid": out})


def record_vectors() -> None:
    recs = [
        record.PassRecord("lock-0001", 1, 1795000000, "door-1", "code", "pc-17", True, "ok"),
        record.PassRecord("lock-0001", 2, 1795000100, "door-1", "code", "", False, "wrong-code"),
        record.PassRecord("gate-A", 99999, 0, "gate-A", "finger", "p-3f2a", False, "clock-unset"),
        record.PassRecord("lock-0002", 5, 1795000200, "door-2", "remote", "c-0001", True, "ok"),
    ]
    items = []
    for r in recs:
        enc = r.encode()
        assert cbor2_bytewise(r.to_map()) == enc
        items.append({"fields": to_json(r.to_map()), "hex": enc.hex()})
    batch = record.encode_batch(recs)
    write("record", {"records": items, "batch": batch.hex()})


if __name__ == "__main__":
    cbor_vectors()
    crypto_vectors()
    envelope_vectors()
    record_vectors()
