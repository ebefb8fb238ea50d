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

    from gpiozero.exc import BadPinFactory

    from gateway import config, logjson
    from gateway.daemon import Gateway
    from gateway.statelock import StateLocked

    logjson.setup()
    try:
        gw = Gateway(config.load(args.config))
    except BadPinFactory:
        print(
            "lockedge: the [gate] section needs GPIO, and no pin factory loads on this machine: on a"
            " Raspberry Pi install python3-lgpio (GPIOZERO_PIN_FACTORY=lgpio); on a bench without GPIO set"
            " GPIOZERO_PIN_FACTORY=mock, or remove [gate]",
            file=sys.stderr,
        )
        return 2
    except StateLocked as e:
        print(f"lockedge: a gateway already runs on this state: {e}; stop it first", file=sys.stderr)
        return 2
    except (config.ConfigError, OSError) as e:
        print(f"lockedge: {e}", file=sys.stderr)
        return 2
    signal.signal(signal.SIGTERM, lambda *_: gw.stop())
    signal.signal(signal.SIGINT, lambda *_: gw.stop())
    signal.signal(signal.SIGHUP, lambda *_: gw.request_reload())  # locks.json again, as `lock add` asks
    from gateway.sdnotify import Notifier

    gw.run(Notifier())  # returns once SIGTERM's drain is done; tells systemd when ready, pings its watchdog
    return 0


def _cmd_gateway_check_config(args: argparse.Namespace) -> int:
    """The same check the daemon runs at start, and the secret files it needs."""
    from gateway import config

    try:
        cfg = config.load(args.config)
        cfg.root_key()
        locks = cfg.lock_keys()
        cfg.cloud.check_secrets()
        cfg.local.check_secrets()
    except (config.ConfigError, OSError) as e:
        print(str(e), file=sys.stderr)
        return 1
    print(f"{args.config}: ok (gateway {cfg.id}, site {cfg.site}, {len(locks)} locks)")
    return 0


def _cmd_gateway_init(args: argparse.Namespace) -> int:
    from gateway import provision

    try:
        ticket = provision.read_ticket(args.ticket, provision.GatewayTicket)
        plan = provision.InitPlan(
            config=args.config, ticket=ticket, lock_server=args.lock_server, local_port=args.local_port,
            mosquitto_dir=args.mosquitto_dir, state_dir=args.state_dir, broker_pid_file=args.broker_pid_file,
            wifi_ssid=args.wifi, biometrics=not args.no_biometrics, metrics_textfile=args.metrics_textfile,
        )  # fmt: skip
        written = provision.init(plan)
    except provision.ProvisionError as e:
        print(f"lockedge: {e}", file=sys.stderr)
        return 2
    print(f"gateway {ticket.gateway} of site {ticket.site} initialised:")
    for p in written:
        print(f"  wrote {p}")
    if plan.biometrics:
        print(
            f"give the office {args.config.parent / 'bundle.pub'} (this gateway's public bundle key), and put"
        )
        print("  the office's public key (`lockedge office public-key`) in [biometrics] issuers")
    print(f"then: systemctl reload mosquitto; lockedge gateway check-config --config {args.config}")
    return 0


def _tell_running(cfg: object) -> str:
    """Ask a running daemon to read locks.json again."""
    from gateway import control

    state_dir = getattr(cfg, "state_dir")  # noqa: B009
    try:
        answer = control.request(state_dir, {"op": "reload"}, timeout=10)
    except control.ControlUnavailable:
        return "the gateway is not running: it reads the locks when it starts"
    if not answer.get("ok"):
        return f"the running gateway did not reload: {answer.get('error')}"
    return f"the running gateway reloaded: it serves {answer['locks']} locks"


