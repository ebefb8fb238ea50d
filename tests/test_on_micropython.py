"""Runs the shared test modules (tests/shared/test_*.py) on MicroPython.

pytest also collects those modules directly, so every shared test runs on
both interpreters; here each one is a separate item so a MicroPython-only
failure names the test that broke.
"""

from __future__ import annotations

import importlib
import inspect
import re
from functools import cache
from pathlib import Path

import pytest

from tests.conftest import ROOT, run_micropython

pytestmark = pytest.mark.micropython

SHARED = sorted(f"tests.shared.{p.stem}" for p in (ROOT / "tests" / "shared").glob("test_*.py"))
COPY = (
    "protocol",
    "firmware",
    "simulators/__init__.py",
    "simulators/lockfs.py",
    "simulators/fpemu.py",
    "tests/__init__.py",
    "tests/shared",
    "tests/vectors",
)


def _cases() -> list[tuple[str, str]]:
    out = []
    for mod in SHARED:
        m = importlib.import_module(mod)
        for name, fn in inspect.getmembers(m, inspect.isfunction):
            if name.startswith("test_") and fn.__module__ == mod:
                out.append((mod, name))
    return out


@cache
def _results() -> dict[str, str]:
    runner = (Path(ROOT) / "tests" / "mpy" / "run_tests.py").read_text()
    out = run_micropython(f"MODULES = {SHARED!r}\n" + runner, copy=COPY)
    results: dict[str, str] = {}
    for line in out.splitlines():
        m = re.match(r"(PASS|FAIL) (\S+)::(\w+)(.*)", line)
        if m:
            results[f"{m.group(2)}::{m.group(3)}"] = m.group(1) + m.group(4)
    results["__output__"] = out
    return results


@pytest.mark.parametrize(("module", "name"), _cases())
def test_shared_on_micropython(module: str, name: str) -> None:
    res = _results()
    key = f"{module}::{name}"
    assert key in res, f"{key} did not run on MicroPython:\n{res['__output__']}"
    assert res[key] == "PASS", f"{key} on MicroPython: {res[key]}\n{res['__output__']}"


def test_micropython_is_really_micropython() -> None:
    out = run_micropython("import sys; print(sys.implementation.name, sys.implementation.version[:2])")
    assert out.split()[0] == "micropython"
