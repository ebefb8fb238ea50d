"""`lockedge cloud ...`: the backend's visitor flows from a shell, over a
SQLite file. Codes are derived from per-target root keys in a JSON file
{target: hex root} (0600), as the cloud holds them. A refusal prints its
reason and exits 2."""

from __future__ import annotations

import argparse
import json
import secrets
import sqlite3
import sys
import time
from pathlib import Path

from gateway.config import read_secret
from gateway.issuer import CodeIssuer
from protocol import keys
from simulators.cloud.backend import CloudBackend, FlowError, Request


def _backend(args: argparse.Namespace) -> CloudBackend:
    try:
        roots = {str(t): bytes.fromhex(h) for t, h in json.loads(read_secret(args.roots)).items()}
    except (AttributeError, TypeError, ValueError):
        raise ValueError(f"{args.roots}: expected JSON {{target id: hex root key}}") from None
    short = [t for t, r in roots.items() if len(r) != keys.ROOT_KEY_LEN]
    if short:  # said here, not as a bad-key error at the first code issued
        raise ValueError(f"{args.roots}: {short[0][:40]!r}: a root key is {keys.ROOT_KEY_LEN} bytes")
    issuer = CodeIssuer(lambda t: keys.derive(roots[t], keys.CODE, t))
    if args.db is None:
        raise ValueError(f"`cloud {args.cloud_verb}` needs --db (the backend's SQLite file)")
    if not args.db.parent.is_dir():
        raise ValueError(f"{args.db}: its folder does not exist")
    try:
        return CloudBackend(args.db, issuer, set(roots))
    except sqlite3.Error as e:
        raise ValueError(f"{args.db}: cannot open the database: {e}") from None


def local_time(t: int) -> str:
    """What a person reads: the machine's local time with its zone."""
    return time.strftime("%Y-%m-%d %H:%M:%S %Z", time.localtime(t))


def _print_code(issued: object) -> None:
    from protocol import passcode as pc

    keypad = getattr(issued, "keypad", None)
    k = int(getattr(issued, "kind", -1))
    kind = pc.KIND_NAMES[k] if 0 <= k < len(pc.KIND_NAMES) else "?"
    print(f"kind:   {kind}")
    print(f"keypad: {keypad or '-'}")
    print(f"long:   {getattr(issued, 'long', '')}")
    print(f"valid:  {local_time(getattr(issued, 'start', 0))} .. {local_time(getattr(issued, 'end', 0))}")


def _publish_unlock(args: argparse.Namespace, cmd_id: str, lock: str, deadline: int, now: int) -> None:
    """Seal the command for the lock and publish it on the cloud broker."""
    import paho.mqtt.publish as publish

    from simulators.cloud.receiver import seal_command

    roots = {t: bytes.fromhex(h) for t, h in json.loads(read_secret(args.roots)).items()}
    # Sequence: Unix seconds, as the receiver simulator's commands start from.
    wire = seal_command(roots[lock], lock, cmd_id, deadline, now, now)
    host, _, port = args.broker.rpartition(":")
    publish.single(f"site/{args.site}/lock/{lock}/cmd", wire, qos=1, hostname=host or "127.0.0.1",
                   port=int(port))  # fmt: skip


def _provision(args: argparse.Namespace) -> None:
    """A new device's root key, kept by the cloud (a gateway's in
    gateways.json beside roots.json: it is no code target), and its ticket
    for the installer. A lock's ticket holds its local key only; its root
    goes to `<id>.root.key`, for the board and nobody else."""
    from gateway.store import atomic_write

    keys.check_device_id(args.id)
    book = args.roots if args.kind == "lock" else args.roots.with_name("gateways.json")
    try:
        held = {str(k): v for k, v in json.loads(read_secret(book)).items()}
    except FileNotFoundError:
        held = {}
    except (AttributeError, ValueError):
        raise ValueError(f"{book}: expected JSON {{device id: hex root key}}") from None
    if args.id in held:
        raise ValueError(f"{args.id} is provisioned already: a device's root is made once")
    if not args.out.is_dir():
        raise ValueError(f"{args.out}: no such folder")
    ticket_file = args.out / f"{args.id}.ticket"
    root_file = args.out / f"{args.id}.root.key"
    for f in (ticket_file, root_file):
        if f.exists():
            raise ValueError(f"{f} exists")
    root = secrets.token_bytes(keys.ROOT_KEY_LEN)
    if args.kind == "gateway":
        host, _, port = (args.cloud_broker or "").rpartition(":")
        if not host or not port.isdigit():
            raise ValueError("a gateway's ticket needs --cloud-broker HOST:PORT (where it connects)")
        ticket: dict[str, object] = {
            "lockedge": "gateway-ticket",
            "v": 1,
            "gateway": args.id,
            "site": args.site,
        }
        ticket.update(root_key=root.hex(), cloud_host=host, cloud_port=int(port))
    else:
        local = keys.derive(root, keys.LOCAL, args.id)
        ticket = {
            "lockedge": "lock-ticket",
            "v": 1,
            "lock": args.id,
            "site": args.site,
            "local_key": local.hex(),
        }
    held[args.id] = root.hex()
    atomic_write(
        book, json.dumps(held, indent=1).encode()
    )  # the cloud's copy first: a ticket is never orphaned
    atomic_write(ticket_file, json.dumps(ticket).encode())
    print(f"{args.id}: ticket for the installer in {ticket_file}")
    if args.kind == "lock":
        atomic_write(root_file, root)
        print(
            f"{args.id}: root key for the board in {root_file} (copy it as root.key; keep it off the gateway)"
        )