def _cmd_lock(args: argparse.Namespace) -> int:
    from gateway import config, provision

    try:
        cfg = config.load(args.config)
        if args.lock_verb == "add":
            ticket = provision.read_ticket(args.ticket, provision.LockTicket)
            if ticket.lock != args.id:
                print(
                    f"lockedge: {args.ticket} is the ticket of {ticket.lock}, not of {args.id[:64]}",
                    file=sys.stderr,
                )
                return 2
            added = provision.add_lock(cfg, args.ticket, args.out, args.wifi)
            print(f"{added.lock} added; its provisioning folder: {added.folder} ({', '.join(added.files)})")
            print(f"  copy it to the board with the root.key the cloud wrote for {added.lock}")
        elif args.lock_verb == "remove":
            provision.remove_lock(cfg, args.id)
            print(f"{args.id} removed: its key and broker login are gone; retire it at the cloud too")
        else:
            for lock, login in provision.list_locks(cfg):
                print(f"{lock}  broker login: {'yes' if login else 'MISSING'}")
            return 0
    except provision.ProvisionError as e:
        print(f"lockedge: {e}", file=sys.stderr)
        return 2
    except (config.ConfigError, OSError) as e:
        print(f"lockedge: {e}", file=sys.stderr)
        return 2
    print(provision.reload_broker(cfg))
    print(_tell_running(cfg))
    return 0


def _cmd_gateway_status(args: argparse.Namespace) -> int:
    """Live from the running daemon (its control socket); otherwise the last
    status it wrote, said to be stale, with its age. Exit 0 running, 1 running
    but not answering, 3 not running (as `systemctl status`)."""
    import json
    import time

    from gateway import config, control
    from gateway.statelock import StateLock, holder_of

    try:
        cfg = config.load(args.config)
    except (config.ConfigError, OSError) as e:
        print(f"lockedge: {e}", file=sys.stderr)
        return 2
    lock = cfg.state_dir / "gateway.lock"
    try:
        answer = control.request(cfg.state_dir, {"op": "status"}, timeout=5)
        st = answer["status"] if answer.get("ok") else None
    except control.ControlUnavailable:
        st = None
    if st is not None:
        print(f"gateway {st['gateway']}: running (pid {st['pid']}, up {_ago(st['uptime_s'])})")
        rc = 0
    else:
        try:
            st = json.loads((cfg.state_dir / "status.json").read_text())
        except (OSError, ValueError):
            st = None
        age = time.time() - float(st.get("written_at", 0)) if st else None
        if StateLock.held(lock):
            pid, _cmd = holder_of(lock)
            print(f"gateway {cfg.id}: running (pid {pid}) but not answering on its control socket")
            rc = 1
        else:
            print(f"gateway {cfg.id}: NOT RUNNING")
            rc = 3
        if st is None:
            print("no status was ever written in " + str(cfg.state_dir))
            return rc
        when = "at an unknown time" if not st.get("written_at") else f"{_ago(age or 0)} ago"
        print(f"last status, written {when} (stale: links and ages as they were then):")
    up = {True: "up", False: "DOWN"}
    print(f"  cloud {up[bool(st['cloud'])]}, local {up[bool(st['local'])]}")
    age_s = st["oldest_unacked_age_s"]
    print(f"  backlog {st['backlog']} records, oldest unacked {'-' if age_s is None else _ago(age_s)}")
    print(f"  records in {st['records_in']}, acked by cloud {st['records_acked']}, refused {st['refused']}")
    damage = st.get("outbox_recovery") or {}
    if any(damage.get(k) for k in ("torn_bytes", "corrupt_bytes", "undecodable")):
        print(f"  outbox damage repaired at start: {damage}")
    for lock_id, state in sorted(st["locks"].items()):
        print(f"  {lock_id}: {state}")
    return rc


def _ago(seconds: float) -> str:
    s = int(seconds)
    if s < 120:
        return f"{s} s"
    if s < 7200:
        return f"{s // 60} min"
    return f"{s // 3600} h {s % 3600 // 60} min"


