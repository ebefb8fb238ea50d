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


def passcode_vectors() -> None:
    from protocol import passcode as pc
    from tests.shared.passcode_scenarios import make_verifier, run_step

    root = bytes(range(32))
    t0 = 1795000000 - 1795000000 % 3600  # on an hour: 2026-11-18 10:00 UTC
    dev = "lock-0001"
    k = keys.derive(root, keys.CODE, dev)
    k_other = keys.derive(root, keys.CODE, "lock-0002")
    g_key = keys.derive(bytes(range(1, 33)), keys.CODE, "site-7-gates")

    def prof(kind: int, tc: int, unit: int, dur: int) -> int:
        p = pc.find_profile(kind, tc, unit, dur)
        assert p >= 0
        return p

    w5 = pc.make_keypad(k, dev, prof(pc.WINDOW, pc.DEVICE, pc.HOUR, 5), t0 // 3600, 0, 3)
    w5_other = pc.make_keypad(k_other, "lock-0002", prof(pc.WINDOW, pc.DEVICE, pc.HOUR, 5), t0 // 3600, 0, 3)
    once = pc.make_keypad(k, dev, prof(pc.ONCE, pc.DEVICE, pc.HOUR, 24), t0 // 3600, 0, 0)
    month = pc.make_keypad(k, dev, prof(pc.WINDOW, pc.DEVICE, pc.DAY, 31), t0 // 86400, 0, 7)
    setup = pc.make_keypad(k, dev, prof(pc.SETUP, pc.DEVICE, pc.DAY, 0), 0, 0, 42)
    daily_p = prof(pc.DAILY, pc.DEVICE, pc.DAY, 7)
    daily = pc.make_keypad(k, dev, daily_p, t0 // 86400, pc.daily_variant(1, 4), 0)  # 01:00-05:00 UTC
    gate_p = prof(pc.WINDOW, pc.GROUP, pc.HOUR, 2)
    gate = pc.make_keypad(g_key, "site-7-gates", gate_p, t0 // 3600, 0, 24)
    h0 = t0 // 3600
    lq_once = pc.make_long(k, dev, pc.ONCE, "v-0001", h0, h0 + 48, serial=1)
    lq_three = pc.make_long(k, dev, pc.WINDOW, "v-0002", h0, h0 + 48, uses=3, serial=2)
    lq_daily = pc.make_long(k, dev, pc.DAILY, "v-0003", h0 - 10, h0 + 24 * 30, daily=[9, 3], serial=3)
    lq_other = pc.make_long(k_other, "lock-0002", pc.WINDOW, "v-0004", h0, h0 + 5)
    lq_group = pc.make_long(g_key, "site-7-gates", pc.WINDOW, "v-0005", h0, h0 + 5)
    tol = 300
    end5 = t0 + 5 * 3600

    def kp(code: Any, now: Any, granted: bool, reason: str, mono: Any = None, **extra: Any) -> dict[str, Any]:
        entry = code.digits if hasattr(code, "digits") else code
        return {
            "op": "keypad",
            "entry": entry,
            "now": now,
            "mono": mono if mono is not None else (now or 0),
            "expect": dict(granted=granted, reason=reason, **extra),
        }

    def lq(code: Any, now: Any, granted: bool, reason: str) -> dict[str, Any]:
        entry = code.text() if hasattr(code, "text") else code
        return {
            "op": "long",
            "entry": entry,
            "now": now,
            "mono": now or 0,
            "expect": dict(granted=granted, reason=reason),
        }

    def bl(body: Any, now: int, result: Any) -> dict[str, Any]:
        return {"op": "blacklist", "body": to_json(body), "now": now, "expect": {"result": result}}

    base = {"root": root.hex(), "device": dev, "tolerance": tol}
    scenarios: list[dict[str, Any]] = [
        dict(
            base,
            name="window code and drift edges",
            steps=[
                kp(w5, t0 - tol - 1, False, "not-yet-valid"),
                kp(w5, t0 - tol, True, "ok"),
                kp(w5, t0 + 3600, True, "ok"),
                kp(w5, end5 + tol - 1, True, "ok"),
                kp(w5, end5 + tol, False, "expired"),
                kp(w5, t0 + 3600, True, "ok"),
            ],
        ),
        dict(
            base,
            name="wrong target",
            steps=[
                kp(w5_other, t0 + 60, False, "wrong-code"),
                lq(lq_other, t0 + 60, False, "wrong-target"),
                lq(lq_group, t0 + 60, False, "wrong-target"),
            ],
        ),
        dict(
            base,
            name="one-time reused, across a reboot",
            steps=[
                kp(once, t0 + 100, True, "ok"),
                kp(once, t0 + 200, False, "used"),
                {"op": "reboot", "mono_before": 250, "mono": 50},
                kp(once, t0 + 300, False, "used", mono=60),
                kp(month, t0 + 20 * 86400, True, "ok"),
                kp(month, t0 + 20 * 86400 + 5, True, "ok"),
            ],
        ),
        dict(
            base,
            name="revoked inside validity",
            steps=[
                kp(month, t0 + 3600, True, "ok"),
                bl({1: "full", 2: 1, 4: [[month.code_id, t0 + 40 * 86400]]}, t0 + 3600, 1),
                kp(month, t0 + 7200, False, "revoked"),
                bl({1: "delta", 2: 3, 3: 2, 4: []}, t0 + 7200, "err:gap"),
                bl({1: "full", 2: 1, 4: []}, t0 + 7200, "err:stale"),
                bl({1: "delta", 2: 2, 3: 1, 4: [["v:v-0002", 0]], 5: [month.code_id]}, t0 + 7200, 2),
                kp(month, t0 + 7300, True, "ok"),
                lq(lq_three, t0 + 7300, False, "revoked"),
                bl({1: "delta", 2: 2, 3: 1, 4: []}, t0 + 7300, "err:duplicate"),
                {"op": "reboot", "mono_before": 7350, "mono": 0},
                lq(lq_three, t0 + 7400, False, "revoked"),
            ],
        ),
        dict(
            base,
            name="clock unset",
            steps=[
                kp(w5, None, False, "clock-unset", mono=10),
                lq(lq_once, None, False, "clock-unset"),
                kp(setup, None, True, "ok", mono=20),
                kp(setup, None, False, "used", mono=30),
                kp(setup, t0, False, "clock-set"),
            ],
        ),
        dict(
            base,
            name="lockout and back-off",
            throttle=[5, 60, 900, 1800],
            steps=[
                kp("0000000001", t0, False, "wrong-code", mono=1000),
                kp("0000000002", t0, False, "wrong-code", mono=1001),
                kp("0000000003", t0, False, "wrong-code", mono=1002),
                kp("0000000004", t0, False, "wrong-code", mono=1003),
                kp("0000000005", t0, False, "wrong-code", mono=1004, events=["keypad-lockout:60"]),
                kp(w5, t0 + 10, False, "lockout", mono=1010),
                lq(lq_three, t0 + 10, True, "ok"),
                kp("12345", t0 + 70, False, "wrong-code", mono=1070),
                kp("0000000006", t0 + 70, False, "wrong-code", mono=1070, events=["keypad-lockout:120"]),
                {"op": "reboot", "mono_before": 1075, "mono": 5},
                kp(w5, t0 + 100, False, "lockout", mono=100),
                kp(w5, t0 + 200, True, "ok", mono=200),
                kp("0000000007", t0 + 200, False, "wrong-code", mono=200, events=["keypad-lockout:240"]),
                kp(w5, t0 + 20000, False, "lockout", mono=400),
                kp(w5, t0 + 20000, False, "expired", mono=1000),
            ],
        ),
        dict(
            base,
            name="recurring daily window",
            steps=[
                kp(daily, t0 // 86400 * 86400 + 2 * 3600, True, "ok"),
                kp(daily, t0 // 86400 * 86400 + 6 * 3600, False, "outside-hours"),
                kp(daily, t0 // 86400 * 86400 + 86400 * 6 + 4 * 3600, True, "ok"),
                kp(daily, t0 // 86400 * 86400 + 86400 * 7 + 2 * 3600, False, "expired"),
                kp(daily, t0 // 86400 * 86400 - 86400 + 2 * 3600, False, "not-yet-valid"),
                lq(lq_daily, t0 // 86400 * 86400 + 86400 + 10 * 3600, True, "ok"),
                lq(lq_daily, t0 // 86400 * 86400 + 86400 + 13 * 3600, False, "outside-hours"),
            ],
        ),
        dict(
            base,
            name="group code at a gate",
            device="gate-A",
            groups={"site-7-gates": g_key.hex()},
            keypad_group="site-7-gates",
            steps=[
                kp(gate, t0 + 60, True, "ok"),
                lq(lq_group, t0 + 60, True, "ok"),
                kp(w5, t0 + 60, False, "wrong-code"),
            ],
        ),
        dict(
            base,
            name="long codes: once and counted uses",
            steps=[
                lq(lq_once, t0 + 60, True, "ok"),
                lq(lq_once, t0 + 70, False, "used"),
                lq(lq_three, t0 + 60, True, "ok"),
                lq(lq_three, t0 + 61, True, "ok"),
                lq(lq_three, t0 + 62, True, "ok"),
                lq(lq_three, t0 + 63, False, "used"),
                lq(lq_three, t0 + 49 * 3600, False, "expired"),
                lq("LE1" + "A" * 40, t0, False, "malformed"),
                lq(
                    lq_three.text()[:-2] + ("AA" if lq_three.text()[-2:] != "AA" else "BA"),
                    t0,
                    False,
                    "wrong-code",
                ),
            ],
        ),
        dict(
            base,
            name="one-time store full",
            max_used=1,
            steps=[
                lq(lq_once, t0 + 60, True, "ok"),
                kp(once, t0 + 100, False, "store-full"),
            ],
        ),
    ]
    out_sc = []
    for sc in scenarios:
        v = make_verifier(sc)
        for i, step in enumerate(sc["steps"]):
            expect = step.pop("expect", {})
            v, out = run_step(v, sc, step)
            for key, val in expect.items():
                assert out[key] == val, (sc["name"], i, key, out[key], val)
            if step["op"] in ("keypad", "long"):
                assert out["hmacs"] == (
                    2
                    if step["op"] == "keypad" and out["reason"] != "lockout" and len(step["entry"]) == 10
                    else out["hmacs"]
                )
            step.update(out)
        out_sc.append(sc)
    issued = []
    for code, target, p, su, var, ser in (
        (w5, dev, prof(pc.WINDOW, pc.DEVICE, pc.HOUR, 5), t0 // 3600, 0, 3),
        (month, dev, prof(pc.WINDOW, pc.DEVICE, pc.DAY, 31), t0 // 86400, 0, 7),
        (daily, dev, daily_p, t0 // 86400, pc.daily_variant(1, 4), 0),
        (setup, dev, prof(pc.SETUP, pc.DEVICE, pc.DAY, 0), 0, 0, 42),
    ):
        issued.append(
            {
                "root": root.hex(),
                "target": target,
                "profile": p,
                "start_unit": su,
                "variant": var,
                "serial": ser,
                "digits": code.digits,
                "code_id": code.code_id,
                "window": [code.start, code.end],
            }
        )
    write("passcode", {"scenarios": out_sc, "issued": issued})


def seal_vectors() -> None:
    """AES-128-CBC blocks (FIPS 197 C.1 plus random ones from `cryptography`)
    and sealed lock entries for tests/shared/test_lock_entries.py."""
    import os

    from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes

    from gateway import lockentry
    from protocol import seal

    def cbc(k: bytes, iv: bytes, pt: bytes) -> bytes:
        e = Cipher(algorithms.AES(k), modes.CBC(iv)).encryptor()
        return e.update(pt) + e.finalize()

    fips_k = bytes(range(16))
    fips_pt = bytes.fromhex("00112233445566778899aabbccddeeff")
    fips_ct = cbc(fips_k, bytes(16), fips_pt)
    assert fips_ct.hex() == "69c4e0d86a7b0430d8cdb78070b4c55a"  # FIPS 197 appendix C.1
    blocks = [{"key": fips_k.hex(), "iv": "00" * 16, "pt": fips_pt.hex(), "ct": fips_ct.hex()}]
    for n in (1, 2, 5, 32):
        k, iv, pt = os.urandom(16), os.urandom(16), os.urandom(16 * n)
        blocks.append({"key": k.hex(), "iv": iv.hex(), "pt": pt.hex(), "ct": cbc(k, iv, pt).hex()})

    root = bytes(range(32))
    now = 1795000000 - 1795000000 % 3600  # NOW of tests/shared/test_lock_core.py
    exp = now + 10 * 86400
    bid = [bytes((i,)) * 16 for i in range(5)]

    def tpl(seed: int) -> bytes:
        return bytes((seed * 13 + i) & 0xFF for i in range(512))

    k1 = lockentry.seal_key(root, "lock-1")
    k2 = lockentry.seal_key(root, "lock-2")
    spec = [
        ("add-p42", k1, "lock-1", bid[1], 1, 0, "add", "p-0042", exp, [(1, tpl(7))]),
        ("add-p7", k1, "lock-1", bid[1], 1, 1, "add", "p-7", exp, [(2, tpl(1))]),
        ("replace-p42", k1, "lock-1", bid[2], 2, 0, "replace", "p-0042", exp, [(1, tpl(9)), (6, tpl(10))]),
        ("delfinger-p42", k1, "lock-1", bid[2], 2, 1, "del-finger", "p-0042", exp, [(6, b"")]),
        ("delperson-p7", k1, "lock-1", bid[3], 3, 0, "del-person", "p-7", exp, []),
        ("other-lock", k2, "lock-2", bid[3], 3, 1, "add", "p-1", exp, [(1, tpl(3))]),
        ("wrong-key", k2, "lock-1", bid[3], 3, 2, "add", "p-1", exp, [(1, tpl(3))]),
        ("expired", k1, "lock-1", bid[4], 4, 0, "add", "p-9", now - 1, [(1, tpl(4))]),
        ("many", k1, "lock-1", bid[4], 4, 1, "add", "p-10", exp, [(f, tpl(20 + f)) for f in range(4)]),
    ]
    entries: dict[str, Any] = {}
    for name, key, lock, b, seq, idx, op, person, expires, tpls in spec:
        m = lockentry.plain(lock, b, seq, idx, op, person, expires, tpls)
        token = lockentry.seal_entry(key, m, now - 3600, iv=bytes((seq, idx)) * 8)
        if key == k1 and lock == "lock-1" and expires > now:
            assert seal.open_entry(key, token, lock, now).person == person
        entries[name] = token.hex()
    t = bytearray(bytes.fromhex(entries["add-p42"]))
    t[40] ^= 1
    entries["tampered"] = t.hex()
    write("seal", {"aes_cbc": blocks, "entries": entries, "now": now})


if __name__ == "__main__":
    cbor_vectors()
    crypto_vectors()
    envelope_vectors()
    record_vectors()
    passcode_vectors()
    seal_vectors()
