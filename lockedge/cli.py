"""`lockedge`: the command line, the floor that puts the others together.

The gateway's verbs come from gateway/cli.py, the simulators' (demo, sim,
office, cloud) from simulators/; nothing below imports this package. Every
verb's foreseen errors print one line; `main` turns the rest into one line
too, never a traceback.
"""

from __future__ import annotations

import argparse
import sys

from protocol import __version__


def _cmd_version(args: argparse.Namespace) -> int:
    print(f"lockedge {__version__}")
    return 0


def build_parser() -> argparse.ArgumentParser:
    from gateway.cli import add_parsers as add_gateway
    from simulators.cli import add_parsers as add_simulators
    from simulators.cloud.cli import add_parser as add_cloud
    from simulators.office_cli import add_parser as add_office

    p = argparse.ArgumentParser(prog="lockedge", description="Edge agent for smart locks and gates.")
    p.add_argument("--version", action="version", version=f"lockedge {__version__}")
    sub = p.add_subparsers(dest="verb", required=True)
    sub.add_parser("version", help="print the version").set_defaults(fn=_cmd_version)
    add_gateway(sub)
    add_office(sub)
    add_cloud(sub)
    add_simulators(sub)
    return p


# Exit code for a failure no verb foresaw (sysexits' EX_SOFTWARE).
EX_SOFTWARE = 70


def main(argv: list[str] | None = None) -> int:
    """Every verb's errors it foresees print one line and exit non-zero; the
    rest reach here, and still print one line (the exception's type and
    message, which by the project's rule never hold a key or a template),
    never a traceback. LOCKEDGE_DEBUG=1 shows the traceback to a developer."""
    import os

    args = build_parser().parse_args(argv)
    try:
        rc: int = args.fn(args)
    except KeyboardInterrupt:
        return 130
    except Exception as e:
        if os.environ.get("LOCKEDGE_DEBUG") == "1":
            raise
        what = str(e).splitlines()[0][:200] if str(e) else ""
        print(f"lockedge: {type(e).__name__}: {what} (LOCKEDGE_DEBUG=1 shows where)", file=sys.stderr)
        return EX_SOFTWARE
    return rc


if __name__ == "__main__":
    sys.exit(main())
