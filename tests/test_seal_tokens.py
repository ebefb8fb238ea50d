"""Sealed entries whose MAC is genuine and whose inside is not (protocol/seal.py):
a broken sealer, not an attacker, but the lock must still refuse with the
exact reason. Tokens are built here with `cryptography`'s AES-CBC, with the
padding and lengths chosen by the test (written from the mutation run:
these checks had no test)."""

from __future__ import annotations

import hashlib
import hmac
import os

import pytest
from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes

from protocol import cbor, seal
from protocol.errors import ProtocolError

KEY = bytes(range(32))


def token(plain: bytes, pad: bytes | None = None, created: int = 1_795_000_000) -> bytes:
    """Fernet as raw bytes, with `pad` appended as given (None: PKCS7)."""
    if pad is None:
        n = 16 - len(plain) % 16
        pad = bytes([n]) * n
    iv = os.urandom(16)
    enc = Cipher(algorithms.AES(KEY[16:]), modes.CBC(iv)).encryptor()
    ct = enc.update(plain + pad) + enc.finalize()
    body = b"\x80" + created.to_bytes(8, "big") + iv + ct
    return body + hmac.new(KEY[:16], body, hashlib.sha256).digest()


def reason(tok: bytes) -> str:
    with pytest.raises(ProtocolError) as e:
        seal.open_entry(KEY, tok, "lock-1", 1_795_000_000)
    return e.value.reason


def test_padding_is_checked_byte_by_byte_under_a_genuine_mac() -> None:
    small = cbor.encode({1: 1})  # opens, then fails the field checks
    assert reason(token(small)) == "invalid-field"
    block = 16 - len(small) % 16
    assert reason(token(small, bytes([0]) * block)) == "malformed"  # pad 0
    assert reason(token(small + bytes(block), bytes([17]) * 16)) == "malformed"  # pad 17 > a block
    wrong = bytes([block]) * (block - 1)
    assert reason(token(small, bytes([block - 1]) + wrong)) == "malformed"  # first pad byte differs
    assert reason(token(small, wrong + bytes([block - 1]))) == "malformed"  # last pad byte differs
    full = bytes(15) + b"\x10"  # a whole block whose last byte says 16, the rest is not padding
    assert reason(token(small + bytes(16 - len(small) % 16), full)) == "malformed"
    assert (
        reason(token(cbor.encode({1: 1}) + bytes(block - 1), b"\x01")) == "malformed"
    )  # pad 1: junk before it


def test_lengths_at_their_edges() -> None:
    one_block = token(cbor.encode({1: 1}), bytes([13]) * 13)  # 1 + 8 + 16 + 16 + 32 = 73 bytes, the least
    assert len(one_block) == 73
    assert reason(one_block) == "invalid-field"  # long enough: it opens and fails the field checks
    assert reason(one_block[:-1]) == "malformed"
    assert reason(one_block[:72]) == "malformed"
    assert reason(one_block + bytes(1)) == "malformed"  # not a whole number of blocks
    big = token(b"\xa0" + bytes(4096 - 73 - 15 - 1 - 16), None)
    assert len(big) <= seal.MAX_TOKEN and reason(big) == "malformed"  # opens; trailing bytes after the map
    assert reason(bytes(seal.MAX_TOKEN + 1)) == "too-large"
    assert reason("not bytes") == "malformed"  # type: ignore[arg-type]


def test_an_entry_expires_at_its_expiry_not_a_second_later() -> None:
    from gateway import lockentry

    m = lockentry.plain("lock-1", bytes(16), 1, 0, "add", "p-1", 1_795_000_100, [(1, b"t" * 10)])
    tok = lockentry.seal_entry(KEY, m, 1_795_000_000)
    assert seal.open_entry(KEY, tok, "lock-1", 1_795_000_099).person == "p-1"
    with pytest.raises(ProtocolError) as e:
        seal.open_entry(KEY, tok, "lock-1", 1_795_000_100)
    assert e.value.reason == "expired"


def test_padding_of_one_and_of_a_whole_block_open_and_one_past_a_block_does_not() -> None:
    # Contents chosen so a token opens to its field checks (invalid-field)
    # exactly when its padding is right: any other outcome is "malformed".
    fifteen = cbor.encode({1: 1, 2: "x" * 10})
    assert len(fifteen) == 15
    assert reason(token(fifteen)) == "invalid-field"  # PKCS7 pad 1
    assert reason(token(fifteen + b"\x00", bytes([16]) * 16)) == "malformed"  # a block of 16s after junk
    assert reason(token(fifteen, bytes([17]) * 17)) == "malformed"  # 17 bytes of 17: past a block
    sixteen = cbor.encode({1: 1, 2: "x" * 11})
    assert reason(token(sixteen)) == "invalid-field"  # PKCS7 pad 16: a whole block
    # A pad byte over the plaintext's length (one block, last byte 200).
    assert reason(token(b"", bytes(15) + bytes([200]))) == "malformed"


def test_every_token_length_is_refused_by_length_or_checked_by_its_mac() -> None:
    # 1 version byte, 8 time, 16 IV, at least one 16-byte block, 32 MAC: a
    # length that cannot be that is "malformed"; one that can goes on to
    # the MAC, which a zero tag fails.
    for n in range(0, 300):
        tok = b"\x80" + bytes(max(0, n - 1))
        tok = tok[:n]
        want = "bad-tag" if n >= 73 and (n - 57) % 16 == 0 else "malformed"
        assert reason(tok) == want, n
    assert reason(b"\x80" + bytes(seal.MAX_TOKEN - 1)) == "malformed"  # at the limit, not a whole block
    assert reason(b"\x80" + bytes(4089 - 1)) == "bad-tag"  # the longest whole one under it
    assert reason(b"\x80" + bytes(seal.MAX_TOKEN)) == "too-large"


def test_the_receipt_key_is_hkdf_as_documented() -> None:
    # An independent HKDF-SHA256 (RFC 5869, from `cryptography`): salt
    # "lockedge/v1", info "lockedge/v1/receipt", 32 bytes.
    from cryptography.hazmat.primitives import hashes
    from cryptography.hazmat.primitives.kdf.hkdf import HKDF

    for key in (KEY, bytes(32), bytes([0xFF]) * 32):
        want = HKDF(hashes.SHA256(), 32, b"lockedge/v1", b"lockedge/v1/receipt").derive(key)
        assert seal.receipt_key(key) == want
        assert seal.receipt_key(bytearray(key)) == want  # type: ignore[arg-type]
