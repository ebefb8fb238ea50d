"""Benchmarks stay out of `make test` except for this smoke run, which only
proves they still run end to end (figures go in bench/README.md)."""

from __future__ import annotations

import subprocess
import sys

import pytest

from tests.conftest import ROOT

pytestmark = pytest.mark.micropython


def test_protocol_bench_quick_runs() -> None:
    proc = subprocess.run(
        [sys.executable, str(ROOT / "bench" / "protocol_bench.py"), "--quick"],
        capture_output=True,
        text=True,
        timeout=300,
        cwd=ROOT,
    )
    assert proc.returncode == 0, proc.stderr
    for needle in ("encode 20-record batch", "decode 20-record batch", "MicroPython heap", "ours/anchor"):
        assert needle in proc.stdout


def test_passcode_bench_quick_runs() -> None:
    proc = subprocess.run(
        [sys.executable, str(ROOT / "bench" / "passcode_bench.py"), "--quick"],
        capture_output=True,
        text=True,
        timeout=300,
        cwd=ROOT,
    )
    assert proc.returncode == 0, proc.stderr
    for needle in ("HMACs/attempt", "TOTP-style", "MicroPython", "accepted"):
        assert needle in proc.stdout


def test_gateway_bench_quick_runs() -> None:
    proc = subprocess.run(
        [sys.executable, str(ROOT / "bench" / "gateway_bench.py"), "--quick"],
        capture_output=True,
        text=True,
        timeout=400,
        cwd=ROOT,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    for needle in ("durable append", "drain to cloud", "round trip p99", "RSS"):
        assert needle in proc.stdout


def test_firmware_bench_quick_runs() -> None:
    proc = subprocess.run(
        [sys.executable, str(ROOT / "bench" / "firmware_bench.py"), "--quick"],
        capture_output=True,
        text=True,
        timeout=400,
        cwd=ROOT,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    for needle in ("last key to strike", "journal durable append", "live heap after boot"):
        assert needle in proc.stdout
