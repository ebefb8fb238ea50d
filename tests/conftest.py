from __future__ import annotations

import os
import shutil
import subprocess
import sys
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path

import pytest
from hypothesis import HealthCheck, settings

from gateway.bundle import BundleError as _BundleError
from protocol.errors import ProtocolError as _ProtocolError
from tests import refusal_messages as _refusal_messages

ROOT = Path(__file__).resolve().parent.parent
RUNNER = ROOT / "tests" / "mpy" / "runner.mjs"
MP_PACKAGE = ROOT / "node_modules" / "@micropython" / "micropython-webassembly-pyscript"

# "ci" (the default, and what .ci/run gets) runs a thousand cases per
# property, which keeps `make test` inside its budget on two cores; "soak"
# (`make soak`) runs twenty thousand; "dev" keeps a local edit-test loop quick.
settings.register_profile(
    "ci", max_examples=1000, deadline=None, suppress_health_check=[HealthCheck.too_slow]
)
settings.register_profile(
    "soak", max_examples=20000, deadline=None, suppress_health_check=[HealthCheck.too_slow]
)
settings.register_profile("dev", max_examples=300, deadline=None)
# `make mutation`: fewer cases, and the same ones every run, so whether a
# mutant is killed does not depend on the draw.
settings.register_profile(
    "mutation", max_examples=100, deadline=None, derandomize=True, suppress_health_check=list(HealthCheck)
)
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "ci"))


class MicroPythonError(AssertionError):
    pass


def run_micropython(
    code: str,
    copy: Sequence[str] = ("protocol",),
    heap: int = 4 * 1024 * 1024,
    timeout: float = 120.0,
    put: Sequence[tuple[Path, str]] = (),
) -> str:
    """Run `code` on the MicroPython WebAssembly port; return its stdout."""
    if not MP_PACKAGE.exists():
        raise MicroPythonError("MicroPython WebAssembly port missing: run `make setup` (npm ci)")
    node = shutil.which("node")
    if node is None:
        raise MicroPythonError("node is not installed")
    cmd = [node, str(RUNNER), "--heap", str(heap)]
    for c in copy:
        cmd += ["--copy", c]
    for host, dest in put:
        cmd += ["--put", f"{host}={dest}"]
    cmd.append("-")
    proc = subprocess.run(cmd, input=code, capture_output=True, text=True, timeout=timeout, cwd=ROOT)
    if proc.returncode != 0:
        raise MicroPythonError(
            f"MicroPython run failed (exit {proc.returncode}):\n{proc.stderr}\n{proc.stdout}"
        )
    return proc.stdout


@pytest.fixture(scope="session")
def micropython() -> Callable[..., str]:
    return run_micropython


# -- no secrets in logs ---------------------------------------------------------
# Every test runs with a handler on the root logger that remembers what was
# logged; a line that looks like key material or a template (a long run of
# hex, raw bytes of an ISO 19794-2 record, a bytes repr of 32+ bytes) fails
# the test that produced it. Messages are formatted with their arguments,
# and exception text attached to a record is checked too.
import logging  # noqa: E402
import re  # noqa: E402

_SECRETISH = re.compile(r"[0-9a-fA-F]{48,}|FMR\\x00|FMR\x00|(?:\\x[0-9a-f]{2}){16,}")


class _Collect(logging.Handler):
    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.bad: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        where = record.pathname.replace("\\", "/")
        if where.endswith(_refusal_messages.LOG_MODULES):
            module = "/".join(where.rsplit("/", 2)[-2:])
            line = f"log.{record.levelname.lower()}: {record.msg}"
            if (module, line) not in _LISTED_LOGS:
                _UNLISTED.append(f"{module}: {line!r}")
        text = record.getMessage()
        if record.exc_info and record.exc_info[1] is not None:
            text += " " + str(record.exc_info[1])
        if _SECRETISH.search(text):
            self.bad.append(f"{record.name}: {text[:200]}")


@pytest.fixture(autouse=True)
def _no_secrets_in_logs() -> Iterator[None]:
    h = _Collect()
    root = logging.getLogger()
    old = root.level
    root.addHandler(h)
    root.setLevel(logging.DEBUG)
    try:
        yield
    finally:
        root.removeHandler(h)
        root.setLevel(old)
    assert not h.bad, "a log line looks like key or template material:\n" + "\n".join(h.bad[:5])


# Every refusal message the security core raises during a test must be one
# listed in tests/vectors/refusal-messages.txt (tests/refusal_messages.py):
# the check sits in ProtocolError's and BundleError's constructors and
# fails the test that raised an unlisted one, whatever caught it after.
_LISTED = _refusal_messages.matcher()
_LISTED_LOGS = _refusal_messages.listed_logs()
_UNLISTED: list[str] = []


def _check_message(reason: str, message: str) -> None:
    # Called from the error's constructor: frame 2 is where it was raised.
    where = sys._getframe(2).f_code.co_filename.replace("\\", "/")
    if where.endswith(_refusal_messages.MODULES) and not (
        isinstance(message, str) and _LISTED.fullmatch(message)
    ):
        _UNLISTED.append(f"{where.rsplit('/', 2)[-2]}/{where.rsplit('/', 1)[-1]}: {reason}: {message!r}")


def _checking(init: Callable[..., None]) -> Callable[..., None]:
    """The constructor `init`, then the message check."""

    def checked(self: Exception, reason: str, message: str) -> None:
        init(self, reason, message)
        _check_message(reason, message)

    return checked


_ProtocolError.__init__ = _checking(_ProtocolError.__init__)  # type: ignore[method-assign]
_BundleError.__init__ = _checking(_BundleError.__init__)  # type: ignore[method-assign]


@pytest.fixture(autouse=True)
def _refusal_messages_are_listed() -> Iterator[None]:
    del _UNLISTED[:]
    yield
    assert not _UNLISTED, (
        "refusal messages not in tests/vectors/refusal-messages.txt (`make vectors` lists new ones):\n"
        + "\n".join(_UNLISTED[:5])
    )
