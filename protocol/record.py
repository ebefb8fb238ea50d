# Pass records: one per decision at a door or the gate.
#
# A record is a CBOR map with small integer keys (compact on flash and on
# the air):
#
#   1: device id (text)          2: seq (uint >= 1, per device, no gaps)
#   3: time (uint, Unix s; 0 = device clock unset)
#   4: door / gate id (text)     5: credential kind (text, see KINDS)
#   6: credential reference (text <= 40 chars: a code id, person id or
#      command id, never credential material or biometric data)
#   7: granted (bool)            8: reason (text, [a-z0-9-], see docs/protocol.md)
#
# A batch (the body of an envelope of type "rec") is [1, [record, ...]].
# Sequence numbers are per device and contiguous, so the receiver sees any
# loss as a gap.

from protocol import cbor
from protocol.errors import INVALID, MALFORMED, VERSION, ProtocolError
from protocol.keys import check_device_id

KINDS = ("code", "qr", "finger", "remote", "exit", "none")

# Reasons are an open vocabulary (each feature adds its own, listed in
# docs/protocol.md), limited in shape: [a-z0-9-]{1,24}; "ok" when granted.
OK = "ok"

MAX_REF = 40
MAX_BATCH = 500
BATCH_VERSION = 1

_F_DEVICE = 1
_F_SEQ = 2
_F_TIME = 3
_F_DOOR = 4
_F_KIND = 5
_F_REF = 6
_F_GRANTED = 7
_F_REASON = 8
_FIELDS = (_F_DEVICE, _F_SEQ, _F_TIME, _F_DOOR, _F_KIND, _F_REF, _F_GRANTED, _F_REASON)

_REASON_CHARS = "abcdefghijklmnopqrstuvwxyz0123456789-"


def _bad(what: str) -> ProtocolError:
    return ProtocolError(INVALID, "pass record: " + what)


class PassRecord:
    def __init__(
        self,
        device: str,
        seq: int,
        time: int,
        door: str,
        kind: str,
        ref: str,
        granted: bool,
        reason: str,
    ) -> None:
        self.device = device
        self.seq = seq
        self.time = time
        self.door = door
        self.kind = kind
        self.ref = ref
        self.granted = granted
        self.reason = reason
        self.validate()

    def validate(self) -> None:
        check_device_id(self.device)
        check_device_id(self.door)
        if not isinstance(self.seq, int) or self.seq is True or self.seq < 1 or self.seq > 0x7FFFFFFFFFFFFFFF:
            raise _bad("seq out of range")
        t = self.time
        if not isinstance(t, int) or t is True or t is False or t < 0 or t > 0xFFFFFFFF:
            raise _bad("time out of range")
        if self.kind not in KINDS:
            raise _bad("unknown credential kind")
        if not isinstance(self.ref, str) or len(self.ref) > MAX_REF:
            raise _bad("credential reference must be text of at most %d chars" % MAX_REF)
        if self.granted is not True and self.granted is not False:
            raise _bad("granted must be a bool")
        r = self.reason
        if not isinstance(r, str) or not (0 < len(r) <= 24):
            raise _bad("reason must be 1..24 chars")
        for ch in r:
            if ch not in _REASON_CHARS:
                raise _bad("reason must be [a-z0-9-]")
        if self.granted and r != OK:
            raise _bad("a granted record has reason 'ok'")
        if not self.granted and r == OK:
            raise _bad("a denied record needs a reason")

    def to_map(self) -> dict:
        return {
            _F_DEVICE: self.device,
            _F_SEQ: self.seq,
            _F_TIME: self.time,
            _F_DOOR: self.door,
            _F_KIND: self.kind,
            _F_REF: self.ref,
            _F_GRANTED: self.granted,
            _F_REASON: self.reason,
        }

    @classmethod
    def from_map(cls, m: object) -> "PassRecord":
        if not isinstance(m, dict):
            raise ProtocolError(MALFORMED, "pass record is not a map")
        for k in m:
            if k not in _FIELDS:
                raise _bad("unknown field")
        for k in _FIELDS:
            if k not in m:
                raise _bad("field %d missing" % k)
        try:
            return cls(
                m[_F_DEVICE],
                m[_F_SEQ],
                m[_F_TIME],
                m[_F_DOOR],
                m[_F_KIND],
                m[_F_REF],
                m[_F_GRANTED],
                m[_F_REASON],
            )
        except ProtocolError:
            raise
        except (TypeError, ValueError, AttributeError):
            raise _bad("field of the wrong type") from None

    def encode(self) -> bytes:
        return cbor.encode(self.to_map())

    @classmethod
    def decode(cls, data: bytes) -> "PassRecord":
        return cls.from_map(cbor.decode(data, 2, 1024))

    def key(self) -> tuple:
        return (self.device, self.seq)

    def __eq__(self, other: object) -> bool:
        return isinstance(other, PassRecord) and self.to_map() == other.to_map()

    def __repr__(self) -> str:
        return "PassRecord(%s#%d %s %s %s)" % (
            self.device,
            self.seq,
            self.kind,
            "granted" if self.granted else "denied",
            self.reason,
        )


