"""`lockedge demo` and `lockedge sim ...`: the developers' simulators on the
command line (the office's and the cloud's verbs are in office_cli.py and
cloud/cli.py)."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path


def _cmd_demo(args: argparse.Namespace) -> int:
    from simulators import walkthrough

    walkthrough.run()
    return 0


def _cmd_sim_lock(args: argparse.Namespace) -> int:
    """One simulated lock, driven by lines on stdin:
    code DIGITS | finger FILE | exit | door open|close | power-cut | boot | wait S | status | quit
    (`finger FILE`: a finger whose image gives the template in FILE)"""
    import json
    import time

    from gateway.config import ConfigError, read_secret
    from simulators.locksim import SimLock

    host, _, port = args.broker.partition(":")
    if host not in ("127.0.0.1", "localhost"):
        print("lockedge: the simulator connects only to a loopback broker", file=sys.stderr)
        return 2
    try:
        root = read_secret(args.root_key_file)
        password = read_secret(args.password_file).decode().strip()
    except (OSError, ConfigError) as e:
        print(f"lockedge: {e}", file=sys.stderr)
        return 2
    sim = SimLock(args.id, root, args.flash, args.gateway, int(port or 1883), password).boot()
    for line in sys.stdin:
        words = line.split()
        if not words:
            continue
        verb = words[0]
        if verb == "code" and len(words) == 2:
            sim.type_code(words[1])
        elif verb == "finger" and len(words) == 2:
            try:
                sim.present_finger(Path(words[1]).read_bytes())
            except OSError as e:
                print(f"finger: cannot read {words[1]}: {e.strerror}", file=sys.stderr, flush=True)
        elif verb == "exit":
            sim.hal.press_exit()
        elif verb == "door" and len(words) == 2:
            sim.hal.set_door(words[1] == "open")
        elif verb == "power-cut":
            sim.power_cut()
        elif verb == "boot":
            if sim.app is None:
                sim.boot()
        elif verb == "wait" and len(words) == 2:
            try:
                seconds = float(words[1])
            except ValueError:
                seconds = -1.0
            if not 0 <= seconds <= 3600:
                print(
                    f"wait: {words[1][:20]!r} is not a number of seconds (0..3600)",
                    file=sys.stderr,
                    flush=True,
                )
                continue
            time.sleep(seconds)
        elif verb == "status":
            app = sim.app
            print(json.dumps({
                "lock": sim.id,
                "running": app is not None,
                "strike": sim.hal.strike_on,
                "opened": sum(1 for _t, on in sim.hal.strike_log if on),
                "backlog": app.journal.backlog() if app else None,
                "link": app.link.connected if app else False,
                "link_error": app.link.last_error if app else "",
            }), flush=True)  # fmt: skip
        elif verb == "quit":
            break
        else:
            print(f"unknown command: {line.strip()}", file=sys.stderr, flush=True)
    sim.power_cut()
    return 0


def _cmd_sim_site(args: argparse.Namespace) -> int:
    from simulators import site

    if args.scenario == "day" and args.locks < 3:
        print(f"lockedge: the day scenario needs at least 3 locks (--locks {args.locks})", file=sys.stderr)
        return 2
    return site.main(args.locks, args.report, args.scenario)


def _site_size(text: str) -> int:
    try:
        n = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a whole number") from None
    if not 1 <= n <= 500:
        raise argparse.ArgumentTypeError(f"{n} locks: a simulated site has 1..500")
    return n


def add_parsers(sub: argparse._SubParsersAction) -> None:
    sub.add_parser("demo", help="run the demo (protocol walk-through)").set_defaults(fn=_cmd_demo)
    sim = sub.add_parser("sim", help="simulators").add_subparsers(dest="sim_verb", required=True)
    lock = sim.add_parser(
        "lock",
        help="run one simulated lock (script on stdin)",
        formatter_class=argparse.RawDescriptionHelpFormatter,
        description="One simulated lock running the unchanged firmware, driven by lines on stdin:\n"
        "  code DIGITS       type a code and # on the keypad\n"
        "  finger FILE       present a finger whose image gives the ISO template in FILE\n"
        "  exit              press the exit button\n"
        "  door open|close   the door contact\n"
        "  power-cut         cut the power (flash writes in progress are torn)\n"
        "  boot              power on again after a cut\n"
        "  wait SECONDS      pause the script (0..3600)\n"
        "  status            print the lock's state as one JSON line\n"
        "  quit              stop",
    )
    lock.add_argument("--id", required=True, help="the lock's device id")
    lock.add_argument("--broker", required=True, help="local broker, 127.0.0.1:PORT")
    lock.add_argument("--gateway", default="gw-1", help="the gateway's device id")
    lock.add_argument("--root-key-file", type=Path, required=True, help="the lock's 32-byte root key (0600)")
    lock.add_argument(
        "--password-file", type=Path, required=True, help="its password on the local broker (0600)"
    )
    lock.add_argument("--flash", type=Path, required=True, help="directory standing for the lock's flash")
    lock.set_defaults(fn=_cmd_sim_lock)
    site = sim.add_parser("site", help="a simulated community: brokers, gateway, locks, cloud")
    site.add_argument("--locks", type=_site_size, default=20, help="1..500 (the day scenario needs 3)")
    site.add_argument(
        "--scenario", choices=("day", "mini"), default="day", help="a whole day, or a short check"
    )
    site.add_argument("--report", type=Path, default=None, help="also write the report as JSON")
    site.set_defaults(fn=_cmd_sim_site)
