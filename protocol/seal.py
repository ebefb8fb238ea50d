# Bundle entries sealed to one lock (docs/protocol.md section 5).
#
# The office seals each lock's part of a biometric bundle to that lock's
# `seal` key (keys.derive(root, "seal", lock id)); the gateway relays the
# sealed bytes and cannot read or alter them. The scheme is Fernet
# (AES-128-CBC + HMAC-SHA256, encrypt-then-MAC) with the token carried as raw
# bytes rather than base64:
#
#   0x80 | created (8 bytes, big-endian) | IV (16) | ciphertext | HMAC (32)
#
# Fernet key = the 32-byte seal key: HMAC key first 16 bytes, AES key last 16.
# The office uses `cryptography.fernet.Fernet` (base64-decoding its token);
# the lock checks the MAC in constant time before decrypting anything.
#
# The plaintext is a CBOR map that names what it is for, so a valid entry
# for one lock, bundle or position cannot be replayed as another:
#
#   1: 1 (version)   2: lock id   3: bundle id (16 bytes)
#   4: issuer sequence of the bundle   5: entry index within the bundle
#   6: op ("add" | "replace" | "del-finger" | "del-person")
#   7: person id (pseudonymous, 1..40 chars)   8: expires (Unix seconds)
#   9: [[finger position 0..10, template bytes], ...]   (add, replace: 1..4
#      templates; del-finger: positions with empty bytes; del-person: [])
#
# The lock answers every entry that opened with a delivery receipt (an
# envelope of type "receipt", MACed with a key derived from the seal key):
# the office and the cloud can check it, the gateway that carries it cannot
# forge it. It is the office's proof that a deletion reached the door.

from protocol import aes, cbor, envelope
from protocol.crypto import ct_equal, hkdf, hmac_parts
from protocol.errors import BAD_KEY, BAD_TAG, INVALID, MALFORMED, TOO_LARGE, VERSION, ProtocolError

VERSION_BYTE = 0x80
MAX_TOKEN = 4096  # four 768-byte templates and the framing fit inside
MAX_TEMPLATE = 768
# Per entry. A person's further fingers go in further `add` entries: the
# lock opens an entry in RAM, and four templates keep that within its heap
# budget (bench/README.md: firmware peak bound).
MAX_TEMPLATES = 4
OPS = ("add", "replace", "del-finger", "del-person")
DELETIONS = ("del-finger", "del-person")
EXPIRED = "expired"
WRONG_LOCK = "wrong-lock"
RECEIPT = "receipt"
MAX_RECEIPT = 512


class Entry:
    def __init__(self, lock, bundle, seq, idx, op, person, expires, templates):  # type: ignore[no-untyped-def]
        self.lock = lock
        self.bundle = bundle
        self.seq = seq
        self.idx = idx
        self.op = op
        self.person = person
        self.expires = expires
        self.templates = templates  # [(finger, bytes)]; never logged

    def __repr__(self) -> str:
        # Templates stay out of every repr and traceback.
        return "Entry(%s #%d.%d %s %s, %d templates)" % (
            self.lock,
            self.seq,
            self.idx,
            self.op,
            self.person,
            len(self.templates),
        )


def _int(v: object, lo: int, hi: int) -> int:
    if not isinstance(v, int) or isinstance(v, bool) or v < lo or v > hi:
        raise ProtocolError(INVALID, "entry field out of range")
    return v


def _text(v: object, hi: int) -> str:
    if not isinstance(v, str) or not (0 < len(v) <= hi):
        raise ProtocolError(INVALID, "entry text field of wrong type or length")
    return v


def check_plain(m: object) -> Entry:
    """Validate a decoded plaintext map (both sides use this)."""
    if not isinstance(m, dict):
        raise ProtocolError(MALFORMED, "entry is not a map")
    if m.get(1) != 1:
        raise ProtocolError(VERSION, "unknown entry version")
    for k in m:
        if not isinstance(k, int) or isinstance(k, bool) or k < 1 or k > 9:
            raise ProtocolError(INVALID, "unknown entry field")
    for k in range(1, 10):
        if k not in m:
            raise ProtocolError(INVALID, "entry field %d missing" % k)
    bundle = m[3]
    if not isinstance(bundle, bytes) or len(bundle) != 16:
        raise ProtocolError(INVALID, "bundle id must be 16 bytes")
    op = m[6]
    if op not in OPS:
        raise ProtocolError(INVALID, "unknown entry operation")
    tpls = m[9]
    if not isinstance(tpls, list) or len(tpls) > MAX_TEMPLATES:
        raise ProtocolError(INVALID, "templates must be a list of at most %d" % MAX_TEMPLATES)
    out = []
    fingers = []
    for t in tpls:
        if not isinstance(t, list) or len(t) != 2 or not isinstance(t[1], bytes):
            raise ProtocolError(INVALID, "template item must be [finger, bytes]")
        f = _int(t[0], 0, 10)
        if f in fingers:
            raise ProtocolError(INVALID, "finger position repeated")
        fingers.append(f)
        if op in ("add", "replace"):
            if not (0 < len(t[1]) <= MAX_TEMPLATE):
                raise ProtocolError(INVALID, "template size out of range")
        elif t[1]:
            raise ProtocolError(INVALID, "a deletion carries no template bytes")
        out.append((f, t[1]))
    if op in ("add", "replace", "del-finger") and not out:
        raise ProtocolError(INVALID, "operation needs at least one finger")
    if op == "del-person" and out:
        raise ProtocolError(INVALID, "del-person carries no fingers")
    return Entry(
        _text(m[2], 64),
        bundle,
        _int(m[4], 0, 0xFFFFFFFFFFFF),
        _int(m[5], 0, 0xFFFFFF),
        op,
        _text(m[7], 40),
        _int(m[8], 0, 0xFFFFFFFFFF),
        out,
    )


