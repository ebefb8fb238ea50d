"""Seal bundle entries to one lock (the office side of protocol/seal.py).

Fernet from `cryptography` does the sealing; its base64 token is decoded to
the raw bytes the lock reads, so the lock never needs a base64 step and the
entry is a third smaller on the local link.
"""

from __future__ import annotations

import base64
import os

from cryptography.fernet import Fernet

from protocol import cbor, keys, seal


def seal_key(root: bytes, lock_id: str) -> bytes:
    return keys.derive(root, keys.SEAL, lock_id)


def plain(
    lock_id: str,
    bundle_id: bytes,
    seq: int,
    idx: int,
    op: str,
    person: str,
    expires: int,
    templates: list[tuple[int, bytes]],
) -> dict[int, object]:
    m: dict[int, object] = {
        1: 1,
        2: lock_id,
        3: bundle_id,
        4: seq,
        5: idx,
        6: op,
        7: person,
        8: expires,
        9: [[f, t] for f, t in templates],
    }
    seal.check_plain(m)  # refuse to produce what the lock would refuse
    return m


def seal_entry(key: bytes, m: dict[int, object], now: int, iv: bytes | None = None) -> bytes:
    f = Fernet(base64.urlsafe_b64encode(key))
    data = cbor.encode(m)
    if iv is None:
        token = f.encrypt_at_time(data, now)
    else:  # fixed IV: only for reproducible test vectors
        token = f._encrypt_from_parts(data, now, iv)
    return base64.urlsafe_b64decode(token)


def random_bundle_id() -> bytes:
    return os.urandom(16)
