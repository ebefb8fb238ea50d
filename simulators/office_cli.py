"""`lockedge office ...`: the management office's verbs over an office
folder (simulators/office.py). Every refusal prints its reason and exits
2; nothing is changed by a refused command."""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

from gateway.config import read_secret
from simulators.office import Office, OfficeError, Tenant


def _office(args: argparse.Namespace) -> Office:
    seal_keys = {}
    if args.seal_keys:
        seal_keys = {k: bytes.fromhex(v) for k, v in json.loads(read_secret(Path(args.seal_keys))).items()}
    return Office(args.folder, args.site, seal_keys)


def run(args: argparse.Namespace) -> int:
    try:
        o = _office(args)
        now = int(time.time())
        if args.office_verb == "tenant":
            o.add_tenant(Tenant(args.id, args.name, args.document, args.lock))
            print(f"tenant {args.id} added")
        elif args.office_verb == "enrol":
            tpls = [(int(pos), Path(f).read_bytes()) for pos, f in (t.split("=", 1) for t in args.template)]
            pid = o.enrol(args.id, args.document, args.name, tpls, args.purpose, args.scope, now)
            fingers = len({p for p, _t in tpls})
            print(
                f"enrolled {args.id} as {pid}: {len(tpls)} press(es) of {fingers} finger(s), consent recorded"
            )
        elif args.office_verb == "delete":
            pid = o.delete_person(args.id, args.why, now)
            print(f"{args.id} ({pid}) deleted here; the deletion goes out with the next export")
        elif args.office_verb == "export":
            out = o.export(args.stick, Path(args.gateway_public).read_bytes(), now)
            print(f"bundle written: {out}")
        elif args.office_verb == "receipts":
            got = []
            for n, line in enumerate(Path(args.file).read_text().splitlines(), 1):
                if not line.strip():
                    continue
                parts = line.split()
                if len(parts) != 2:
                    raise OfficeError("malformed", f"{args.file}:{n}: expected '<lock id> <hex receipt>'")
                try:
                    got.append((parts[0], bytes.fromhex(parts[1])))
                except ValueError:
                    raise OfficeError("malformed", f"{args.file}:{n}: the receipt is not hex") from None
            c = o.apply_delivery(got)
            print(
                f"{len(got)} receipt(s): {c['applied']} operation(s) now applied, {c['answered']} answered,"
                f" {c['unknown']} for no operation of ours, {c['bad']} refused (bad MAC or unknown lock)"
            )
        elif args.office_verb == "status":
            rows = o.status()
            if args.json:
                print(json.dumps(rows))
            elif not rows:
                print("no operations yet")
            else:
                for r in rows:
                    print(f"{r['tenant']:<12} {r['person']:<16} {r['op']:<11} {r['device']:<12} "
                          f"{r['state']:<8} {r['proof']}")  # fmt: skip
        elif args.office_verb == "public-key":
            from cryptography.hazmat.primitives import serialization as ser

            print(o.public_key().public_bytes(ser.Encoding.Raw, ser.PublicFormat.Raw).hex())
        return 0
    except OfficeError as e:
        print(f"refused: {e}", file=sys.stderr)
        return 2
    except (OSError, ValueError) as e:
        print(f"lockedge office: {e}", file=sys.stderr)
        return 2


def add_parser(sub: argparse._SubParsersAction) -> None:
    off = sub.add_parser("office", help="the management office (enrolment, bundle export)")
    off.add_argument("--folder", type=Path, required=True, help="the office store")
    off.add_argument("--site", default="site-7", help="the site the office serves (default site-7)")
    off.add_argument(
        "--seal-keys", help="JSON {lock id: hex seal key} from the cloud (0600), for sealing lock entries"
    )
    v = off.add_subparsers(dest="office_verb", required=True)
    t = v.add_parser("tenant", help="add a tenant account")
    for a, what in (
        ("--id", "the tenant's account id"),
        ("--name", "their name"),
        ("--document", "their identity document's number"),
        ("--lock", "the lock of their door"),
    ):
        t.add_argument(a, required=True, help=what)
    e = v.add_parser("enrol", help="check identity, record consent, take templates")
    for a, what in (
        ("--id", "the tenant's account id"),
        ("--name", "their name, as on the document"),
        ("--document", "the identity document checked at the desk"),
        ("--purpose", "what the fingerprints are for, as consented"),
        ("--scope", "the consent's scope, as the person agreed it"),
    ):
        e.add_argument(a, required=True, help=what)
    press = "FINGER=ISO_19794_2_FILE, once per press (a finger pressed again keeps both)"
    e.add_argument("--template", action="append", required=True, help=press)
    d = v.add_parser("delete", help="consent withdrawn or moved out")
    d.add_argument("--id", required=True, help="the person whose templates are deleted everywhere")
    d.add_argument("--why", default="move-out", help="recorded reason (default move-out)")
    x = v.add_parser("export", help="write pending operations as a bundle onto the stick")
    x.add_argument("--stick", type=Path, required=True, help="the mounted provisioning stick")
    x.add_argument("--gateway-public", type=Path, required=True, help="the gateway's public key blob")
    r = v.add_parser("receipts", help="apply the locks' delivery receipts, as the cloud received them")
    r.add_argument("--file", type=Path, required=True, help="one '<lock id> <hex receipt>' per line")
    st = v.add_parser(
        "status", help="per tenant and device: what is applied (with its proof), what is pending"
    )
    st.add_argument("--json", action="store_true", help="as JSON, for scripts")
    v.add_parser("public-key", help="print the office's Ed25519 public key (for gateway.toml)")
    off.set_defaults(fn=run)
