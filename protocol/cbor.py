# Deterministic CBOR (RFC 8949 section 4.2.1, "core deterministic encoding")
# for the subset the protocol uses: unsigned/negative integers (64-bit
# range), byte strings, text strings, arrays, maps (int/text/bytes keys),
# false, true, null.
#
# The encoder emits preferred (shortest) argument encodings, definite
# lengths only, and map keys sorted bytewise by their own encoding. The
# decoder is the trust boundary for everything that arrives from a network
# or a USB stick, so it is strict: it accepts exactly the bytes this encoder
# would produce for the decoded value and raises ProtocolError for anything
# else (non-shortest arguments, unsorted or duplicate keys, indefinite
# lengths, tags, floats, undefined, invalid UTF-8, trailing bytes), with
# bounded depth, bounded input size, and no allocation driven by a length
# field larger than the bytes actually present.
#
# One codec for both interpreters. Tests prove it byte-identical to an
# independent cbor2-based encoder (tests/cbor2_reference.py). cbor2 itself
# is for the gateway's own CRC-checked storage, which reads back only what
# it wrote and can skip the strictness (about 10x faster to decode).

import sys

from protocol.errors import (
    MALFORMED,
    NON_CANONICAL,
    TOO_DEEP,
    TOO_LARGE,
    UNSUPPORTED,
    ProtocolError,
)

MAX_DEPTH = 16
MAX_SIZE = 65536

_U64 = 0x10000000000000000  # 2**64: arguments are 64-bit

_MICROPYTHON = sys.implementation.name == "micropython"


def _head(out: bytearray, major: int, arg: int) -> None:
    mt = major << 5
    if arg < 24:
        out.append(mt | arg)
    elif arg < 0x100:
        out.append(mt | 24)
        out.append(arg)
    elif arg < 0x10000:
        out.append(mt | 25)
        out.extend(arg.to_bytes(2, "big"))
    elif arg < 0x100000000:
        out.append(mt | 26)
        out.extend(arg.to_bytes(4, "big"))
    else:
        out.append(mt | 27)
        out.extend(arg.to_bytes(8, "big"))


def _enc(out: bytearray, v: object, depth: int) -> None:
    # `type(v) is bool` first: on CPython bool is an int subclass.
    if v is None:
        out.append(0xF6)
    elif v is True:
        out.append(0xF5)
    elif v is False:
        out.append(0xF4)
    elif isinstance(v, int):
        if v >= 0:
            if v >= _U64:
                raise ProtocolError(UNSUPPORTED, "integer out of 64-bit range")
            _head(out, 0, v)
        else:
            if v < -_U64:
                raise ProtocolError(UNSUPPORTED, "integer out of 64-bit range")
            _head(out, 1, -1 - v)
    elif isinstance(v, (bytes, bytearray)):
        _head(out, 2, len(v))
        out.extend(v)
    elif isinstance(v, str):
        b = v.encode("utf-8")
        _head(out, 3, len(b))
        out.extend(b)
    elif isinstance(v, (list, tuple)):
        if depth >= MAX_DEPTH:
            raise ProtocolError(TOO_DEEP, "nesting deeper than %d" % MAX_DEPTH)
        _head(out, 4, len(v))
        for item in v:
            _enc(out, item, depth + 1)
    elif isinstance(v, dict):
        if depth >= MAX_DEPTH:
            raise ProtocolError(TOO_DEEP, "nesting deeper than %d" % MAX_DEPTH)
        _head(out, 5, len(v))
        if _small_int_keys(v):
            # The common case (protocol maps keyed 0..23): each key encodes
            # as one byte equal to its value, so bytewise order is numeric
            # order and no per-key buffers are needed (matters on the lock).
            for k in sorted(v):
                out.append(k)
                _enc(out, v[k], depth + 1)
            return
        pairs = []
        for k, val in v.items():
            if k is True or k is False or not isinstance(k, (int, str, bytes)):
                raise ProtocolError(UNSUPPORTED, "map key of type %s" % type(k).__name__)
            kbuf = bytearray()
            _enc(kbuf, k, depth + 1)
            pairs.append((bytes(kbuf), val))
        pairs.sort(key=_first)
        for kb, val in pairs:
            out.extend(kb)
            _enc(out, val, depth + 1)
    else:
        raise ProtocolError(UNSUPPORTED, "cannot encode type %s" % type(v).__name__)


