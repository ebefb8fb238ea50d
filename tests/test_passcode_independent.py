"""The pass-code vectors derived a second time, from docs/passcodes.md and
docs/protocol.md alone (issue 21): HKDF from RFC 5869 with hmac/hashlib,
the MAC input with cbor2, the profile table from the page's prose. The
vectors in tests/vectors/passcode.json are written by the code under test
(tests/vectors/generate.py), so without this a wrong algorithm would only
show as a changed vector, never as a wrong one."""

from __future__ import annotations

import hashlib
import hmac
import json
from pathlib import Path

import cbor2

VECTORS = json.loads((Path(__file__).parent / "vectors" / "passcode.json").read_text())

HOURS_SHORT = [*range(1, 25), 36, 48, 72]
DAYS_WINDOW = [*range(2, 32), 62, 92, 183, 366]
DAYS_ONCE = [2, 3, 4, 5, 6, 7]
DAILY_LENGTHS = [2, 4, 8, 12]


def hkdf(ikm: bytes, salt: bytes, info: bytes) -> bytes:
    prk = hmac.new(salt, ikm, hashlib.sha256).digest()
    return hmac.new(prk, info + b"\x01", hashlib.sha256).digest()  # L = 32: one block


def code_key(root: bytes, target: str) -> bytes:
    return hkdf(root, b"lockedge/v1", b"lockedge/v1/code/" + target.encode())


def profiles() -> list[tuple[int, int, int]]:
    """(modulus M, variants, serials) per profile number, in the page's order."""
    out = []
    for serials, day_windows in ((20, DAYS_WINDOW), (25, list(range(2, 32)))):
        out += [(h + 2, 1, serials) for h in HOURS_SHORT]  # hourly one-time
        out += [(h + 2, 1, serials) for h in HOURS_SHORT]  # hourly window
        out += [(d + 1, 1, serials) for d in day_windows]  # day windows
        out += [(d + 1, 1, serials) for d in DAYS_ONCE]  # day one-time
    out += [(r + 1, 24 * len(DAILY_LENGTHS), 1) for r in (7, 31, 92)]  # recurring daily
    out.append((1, 1, 100))  # setup
    return out


def test_the_table_has_the_documented_size() -> None:
    t = profiles()
    assert len(t) == 188
    assert sum(m * v * s for m, v, s in t) == 98_018


def test_every_issued_vector_is_derived_again_from_the_docs() -> None:
    t = profiles()
    offsets = [sum(m * v * s for m, v, s in t[:i]) for i in range(len(t))]
    assert VECTORS["issued"]
    for v in VECTORS["issued"]:
        root, target = bytes.fromhex(v["root"]), v["target"]
        p, start, variant, serial = v["profile"], v["start_unit"], v["variant"], v["serial"]
        m, variants, _s = t[p]
        h = hmac.new(
            code_key(root, target), cbor2.dumps(["LEPC1", target, p, start, variant, serial]), "sha256"
        )
        d = h.digest()
        payload = offsets[p] + start % m + m * (variant + variants * serial)
        mac = int.from_bytes(d[:8], "big") % 100_000
        assert v["digits"] == "%010d" % (payload * 100_000 + mac), v
        assert v["code_id"] == "pc-" + d[8:14].hex(), v


def test_the_independent_derivation_is_not_a_copy() -> None:
    # A mutated algorithm gives other digits: the check above can fail.
    v = VECTORS["issued"][0]
    root, target = bytes.fromhex(v["root"]), v["target"]
    wrong = hmac.new(code_key(root, target), cbor2.dumps(["LEPC2", target, v["profile"]]), "sha256").digest()
    assert v["code_id"] != "pc-" + wrong[8:14].hex()
