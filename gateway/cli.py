"""`lockedge`: the command-line entry point.

Verbs arrive with their features: `gateway run` (issue 5), `sim` (issues 4
and 8), `office` (issue 6). `demo` runs the main job of the README.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from protocol import __version__


def _cmd_demo(args: argparse.Namespace) -> int:
    from simulators import walkthrough

    walkthrough.run()
    return 0


def _cmd_gateway_run(args: argparse.Namespace) -> int:
    import signal

    from gateway import config, logjson
    from gateway.daemon import Gateway

    logjson.setup()
    try:
        gw = Gateway(config.load(args.config))
    except (config.ConfigError, OSError) as e:
        print(f"lockedge: {e}", file=sys.stderr)
        return 2
    signal.signal(signal.SIGTERM, lambda *_: gw.stop())
    signal.signal(signal.SIGINT, lambda *_: gw.stop())
    gw.run()  # returns once SIGTERM's drain is done
    return 0


def _cmd_gateway_status(args: argparse.Namespace) -> int:
    import json

    from gateway import config

    try:
        cfg = config.load(args.config)
        st = json.loads((cfg.state_dir / "status.json").read_text())
    except (config.ConfigError, OSError, ValueError) as e:
        print(f"lockedge: no status ({e}); is the gateway running?", file=sys.stderr)
        return 2
    up = {True: "up", False: "DOWN"}
    print(f"gateway {st['gateway']}: cloud {up[st['cloud']]}, local {up[st['local']]}")
    age = st["oldest_unacked_age_s"]
    print(f"backlog {st['backlog']} records, oldest unacked {'-' if age is None else f'{age:.0f}s'}")
    print(f"records in {st['records_in']}, acked by cloud {st['records_acked']}, refused {st['refused']}")
    for lock, state in sorted(st["locks"].items()):
        print(f"  {lock}: {state}")
    return 0


def _cmd_version(args: argparse.Namespace) -> int:
    print(f"lockedge {__version__}")
    return 0


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="lockedge", description="Edge agent for smart locks and gates.")
    sub = p.add_subparsers(dest="verb", required=True)
    sub.add_parser("demo", help="run the demo (protocol walk-through)").set_defaults(fn=_cmd_demo)
    sub.add_parser("version", help="print the version").set_defaults(fn=_cmd_version)
    gw = sub.add_parser("gateway", help="the gateway daemon").add_subparsers(dest="gw_verb", required=True)
    run = gw.add_parser("run", help="run the daemon (SIGTERM drains and exits)")
    run.add_argument("--config", type=Path, required=True)
    run.set_defaults(fn=_cmd_gateway_run)
    status = gw.add_parser("status", help="links, backlog, oldest unacked record, locks")
    status.add_argument("--config", type=Path, required=True)
    status.set_defaults(fn=_cmd_gateway_status)
    return p


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    rc: int = args.fn(args)
    return rc


if __name__ == "__main__":
    sys.exit(main())
