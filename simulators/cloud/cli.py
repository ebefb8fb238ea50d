"""`lockedge cloud ...`: the backend's visitor flows from a shell, over a
SQLite file. Codes are derived from per-target root keys in a JSON file
{target: hex root} (0600), as the cloud holds them. A refusal prints its
reason and exits 2."""

from __future__ import annotations

import argparse
import json
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
    if not args.db.parent.is_dir():
        raise ValueError(f"{args.db}: its folder does not exist")
    try:
        return CloudBackend(args.db, issuer, set(roots))
    except sqlite3.Error as e:
        raise ValueError(f"{args.db}: cannot open the database: {e}") from None


def _print_code(issued: object) -> None:
    keypad = getattr(issued, "keypad", None)
    print(f"keypad: {keypad or '-'}")
    print(f"long:   {getattr(issued, 'long', '')}")
    print(f"valid:  {getattr(issued, 'start', 0)} .. {getattr(issued, 'end', 0)} (Unix seconds)")


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


def run(args: argparse.Namespace) -> int:
    try:
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
            print(f"command {cmd.cmd_id} for {cmd.lock}, deadline {cmd.deadline}")
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
    c.add_argument("--db", type=Path, required=True)
    c.add_argument("--roots", type=Path, required=True, help="JSON {target: hex root key} (0600)")
    v = c.add_subparsers(dest="cloud_verb", required=True)
    i = v.add_parser("invite", help="a resident invites a visitor")
    for a in ("--resident", "--name", "--document", "--target"):
        i.add_argument(a, required=True)
    i.add_argument("--hours", type=float, default=4)
    a_ = v.add_parser("accept", help="the visitor opens the invitation")
    for a in ("--token", "--name", "--document"):
        a_.add_argument(a, required=True)
    r = v.add_parser("request", help="self-service request at the gate")
    for a in ("--name", "--document", "--position", "--occupation", "--purpose"):
        r.add_argument(a, required=True)
    r.add_argument("--frequency", default="occasional")
    bl = v.add_parser("blacklist", help="refuse a visitor and revoke their codes")
    bl.add_argument("--document", required=True)
    bl.add_argument("--reason", default="blacklisted")
    rs = v.add_parser("resident", help="register a resident at their door")
    rs.add_argument("--resident", required=True)
    rs.add_argument("--lock", required=True)
    mo = v.add_parser("move-out", help="end a resident's registration; print the code revocation")
    mo.add_argument("--resident", required=True)
    u = v.add_parser("unlock", help="a resident unlocks their door remotely")
    u.add_argument("--resident", required=True)
    u.add_argument("--lock", required=True)
    u.add_argument("--ttl", type=int, default=30, help="seconds the lock may still execute it")
    u.add_argument("--broker", help="HOST:PORT of the cloud broker: also send the sealed command")
    u.add_argument("--site", default="site-7")
    v.add_parser("report", help="what the backend received and decided")
    c.set_defaults(fn=run)
