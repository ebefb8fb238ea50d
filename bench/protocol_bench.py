"""Protocol core benchmark: the project's codec beside cbor2, envelope verify
on both interpreters, and the MicroPython heap a 20-record batch costs.

    .venv/bin/python bench/protocol_bench.py            # full run
    .venv/bin/python bench/protocol_bench.py --quick    # smoke run (make test)

Every figure is measured in this run; anchors (cbor2) are measured in the
same run on the same data, and ratios are printed beside them.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from collections.abc import Callable
from pathlib import Path

import cbor2

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from protocol import cbor, envelope, keys, record  # noqa: E402
from tests import cbor2_reference  # noqa: E402
from tests.conftest import run_micropython  # noqa: E402


def batch_records(n: int = 20) -> list[record.PassRecord]:
    return [
        record.PassRecord(
            "lock-0001",
            1000 + i,
            1795000000 + 60 * i,
            "door-1",
            "code" if i % 3 else "finger",
            "pc-%d" % i,
            i % 4 != 0,
            "ok" if i % 4 != 0 else "wrong-code",
        )
        for i in range(n)
    ]


def per_call_us(fn: Callable[[], object], min_time: float) -> float:
    """Best of 5 rounds, each long enough to dwarf timer resolution."""
    n = 1
    while True:
        t0 = time.perf_counter()
        for _ in range(n):
            fn()
        if time.perf_counter() - t0 > min_time / 5:
            break
        n *= 2
    best = float("inf")
    for _ in range(5):
        t0 = time.perf_counter()
        for _ in range(n):
            fn()
        best = min(best, (time.perf_counter() - t0) / n)
    return best * 1e6


MP_SCRIPT = """
import gc, time, json
from protocol import cbor, envelope, keys, record
ITER = %(iter)d
recs = [record.PassRecord('lock-0001', 1000 + i, 1795000000 + 60 * i, 'door-1',
        'code' if i %% 3 else 'finger', 'pc-%%d' %% i, i %% 4 != 0,
        'ok' if i %% 4 != 0 else 'wrong-code') for i in range(20)]
out = {}
gc.collect(); gc.disable()
a0 = gc.mem_alloc()
data = record.encode_batch(recs)
out['heap_encode_batch'] = gc.mem_alloc() - a0
gc.collect()
a0 = gc.mem_alloc()
back = record.decode_batch(data)
out['heap_decode_batch'] = gc.mem_alloc() - a0
gc.enable(); gc.collect()
assert back == recs
out['batch_bytes'] = len(data)
body = record.batch_body(recs)
t0 = time.ticks_us()
for _ in range(ITER):
    cbor.encode(body)
out['encode_us'] = time.ticks_diff(time.ticks_us(), t0) / ITER
t0 = time.ticks_us()
for _ in range(ITER):
    cbor.decode(data)
out['decode_us'] = time.ticks_diff(time.ticks_us(), t0) / ITER
k = keys.derive(bytes(32), keys.UPLINK, 'lock-0001')
small = envelope.seal(k, 'evt', 'lock-0001', 1, 1795000000, {1: 'door', 2: 'open'})
big = envelope.seal(k, 'rec', 'lock-0001', 1, 1795000000, body)
for name, w in (('verify_small_us', small), ('verify_batch_us', big)):
    t0 = time.ticks_us()
    for _ in range(ITER):
        envelope.verify(envelope.parse(w), k)
    out[name] = time.ticks_diff(time.ticks_us(), t0) / ITER
gc.collect()
a0 = gc.mem_alloc(); gc.disable()
envelope.verify(envelope.parse(big), k)
out['heap_verify_batch'] = gc.mem_alloc() - a0
gc.enable()
print(json.dumps(out))
"""


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--quick", action="store_true", help="smoke run: tiny iteration counts")
    args = ap.parse_args()
    min_time = 0.02 if args.quick else 0.5
    mp_iter = 5 if args.quick else 200

    recs = batch_records()
    body = record.batch_body(recs)
    data = cbor.encode(body)
    assert cbor2_reference.dumps(body) == data
    k = keys.derive(bytes(32), keys.UPLINK, "lock-0001")
    small = envelope.seal(k, "evt", "lock-0001", 1, 1795000000, {1: "door", 2: "open"})
    big = envelope.seal(k, "rec", "lock-0001", 1, 1795000000, body)

    cp = {
        "encode ours": per_call_us(lambda: cbor.encode(body), min_time),
        "encode cbor2 bytewise": per_call_us(lambda: cbor2_reference.dumps(body), min_time),
        "encode cbor2 canonical": per_call_us(lambda: cbor2.dumps(body, canonical=True), min_time),
        "decode ours": per_call_us(lambda: cbor.decode(data), min_time),
        "decode cbor2": per_call_us(lambda: cbor2.loads(data), min_time),
        "verify small": per_call_us(lambda: envelope.verify(envelope.parse(small), k), min_time),
        "verify batch": per_call_us(lambda: envelope.verify(envelope.parse(big), k), min_time),
    }
    out = run_micropython(MP_SCRIPT % {"iter": mp_iter}, timeout=600)
    mp = json.loads(out.strip().splitlines()[-1])

    print(
        f"protocol bench ({'quick' if args.quick else 'full'}), batch of 20 pass records = {len(data)} bytes"
    )
    print(f"{'operation':<34}{'CPython ours':>14}{'anchor':>14}{'ours/anchor':>13}{'MicroPython':>14}")
    rows = [
        (
            "encode 20-record batch (us)",
            cp["encode ours"],
            cp["encode cbor2 canonical"],
            mp["encode_us"],
            "cbor2 canonical (length-first order)",
        ),
        (
            "  cbor2 with RFC 8949 map order",
            cp["encode cbor2 bytewise"],
            cp["encode cbor2 canonical"],
            None,
            "",
        ),
        (
            "decode 20-record batch (us)",
            cp["decode ours"],
            cp["decode cbor2"],
            mp["decode_us"],
            "cbor2.loads (no strictness checks)",
        ),
        ("verify envelope, small event (us)", cp["verify small"], None, mp["verify_small_us"], ""),
        ("verify envelope, 20-record batch (us)", cp["verify batch"], None, mp["verify_batch_us"], ""),
    ]
    for name, ours, anchor, mpv, _note in rows:
        a = f"{anchor:14.1f}" if anchor else f"{'-':>14}"
        r = f"{ours / anchor:12.2f}x" if anchor else f"{'-':>13}"
        m = f"{mpv:14.1f}" if mpv is not None else f"{'-':>14}"
        print(f"{name:<34}{ours:14.1f}{a}{r}{m}")
    print("anchors: encode = cbor2 canonical=True; decode = cbor2.loads; both C, same data, same run")
    print(
        f"MicroPython/CPython time ratio, verify small: {mp['verify_small_us'] / cp['verify small']:.1f}x "
        "(WebAssembly port under Node, not an ESP32)"
    )
    print("MicroPython heap (gc.mem_alloc delta, gc disabled during the call):")
    print(f"  encode 20-record batch: {mp['heap_encode_batch']} bytes")
    print(f"  decode 20-record batch: {mp['heap_decode_batch']} bytes")
    print(f"  parse+verify batch envelope: {mp['heap_verify_batch']} bytes")
    return 0


if __name__ == "__main__":
    sys.exit(main())
