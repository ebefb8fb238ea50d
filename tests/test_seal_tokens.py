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
    assert len(big) <= seal.MAX_TOKEN and reason(big) in ("malformed", "invalid-field")
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