def _first(pair: tuple) -> bytes:
    return pair[0]


def _small_int_keys(d: dict) -> bool:
    for k in d:
        if k is True or k is False or not isinstance(k, int) or k < 0 or k > 23:
            return False
    return True


def encode(value: object) -> bytes:
    """Deterministic CBOR encoding of `value` (pure Python, both interpreters)."""
    out = bytearray()
    _enc(out, value, 0)
    return bytes(out)


def _utf8_strict(b: bytes) -> str:
    # MicroPython's str decoding accepts overlong forms and surrogates; a lock
    # and a gateway must agree on which texts are valid, so check RFC 3629
    # well-formedness here before decoding.
    i = 0
    n = len(b)
    while i < n:
        c = b[i]
        if c < 0x80:
            i += 1
            continue
        if 0xC2 <= c <= 0xDF:
            need, lo, hi = 1, 0x80, 0xBF
        elif c == 0xE0:
            need, lo, hi = 2, 0xA0, 0xBF
        elif 0xE1 <= c <= 0xEC or 0xEE <= c <= 0xEF:
            need, lo, hi = 2, 0x80, 0xBF
        elif c == 0xED:
            need, lo, hi = 2, 0x80, 0x9F
        elif c == 0xF0:
            need, lo, hi = 3, 0x90, 0xBF
        elif 0xF1 <= c <= 0xF3:
            need, lo, hi = 3, 0x80, 0xBF
        elif c == 0xF4:
            need, lo, hi = 3, 0x80, 0x8F
        else:
            raise ProtocolError(MALFORMED, "invalid UTF-8 in text string")
        if i + need >= n:
            raise ProtocolError(MALFORMED, "invalid UTF-8 in text string")
        d = b[i + 1]
        if d < lo or d > hi:
            raise ProtocolError(MALFORMED, "invalid UTF-8 in text string")
        for j in range(i + 2, i + 1 + need):
            if b[j] & 0xC0 != 0x80:
                raise ProtocolError(MALFORMED, "invalid UTF-8 in text string")
        i += need + 1
    return b.decode("utf-8")


def _utf8_native(b: bytes) -> str:
    try:
        return b.decode("utf-8")
    except UnicodeError:
        raise ProtocolError(MALFORMED, "invalid UTF-8 in text string") from None


_text = _utf8_strict if _MICROPYTHON else _utf8_native


def _cmp_spans(b: bytes, a0: int, a1: int, b0: int, b1: int) -> int:
    # Bytewise comparison of b[a0:a1] and b[b0:b1] without slicing (no
    # allocation per map key on the lock).
    n = min(a1 - a0, b1 - b0)
    for i in range(n):
        x = b[a0 + i]
        y = b[b0 + i]
        if x != y:
            return -1 if x < y else 1
    return (a1 - a0) - (b1 - b0)


