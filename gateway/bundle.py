"""Encrypted biometric bundles (docs/bundle.md): build at the office, open
at the gateway.

A bundle file (`*.lkb`) is deterministic CBOR:

    [protected, ciphertext, signature]

    protected = CBOR map {1: format "LKB1", 2: bundle id (16 bytes),
        3: issuer key id (8 bytes), 4: created, 5: expires (Unix seconds),
        6: issuer sequence number, 7: [recipient key ids], 8: KEM name,
        9: site}
    ciphertext = HPKE (RFC 9180) single-shot encryption of the payload to
        the recipient gateway's public key; suite KEM (ML-KEM-768 + X25519
        by default, X25519 as the compatible choice), HKDF-SHA256,
        AES-256-GCM; info = "lockedge bundle v1" || protected
    signature = Ed25519 by the issuer over CBOR ["LKBSig1", protected,
        ciphertext]: the exact bytes as they sit in the file.

The payload is CBOR {1: [operation, ...], 2: {lock id: [sealed entry,
...]}}; an operation is {1: "add" | "replace" | "del-finger" |
"del-person", 2: person id, 3: [[finger position, ISO 19794-2 record],
...]}. Entries for locks are sealed to each lock's own key
(protocol/seal.py) and relayed unopened.

Refusals (BundleError.reason): malformed, too-large, version,
unknown-issuer, bad-signature, wrong-recipient, expired, rollback,
decrypt-failed, invalid-field. The signature is checked before anything
is decrypted; the payload is checked in full before anything is applied.
"""

from __future__ import annotations

import hashlib
import os
from dataclasses import dataclass, field
from typing import Any

import cbor2
from cryptography.exceptions import InvalidSignature, InvalidTag
from cryptography.hazmat.primitives import serialization as ser
from cryptography.hazmat.primitives.asymmetric import ed25519, mlkem, x25519
from cryptography.hazmat.primitives.hpke import (
    AEAD,
    KDF,
    KEM,
    MLKEM768X25519PrivateKey,
    MLKEM768X25519PublicKey,
    Suite,
)

from protocol import cbor
from protocol.errors import ProtocolError

FORMAT = "LKB1"
SIG_LABEL = "LKBSig1"
INFO = b"lockedge bundle v1"
MAX_BUNDLE = 64 * 1024 * 1024
MAX_TEMPLATE = 4096
OPS = ("add", "replace", "del-finger", "del-person")
KEM_HYBRID = "mlkem768-x25519"
KEM_X25519 = "x25519"
_KEMS = {KEM_HYBRID: KEM.MLKEM768_X25519, KEM_X25519: KEM.X25519}


class BundleError(Exception):
    def __init__(self, reason: str, message: str) -> None:
        super().__init__(f"{reason}: {message}")
        self.reason = reason


def key_id(public_bytes: bytes) -> bytes:
    return hashlib.sha256(public_bytes).digest()[:8]


# -- keys -----------------------------------------------------------------------


class RecipientKey:
    """A gateway's bundle decryption key (private), for either KEM. `secret`
    is what its 0600 key file holds: CBOR [kem, raw private parts]."""

    def __init__(self, secret: bytes) -> None:
        try:
            v = cbor.decode(secret)
            if not isinstance(v, list) or not v or v[0] not in _KEMS:
                raise ValueError
            if v[0] == KEM_X25519:
                self.private: Any = x25519.X25519PrivateKey.from_private_bytes(v[1])
            else:
                self.private = MLKEM768X25519PrivateKey(
                    mlkem.MLKEM768PrivateKey.from_seed_bytes(v[1]),
                    x25519.X25519PrivateKey.from_private_bytes(v[2]),
                )
        except Exception:
            raise ValueError("not a lockedge bundle key file") from None  # never echo key bytes
        self.kem: str = v[0]
        self.secret = secret

    @staticmethod
    def new(kem: str = KEM_HYBRID) -> RecipientKey:
        xk = x25519.X25519PrivateKey.generate().private_bytes(
            ser.Encoding.Raw, ser.PrivateFormat.Raw, ser.NoEncryption()
        )
        if kem == KEM_X25519:
            return RecipientKey(cbor.encode([KEM_X25519, xk]))
        if kem == KEM_HYBRID:
            return RecipientKey(cbor.encode([KEM_HYBRID, os.urandom(64), xk]))  # ML-KEM seed, X25519 key
        raise ValueError(f"unknown KEM {kem!r}")

    def public_blob(self) -> bytes:
        """What the office needs to encrypt to this gateway (not secret):
        CBOR [kem, public parts]."""
        v = cbor.decode(self.secret)
        assert isinstance(v, list)
        xpub = (
            x25519.X25519PrivateKey.from_private_bytes(v[-1])
            .public_key()
            .public_bytes(ser.Encoding.Raw, ser.PublicFormat.Raw)
        )
        if self.kem == KEM_X25519:
            return cbor.encode([KEM_X25519, xpub])
        mpub = mlkem.MLKEM768PrivateKey.from_seed_bytes(v[1]).public_key().public_bytes_raw()
        return cbor.encode([KEM_HYBRID, mpub, xpub])

    def public_id(self) -> bytes:
        return key_id(self.public_blob())

    def __repr__(self) -> str:
        return f"RecipientKey({self.kem}, id {self.public_id().hex()})"


