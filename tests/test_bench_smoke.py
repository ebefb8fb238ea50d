"""Benchmarks stay out of `make test` except for this smoke run, which only
proves they still run end to end (figures go in bench/README.md)."""

from __future__ import annotations

import subprocess
import sys

import pytest

from tests.conftest import ROOT

pytestmark = pytest.mark.micropython


@pytest.mark.parametrize(
    ("bench", "timeout", "needles"),
    [
        (
            "protocol_bench.py",
            300,
            ("encode 20-record batch", "decode 20-record batch", "MicroPython heap", "ours/anchor"),
        ),
        ("passcode_bench.py", 300, ("HMACs/attempt", "TOTP-style", "MicroPython", "accepted")),
        ("gateway_bench.py", 400, ("durable append", "drain to cloud", "round trip p99", "RSS")),
        ("firmware_bench.py", 400, ("last key to strike", "journal durable append", "live heap after boot")),
        (
            "matcher_bench.py",
            400,
            ("FNMR at FMR 1e-4", "afis MCC", "afis Bozorth3", "impostor tail", "strangers", "gallery start"),
        ),
        ("bundle_bench.py", 300, ("mlkem768-x25519", "x25519", "AES-GCM")),
    ],
)
def test_bench_quick_runs(bench: str, timeout: int, needles: tuple[str, ...]) -> None:
    proc = subprocess.run(
        [sys.executable, str(ROOT / "bench" / bench), "--quick"],
        capture_output=True,
        text=True,
        timeout=timeout,
        cwd=ROOT,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    for needle in needles:
        assert needle in proc.stdout
