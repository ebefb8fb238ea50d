"""The mutmut name patterns of the security-core functions a change touches
(`make mutation-changed BASE=...`): a review step that mutates only the
functions whose lines differ from BASE, in the files `make mutation` covers.

Prints the patterns, space-separated (nothing when no such function changed).
"""

from __future__ import annotations

import ast
import re
import subprocess
import sys
import tomllib
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
_HUNK = re.compile(r"^@@ -\d+(?:,\d+)? \+(\d+)(?:,(\d+))? @@", re.M)


def changed_lines(base: str, path: str) -> set[int]:
    """Lines of the file as it is now that differ from BASE (a deletion marks
    the lines on both sides of it)."""
    diff = subprocess.run(
        ["git", "diff", "-U0", base, "--", path], cwd=ROOT, capture_output=True, text=True, check=True
    ).stdout
    lines: set[int] = set()
    for m in _HUNK.finditer(diff):
        start, count = int(m.group(1)), int(m.group(2) or 1)
        lines.update(range(start, start + count) if count else (start, start + 1))
    return lines


def functions(source: str) -> list[tuple[int, int, str]]:
    """(first line, last line, mutmut's mangled name) of each function and method."""
    out = []
    for node in ast.parse(source).body:
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
            first = min([node.lineno] + [d.lineno for d in node.decorator_list])
            out.append((first, node.end_lineno or node.lineno, "x_" + node.name))
        elif isinstance(node, ast.ClassDef):
            for m in node.body:
                if isinstance(m, (ast.FunctionDef, ast.AsyncFunctionDef)):
                    first = min([m.lineno] + [d.lineno for d in m.decorator_list])
                    out.append((first, m.end_lineno or m.lineno, f"x\u01c1{node.name}\u01c1{m.name}"))
    return out


def patterns(base: str) -> list[str]:
    cfg = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["mutmut"]
    out = []
    for path in cfg["only_mutate"]:
        lines = changed_lines(base, path)
        if not lines:
            continue
        module = path[:-3].replace("/", ".")
        for first, last, name in functions((ROOT / path).read_text()):
            if any(first <= n <= last for n in lines):
                out.append(f"{module}.{name}__mutmut_*")
    return out


if __name__ == "__main__":
    print(" ".join(patterns(sys.argv[1] if len(sys.argv) > 1 else "HEAD~1")))
