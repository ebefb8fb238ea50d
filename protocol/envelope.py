# The authenticated message envelope (COSE_Mac0-like), used for commands,
# acks, events and pass-record batches. Sans-I/O: callers pass bytes, keys
# and sequence numbers in; nothing here reads a clock or a socket.
#
# Wire form, a CBOR array of three byte strings:
#
#   [ protected, body, tag ]
#
#   protected = deterministic CBOR map
#       1: version (uint, 1)     2: type (text)      3: sender id (text)
#       4: seq (uint >= 1)       5: ts (uint, Unix seconds; 0 = clock unset)
#       6: recipient id (text, optional)
#   body      = deterministic CBOR of the message body
#   tag       = HMAC-SHA256(key, CBOR(["LEMac1", protected, body]))
#
# Header and body travel as byte strings so the MAC covers the exact bytes
# received: the verifier never re-encodes anything before checking the tag.
# docs/protocol.md spells out the bytes with a worked example.

from protocol import cbor
from protocol.crypto import ct_equal, hmac_parts
from protocol.errors import (
    BAD_KEY,
    BAD_TAG,
    DUPLICATE,
    INVALID,
    MALFORMED,
    STALE,
    UNKNOWN_SENDER,
    VERSION,
    ProtocolError,
)
from protocol.keys import check_device_id

VERSION_1 = 1
CONTEXT = "LEMac1"
TAG_LEN = 32
MAX_ENVELOPE = 65536
MAX_SEQ = 0x7FFFFFFFFFFFFFFF
MAX_TS = 0xFFFFFFFF  # Unix seconds, fits until 2106

_H_VERSION = 1
_H_TYPE = 2
_H_SENDER = 3
_H_SEQ = 4
_H_TS = 5
_H_RCPT = 6
_KNOWN = (_H_VERSION, _H_TYPE, _H_SENDER, _H_SEQ, _H_TS, _H_RCPT)

_TYPE_CHARS = "abcdefghijklmnopqrstuvwxyz0123456789.-"


def _check_type(t: object) -> str:
    if not isinstance(t, str) or not (0 < len(t) <= 16) or not ("a" <= t[0] <= "z"):
        raise ProtocolError(INVALID, "message type must be 1..16 chars [a-z0-9.-]")
    for ch in t:
        if ch not in _TYPE_CHARS:
            raise ProtocolError(INVALID, "message type must be 1..16 chars [a-z0-9.-]")
    return t


def _check_uint(v: object, hi: int, what: str, lo: int = 0) -> int:
    if not isinstance(v, int) or v is True or v is False or v < lo or v > hi:
        raise ProtocolError(INVALID, "%s out of range" % what)
    return v


def _check_key(key: object) -> bytes:
    if not isinstance(key, (bytes, bytearray)) or len(key) < 16:
        raise ProtocolError(BAD_KEY, "MAC key must be at least 16 bytes")
    return bytes(key)


def _mac_parts(protected: bytes, body: "bytes | bytearray") -> tuple:
    # The pieces of CBOR(["LEMac1", protected, body]), hashed in order so the
    # body is never copied into a second buffer (a 1 KB batch on the lock).
    h1 = bytearray(b"\x83\x66LEMac1")
    cbor._head(h1, 2, len(protected))
    h2 = bytearray()
    cbor._head(h2, 2, len(body))
    return (bytes(h1), protected, bytes(h2), body)


def _mac_input(protected: bytes, body: bytes) -> bytes:
    return b"".join(_mac_parts(protected, body))


