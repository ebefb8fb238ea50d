"""Static checks of the rules in the design card that no type checker sees:
protocol/ and firmware/ stay inside the MicroPython subset, protocol/ stays
sans-I/O, and only firmware/board/ touches the hardware modules."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
MP_DIRS = ("protocol", "firmware")
# Not on MicroPython (or not in the subset the design card allows).
NOT_ON_MICROPYTHON = {
    "dataclasses",
    "enum",
    "typing",
    "abc",
    "pathlib",
    "functools",
    "itertools",
    "contextlib",
    "__future__",
    "secrets",
    "logging",
}
HARDWARE = {"machine", "network", "umqtt", "esp", "esp32"}
IO_MODULES = {"socket", "os", "time", "select", "io", "machine", "network", "asyncio", "random", "umqtt"}


def _files(d: str) -> list[Path]:
    return sorted((ROOT / d).rglob("*.py"))


def _imports(path: Path) -> list[tuple[str, bool]]:
    """(top-level module, guarded by try/except ImportError) per import."""
    tree = ast.parse(path.read_text(), str(path))
    guarded: set[int] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Try) and any(
            (isinstance(h.type, ast.Name) and h.type.id == "ImportError")
            or (
                isinstance(h.type, ast.Tuple)
                and any(getattr(e, "id", "") == "ImportError" for e in h.type.elts)
            )
            for h in node.handlers
        ):
            for inner in node.body:
                for sub in ast.walk(inner):
                    guarded.add(id(sub))
    out = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            out += [(a.name.split(".")[0], id(node) in guarded) for a in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            out.append((node.module.split(".")[0], id(node) in guarded))
    return out


@pytest.mark.parametrize("path", [p for d in MP_DIRS for p in _files(d)], ids=str)
def test_micropython_subset(path: Path) -> None:
    for mod, guarded in _imports(path):
        assert guarded or mod not in NOT_ON_MICROPYTHON, (
            f"{path}: imports {mod}, not available on MicroPython"
        )
    board = ROOT / "firmware" / "board"
    if board not in path.parents:
        for mod, _ in _imports(path):
            assert mod not in HARDWARE, f"{path}: only firmware/board/ may import {mod}"


@pytest.mark.parametrize("path", _files("protocol"), ids=str)
def test_protocol_is_sans_io(path: Path) -> None:
    for mod, _ in _imports(path):
        assert mod not in IO_MODULES, (
            f"{path}: protocol/ must not import {mod} (callers pass bytes and times in)"
        )
    src = path.read_text()
    assert "open(" not in src.replace("def open(", ""), f"{path}: protocol/ must not open files"


def test_cpython_side_never_imports_hardware_modules() -> None:
    for d in ("gateway", "simulators"):
        for p in _files(d):
            for mod, _ in _imports(p):
                assert mod not in {"machine", "network", "umqtt"}, f"{p} imports {mod}"


def test_the_log_guard_recognises_key_and_template_material() -> None:
    from tests.conftest import _SECRETISH

    assert _SECRETISH.search("key " + bytes(range(32)).hex())
    assert _SECRETISH.search(repr(b"FMR\x00 20\x00" + bytes(40)))
    assert not _SECRETISH.search("bundle b.lkb refused: bad-signature")
    assert not _SECRETISH.search("refused message on lock/lock-0001/rec: bad-tag: tag does not verify")


# The floors, lowest first: a module may import its own floor and those
# below, never one above (protocol/ is imported by the lock and the gateway
# alike; the simulators stand on the gateway; the command line on all).
FLOORS = ("protocol", "firmware", "gateway", "simulators", "lockedge")
BELOW = {"firmware": {"protocol"}, "gateway": {"protocol"}, "simulators": {"protocol", "firmware", "gateway"}}


@pytest.mark.parametrize("floor", FLOORS[:-1])
def test_a_lower_floor_never_imports_a_higher_one(floor: str) -> None:
    allowed = {floor} | BELOW.get(floor, set())
    for p in _files(floor):
        for mod, _ in _imports(p):
            assert mod not in FLOORS or mod in allowed, f"{p.relative_to(ROOT)} imports {mod}, a floor above"
