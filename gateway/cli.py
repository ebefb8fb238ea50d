"""`lockedge gateway ...` and `lockedge lock ...`: the gateway's own verbs
(run, init, check-config, status, import; lock add/remove/list). The
command line that puts them together with the simulators' verbs is
lockedge/cli.py, the floor above: nothing here imports a simulator.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from gateway.config import GatewayConfig


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


def _tell_running(cfg: GatewayConfig) -> str:
    """Ask a running daemon to read locks.json again."""
    from gateway import control

    state_dir = cfg.state_dir
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


def add_parsers(sub: argparse._SubParsersAction) -> None:
    """`gateway ...` and `lock ...`: the installer's and the operator's verbs."""
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
