"""The gallery's features kept at rest, so a gateway starts deciding fingers
in seconds (feature extraction is about 9 ms a template: 90 s for 10,000).

Derived data only: biometrics.enc (gateway/biostore.py) stays the source of
truth, and this file is rebuilt from it whenever it is missing, damaged,
stale or written by a matcher with other parameters. It holds biometric
features, so it gets the store's protection: AES-256-GCM under the same
at-rest key, 0600, replaced atomically, and rewritten after every import
so a deleted person's features do not stay on disk.

Plaintext: CBOR [version tag, {SHA-256 of the ISO record: [[width, height,
xy float32 (n, 2), theta float32 (n,), bits uint64 (n, ND), mask uint64
(n,), index keys uint32, pair directions uint8, first minutiae uint8],
...]}], one entry per view the gallery enrolled from the record, the
arrays little-endian. The index's keys are kept too: computing them is
most of an enrolment's cost once the cylinders are known. The version tag
names the feature and index parameters; a cache of others is ignored,
never mixed in.
"""

from __future__ import annotations

import hashlib
import logging
import os
from pathlib import Path

import cbor2
import numpy as np
from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from gateway.biometrics import index, iso19794, mcc
from gateway.store import FILE_MODE, atomic_write

log = logging.getLogger("lockedge.gallery")

AAD = b"lockedge gallery features v1"
# Everything extract() reads: features built with other values are others.
TAG = hashlib.sha256(
    repr(
        (3, mcc.R, mcc.NS, mcc.ND, mcc.SIGMA_S, mcc.SIGMA_D, mcc.MU_PSI, mcc.OMEGA, mcc.MIN_VALID_CELLS,
         mcc.MIN_NEIGHBOURS, mcc.MAX_MINUTIAE, index.NEIGHBOURS, index.MIN_DIST, index.MAX_DIST,
         index.DIST_BIN, index.ANGLE_BINS)
    ).encode()
).digest()[:16]  # fmt: skip


def digest(record: bytes) -> bytes:
    return hashlib.sha256(record).digest()


Keys = tuple[np.ndarray, np.ndarray, np.ndarray]
Saved = tuple[mcc.Features, Keys]  # one enrolled view


def _encode(f: mcc.Features, keys: Keys) -> list[object]:
    k, turn, first = keys
    return [
        f.width,
        f.height,
        np.ascontiguousarray(f.xy, "<f4").tobytes(),
        np.ascontiguousarray(f.theta, "<f4").tobytes(),
        np.ascontiguousarray(f.bits, "<u8").tobytes(),
        np.ascontiguousarray(f.mask, "<u8").tobytes(),
        np.ascontiguousarray(k, "<u4").tobytes(),
        np.ascontiguousarray(turn, np.uint8).tobytes(),
        np.ascontiguousarray(first, np.uint8).tobytes(),
    ]


def _decode(v: object) -> Saved:
    if not (isinstance(v, list) and len(v) == 9 and all(isinstance(x, bytes) for x in v[2:])):
        raise ValueError("entry")
    w, h, xy, th, bits, mask, k, turn, first = v
    if not (isinstance(w, int) and isinstance(h, int) and 0 < w < 65536 and 0 < h < 65536):
        raise ValueError("size")
    n = len(th) // 4
    if n > mcc.MAX_MINUTIAE or len(th) != 4 * n or len(xy) != 8 * n or len(bits) != 8 * mcc.ND * n:
        raise ValueError("shape")
    if len(mask) != 8 * n or len(k) % 4 or len(turn) != len(k) // 4 or len(first) != len(turn):
        raise ValueError("shape")
    keys = np.frombuffer(k, "<u4").astype(np.int64)
    anchors = np.frombuffer(first, np.uint8).copy()
    if (keys >= index.KEYS).any() or (anchors >= max(n, 1)).any():
        raise ValueError("index keys")
    f = mcc.Features(
        np.frombuffer(xy, "<f4").reshape(n, 2).astype(np.float32),
        np.frombuffer(th, "<f4").astype(np.float32),
        np.frombuffer(bits, "<u8").reshape(n, mcc.ND).astype(np.uint64),
        np.frombuffer(mask, "<u8").astype(np.uint64),
        w,
        h,
    )
    return f, (keys, np.frombuffer(turn, np.uint8).copy(), anchors)


class FeatureCache:
    def __init__(self, path: Path, key: bytes) -> None:
        self.path = path
        self._aead = AESGCM(key)

    def load(self) -> dict[bytes, list[Saved]]:
        """The saved features by record digest, a list of views each; empty
        (and a warning) when the file is missing, damaged or of other
        features."""
        try:
            blob = self.path.read_bytes()
        except FileNotFoundError:
            return {}
        except OSError as e:
            log.warning("gallery feature cache unreadable (%s): rebuilding from the store", e.strerror)
            return {}
        try:
            plain = self._aead.decrypt(blob[:12], blob[12:], AAD)
            tag, entries = cbor2.loads(plain)
            if tag != TAG:
                log.info("gallery feature cache is of other matcher parameters: rebuilding")
                return {}
            if not isinstance(entries, dict):
                raise ValueError("entries")
            out = {}
            for d, v in entries.items():
                if not isinstance(d, bytes) or len(d) != 32:
                    raise ValueError("digest")
                if not isinstance(v, list) or not 1 <= len(v) <= iso19794.MAX_VIEWS:
                    raise ValueError("views")
                out[d] = [_decode(x) for x in v]
            return out
        except (InvalidTag, ValueError, TypeError, cbor2.CBORDecodeError):
            # Damage or another key: the store is the truth, this is derived.
            log.warning("gallery feature cache damaged: rebuilding from the store")
            return {}

    def save(self, features: dict[bytes, list[Saved]]) -> None:
        plain = cbor2.dumps([TAG, {d: [_encode(f, k) for f, k in views] for d, views in features.items()}])
        nonce = os.urandom(12)
        atomic_write(self.path, nonce + self._aead.encrypt(nonce, plain, AAD), FILE_MODE)