def recipient_public(blob: bytes) -> tuple[str, Any]:
    """(kem, public key object) from a gateway's public blob."""
    v = cbor.decode(blob)
    if not isinstance(v, list) or not v or v[0] not in _KEMS:
        raise ValueError("not a lockedge gateway public key")
    if v[0] == KEM_X25519:
        return KEM_X25519, x25519.X25519PublicKey.from_public_bytes(v[1])
    return KEM_HYBRID, MLKEM768X25519PublicKey(
        mlkem.MLKEM768PublicKey.from_public_bytes(v[1]), x25519.X25519PublicKey.from_public_bytes(v[2])
    )


def signer_id(pub: ed25519.Ed25519PublicKey) -> bytes:
    return key_id(pub.public_bytes(ser.Encoding.Raw, ser.PublicFormat.Raw))


def _suite(kem: str) -> Suite:
    return Suite(_KEMS[kem], KDF.HKDF_SHA256, AEAD.AES_256_GCM)


# -- payload --------------------------------------------------------------------


@dataclass
class Operation:
    op: str
    person: str
    templates: list[tuple[int, bytes]] = field(default_factory=list)

    def __repr__(self) -> str:  # templates stay out of reprs
        return f"Operation({self.op} {self.person}, {len(self.templates)} templates)"


@dataclass
class Payload:
    operations: list[Operation]
    lock_entries: dict[str, list[bytes]]

    def encode(self) -> bytes:
        ops = [{1: o.op, 2: o.person, 3: [[f, t] for f, t in o.templates]} for o in self.operations]
        return cbor.encode({1: ops, 2: self.lock_entries})

    def __repr__(self) -> str:
        return f"Payload({len(self.operations)} operations, {len(self.lock_entries)} locks)"


def _person(v: object) -> str:
    if not isinstance(v, str) or not (0 < len(v) <= 40) or "/" in v:
        raise BundleError("invalid-field", "person id must be 1..40 characters without '/'")
    return v


def payload_from(data: bytes) -> Payload:
    try:
        m = cbor2.loads(data)
    except Exception:  # cbor2 raises several types for junk; all mean the same here
        raise BundleError("malformed", "payload is not CBOR") from None
    if not isinstance(m, dict) or set(m) - {1, 2} or not isinstance(m.get(1), list):
        raise BundleError("malformed", "payload is not {1: operations, 2: lock entries}")
    ops = []
    for i, o in enumerate(m[1]):
        if not isinstance(o, dict) or o.get(1) not in OPS:
            raise BundleError("invalid-field", f"operation {i} is not one of {', '.join(OPS)}")
        tpls = o.get(3, [])
        if not isinstance(tpls, list) or len(tpls) > 10:
            raise BundleError("invalid-field", f"operation {i}: templates must be a list of at most 10")
        out = []
        for t in tpls:
            ok = (
                isinstance(t, list) and len(t) == 2 and type(t[0]) is int and isinstance(t[1], bytes)
            )  # not a bool
            if not ok or not 0 <= t[0] <= 10 or len(t[1]) > MAX_TEMPLATE:
                raise BundleError("invalid-field", f"operation {i}: a template is not [finger 0..10, bytes]")
            out.append((t[0], t[1]))
        if o[1] in ("add", "replace") and not all(t for _f, t in out):
            raise BundleError("invalid-field", f"operation {i}: {o[1]} needs template bytes")
        ops.append(Operation(o[1], _person(o.get(2)), out))
    ent = m.get(2, {})
    if not isinstance(ent, dict) or not all(
        isinstance(k, str) and isinstance(v, list) and all(isinstance(b, bytes) for b in v)
        for k, v in ent.items()
    ):
        raise BundleError("malformed", "lock entries must map lock ids to lists of sealed bytes")
    return Payload(ops, ent)


# -- bundle -----------------------------------------------------------------------


@dataclass
class Header:
    bundle_id: bytes
    issuer: bytes
    created: int
    expires: int
    seq: int
    recipients: list[bytes]
    kem: str
    site: str


