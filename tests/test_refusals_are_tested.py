"""Every documented refusal reason is triggered by some test that asserts
that exact reason (issue 21). The list is read from the docs and the code,
so a reason added to either without a test fails here.

Where the reasons are documented:
- docs/protocol.md: the envelope's "Refusal reasons:", the pass
  record's reason vocabulary (field 8) and the clock's "Time refusals:";
- docs/bundle.md: the import's "Refusal reasons";
- the code's own constants: protocol/errors.py, protocol/seal.py, and the
  relay's answers (gateway/relay.py).

"Asserted" means named as a string in a test function that checks
outcomes (an assert or a `raises()`); which test, file and line is what a
reviewer then reads.
"""

from __future__ import annotations

import ast
import re
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
TICKED = re.compile(r"`([a-z0-9][a-z0-9-]{1,23})`")


def _paragraph(doc: str, start: str) -> str:
    text = (ROOT / "docs" / doc).read_text()
    i = text.index(start)
    j = text.find("\n\n", i)
    k = text.find("\n- ", i + 1)
    ends = [e for e in (j, k) if e > 0]
    return text[i : min(ends) if ends else len(text)]


def _constants(path: str) -> set[str]:
    tree = ast.parse((ROOT / path).read_text())
    out = set()
    for node in tree.body:
        if isinstance(node, ast.Assign) and len(node.targets) == 1:
            t = node.targets[0]
            if isinstance(t, ast.Name) and t.id.isupper() and isinstance(node.value, ast.Constant):
                v = node.value.value
                if isinstance(v, str) and re.fullmatch(r"[a-z][a-z0-9-]{1,23}", v):
                    out.add(v)
    return out


def documented() -> dict[str, set[str]]:
    row = next(
        line for line in (ROOT / "docs" / "protocol.md").read_text().splitlines() if "| 8 | reason |" in line
    )
    relay = set(re.findall(r'Answer\([^)]*?"([a-z-]+)"', (ROOT / "gateway" / "relay.py").read_text()))
    return {
        "envelope (docs/protocol.md)": set(TICKED.findall(_paragraph("protocol.md", "Refusal reasons:"))),
        "pass-record reasons (docs/protocol.md)": set(TICKED.findall(row)) - {"ok", "none"},  # none: a kind
        "lock clock (docs/protocol.md)": set(TICKED.findall(_paragraph("protocol.md", "Time refusals:"))),
        "bundle import (docs/bundle.md)": set(
            TICKED.findall(_paragraph("bundle.md", "Refusal reasons, each"))
        ),
        "protocol/errors.py": _constants("protocol/errors.py"),
        "protocol/seal.py": _constants("protocol/seal.py"),
        "relay answers (gateway/relay.py)": relay - {"ok", "done"},
    }


def _checks(fn: ast.AST) -> bool:
    """Whether a test function checks outcomes: an assert, or a raises()."""
    for n in ast.walk(fn):
        if isinstance(n, ast.Assert):
            return True
        if isinstance(n, ast.Call) and getattr(n.func, "attr", getattr(n.func, "id", "")) == "raises":
            return True
    return False


def asserted() -> set[str]:
    """Reason-shaped strings, and the code's reason constants by name
    (errors.NON_CANONICAL), named in test functions that check outcomes."""
    names = {}
    for path in ("protocol/errors.py", "protocol/seal.py"):
        tree = ast.parse((ROOT / path).read_text())
        for node in tree.body:
            if isinstance(node, ast.Assign) and isinstance(node.value, ast.Constant):
                for t in node.targets:
                    if isinstance(t, ast.Name) and t.id.isupper() and isinstance(node.value.value, str):
                        names[t.id] = node.value.value
    out: set[str] = set()
    for f in (ROOT / "tests").rglob("*.py"):
        if f.name == Path(__file__).name:
            continue
        tree = ast.parse(f.read_text())
        for fn in ast.walk(tree):
            if isinstance(fn, ast.FunctionDef) and fn.name.startswith("test") and _checks(fn):
                for n in ast.walk(fn):
                    if isinstance(n, ast.Constant) and isinstance(n.value, str):
                        if re.fullmatch(r"[a-z][a-z0-9-]{1,23}", n.value):
                            out.add(n.value)
                    name = n.attr if isinstance(n, ast.Attribute) else n.id if isinstance(n, ast.Name) else ""
                    if name in names:
                        out.add(names[name])
    return out


def vector_reasons() -> set[str]:
    """`reason` of every case in tests/vectors/*.json: each is asserted by
    tests/shared/test_vectors.py (raises(case["reason"], ...)), on both
    interpreters."""
    import json

    out: set[str] = set()

    def walk(v: object) -> None:
        if isinstance(v, dict):
            r = v.get("reason")
            if isinstance(r, str):
                out.add(r)
            for x in v.values():
                walk(x)
        elif isinstance(v, list):
            for x in v:
                walk(x)

    for f in (ROOT / "tests" / "vectors").glob("*.json"):
        walk(json.loads(f.read_text()))
    return out


def test_the_vector_cases_are_asserted_where_this_check_assumes() -> None:
    text = (ROOT / "tests" / "shared" / "test_vectors.py").read_text()
    assert 'raises(case["reason"]' in text


def test_every_documented_refusal_reason_is_asserted_by_a_test() -> None:
    docs = documented()
    seen = asserted() | vector_reasons()
    missing = {src: sorted(r - seen) for src, r in docs.items() if r - seen}
    assert all(len(r) >= 2 for r in docs.values()), "a source of reasons was not found: " + str(docs)
    assert not missing, f"documented refusals no test asserts: {missing}"