def _cmd_gateway_import(args: argparse.Namespace) -> int:
    """Import now, with a progress bar. If the daemon runs, it does the
    import (it owns the store and the outbox) and this prints its reports."""
    import time

    from gateway import config, control
    from gateway.bioservice import BioService
    from gateway.outbox import Outbox
    from gateway.statelock import StateLock, StateLocked

    try:
        cfg = config.load(args.config)
        if cfg.biometrics is None:
            print("lockedge: gateway.toml has no [biometrics] section", file=sys.stderr)
            return 2
        cfg.state_dir.mkdir(parents=True, exist_ok=True)
        state_lock = StateLock(cfg.state_dir / "gateway.lock")
    except StateLocked as e:
        try:
            answer = control.request(cfg.state_dir, {"op": "import", "dir": str(args.dir.resolve())})
        except control.ControlUnavailable as why:
            print(f"lockedge: {e}, which does not answer ({why}); try again when it does", file=sys.stderr)
            return 2
        if not answer.get("ok"):
            print(f"lockedge: the running gateway refused: {answer.get('error')}", file=sys.stderr)
            return 2
        print(f"imported by the running gateway (pid {e.pid}):")
        reports = answer["reports"]
        for r in reports:
            print(f"{r['file']}: {r['result']} {r['counts'] if r['counts'] else ''}")
        return 0 if all(r["result"] == "imported" for r in reports) else 1
    except (OSError, config.ConfigError) as e:
        print(f"lockedge: {e}", file=sys.stderr)
        return 2
    try:
        outbox = Outbox(cfg.state_dir / "outbox")
    except (OSError, StateLocked) as e:
        state_lock.release()
        print(f"lockedge: {e}", file=sys.stderr)
        return 2

    def bar(e: dict[str, object]) -> None:
        if e.get("event") == "bundle-import-progress":
            done, total = int(str(e["done"])), max(int(str(e["total"])), 1)
            n = 30 * done // total
            print(f"\r{e['file']} [{'#' * n}{'.' * (30 - n)}] {done}/{total}", end="", flush=True)

    if not args.dir.is_dir():
        outbox.close()
        state_lock.release()
        print(f"lockedge: {args.dir}: not a folder (is the stick mounted?)", file=sys.stderr)
        return 2
    try:
        svc = BioService(cfg.biometrics, cfg.id, cfg.site, cfg.state_dir, cfg.lock_keys(), outbox,
                         lambda t, b: None, bar, matching=False)  # fmt: skip
        reports = svc.importer.import_dir(args.dir, int(time.time()))
    except (config.ConfigError, ValueError) as e:  # a key file that is not one, locks.json unreadable
        print(f"lockedge: {e}", file=sys.stderr)
        return 2
    finally:
        outbox.close()
        state_lock.release()
    print()
    if not reports:
        print(f"nothing to import: no *.lkb bundle in {args.dir}")
        return 1
    for rep in reports:
        print(f"{rep.file}: {rep.result} {rep.counts if rep.counts else ''}")
    return 0 if all(rep.result == "imported" for rep in reports) else 1


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


def _cmd_version(args: argparse.Namespace) -> int:
    print(f"lockedge {__version__}")
    return 0


def _site_size(text: str) -> int:
    try:
        n = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a whole number") from None
    if not 1 <= n <= 500:
        raise argparse.ArgumentTypeError(f"{n} locks: a simulated site has 1..500")
    return n


def _port(text: str) -> int:
    try:
        n = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text[:20]!r} is not a port number") from None
    if not 1 <= n <= 65535:
        raise argparse.ArgumentTypeError(f"{n}: a port is 1..65535")
    return n


