"""Lock firmware benchmark (issue 4).

    .venv/bin/python bench/firmware_bench.py            # full run
    .venv/bin/python bench/firmware_bench.py --quick    # smoke run

- keypad decision latency in the simulator, last key to strike energised
  (verify + journal fsync + strike), beside the bare verifier call;
- journal append rate (durable) beside raw append + fsync of the same bytes
  on the same file system;
- MicroPython heap (WebAssembly port): live heap after boot with 200
  remembered codes and a 1,000-record backlog, and the bytes allocated by a
  decision and by building an upload batch (goal: <= 48 KB for the app).
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from firmware.fsio import FlashFS  # noqa: E402
from firmware.journal import Journal  # noqa: E402
from firmware.main import LockApp  # noqa: E402
from protocol import keys  # noqa: E402
from protocol import passcode as pc  # noqa: E402
from protocol.lockout import Throttle  # noqa: E402
from protocol.verifier import CodeVerifier  # noqa: E402
from simulators.lockhal import SimHAL  # noqa: E402
from tests.conftest import run_micropython  # noqa: E402

RK = bytes(range(32))


def latency(n: int, d: Path) -> tuple[list[float], list[float]]:
    hal = SimHAL()
    app = LockApp(hal, FlashFS(str(d)), "lock-1", RK, "gw-1", "127.0.0.1", 1, "x", open_s=0)
    app.link.poll = lambda now, mono: None  # type: ignore[method-assign]  # offline: measure the decision
    key = keys.derive(RK, keys.CODE, "lock-1")
    now = int(time.time())
    p = pc.find_profile(pc.WINDOW, pc.DEVICE, pc.HOUR, 5)
    code = pc.make_keypad(key, "lock-1", p, now // 3600, 0, 1).digits
    full, bare = [], []
    v = CodeVerifier("lock-1", key, throttle=Throttle(threshold=10**9))
    for _ in range(n):
        hal.type(code)
        app.step()  # digits buffered
        hal.type("#")
        before = len(hal.strike_log)
        t0 = time.monotonic()  # the same clock the simulated strike logs with
        app.step()  # the last key: decide, journal (fsync), strike
        energised = next(ts for ts, on in hal.strike_log[before:] if on)
        full.append((energised - t0) * 1000)
        t0 = time.perf_counter()
        v.keypad(code, now, 0)
        bare.append((time.perf_counter() - t0) * 1000)
    return full, bare


def append_rate(n: int, d: Path) -> tuple[float, float]:
    j = Journal(FlashFS(str(d / "j")), "lock-1", segment_bytes=16384, max_segments=1000)
    t0 = time.perf_counter()
    for i in range(n):
        j.append(1795000000 + i, "door-1", "code", "pc-%d" % i, True, "ok")
    ours = n / (time.perf_counter() - t0)
    payload = b"x" * 72
    fd = os.open(d / "raw", os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
    t0 = time.perf_counter()
    for _ in range(n):
        os.write(fd, payload)
        os.fsync(fd)
    raw = n / (time.perf_counter() - t0)
    os.close(fd)
    return ours, raw


# Chunks separated by "#---" run as separate top-level calls: on this port
# gc.collect() reclaims only what earlier calls left (tests/mpy/runner.mjs).
MP_HEAP = """
import gc, os
from firmware.fsio import FlashFS
from firmware.core import LockCore
from firmware.journal import Journal
from protocol import envelope, keys, record
from protocol import passcode as pc

class HAL:
    def strike(self, on): pass
    def beep(self, n): pass

RK = bytes(range(32))
try:
    os.mkdir("/tmp/fwb")
except OSError:
    pass
fs = FlashFS("/tmp/fwb")
j = Journal(fs, "lock-1")
for i in range(%(backlog)d):
    j.append(1795000000 + i, "door-1", "code", "pc-%%d" %% i, True, "ok")
j = None
#---
gc.collect()
base = gc.mem_alloc()
#---
j = Journal(fs, "lock-1")   # boot: recover the backlog
core = LockCore("lock-1", RK, j, HAL(), fs)
for i in range(200):                                               # 200 remembered codes
    core.verifier.used["pc-%%012d" %% i] = [1795000000 + 86400, 1]
