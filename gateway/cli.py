"""`lockedge`: the command-line entry point.

Verbs arrive with their features: `gateway run` (issue 5), `sim` (issues 4
and 8), `office` (issue 6). `demo` runs the main job of the README.
"""

from __future__ import annotations

import argparse
import sys

from protocol import __version__


def _cmd_demo(args: argparse.Namespace) -> int:
    from simulators import walkthrough

    walkthrough.run()
    return 0


def _cmd_version(args: argparse.Namespace) -> int:
    print(f"lockedge {__version__}")
    return 0


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="lockedge", description="Edge agent for smart locks and gates.")
    sub = p.add_subparsers(dest="verb", required=True)
    sub.add_parser("demo", help="run the demo (protocol walk-through)").set_defaults(fn=_cmd_demo)
    sub.add_parser("version", help="print the version").set_defaults(fn=_cmd_version)
    return p


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    rc: int = args.fn(args)
    return rc


if __name__ == "__main__":
    sys.exit(main())
