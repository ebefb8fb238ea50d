# HMAC-SHA256 (RFC 2104), HKDF-SHA256 (RFC 5869) and a constant-time
# comparison that run on both interpreters.
#
# CPython uses its C `hmac` (same results, checked by the RFC 4231 and
# RFC 5869 vectors in tests/vectors). MicroPython's micropython-lib `hmac`
# defaults to MD5 and has no compare_digest, so the lock uses the small
# implementation below over the built-in hashlib.sha256.

import hashlib

from protocol.errors import BAD_KEY, ProtocolError

try:
    import hmac as _hmac

    _NATIVE = hasattr(_hmac, "compare_digest")
except ImportError:
    _NATIVE = False

_BLOCK = 64
_IPAD = bytes(0x36 for _ in range(_BLOCK))
_OPAD = bytes(0x5C for _ in range(_BLOCK))


def _xor(a: bytes, b: bytes) -> bytes:
    return bytes(x ^ y for x, y in zip(a, b))


def _hmac_pure(key: bytes, parts: "list | tuple") -> bytes:
    if len(key) > _BLOCK:
        key = hashlib.sha256(key).digest()
    key = key + bytes(_BLOCK - len(key))
    inner = hashlib.sha256(_xor(key, _IPAD))
    for p in parts:
        inner.update(p)
    outer = hashlib.sha256(_xor(key, _OPAD))
    outer.update(inner.digest())
    return outer.digest()


def _hmac_c(key: bytes, parts: "list | tuple") -> bytes:
    h = _hmac.new(key, None, hashlib.sha256)
    for p in parts:
        h.update(p)
    return h.digest()


hmac_parts = _hmac_c if _NATIVE else _hmac_pure


def hmac_sha256(key: bytes, msg: bytes) -> bytes:
    return hmac_parts(key, (msg,))


def ct_equal(a: bytes, b: bytes) -> bool:
    """Compare two MACs in time that depends only on their (public) length."""
    if _NATIVE:
        return _hmac.compare_digest(a, b)
    if len(a) != len(b):
        return False
    r = 0
    for x, y in zip(a, b):
        r |= x ^ y
    return r == 0


def hkdf_extract(salt: bytes, ikm: bytes) -> bytes:
    return hmac_sha256(salt if salt else bytes(32), ikm)


def hkdf_expand(prk: bytes, info: bytes, length: int) -> bytes:
    if length < 1 or length > 255 * 32:
        raise ProtocolError(BAD_KEY, "HKDF output length out of range")
    out = b""
    t = b""
    i = 1
    while len(out) < length:
        t = hmac_sha256(prk, t + info + bytes((i,)))
        out += t
        i += 1
    return out[:length]


def hkdf(ikm: bytes, salt: bytes, info: bytes, length: int) -> bytes:
    return hkdf_expand(hkdf_extract(salt, ikm), info, length)
