"""Pass-code verification cost: the project's verifier beside a TOTP-style
verifier that scans +/-N time windows (the naive anchor), same machine,
same run; HMACs per attempt for both; time per verification on MicroPython;
and the measured acceptance rate of random keypad entries.

    .venv/bin/python bench/passcode_bench.py            # full run
    .venv/bin/python bench/passcode_bench.py --quick    # smoke run
"""

from __future__ import annotations

import argparse
import hashlib
import hmac
import random
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from protocol import keys  # noqa: E402
from protocol.lockout import Throttle  # noqa: E402
from protocol.verifier import CodeVerifier  # noqa: E402
from tests.conftest import run_micropython  # noqa: E402
from tests.throttle_attack import guesses_per_day  # noqa: E402

KEY = keys.derive(bytes(32), keys.CODE, "lock-1")
NOW = 1_795_000_000


class TotpStyleVerifier:
    """The naive anchor: a code is HMAC(key, start hour || duration) mod 10^10,
    and the verifier tries every start hour within +/-N of now, for every
    duration it supports, until one matches. Cost grows with the window."""

    def __init__(self, key: bytes, n_hours: int, durations: tuple[int, ...] = (1, 4, 24)) -> None:
        self.key = key
        self.n = n_hours
        self.durations = durations
        self.hmacs = 0

    def code(self, start_h: int, dur: int) -> str:
        h = hmac.new(self.key, b"%d/%d" % (start_h, dur), hashlib.sha256).digest()
        return "%010d" % (int.from_bytes(h[:8], "big") % 10**10)

    def verify(self, entry: str, now: int) -> bool:
        now_h = now // 3600
        found = False
        for s in range(now_h - self.n, now_h + self.n + 1):
            for d in self.durations:
                self.hmacs += 1
                if hmac.compare_digest(self.code(s, d), entry) and s * 3600 <= now < (s + d) * 3600:
                    found = True  # keep scanning: constant time per attempt
        return found


def rate(fn, entries: list[str], min_time: float) -> tuple[float, int]:  # type: ignore[no-untyped-def]
    t0 = time.perf_counter()
    i = 0
    while True:
        fn(entries[i % len(entries)])
        i += 1
        if i % 50 == 0 and time.perf_counter() - t0 > min_time:
            break
    return i / (time.perf_counter() - t0), i


MP_SCRIPT = """
import time
from protocol import keys
from protocol import passcode as pc
from protocol.lockout import Throttle
from protocol.verifier import CodeVerifier
k = keys.derive(bytes(32), keys.CODE, 'lock-1')
v = CodeVerifier('lock-1', k, throttle=Throttle(threshold=10**9))
p = pc.find_profile(pc.WINDOW, pc.DEVICE, pc.DAY, 31)
good = pc.make_keypad(k, 'lock-1', p, %(now)d // 86400, 0, 1).digits
N = %(n)d
t0 = time.ticks_us()
for i in range(N):
    v.keypad('%%010d' %% (i * 7919), %(now)d, 0)
bad_us = time.ticks_diff(time.ticks_us(), t0) / N
t0 = time.ticks_us()
for i in range(N):
    d = v.keypad(good, %(now)d, 0)
good_us = time.ticks_diff(time.ticks_us(), t0) / N
assert d.granted
print(bad_us, good_us)
"""


def _issuance_cost(n: int) -> tuple[float, float, int, int]:
    """The issuer's cost per 1-hour code with and without its collision
    check (gateway/issuer.py: COLLISION_HORIZON_S), the same codes."""
    from gateway import issuer as gi
    from protocol import passcode as pc

    base = NOW - NOW % 3600
    out = []
    saved = gi.COLLISION_HORIZON_S
    skipped = 0
    try:
        for horizon in (saved, 0):
            gi.COLLISION_HORIZON_S = horizon
            iss = gi.CodeIssuer(lambda t: KEY)
            t0 = time.perf_counter()
            for i in range(n):
                iss.issue("lock-1", pc.ONCE, base + i * 3600, base + (i + 1) * 3600, base)
            out.append((time.perf_counter() - t0) / n * 1000)
            skipped = skipped or iss.collisions_skipped
    finally:
        gi.COLLISION_HORIZON_S = saved
    return out[0], out[1], skipped, n


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--quick", action="store_true")
    args = ap.parse_args()
    min_time = 0.05 if args.quick else 1.0
    n_random = 20_000 if args.quick else 1_000_000

    rng = random.Random(7)
    entries = ["%010d" % rng.randrange(10**10) for _ in range(5000)]
    v = CodeVerifier("lock-1", KEY, throttle=Throttle(threshold=10**9))
    ours_rate, _ = rate(lambda e: v.keypad(e, NOW, 0), entries, min_time)
    # Counted, as the anchor's are (the verifier reports the HMACs it computed).
    ours_hmacs = round(sum(v.keypad(e, NOW, 0).hmacs for e in entries) / len(entries))
    rows = [("lockedge keypad verifier", ours_rate, ours_hmacs)]
    for n in (24, 24 * 31):
        anchor = TotpStyleVerifier(KEY, n)
        r, calls = rate(lambda e, a=anchor: a.verify(e, NOW), entries, min_time)
        rows.append((f"TOTP-style scan +/-{n} h, 3 durations", r, anchor.hmacs // calls))

    mp_n = 20 if args.quick else 300
    bad_us, good_us = (float(x) for x in run_micropython(MP_SCRIPT % {"now": NOW, "n": mp_n}).split())

    accepted = 0
    for _ in range(n_random):
        if v.keypad("%010d" % rng.randrange(10**10), NOW, 0).granted:
            accepted += 1

    print(f"pass-code bench ({'quick' if args.quick else 'full'})")
    print(f"{'verifier':<40}{'verifications/s':>17}{'HMACs/attempt':>15}{'ours is':>12}")
    for name, r, h in rows:
        print(f"{name:<40}{r:17,.0f}{h:15d}{ours_rate / r:11.1f}x")
    print("anchor codes cover only windows of 1/4/24 h starting within +/-N hours; ours cover 1 h .. 1 year")
    print(f"MicroPython (WebAssembly port): {bad_us:.0f} us per wrong code, {good_us:.0f} us per valid code")
    print(
        f"random 10-digit entries accepted: {accepted} of {n_random:,} = {accepted / n_random:.2e} "
        f"(bound 1e-5 per attempt)"
    )
    issue_ms, plain_ms, skipped, n_issued = _issuance_cost(10 if args.quick else 100)
    print(
        f"1-hour one-time code issuance: {issue_ms:.1f} ms with the 2-year check against later windows' "
        f"codes, {plain_ms:.2f} ms without (anchor, same run); "
        f"{skipped} serials skipped in {n_issued} issuances"
    )
    th = Throttle()
    per_day = guesses_per_day(Throttle(), days=30)
    print(
        f"default lockout: {th.threshold} strikes, back-off {th.base}s doubling to {th.cap}s; an attacker "
        f"guessing whenever the keypad is free, simulated on the real Throttle for 30 days: "
        f"{per_day:.1f} guesses/day; at the 1e-5 per guess bound (docs/passcodes.md) that is a mean "
        f"{1 / (1e-5 * per_day) / 365:.2f} years to succeed (arithmetic on the simulated rate)"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