class _Decoder:
    def __init__(self, data: bytes, max_depth: int) -> None:
        self.data = data
        self.pos = 0
        self.max_depth = max_depth

    def _fail(self, reason: str, what: str) -> ProtocolError:
        return ProtocolError(reason, "%s at byte %d" % (what, self.pos))

    def _take(self, n: int) -> bytes:
        end = self.pos + n
        if end > len(self.data):
            raise self._fail(MALFORMED, "truncated input")
        b = self.data[self.pos : end]
        self.pos = end
        return b

    def _byte(self) -> int:
        if self.pos >= len(self.data):
            raise self._fail(MALFORMED, "truncated input")
        b = self.data[self.pos]
        self.pos += 1
        return b

    def _arg(self, ai: int) -> int:
        if ai < 24:
            return ai
        if ai == 24:
            v = self._byte()
            if v < 24:
                raise self._fail(NON_CANONICAL, "argument not in shortest form")
            return v
        if ai == 25:
            v = int.from_bytes(self._take(2), "big")
            if v < 0x100:
                raise self._fail(NON_CANONICAL, "argument not in shortest form")
            return v
        if ai == 26:
            v = int.from_bytes(self._take(4), "big")
            if v < 0x10000:
                raise self._fail(NON_CANONICAL, "argument not in shortest form")
            return v
        if ai == 27:
            v = int.from_bytes(self._take(8), "big")
            if v < 0x100000000:
                raise self._fail(NON_CANONICAL, "argument not in shortest form")
            return v
        if ai == 31:
            raise self._fail(UNSUPPORTED, "indefinite length")
        raise self._fail(MALFORMED, "reserved additional information %d" % ai)

    def item(self, depth: int) -> object:
        ib = self._byte()
        major = ib >> 5
        ai = ib & 0x1F
        if major == 7:
            if ai == 20:
                return False
            if ai == 21:
                return True
            if ai == 22:
                return None
            if ai < 24 or ai == 24:
                raise self._fail(UNSUPPORTED, "simple value")
            if ai <= 27:
                raise self._fail(UNSUPPORTED, "floating-point number")
            if ai == 31:
                raise self._fail(MALFORMED, "unexpected break")
            raise self._fail(MALFORMED, "reserved simple value encoding")
        if major == 6:
            raise self._fail(UNSUPPORTED, "tag")
        arg = self._arg(ai)
        if major == 0:
            return arg
        if major == 1:
            return -1 - arg
        remaining = len(self.data) - self.pos
        if major == 2:
            if arg > remaining:
                raise self._fail(MALFORMED, "byte string longer than input")
            return self._take(arg)
        if major == 3:
            if arg > remaining:
                raise self._fail(MALFORMED, "text string longer than input")
            return _text(self._take(arg))
        if depth >= self.max_depth:
            raise self._fail(TOO_DEEP, "nesting deeper than %d" % self.max_depth)
        if major == 4:
            # Every item takes at least one byte: a count larger than what is
            # left is malformed, and is refused before anything is allocated.
            if arg > remaining:
                raise self._fail(MALFORMED, "array count larger than input")
            out = []
            for _ in range(arg):
                out.append(self.item(depth + 1))
            return out
        # major == 5
        if arg * 2 > remaining:
            raise self._fail(MALFORMED, "map count larger than input")
        m = {}
        prev_start = prev_end = 0
        for i in range(arg):
            start = self.pos
            k = self.item(depth + 1)
            if k is True or k is False or k is None or isinstance(k, (list, dict)):
                raise self._fail(UNSUPPORTED, "map key of this type")
            if i:
                c = _cmp_spans(self.data, prev_start, prev_end, start, self.pos)
                if c == 0:
                    raise self._fail(NON_CANONICAL, "duplicate map key")
                if c > 0:
                    raise self._fail(NON_CANONICAL, "map keys not in bytewise order")
            prev_start = start
            prev_end = self.pos
            m[k] = self.item(depth + 1)
        return m


def decode(data: bytes, max_depth: int = MAX_DEPTH, max_size: int = MAX_SIZE) -> object:
    """Strictly decode one deterministic CBOR item that spans all of `data`."""
    if not isinstance(data, (bytes, bytearray)):
        raise ProtocolError(MALFORMED, "input is not bytes")
    if len(data) > max_size:
        raise ProtocolError(TOO_LARGE, "input of %d bytes over limit %d" % (len(data), max_size))
    d = _Decoder(data if isinstance(data, bytes) else bytes(data), max_depth)
    value = d.item(0)
    if d.pos != len(d.data):
        raise ProtocolError(MALFORMED, "trailing bytes after item at byte %d" % d.pos)
    return value