def _config_arg(p: argparse.ArgumentParser, what: str = "gateway.toml") -> None:
    """--config, defaulting to $LOCKEDGE_CONFIG or /etc/lockedge/gateway.toml."""
    import os

    default = Path(os.environ.get("LOCKEDGE_CONFIG") or "/etc/lockedge/gateway.toml")
    p.add_argument(
        "--config", type=Path, default=default, help=f"{what} (default {default}; $LOCKEDGE_CONFIG)"
    )


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="lockedge", description="Edge agent for smart locks and gates.")
    p.add_argument("--version", action="version", version=f"lockedge {__version__}")
    sub = p.add_subparsers(dest="verb", required=True)
    sub.add_parser("demo", help="run the demo (protocol walk-through)").set_defaults(fn=_cmd_demo)
    sub.add_parser("version", help="print the version").set_defaults(fn=_cmd_version)
    gw = sub.add_parser("gateway", help="the gateway daemon").add_subparsers(dest="gw_verb", required=True)
    init = gw.add_parser("init", help="write a working installation from the cloud's gateway ticket")
    _config_arg(init, "where to write gateway.toml (its keys go beside it)")
    init.add_argument(
        "--ticket", type=Path, required=True, help="the gateway's ticket (`lockedge cloud provision`)"
    )
    init.add_argument("--lock-server", required=True, help="this gateway's address on the lock network")
    init.add_argument("--local-port", type=_port, default=1883, help="the local broker's port (default 1883)")
    init.add_argument(
        "--mosquitto-dir",
        type=Path,
        default=Path("/etc/mosquitto"),
        help="the local Mosquitto's config folder (conf.d/, password file and ACL go there)",
    )
    init.add_argument("--broker-pid-file", default="/run/mosquitto/mosquitto.pid",
                      help="signalled to reload the broker when a lock is added or removed")  # fmt: skip
    init.add_argument("--state-dir", default="/var/lib/lockedge", help="the daemon's state folder")
    init.add_argument("--wifi", help="the lock network's Wi-Fi name (for each lock's lock.json)")
    init.add_argument(
        "--no-biometrics", action="store_true", help="no [biometrics] section and no bundle key"
    )
    init.add_argument("--metrics-textfile", help="write metrics for node_exporter's textfile collector here")
    init.set_defaults(fn=_cmd_gateway_init)
    run = gw.add_parser("run", help="run the daemon (SIGTERM drains and exits, SIGHUP reloads the locks)")
    _config_arg(run)
    run.set_defaults(fn=_cmd_gateway_run)
    chk = gw.add_parser("check-config", help="check gateway.toml whole: every problem, one per line")
    _config_arg(chk)
    chk.set_defaults(fn=_cmd_gateway_check_config)
    status = gw.add_parser("status", help="links, backlog, oldest unacked record, locks")
    _config_arg(status)
    status.set_defaults(fn=_cmd_gateway_status)
    imp = gw.add_parser("import", help="import the bundles in a folder (a mounted stick) now")
    _config_arg(imp)
    imp.add_argument("--dir", type=Path, required=True, help="the folder holding the *.lkb bundles")
    imp.set_defaults(fn=_cmd_gateway_import)
    lk = sub.add_parser("lock", help="the locks this gateway serves").add_subparsers(
        dest="lock_verb", required=True
    )
    add = lk.add_parser("add", help="add a lock from its cloud ticket, without restarting the gateway")
    add.add_argument("id", help="the lock's id (as on its ticket)")
    add.add_argument(
        "--ticket", type=Path, required=True, help="the lock's ticket (`lockedge cloud provision`)"
    )
    add.add_argument(
        "--out", type=Path, required=True, help="the lock's provisioning folder is written in here"
    )
    add.add_argument("--wifi", help="the lock network's Wi-Fi name (default: local.wifi_ssid of the config)")
    _config_arg(add)
    add.set_defaults(fn=_cmd_lock)
    rm = lk.add_parser("remove", help="stop serving a lock: its key and broker login are removed")
    rm.add_argument("id", help="the lock's id")
    _config_arg(rm)
    rm.set_defaults(fn=_cmd_lock)
    ls = lk.add_parser("list", help="the locks in locks.json, and whether each has a broker login")
    _config_arg(ls)
    ls.set_defaults(fn=_cmd_lock)
    from simulators.office_cli import add_parser as add_office

    add_office(sub)
    from simulators.cloud.cli import add_parser as add_cloud

    add_cloud(sub)
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