def _sig_input(protected: bytes, ciphertext: bytes) -> bytes:
    return cbor.encode([SIG_LABEL, protected, ciphertext])


def build(
    payload: Payload,
    signer: ed25519.Ed25519PrivateKey,
    recipient_blob: bytes,
    seq: int,
    site: str,
    created: int,
    expires: int,
    bundle_id: bytes | None = None,
) -> bytes:
    bid = bundle_id or os.urandom(16)
    kem, recipient = recipient_public(recipient_blob)
    prot = cbor.encode({1: FORMAT, 2: bid, 3: signer_id(signer.public_key()), 4: created,
                        5: expires, 6: seq, 7: [key_id(recipient_blob)], 8: kem, 9: site})  # fmt: skip
    ct = _suite(kem).encrypt(payload.encode(), recipient, info=INFO + prot)
    sig = signer.sign(_sig_input(prot, ct))
    return cbor.encode([prot, ct, sig])


def _uint(v: object) -> bool:
    return type(v) is int and v >= 0


def read_header(data: bytes) -> tuple[Header, bytes, bytes, bytes]:
    """Structure only, unauthenticated: (header, protected, ciphertext,
    signature). Everything here comes from a stick before any signature is
    checked, so it is decoded by the strict decoder (one item spanning all
    the bytes: junk appended to a signed bundle is refused) and every field
    is type-checked before it is used (hashed, compared, listed): nothing
    in a file can raise anything but BundleError."""
    if len(data) > MAX_BUNDLE:
        raise BundleError("too-large", f"bundle of {len(data)} bytes over {MAX_BUNDLE}")
    try:
        outer = cbor.decode(data, 4, MAX_BUNDLE)
    except ProtocolError:
        raise BundleError("malformed", "not a lockedge bundle (not one deterministic CBOR item)") from None
    if not (isinstance(outer, list) and len(outer) == 3 and all(isinstance(x, bytes) for x in outer)):
        raise BundleError("malformed", "not a lockedge bundle ([protected, ciphertext, signature])")
    prot, ct, sig = outer
    try:
        h = cbor.decode(prot, 4, 64 * 1024)
    except ProtocolError:
        raise BundleError("malformed", "bundle header is not deterministic CBOR") from None
    if not isinstance(h, dict) or h.get(1) != FORMAT:
        raise BundleError("version", "unknown bundle format")
    if not all(k in h for k in range(2, 10)):
        raise BundleError("malformed", "bundle header misses a field")
    recipients = h[7]
    ok = (
        isinstance(h[2], bytes) and len(h[2]) == 16 and isinstance(h[3], bytes) and len(h[3]) == 8
        and _uint(h[4]) and _uint(h[5]) and _uint(h[6])
        and isinstance(recipients, list) and 0 < len(recipients) <= 64
        and all(isinstance(r, bytes) and len(r) == 8 for r in recipients)
        and isinstance(h[8], str) and h[8] in _KEMS and isinstance(h[9], str) and len(h[9]) <= 64
        and len(sig) == 64
    )  # fmt: skip
    if not ok:
        raise BundleError("invalid-field", "bundle header field of the wrong type")
    hdr = Header(h[2], h[3], h[4], h[5], h[6], list(recipients), h[8], h[9])
    return hdr, prot, ct, sig


def open_bundle(
    data: bytes,
    issuers: dict[bytes, ed25519.Ed25519PublicKey],
    key: RecipientKey,
    site: str,
    now: int,
    last_seq: dict[bytes, int],
) -> tuple[Header, Payload]:
    """Verify and decrypt; raises BundleError with a distinct reason."""
    hdr, prot, ct, sig = read_header(data)
    pub = issuers.get(hdr.issuer)
    if pub is None:
        raise BundleError("unknown-issuer", f"issuer key {hdr.issuer.hex()} is not trusted here")
    try:
        pub.verify(sig, _sig_input(prot, ct))
    except InvalidSignature:
        raise BundleError("bad-signature", "the issuer's signature does not verify") from None
    if key.public_id() not in hdr.recipients or hdr.site != site or hdr.kem != key.kem:
        raise BundleError("wrong-recipient", "bundle is for another gateway")
    if now >= hdr.expires:
        raise BundleError("expired", "bundle expired")
    if hdr.seq <= last_seq.get(hdr.issuer, -1):
        raise BundleError("rollback", f"sequence {hdr.seq} is not newer than the last imported")
    try:
        plain = _suite(hdr.kem).decrypt(ct, key.private, info=INFO + prot)
    except (InvalidTag, ValueError):
        raise BundleError("decrypt-failed", "payload does not decrypt with this gateway's key") from None
    return hdr, payload_from(plain)
