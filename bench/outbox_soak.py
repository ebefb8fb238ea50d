"""The long run of the outbox's kill -9 harness (tests/outbox_crash.py).

    .venv/bin/python bench/outbox_soak.py               # 300 rounds over 3 seeds
    .venv/bin/python bench/outbox_soak.py --rounds 60   # shorter

Each round starts a writer process on one outbox folder (new records for
three devices, batches out of order, resends, cloud acks), kills it with
SIGKILL at a random moment (one round in four inside its recovery), then
reopens the folder and checks that every record acknowledged to its
producer is there once or was acknowledged by the cloud, that nothing the
cloud acknowledged comes back, that nothing is invented or duplicated, that
a resend of any stored record is refused, and that per-device order holds.
Prints the figures for bench/README.md; exit 1 on the first broken
invariant. `make soak` runs it with the full corruption sweeps.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from tests import outbox_crash  # noqa: E402


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--rounds", type=int, default=300, help="rounds in all, split over the seeds")
    ap.add_argument("--seeds", type=int, nargs="+", default=[101, 202, 303])
    ap.add_argument(
        "--pause", type=float, default=0.0,
        help="seconds the writer waits between offering a batch and storing it (a slow writer)",
    )  # fmt: skip
    a = ap.parse_args()
    if a.rounds < len(a.seeds):
        print("outbox_soak: --rounds must be at least the number of seeds", file=sys.stderr)
        return 2
    total = {"rounds": 0, "killed_in_recovery_window": 0, "records_acked_to_producers": 0,
             "cloud_acked": 0, "records_checked": 0}  # fmt: skip
    t0 = time.monotonic()
    for seed in a.seeds:
        with tempfile.TemporaryDirectory() as d:
            try:
                stats = outbox_crash.run(Path(d), a.rounds // len(a.seeds), seed, a.pause)
            except AssertionError as e:
                print(f"outbox soak, seed {seed}: INVARIANT BROKEN: {e}")
                return 1
        for k, v in stats.items():
            total[k] += v
        print(f"seed {seed}: {stats}")
    print(
        f"outbox kill -9 soak: {total['rounds']} rounds ({total['killed_in_recovery_window']} killed in "
        f"the recovery window), {total['records_acked_to_producers']:,} records acked to producers, "
        f"{total['cloud_acked']:,} acked by the cloud, {total['records_checked']:,} record checks: "
        f"0 lost, 0 duplicated, 0 failed starts ({time.monotonic() - t0:.0f} s)"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
