"""An independent RFC 8949 section 4.2.1 encoder built on cbor2, for tests.

cbor2's own canonical mode orders map keys length-first (RFC 7049 section
3.9), which differs from the bytewise order the protocol uses whenever a
map mixes key types (e.g. {256: 1, "a": 2}). This reference overrides only
map encoding; everything else is cbor2's C encoder, so agreement with
protocol.cbor.encode is a real cross-check. (It is not a fast path: the
override makes it slower than protocol.cbor.encode on protocol maps; see
bench/README.md.)
"""

from __future__ import annotations

from typing import Any

import cbor2

from protocol.errors import UNSUPPORTED, ProtocolError


def _pair_key(pair: tuple[bytes, Any]) -> bytes:
    return pair[0]


def _encode_map(enc: cbor2.CBOREncoder, d: dict[Any, Any]) -> None:
    pairs = []
    for k, v in d.items():
        if isinstance(k, bool) or not isinstance(k, (int, str, bytes)):
            raise ProtocolError(UNSUPPORTED, f"map key of type {type(k).__name__}")
        pairs.append((cbor2.dumps(k), v))
    pairs.sort(key=_pair_key)
    enc.encode_length(5, len(pairs))
    for kb, v in pairs:
        enc.write(kb)
        enc.encode(v)


def _reject(enc: cbor2.CBOREncoder, v: Any) -> None:
    raise ProtocolError(UNSUPPORTED, f"cannot encode type {type(v).__name__}")


_ENCODERS = {dict: _encode_map, float: _reject, set: _reject, frozenset: _reject}


def dumps(value: Any) -> bytes:
    try:
        return cbor2.dumps(value, encoders=_ENCODERS, default=_reject)
    except ProtocolError:
        raise
    except (ValueError, TypeError, RecursionError, OverflowError) as e:
        raise ProtocolError(UNSUPPORTED, f"cannot encode value ({type(e).__name__})") from None
