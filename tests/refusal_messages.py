"""The refusal messages of the security core, pinned.

A refusal's reason code is what code and tests branch on; its message is
what an installer reads ("Bad input gets a clear error"). Every message
these modules can raise (ProtocolError, and BundleError at the gateway's
import) is listed, as its source template, in
tests/vectors/refusal-messages.txt, and tests/conftest.py checks each one
raised from them during a test against the list: a changed,
emptied or garbled message fails the test that triggered it, and a new one
is added to the list (`make vectors` rewrites it from the source; review
the diff like any text a user reads).

Run as a script, it rewrites the list from the source.
"""

from __future__ import annotations

import ast
import re
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
CATALOGUE = ROOT / "tests" / "vectors" / "refusal-messages.txt"
MODULES = (
    "protocol/envelope.py",
    "protocol/seal.py",
    "protocol/verifier.py",
    "protocol/passcode.py",
    "protocol/blacklist.py",
    "protocol/lockout.py",
    "protocol/record.py",
    "gateway/relay.py",
    "gateway/bundle.py",
    "gateway/usb_import.py",
)
# The refusal types whose messages are pinned: (reason, message) constructors.
ERRORS = ("ProtocolError", "BundleError")
# Modules whose log lines (level and format string) are pinned the same way:
# what an operator reads in the journal of the gateway's stick import and
# outbox. Listed as "log.<level>: <format>".
LOG_MODULES = ("gateway/usb_import.py", "gateway/outbox.py")
_LEVEL = {"debug": "debug", "info": "info", "warning": "warning", "error": "error", "exception": "error"}
# record.py's one refusal helper: _bad(what) -> ProtocolError(INVALID, "pass record: " + what).
_PREFIXED = {"_bad": "pass record: "}
_SPEC = re.compile(r"%(?:%|[-+ 0#]*\d*(?:\.\d+)?[diouxXsr])")


def _template(node: ast.expr) -> str | None:
    if isinstance(node, ast.Constant) and isinstance(node.value, str):
        return node.value
    if isinstance(node, ast.JoinedStr):  # an f-string: each {value} reads as %s
        parts = []
        for v in node.values:
            if isinstance(v, ast.Constant) and isinstance(v.value, str):
                parts.append(v.value.replace("%", "%%"))
            else:
                parts.append("%s")
        return "".join(parts)
    if (
        isinstance(node, ast.BinOp)
        and isinstance(node.op, ast.Mod)
        and isinstance(node.left, ast.Constant)
        and isinstance(node.left.value, str)
    ):
        return node.left.value
    return None


def templates(source: str) -> list[str]:
    """The message templates of every ProtocolError (and _bad) call in a module."""
    out = []
    for n in ast.walk(ast.parse(source)):
        if not isinstance(n, ast.Call) or not n.args:
            continue
        # ProtocolError(...) or bundle.BundleError(...)
        name = n.func.id if isinstance(n.func, ast.Name) else getattr(n.func, "attr", None)
        if name in ERRORS and len(n.args) == 2:
            t = _template(n.args[1])
            if t is not None:
                out.append(t)
        elif name in _PREFIXED:
            t = _template(n.args[0])
            if t is not None:
                out.append(_PREFIXED[name] + t)
    return out


def log_lines(source: str) -> list[str]:
    """ "log.<level>: <format>" of every log.<level>("...", ...) call."""
    out = []
    for n in ast.walk(ast.parse(source)):
        if (
            isinstance(n, ast.Call)
            and isinstance(n.func, ast.Attribute)
            and isinstance(n.func.value, ast.Name)
            and n.func.value.id == "log"
            and n.func.attr in _LEVEL
            and n.args
            and isinstance(n.args[0], ast.Constant)
            and isinstance(n.args[0].value, str)
        ):
            out.append(f"log.{_LEVEL[n.func.attr]}: {n.args[0].value}")
    return out


def from_source() -> list[tuple[str, str]]:
    rows = []
    for m in MODULES:
        rows += [(m, t) for t in templates((ROOT / m).read_text())]
    for m in LOG_MODULES:
        rows += [(m, t) for t in log_lines((ROOT / m).read_text())]
    return sorted(set(rows))


def load() -> list[tuple[str, str]]:
    rows = []
    for line in CATALOGUE.read_text().splitlines():
        if line and not line.startswith("#"):
            m, t = line.split("\t", 1)
            rows.append((m, t))
    return rows


def to_regex(template: str) -> str:
    """A template's printf conversions as patterns: numbers for %d and %x,
    anything for %s and %r (whatever the value, the words around it stay)."""
    out, pos = [], 0
    for s in _SPEC.finditer(template):
        out.append(re.escape(template[pos : s.start()]))
        spec = s.group()
        if spec == "%%":
            out.append("%")
        elif spec[-1] in "diou":
            out.append(r"-?\d+")
        elif spec[-1] in "xX":
            out.append(r"[0-9a-fA-F]+")
        else:
            out.append(r".*")
        pos = s.end()
    out.append(re.escape(template[pos:]))
    return "".join(out)


def matcher() -> re.Pattern[str]:
    """One pattern that fully matches any listed message."""
    return re.compile(
        "|".join("(?:%s)" % to_regex(t) for _m, t in load() if not t.startswith("log.")), re.DOTALL
    )


def listed_logs() -> set[tuple[str, str]]:
    """(module, "log.<level>: <format>") of every listed log line."""
    return {(m, t) for m, t in load() if t.startswith("log.")}


def write() -> None:
    head = (
        "# Refusal messages of the security core (tests/refusal_messages.py), one per line:\n"
        "# module<TAB>template. Written by `make vectors`; review changes like user-facing text.\n"
    )
    CATALOGUE.write_text(head + "".join(f"{m}\t{t}\n" for m, t in from_source()))


if __name__ == "__main__":
    write()
    print(f"{len(load())} refusal messages in {CATALOGUE.relative_to(ROOT)}", file=sys.stderr)