class Envelope:
    """A parsed envelope. `body` is set only once the tag has been verified."""

    def __init__(
        self,
        version: int,
        type: str,
        sender: str,
        seq: int,
        ts: int,
        rcpt: "str | None",
        protected: bytes,
        body_bytes: bytes,
        tag: bytes,
    ) -> None:
        self.version = version
        self.type = type
        self.sender = sender
        self.seq = seq
        self.ts = ts
        self.rcpt = rcpt
        self.protected = protected
        self.body_bytes = body_bytes
        self.tag = tag
        self.body: object = None
        self.verified = False

    def __repr__(self) -> str:
        # No body, no tag: reprs end up in logs.
        return "Envelope(type=%s sender=%s seq=%d ts=%d verified=%s)" % (
            self.type,
            self.sender,
            self.seq,
            self.ts,
            self.verified,
        )


def seal(
    key: bytes,
    type: str,
    sender: str,
    seq: int,
    ts: int,
    body: object,
    rcpt: "str | None" = None,
) -> bytes:
    """Build and MAC an envelope. `key` is the purpose key for this message."""
    return seal_encoded(key, type, sender, seq, ts, cbor.encode(body), rcpt)


def seal_encoded(
    key: bytes,
    type: str,
    sender: str,
    seq: int,
    ts: int,
    body_bytes: "bytes | bytearray",
    rcpt: "str | None" = None,
) -> bytes:
    """seal() for a body that is already deterministic CBOR (the lock builds
    record batches from journaled bytes without decoding them)."""
    key = _check_key(key)
    header = {
        _H_VERSION: VERSION_1,
        _H_TYPE: _check_type(type),
        _H_SENDER: check_device_id(sender),
        _H_SEQ: _check_uint(seq, MAX_SEQ, "sequence number", 1),
        _H_TS: _check_uint(ts, MAX_TS, "timestamp"),
    }
    if rcpt is not None:
        header[_H_RCPT] = check_device_id(rcpt)
    protected = cbor.encode(header)
    tag = hmac_parts(key, _mac_parts(protected, body_bytes))
    # [protected, body, tag] as CBOR, written into one buffer of the final
    # size: what cbor.encode would produce, without its regrowth and copy
    # (on the lock a record batch is several KB).
    heads = []
    size = 1
    for part in (protected, body_bytes, tag):
        h = bytearray()
        cbor._head(h, 2, len(part))
        heads.append(h)
        size += len(h) + len(part)
    if size > MAX_ENVELOPE:
        raise ProtocolError(INVALID, "envelope of %d bytes over limit %d" % (size, MAX_ENVELOPE))
    out = bytearray(size)
    out[0] = 0x83
    pos = 1
    for h, part in ((heads[0], protected), (heads[1], body_bytes), (heads[2], tag)):
        out[pos : pos + len(h)] = h
        pos += len(h)
        out[pos : pos + len(part)] = part
        pos += len(part)
    return bytes(out)  # immutable and hashable like every other envelope


def parse(data: bytes, max_size: int = MAX_ENVELOPE) -> Envelope:
    """Decode the structure and header. Unauthenticated: use for routing only."""
    outer = cbor.decode(data, 2, max_size)
    if not isinstance(outer, list) or len(outer) != 3:
        raise ProtocolError(MALFORMED, "envelope is not a 3-element array")
    protected, body_bytes, tag = outer
    if not isinstance(protected, bytes) or not isinstance(body_bytes, bytes) or not isinstance(tag, bytes):
        raise ProtocolError(MALFORMED, "envelope elements must be byte strings")
    if len(tag) != TAG_LEN:
        raise ProtocolError(MALFORMED, "tag must be %d bytes" % TAG_LEN)
    h = cbor.decode(protected, 1, max_size)
    if not isinstance(h, dict):
        raise ProtocolError(MALFORMED, "protected header is not a map")
    for k in h:
        if k not in _KNOWN:
            raise ProtocolError(INVALID, "unknown header field")
    version = h.get(_H_VERSION)
    if version != VERSION_1 or version is True:
        raise ProtocolError(VERSION, "unsupported envelope version")
    for k in (_H_TYPE, _H_SENDER, _H_SEQ, _H_TS):
        if k not in h:
            raise ProtocolError(INVALID, "header field %d missing" % k)
    rcpt = h.get(_H_RCPT)
    if rcpt is not None:
        rcpt = check_device_id(rcpt)
    return Envelope(
        VERSION_1,
        _check_type(h[_H_TYPE]),
        check_device_id(h[_H_SENDER]),
        _check_uint(h[_H_SEQ], MAX_SEQ, "sequence number", 1),
        _check_uint(h[_H_TS], MAX_TS, "timestamp"),
        rcpt,
        protected,
        body_bytes,
        tag,
    )