def run(args: argparse.Namespace) -> int:
    try:
        if args.cloud_verb == "provision":
            _provision(args)
            return 0
        b = _backend(args)
        now = int(time.time())
        v = args.cloud_verb
        if v == "invite":
            tok = b.invite(
                args.resident, args.name, args.document, args.target, now, now + int(args.hours * 3600)
            )
            print(f"invitation: {tok}")
        elif v == "accept":
            _print_code(b.accept(args.token, args.name, args.document, now))
        elif v == "request":
            r = Request(
                args.name, args.document, args.position, args.occupation, args.purpose, args.frequency
            )
            _print_code(b.request(r, now))
        elif v == "blacklist":
            body = b.blacklist(args.document, 0, args.reason, now)
            print(json.dumps({str(k): v for k, v in body.items()}))
        elif v == "resident":
            b.register_resident(args.resident, args.lock, now)
            print(f"{args.resident} registered at {args.lock}")
        elif v == "move-out":
            body = b.revoke_codes(b.move_out(args.resident, now), 0)
            print(json.dumps({str(k): v for k, v in body.items()}))
        elif v == "unlock":
            cmd = b.remote_unlock(args.resident, args.lock, now, ttl=args.ttl)
            print(f"command {cmd.cmd_id} for {cmd.lock}, deadline {local_time(cmd.deadline)}")
            if args.broker:
                _publish_unlock(args, cmd.cmd_id, cmd.lock, cmd.deadline, now)
        elif v == "report":
            print(b.dump())
        return 0
    except FlowError as e:
        print(f"refused: {e}", file=sys.stderr)
        return 2
    except (OSError, ValueError, KeyError) as e:
        print(f"lockedge cloud: {e}", file=sys.stderr)
        return 2


def add_parser(sub: argparse._SubParsersAction) -> None:
    c = sub.add_parser("cloud", help="the cloud backend simulator's visitor flows")
    c.add_argument("--db", type=Path, help="the backend's SQLite file (every verb but provision)")
    c.add_argument("--roots", type=Path, required=True, help="JSON {target: hex root key} (0600)")
    v = c.add_subparsers(dest="cloud_verb", required=True)
    i = v.add_parser("invite", help="a resident invites a visitor")
    for a, what in (
        ("--resident", "the inviting resident's id"),
        ("--name", "the visitor's name"),
        ("--document", "the visitor's identity document"),
        ("--target", "the lock or gate it opens"),
    ):
        i.add_argument(a, required=True, help=what)
    i.add_argument("--hours", type=float, default=4, help="how long the code is valid (default 4)")
    a_ = v.add_parser("accept", help="the visitor opens the invitation")
    for a, what in (
        ("--token", "the invitation's token"),
        ("--name", "the visitor's name"),
        ("--document", "the visitor's identity document (as the invitation names)"),
    ):
        a_.add_argument(a, required=True, help=what)
    r = v.add_parser("request", help="self-service request at the gate")
    for a, what in (
        ("--name", "the visitor's name"),
        ("--document", "their identity document"),
        ("--position", "the target they want to open"),
        ("--occupation", "e.g. courier, repair"),
        ("--purpose", "e.g. delivery, family visit"),
    ):
        r.add_argument(a, required=True, help=what)
    r.add_argument("--frequency", default="occasional", help="frequent or occasional (the policy's validity)")
    bl = v.add_parser("blacklist", help="refuse a visitor and revoke their codes")
    bl.add_argument("--document", required=True, help="the refused visitor's identity document")
    bl.add_argument("--reason", default="blacklisted", help="recorded reason (default blacklisted)")
    rs = v.add_parser("resident", help="register a resident at their door")
    rs.add_argument("--resident", required=True, help="the resident's id")
    rs.add_argument("--lock", required=True, help="the lock of their door")
    mo = v.add_parser("move-out", help="end a resident's registration; print the code revocation")
    mo.add_argument("--resident", required=True, help="the resident moving out")
    u = v.add_parser("unlock", help="a resident unlocks their door remotely")
    u.add_argument("--resident", required=True, help="the resident asking")
    u.add_argument("--lock", required=True, help="the lock to open (theirs)")
    u.add_argument("--ttl", type=int, default=30, help="seconds the lock may still execute it")
    u.add_argument("--broker", help="HOST:PORT of the cloud broker: also send the sealed command")
    u.add_argument("--site", default="site-7", help="the site's topic prefix (default site-7)")
    v.add_parser("report", help="what the backend received and decided")
    pv = v.add_parser(
        "provision", help="a new gateway's or lock's root key, and its ticket for the installer"
    )
    pv.add_argument("kind", choices=("gateway", "lock"), help="what is provisioned")
    pv.add_argument("id", help="the device's id")
    pv.add_argument("--out", type=Path, required=True, help="the ticket (and a lock's root.key) go in here")
    pv.add_argument("--site", default="site-7", help="the site the device belongs to")
    pv.add_argument("--cloud-broker", help="HOST:PORT the gateway connects to (gateway tickets)")
    c.set_defaults(fn=run)
