# Helpers for tests that run unchanged on CPython (pytest) and on MicroPython
# (tests/mpy/run_tests.py): plain asserts, no pytest imports.
import binascii
import json
import os

from protocol.errors import ProtocolError

_HERE = __file__.rsplit("/", 1)[0] if "/" in __file__ else "."
VECTORS = _HERE.rsplit("/", 1)[0] + "/vectors"


def unhex(s: str) -> bytes:
    return binascii.unhexlify(s)


def tohex(b: bytes) -> str:
    return binascii.hexlify(b).decode()


def load_vectors(name: str) -> dict:
    with open(VECTORS + "/" + name + ".json", encoding="utf-8") as f:
        return json.load(f)


def from_json(v: object) -> object:
    """Typed JSON -> value: {"$bytes": hex}, {"$map": [[k, v], ...]}."""
    if isinstance(v, dict):
        if "$bytes" in v:
            return unhex(v["$bytes"])
        if "$map" in v:
            out = {}
            for kv in v["$map"]:
                out[from_json(kv[0])] = from_json(kv[1])
            return out
        raise ValueError("bad typed JSON object")
    if isinstance(v, list):
        return [from_json(x) for x in v]
    return v


def to_json(v: object) -> object:
    if isinstance(v, (bytes, bytearray)):
        return {"$bytes": tohex(bytes(v))}
    if isinstance(v, dict):
        return {"$map": [[to_json(k), to_json(x)] for k, x in v.items()]}
    if isinstance(v, (list, tuple)):
        return [to_json(x) for x in v]
    return v


_dirs = [0]


def fresh_dir(tag: str) -> str:
    """An empty directory under /tmp (both interpreters have one)."""
    _dirs[0] += 1
    d = "/tmp/lockedge-%s-%d-%d" % (tag, id(_dirs) % 100000, _dirs[0])
    try:
        os.mkdir(d)
    except OSError:
        for f in os.listdir(d):
            os.remove(d + "/" + f)
    return d


def raises(expect, fn, *args, **kwargs):
    """Assert fn(*args, **kwargs) raises ProtocolError with `reason`; return the error."""
    try:
        fn(*args, **kwargs)
    except ProtocolError as e:
        assert e.reason == expect, "expected reason %s, got %s (%s)" % (expect, e.reason, e)
        return e
    raise AssertionError("expected ProtocolError(%s), nothing raised" % expect)
