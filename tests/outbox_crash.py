"""Randomised kill -9 harness for the outbox (quick run in tests, long run in
bench/outbox_soak.py).

A writer process drives the real `Outbox` as the gateway does: new records
for several devices, out-of-order batches, resends of old sequences, and
cloud acks, printing each step before and after it is durable. The parent
kills it with SIGKILL at a random moment (during recovery too), reopens the
folder and checks:

- every record acknowledged to its producer is still there once, unless the
  cloud acknowledged it;
- nothing the cloud acknowledged (ack applied) comes back;
- nothing is invented, nothing altered, nothing held twice;
- a resend of any record ever stored is answered "duplicate";
- per device, records come out in the order they were appended.

Run as a module, it is the writer: `python -m tests.outbox_crash DIR SEED`.
"""

from __future__ import annotations

import os
import random
import signal
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
DEVICES = ("lock-1", "lock-2", "gate")


def _data(dev: str, seq: int) -> bytes:
    return b"%s/%d" % (dev.encode(), seq)


def _keys(words: list[str]) -> list[tuple[str, int]]:
    out = []
    for w in words:
        dev, _, seq = w.partition(":")
        out.append((dev, int(seq.split(":")[0])))
    return out


def writer(directory: str, seed: int, pause: float = 0.0) -> None:
    from gateway.outbox import Outbox

    rng = random.Random(seed)
    print("S", flush=True)  # about to recover: a kill from here on lands in recovery
    ob = Outbox(directory, segment_bytes=3000)
    print("R", flush=True)

    def append(items: list[tuple[str, int, bytes]]) -> None:
        print("B", *[f"{d}:{s}" for d, s, _x in items], flush=True)
        if pause:
            time.sleep(pause)  # a slow writer: kills land between a batch's offer and its store
        res = ob.append(items)
        print("A", *[f"{d}:{s}:{int(r)}" for (d, s, _x), r in zip(items, res, strict=True)], flush=True)

    nxt = {d: ob.next_seq(d) for d in DEVICES}
    while True:
        dev = rng.choice(DEVICES)
        op = rng.random()
        k = rng.randint(1, 8)
        if op < 0.45:
            append([(dev, s, _data(dev, s)) for s in range(nxt[dev], nxt[dev] + k)])
            nxt[dev] += k
        elif op < 0.6:  # a later batch overtakes an earlier one
            lo = nxt[dev]
            append([(dev, s, _data(dev, s)) for s in range(lo + k, lo + 2 * k)])
            append([(dev, s, _data(dev, s)) for s in range(lo, lo + k)])
            nxt[dev] += 2 * k
        elif op < 0.72:  # a producer resending what it may not have had acked
            seqs = sorted({rng.randint(1, max(1, nxt[dev] - 1)) for _ in range(k)})
            append([(dev, s, _data(dev, s)) for s in seqs])
        else:  # the cloud acknowledges some of what was uploaded
            got = ob.pending(40)
            acks = [(e.device, e.seq) for e in got if rng.random() < 0.7]
            if acks:
                print("K", *[f"{d}:{s}" for d, s in acks], flush=True)
                ob.ack(acks)
                print("C", *[f"{d}:{s}" for d, s in acks], flush=True)


@dataclass
class Model:
    """What the parent knows from the writers' lines, across rounds."""

    producer_acked: set[tuple[str, int]] = field(default_factory=set)
    cloud_sent: set[tuple[str, int]] = field(default_factory=set)  # K seen: may be applied
    cloud_acked: set[tuple[str, int]] = field(default_factory=set)  # C seen: applied
    order: dict[tuple[str, int], int] = field(default_factory=dict)  # first append position
    sent: set[tuple[str, int]] = field(default_factory=set)  # in some batch (B seen)
    n: int = 0

    def feed(self, lines: list[str]) -> None:
        for line in lines:
            words = line.split()
            if not words:
                continue
            tag, rest = words[0], words[1:]
            if tag == "B":
                for key in _keys(rest):
                    self.sent.add(key)
                    if key not in self.order:
                        self.order[key] = self.n
                        self.n += 1
            elif tag == "A":
                for w in rest:
                    dev, seq, _ok = w.split(":")
                    self.producer_acked.add((dev, int(seq)))
            elif tag == "K":
                self.cloud_sent.update(_keys(rest))
            elif tag == "C":
                self.cloud_acked.update(_keys(rest))


def check(directory: Path, m: Model) -> int:
    """Reopen and check every invariant; returns the number of records checked."""
    from gateway.outbox import Outbox

    ob = Outbox(directory, segment_bytes=3000)
    try:
        pend = ob.pending(10**7)
        keys = [(e.device, e.seq) for e in pend]
        held = set(keys)
        assert len(keys) == len(held), "a record held twice"
        for e in pend:
            assert e.data == _data(e.device, e.seq), ("altered", e.device, e.seq)
            key = (e.device, e.seq)
            # A batch killed between its fsync and its ack is held, unacked
            # to its producer (who sends it again): anything else is invented.
            assert key in m.sent, ("invented", key)
            assert key not in m.cloud_acked, ("acked by the cloud, came back", key)
        for key in m.producer_acked:
            if key not in m.cloud_sent:
                assert key in held, ("lost", key)
            assert key[1] in ob.marks[key[0]], ("a resend would be stored again", key)
        for dev in DEVICES:
            pos = [m.order.get(k, -1) for k in keys if k[0] == dev]
            assert pos == sorted(pos), ("out of append order", dev)
        # A batch killed before it was stored was never appended: a later
        # batch carrying the same records appends them at its own place.
        for key in [k for k in m.order if k not in held and k not in m.producer_acked]:
            del m.order[key]
        return len(m.producer_acked) + len(keys)
    finally:
        ob.close()


def run(directory: Path, rounds: int, seed: int, pause: float = 0.0) -> dict[str, int]:
    rng = random.Random(seed)
    m = Model()
    checked = 0
    in_recovery = 0
    for r in range(rounds):
        seed_r = str(rng.randrange(1 << 30))
        p = subprocess.Popen(
            [sys.executable, "-m", "tests.outbox_crash", str(directory), seed_r, str(pause)],
            stdout=subprocess.PIPE,
            cwd=ROOT,
        )
        assert p.stdout is not None
        assert p.stdout.readline() == b"S\n"
        if r % 4 == 3:
            time.sleep(rng.uniform(0, 0.004))  # inside recovery, most of the time
            in_recovery += 1
        else:
            time.sleep(rng.uniform(0.01, 0.25))
        os.kill(p.pid, signal.SIGKILL)
        out = p.stdout.read()
        p.wait()
        # A line the kill cut short was never finished: as if never printed.
        lines = out.decode().split("\n")[:-1]
        m.feed(lines)
        checked += check(directory, m)
    return {
        "rounds": rounds,
        "killed_in_recovery_window": in_recovery,
        "records_acked_to_producers": len(m.producer_acked),
        "cloud_acked": len(m.cloud_acked),
        "records_checked": checked,
    }


if __name__ == "__main__":
    signal.signal(signal.SIGPIPE, signal.SIG_DFL)
    writer(sys.argv[1], int(sys.argv[2]), float(sys.argv[3]) if len(sys.argv) > 3 else 0.0)