def batch_body(records: list) -> list:
    if len(records) > MAX_BATCH:
        raise _bad("batch of %d over limit %d" % (len(records), MAX_BATCH))
    return [BATCH_VERSION, [r.to_map() for r in records]]


def peek_seq(payload: "bytes | memoryview") -> int:
    """The sequence number of an encoded record, read without decoding it
    (the lock's upload path: key 1, the device text, then key 2, a uint).
    Only for bytes this code encoded and a CRC still covers."""
    if payload[0] != 0xA8 or payload[1] != 0x01 or payload[2] >> 5 != 3:
        raise ProtocolError(MALFORMED, "not an encoded pass record")
    ai = payload[2] & 31
    pos = 3
    if ai == 24:
        ai = payload[3]
        pos = 4
    elif ai > 24:
        raise ProtocolError(MALFORMED, "device id too long")
    pos += ai
    if payload[pos] != 0x02 or payload[pos + 1] >> 5 != 0:
        raise ProtocolError(MALFORMED, "not an encoded pass record")
    ai = payload[pos + 1] & 31
    if ai < 24:
        return ai
    n = 1 << (ai - 24)
    v = 0
    for i in range(n):
        v = (v << 8) | payload[pos + 2 + i]
    return v


def batch_from_encoded(payloads: list) -> bytearray:
    """The deterministic CBOR of batch_body() from records' own encodings:
    an array's encoding is its head followed by its items' encodings."""
    n = len(payloads)
    if n > MAX_BATCH:
        raise _bad("batch of %d over limit %d" % (n, MAX_BATCH))
    if n < 24:
        head = bytes((0x82, BATCH_VERSION, 0x80 | n))
    elif n < 256:
        head = bytes((0x82, BATCH_VERSION, 0x98, n))
    else:  # was computed after a one-byte head that cannot hold n: ValueError from 256 on
        head = bytes((0x82, BATCH_VERSION, 0x99, n >> 8, n & 0xFF))
    size = len(head)
    for p in payloads:
        size += len(p)
    out = bytearray(size)  # sized once: the lock's upload path avoids regrowth
    out[: len(head)] = head
    pos = len(head)
    for p in payloads:  # memoryviews of the journal segment: copied once, here
        out[pos : pos + len(p)] = p
        pos += len(p)
    return out


def encode_batch(records: list) -> bytes:
    return cbor.encode(batch_body(records))


def batch_from_body(body: object) -> list:
    if not isinstance(body, list) or len(body) != 2:
        raise ProtocolError(MALFORMED, "record batch is not [version, records]")
    if body[0] != BATCH_VERSION or body[0] is True:
        raise ProtocolError(VERSION, "unsupported record batch version")
    items = body[1]
    if not isinstance(items, list):
        raise ProtocolError(MALFORMED, "record batch has no record list")
    if len(items) > MAX_BATCH:
        raise _bad("batch of %d over limit %d" % (len(items), MAX_BATCH))
    return [PassRecord.from_map(m) for m in items]


def decode_batch(data: bytes) -> list:
    return batch_from_body(cbor.decode(data, 4))