def verify(env: Envelope, key: bytes, max_depth: int = cbor.MAX_DEPTH) -> Envelope:
    """Check the tag in constant time, then decode the body."""
    key = _check_key(key)
    expect = hmac_parts(key, _mac_parts(env.protected, env.body_bytes))
    if not ct_equal(expect, env.tag):
        raise ProtocolError(BAD_TAG, "message authentication failed for sender %s" % env.sender)
    env.body = cbor.decode(env.body_bytes, max_depth, len(env.body_bytes))
    env.verified = True
    return env


class ReplayWindow:
    """Sliding anti-replay window over one sender's sequence numbers
    (the RFC 4303 section 3.4.3 scheme): accepts each number once, tolerates
    reordering within `size`, refuses anything older."""

    def __init__(self, size: int = 64, highest: int = 0, bitmap: int = 0) -> None:
        if size < 1 or size > 1024:
            raise ProtocolError(INVALID, "replay window size out of range")
        self.size = size
        self.highest = highest
        self.bitmap = bitmap & ((1 << size) - 1)

    def check(self, seq: int) -> None:
        if seq > self.highest:
            return
        diff = self.highest - seq
        if diff >= self.size:
            raise ProtocolError(STALE, "sequence %d older than window (highest %d)" % (seq, self.highest))
        if (self.bitmap >> diff) & 1:
            raise ProtocolError(DUPLICATE, "sequence %d already accepted" % seq)

    def accept(self, seq: int) -> None:
        self.check(seq)
        if seq > self.highest:
            shift = seq - self.highest
            if shift >= self.size:
                self.bitmap = 1
            else:
                self.bitmap = ((self.bitmap << shift) | 1) & ((1 << self.size) - 1)
            self.highest = seq
        else:
            self.bitmap |= 1 << (self.highest - seq)

    def state(self) -> list:
        return [self.highest, self.bitmap]


class Receiver:
    """Verifies envelopes from many senders and rejects replays.

    `key_for(sender, type)` returns the key that must have MACed a message of
    that type from that sender, or None if the sender is unknown. Windows are
    created only after a tag verifies, so unauthenticated traffic cannot grow
    this object. The caller persists `state()` (a lock must, or a reboot
    would reopen old sequence numbers) and restores it with `load()`.
    """

    def __init__(self, key_for, window: int = 64, max_senders: int = 4096) -> None:  # type: ignore[no-untyped-def]
        self.key_for = key_for
        self.window = window
        self.max_senders = max_senders
        self.windows: dict = {}

    def open(self, data: bytes, max_size: int = MAX_ENVELOPE) -> Envelope:
        env = parse(data, max_size)
        key = self.key_for(env.sender, env.type)
        if key is None:
            raise ProtocolError(UNKNOWN_SENDER, "no key for sender %s" % env.sender)
        w = self.windows.get(env.sender)
        if w is not None:
            w.check(env.seq)  # cheap rejection of replays before the MAC
        verify(env, key)
        if w is None:
            if len(self.windows) >= self.max_senders:
                raise ProtocolError(INVALID, "too many senders tracked")
            w = ReplayWindow(self.window)
            self.windows[env.sender] = w
        w.accept(env.seq)
        return env

    def state(self) -> dict:
        out = {}
        for sender, w in self.windows.items():
            out[sender] = w.state()
        return out

    def load(self, state: dict) -> None:
        for sender, hw in state.items():
            self.windows[sender] = ReplayWindow(self.window, hw[0], hw[1])