core.save(0)                                                       # as if loaded from flash
#---
gc.collect()
live = gc.mem_alloc() - base
key = keys.derive(RK, keys.CODE, "lock-1")
p = pc.find_profile(pc.WINDOW, pc.DEVICE, pc.HOUR, 5)
code = pc.make_keypad(key, "lock-1", p, 1795000000 // 3600, 0, 1).digits
gc.collect()
a0 = gc.mem_alloc(); gc.disable()
d = core.keypad(code, 1795000060, 100)
dec = gc.mem_alloc() - a0
gc.enable()
k = keys.derive(RK, keys.LOCAL, "lock-1")   # derived once, when the link starts
gc.collect()
a0 = gc.mem_alloc(); gc.disable()
seqs, body = j.pending_encoded(50)
msg = envelope.seal_encoded(k, "rec", "lock-1", 1, 1795000060, body)
batch = gc.mem_alloc() - a0
gc.enable()
seqs = body = msg = None
#---
gc.collect()
import binascii
from firmware.fpmodule import ACK, FingerprintModule, packet
t = [0]
def ticks():
    t[0] += 1
    return t[0]
class AckingUART:
    # A module that says OK to everything: the emulator's own allocations
    # would land in the same heap and are not the lock's.
    def __init__(self):
        self.ack = packet(0xFFFFFFFF, ACK, bytes((0,)))
        self.pos = 0
    def write(self, d):
        return len(d)
    def read(self, n):
        p = self.ack[self.pos:self.pos + n]
        self.pos = (self.pos + n) %% len(self.ack)
        return p
fp = FingerprintModule(AckingUART(), ticks)
f = open("/tmp/entry.hex")
token = binascii.unhexlify(f.read().strip())
f.close()
gc.collect()
a0 = gc.mem_alloc(); gc.disable()
res = core.load_entry(fp, token, 1795000060, 101)[0]
ent = gc.mem_alloc() - a0
gc.enable()
print(live, dec, batch, ent, j.backlog(), d.granted, res)
"""


def mp_heap(backlog: int, tmp: Path) -> tuple[int, int, int, int, int]:
    # One sealed entry with four 512-byte templates (the largest a lock gets),
    # opened with the pure-Python AES the WebAssembly port needs.
    from gateway import lockentry

    rk = bytes(range(32))
    m = lockentry.plain("lock-1", bytes(16), 1, 0, "add", "p-1", 1795086400,
                        [(f, os.urandom(512)) for f in range(4)])  # fmt: skip
    (tmp / "entry.hex").write_text(
        lockentry.seal_entry(lockentry.seal_key(rk, "lock-1"), m, 1795000000).hex()
    )
    out = run_micropython(
        MP_HEAP % {"backlog": backlog},
        copy=("protocol", "firmware"),
        put=[(tmp / "entry.hex", "/tmp/entry.hex")],  # noqa: S108 - a path inside the MicroPython VFS
        heap=8 * 1024 * 1024,
        timeout=600,
    )
    live, dec, batch, ent, n, granted, res = out.split()[-7:]
    assert granted == "True" and res == "ok", out
    return int(live), int(dec), int(batch), int(ent), int(n)


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--quick", action="store_true")
    q = ap.parse_args().quick
    with tempfile.TemporaryDirectory() as td:
        t = Path(td)
        (t / "lat").mkdir()
        full, bare = latency(20 if q else 300, t / "lat")
        (t / "app").mkdir()
        ours, raw = append_rate(200 if q else 3000, t / "app")
        live, dec, batch, ent, n = mp_heap(100 if q else 1000, t)
    print(f"firmware bench ({'quick' if q else 'full'})")
    print(f"{'measure':<50}{'ours':>12}{'anchor':>12}{'ratio':>9}")
    f50, b50 = statistics.median(full), statistics.median(bare)
    f99 = sorted(full)[int(0.99 * (len(full) - 1))]
    print(
        f"{'keypad decision, last key to strike, p50 (ms)':<50}{f50:12.3f}{b50:12.3f}{f50 / b50:8.1f}x"
        "   anchor: bare verifier call"
    )
    print(f"{'  p99 (ms)':<50}{f99:12.3f}")
    print(
        f"{'journal durable append (records/s)':<50}{ours:12,.0f}{raw:12,.0f}{ours / raw:8.2f}x"
        "   anchor: raw append + fsync, same bytes"
    )
    print(f"MicroPython (WebAssembly port), {n} records backlog, 200 remembered codes:")
    print(f"  live heap after boot: {live / 1024:.1f} KB   [goal <= 48 KB for the application]")
    print(
        f"  allocated by one keypad decision: {dec / 1024:.1f} KB; by building a 50-record upload: "
        f"{batch / 1024:.1f} KB; by opening and loading a 4-template entry: {ent / 1024:.1f} KB"
    )
    worst = live + max(dec, batch, ent)
    print(
        f"  peak bound (live after boot + the largest operation's allocations, GC off): {worst / 1024:.1f} KB"
        "   [the 48 KB goal is for the live heap; this bounds the worst transient above it]"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
