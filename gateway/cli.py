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


def _cmd_gateway_import(args: argparse.Namespace) -> int:
    """Import by hand (the daemon does this when an allow-listed stick is
    inserted), with a progress bar. Run it while the daemon is stopped:
    both would write the same store."""
    import time

    from gateway import config
    from gateway.bioservice import BioService
    from gateway.outbox import Outbox

    try:
        cfg = config.load(args.config)
        if cfg.biometrics is None:
            print("lockedge: gateway.toml has no [biometrics] section", file=sys.stderr)
            return 2
        outbox = Outbox(cfg.state_dir / "outbox")
    except (OSError, config.ConfigError) as e:
        print(f"lockedge: {e}", file=sys.stderr)
        return 2

    def bar(e: dict[str, object]) -> None:
        if e.get("event") == "bundle-import-progress":
            done, total = int(str(e["done"])), max(int(str(e["total"])), 1)
            n = 30 * done // total
            print(f"\r{e['file']} [{'#' * n}{'.' * (30 - n)}] {done}/{total}", end="", flush=True)

    cfg.state_dir.mkdir(parents=True, exist_ok=True)
    svc = BioService(cfg.biometrics, cfg.id, cfg.site, cfg.state_dir, cfg.lock_keys(), outbox,
                     lambda t, b: None, bar, matching=False)  # fmt: skip
    reports = svc.importer.import_dir(args.dir, int(time.time()))
    print()
    for r in reports:
        print(f"{r.file}: {r.result} {r.counts if r.counts else ''}")
    outbox.close()
    return 0 if all(r.result == "imported" for r in reports) else 1


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
            time.sleep(float(words[1]))
        elif verb == "status":
            app = sim.app
            print(json.dumps({
                "lock": sim.id,
                "running": app is not None,
                "strike": sim.hal.strike_on,
                "opened": sum(1 for _t, on in sim.hal.strike_log if on),
                "backlog": app.journal.backlog() if app else None,
                "link": app.link.connected if app else False,
            }), flush=True)  # fmt: skip
        elif verb == "quit":
            break
        else:
            print(f"unknown command: {line.strip()}", file=sys.stderr, flush=True)
    sim.power_cut()
    return 0


def _cmd_sim_site(args: argparse.Namespace) -> int:
    from simulators import site

    return site.main(args.locks, args.report, args.scenario)


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
    imp = gw.add_parser("import", help="import the bundles in a folder (a mounted stick) now")
    imp.add_argument("--config", type=Path, required=True)
    imp.add_argument("--dir", type=Path, required=True)
    imp.set_defaults(fn=_cmd_gateway_import)
    from simulators.office_cli import add_parser as add_office

    add_office(sub)
    from simulators.cloud.cli import add_parser as add_cloud

    add_cloud(sub)
    sim = sub.add_parser("sim", help="simulators").add_subparsers(dest="sim_verb", required=True)
    lock = sim.add_parser("lock", help="run one simulated lock (script on stdin)")
    lock.add_argument("--id", required=True)
    lock.add_argument("--broker", required=True, help="local broker, 127.0.0.1:PORT")
    lock.add_argument("--gateway", default="gw-1", help="the gateway's device id")
    lock.add_argument("--root-key-file", type=Path, required=True)
    lock.add_argument("--password-file", type=Path, required=True)
    lock.add_argument("--flash", type=Path, required=True, help="directory standing for the lock's flash")
    lock.set_defaults(fn=_cmd_sim_lock)
    site = sim.add_parser("site", help="a simulated community: brokers, gateway, locks, cloud")
    site.add_argument("--locks", type=int, default=20)
    site.add_argument("--scenario", choices=("day", "mini"), default="day")
    site.add_argument("--report", type=Path, default=None, help="also write the report as JSON")
    site.set_defaults(fn=_cmd_sim_site)
    return p


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    rc: int = args.fn(args)
    return rc


if __name__ == "__main__":
    sys.exit(main())