def open_entry(seal_key: bytes, token: bytes, lock_id: str, now: "int | None") -> Entry:
    """Authenticate, decrypt and validate one sealed entry for this lock.
    `now` None (clock unset) skips only the expiry check: the MAC and the
    lock's rollback mark still hold."""
    if not isinstance(seal_key, (bytes, bytearray)) or len(seal_key) != 32:
        raise ProtocolError(BAD_KEY, "seal key must be 32 bytes")
    if not isinstance(token, (bytes, bytearray)):
        raise ProtocolError(MALFORMED, "sealed entry must be bytes")
    if len(token) > MAX_TOKEN:
        raise ProtocolError(TOO_LARGE, "sealed entry too large")
    n = len(token)
    if n < 1 + 8 + 16 + 16 + 32 or (n - 1 - 8 - 16 - 32) % 16:
        raise ProtocolError(MALFORMED, "sealed entry has the wrong length")
    if token[0] != VERSION_BYTE:
        raise ProtocolError(VERSION, "unknown sealing version")
    mv = memoryview(token)
    if not ct_equal(hmac_parts(bytes(seal_key[:16]), (mv[: n - 32],)), bytes(mv[n - 32 :])):
        raise ProtocolError(BAD_TAG, "sealed entry does not authenticate")
    plain = aes.cbc_decrypt(bytes(seal_key[16:]), bytes(mv[9:25]), mv[25 : n - 32])
    pad = plain[-1]
    ok = 1 <= pad <= 16
    for i in range(1, pad + 1 if ok else 1):
        ok = ok and plain[-i] == pad
    if not ok:  # authenticated but badly padded: the sealer is broken, not an attacker
        raise ProtocolError(MALFORMED, "sealed entry padding")
    e = check_plain(cbor.decode(bytes(memoryview(plain)[: len(plain) - pad])))
    if e.lock != lock_id:
        raise ProtocolError(WRONG_LOCK, "entry is sealed for another lock")
    # A deletion never expires: a moved-out tenant's finger must stop opening
    # the door however long the lock was away (an expired add may be refused).
    if now is not None and now >= e.expires and e.op not in DELETIONS:
        raise ProtocolError(EXPIRED, "entry expired")
    return e


def receipt_key(seal_key: bytes) -> bytes:
    """The receipt MAC key: held by whoever holds the seal key (the lock, the
    office, the cloud), never by the gateway; a key of its own, so a receipt
    is never mistaken for anything sealed with the seal key itself."""
    if not isinstance(seal_key, (bytes, bytearray)) or len(seal_key) != 32:
        raise ProtocolError(BAD_KEY, "seal key must be 32 bytes")
    return hkdf(bytes(seal_key), b"lockedge/v1", b"lockedge/v1/receipt", 32)


def receipt(k_receipt: bytes, lock_id: str, seq: int, ts: int, e: Entry, result: str) -> bytes:
    """The lock's delivery receipt for an entry that opened."""
    body = {1: e.bundle, 2: e.seq, 3: e.idx, 4: e.op, 5: e.person, 6: result}
    return envelope.seal(k_receipt, RECEIPT, lock_id, seq, ts, body)


def open_receipt(seal_key: bytes, lock_id: str, data: object) -> dict:
    """Check a delivery receipt from `lock_id` -> {"bundle", "seq", "idx",
    "op", "person", "result"}; ProtocolError (bad-tag, malformed, ...) else."""
    if not isinstance(data, (bytes, bytearray)) or len(data) > MAX_RECEIPT:
        raise ProtocolError(MALFORMED, "receipt must be bytes of at most %d" % MAX_RECEIPT)
    env = envelope.verify(envelope.parse(bytes(data)), receipt_key(seal_key))
    b = env.body
    if env.type != RECEIPT or env.sender != lock_id or not isinstance(b, dict):
        raise ProtocolError(MALFORMED, "not a delivery receipt from this lock")
    bid = b.get(1)
    if not isinstance(bid, bytes) or len(bid) != 16 or b.get(4) not in OPS:
        raise ProtocolError(INVALID, "receipt fields")
    return {
        "bundle": bid,
        "seq": _int(b.get(2), 0, 2**63 - 1),
        "idx": _int(b.get(3), 0, 100000),
        "op": b[4],
        "person": _text(b.get(5), 40),
        "result": _text(b.get(6), 24),
    }
