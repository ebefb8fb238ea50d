"""The management office: enrolment with consent and an identity check,
templates encrypted at rest, bundle export to a folder standing for the
USB stick, receipt checking (`lockedge office ...`).

Store (a folder): `office.key` (Ed25519 signing key) and `store.key`
(AES-256-GCM at-rest key), both 0600; `office.enc`, the encrypted store:
tenants (id, name, identity-document number, unit lock), consent records
(who, when, purpose, scope; withdrawal deletes), enrolled templates per
person and finger, the operations and what each device confirmed of them,
the bundle sequence.

An operation (enrol, re-enrol, delete) stays open until every device it is
for has confirmed it: the gateway's gate by its signed import receipt on the
returned stick, the tenant's lock by the lock's own delivery receipt (MACed
with a key derived from the lock's seal key and carried by the gateway and
the cloud, so the gateway cannot forge it). Every export carries every open
operation, so a lost stick, an offline lock or an expired entry costs
nothing; a newer operation for the same person supersedes an older one.
The receipts are kept as the proof of deletion (GDPR Art. 17, PIPL Art.
47): `status()` and `lockedge office status` show them per tenant and
device.

The identity check is rule-based and named as such: the document number
and the name on the document must equal the tenant account's (names
compared case- and space-insensitively); anything else is refused with
the reason, before any template is taken.
"""

from __future__ import annotations

import hashlib
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import cbor2
from cryptography.hazmat.primitives import serialization as ser
from cryptography.hazmat.primitives.asymmetric import ed25519
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from gateway import bundle, lockentry
from gateway.biometrics import iso19794
from gateway.config import read_secret, write_secret
from gateway.store import atomic_write
from protocol import seal
from protocol.errors import ProtocolError

AAD = b"lockedge office store v1"
BUNDLE_DAYS = 7


class OfficeError(Exception):
    def __init__(self, reason: str, message: str) -> None:
        super().__init__(f"{reason}: {message}")
        self.reason = reason


@dataclass(frozen=True)
class Tenant:
    id: str
    name: str
    document: str
    lock: str  # the unit door's lock id


def _norm(name: str) -> str:
    return " ".join(name.lower().split())


class Office:
    def __init__(self, folder: Path, site: str, seal_keys: dict[str, bytes] | None = None) -> None:
        """seal_keys: {lock id: that lock's seal key} from the cloud. The
        office holds nothing else of a lock's (no root: it could derive the
        cmd and code keys and forge unlocks or mint codes for every door)."""
        folder.mkdir(parents=True, exist_ok=True)
        self.folder = folder
        self.site = site
        self.seal_keys = dict(seal_keys or {})
        kf = folder / "office.key"
        if not kf.exists():
            raw = ed25519.Ed25519PrivateKey.generate().private_bytes(
                ser.Encoding.Raw, ser.PrivateFormat.Raw, ser.NoEncryption()
            )
            write_secret(kf, raw)
        self.signer = ed25519.Ed25519PrivateKey.from_private_bytes(read_secret(kf))
        sf = folder / "store.key"
        if not sf.exists():
            write_secret(sf, AESGCM.generate_key(bit_length=256))
        self._aead = AESGCM(read_secret(sf))
        self.path = folder / "office.enc"
        self.db: dict[str, Any] = self._load()

    # -- store -------------------------------------------------------------------

    def _load(self) -> dict[str, Any]:
        if not self.path.exists():
            return {"tenants": {}, "consent": {}, "templates": {}, "ops": [], "seq": 0, "log": []}
        data = self.path.read_bytes()
        db: dict[str, Any] = cbor2.loads(self._aead.decrypt(data[:12], data[12:], AAD))
        # An older store listed operations as "pending" (not exported) and
        # "unconfirmed" (exported, no receipt): both are open operations now.
        old = [p for ops in db.pop("unconfirmed", {}).values() for p in ops] + list(db.pop("pending", []))
        db.setdefault("ops", [])
        for p in old:
            self._new_op(db, p["op"], p["person"], p["tenant"], 0)
        return db

    def _save(self) -> None:
        nonce = os.urandom(12)
        atomic_write(self.path, nonce + self._aead.encrypt(nonce, cbor2.dumps(self.db), AAD))

    def public_key(self) -> ed25519.Ed25519PublicKey:
        return self.signer.public_key()

    @staticmethod
    def person_id(tenant: str) -> str:
        """Pseudonymous id that devices and pass records use."""
        return "p-" + hashlib.sha256(b"lockedge person " + tenant.encode()).hexdigest()[:12]

    # -- tenants and enrolment ---------------------------------------------------

    def add_tenant(self, t: Tenant) -> None:
        self.db["tenants"][t.id] = {"name": t.name, "document": t.document, "lock": t.lock}
        self._save()

    def enrol(
        self,
        tenant: str,
        document: str,
        name_on_document: str,
        templates: list[tuple[int, bytes]],
        purpose: str,
        scope: str,
        now: int,
    ) -> str:
        """Check identity, record consent, store templates; returns the
        person id. `templates`: (finger position, ISO record) per press; a
        finger pressed more than once keeps every press, as the views of one
        record (at most four). Refusals: unknown-tenant, identity-mismatch,
        no-consent, invalid-template."""
        acct = self.db["tenants"].get(tenant)
        if acct is None:
            raise OfficeError("unknown-tenant", f"no tenant account {tenant!r}")
        if document.strip() != acct["document"] or _norm(name_on_document) != _norm(acct["name"]):
            raise OfficeError("identity-mismatch", "the identity document does not match the tenant account")
        if not purpose or not scope:
            raise OfficeError("no-consent", "consent needs a purpose and a scope")
        if not templates:
            raise OfficeError("invalid-template", "no template taken")
        # Several presses of one finger become the views of one record: the
        # gate decides the finger on every press taken (gallery.fused).
        presses: dict[int, list[bytes]] = {}
        for pos, tpl in templates:
            presses.setdefault(pos, []).append(tpl)
        merged: dict[int, bytes] = {}
        for pos, tpls in presses.items():
            try:
                merged[pos] = iso19794.merge(tpls, pos) if len(tpls) > 1 else tpls[0]
                iso19794.parse(merged[pos])
            except iso19794.TemplateError as e:
                raise OfficeError("invalid-template", f"finger {pos}: {e}") from None
        pid = self.person_id(tenant)
        self.db["consent"][pid] = {"tenant": tenant, "at": now, "purpose": purpose, "scope": scope}
        # A person seen before is re-enrolled with "replace", which clears all
        # their slots first: after a deletion that has not reached a door yet,
        # an "add" would replace only the fingers taken again and leave the
        # old ones able to open it.
        seen = pid in self.db["templates"] or any(o["person"] == pid for o in self.db["ops"])
        op = "replace" if seen else "add"
        self.db["templates"][pid] = merged
        self._new_op(self.db, op, pid, tenant, now)
        self._save()
        return pid

    def delete_person(self, tenant: str, why: str, now: int) -> str:
        """Consent withdrawn or moved out: templates and consent go now; the
        deletion reaches the devices with the next bundle."""
        if tenant not in self.db["tenants"]:
            raise OfficeError("unknown-tenant", f"no tenant account {tenant!r}")
        pid = self.person_id(tenant)
        self.db["templates"].pop(pid, None)
        self.db["consent"].pop(pid, None)
        self._new_op(self.db, "del-person", pid, tenant, now)
        self.db["log"].append({"at": now, "person": pid, "event": why})
        self._save()
        return pid

    # -- export ------------------------------------------------------------------

    @staticmethod
    def _new_op(db: dict[str, Any], op: str, pid: str, tenant: str, now: int) -> None:
        # What the devices must reach is the person's newest operation: an
        # older open one for the same person is superseded, not sent again
        # (a deletion after an unapplied enrolment sends only the deletion).
        for o in db["ops"]:
            if o["person"] == pid:
                o["superseded"] = True
        lock = db["tenants"].get(tenant, {}).get("lock")
        n = max([o["id"] for o in db["ops"]], default=0) + 1
        db["ops"].append(
            {
                "id": n, "op": op, "person": pid, "tenant": tenant, "lock": lock, "at": now,
                "bundles": [], "entries": {}, "done": {}, "gate": None, "door": None, "door_last": None,
            }
        )  # fmt: skip

    def _open(self) -> list[dict[str, Any]]:
        out = []
        for o in self.db["ops"]:
            if o.get("superseded"):
                continue
            door_needed = o["lock"] in self.seal_keys and o["door"] is None
            if o["gate"] is None or door_needed:
                out.append(o)
        return out

    def export(self, stick: Path, gateway_public: bytes, now: int, name: str | None = None) -> Path:
        """Write every open operation as one bundle onto the stick."""
        todo = self._open()
        if not todo:
            raise OfficeError("nothing-to-export", "every operation is confirmed by every device it is for")
        # One sequence per gateway (recipient key): a gateway sees 1, 2, 3...
        # from this office, so a gap it reports is a bundle it missed, not
        # one that went to another gateway. A new recipient starts past
        # every sequence used so far.
        rid = bundle.key_id(gateway_public).hex()
        per = self.db.setdefault("seq_to", {})
        seq = per.get(rid, self.db["seq"]) + 1
        per[rid] = seq
        self.db["seq"] = max(self.db["seq"], seq)
        bid = os.urandom(16)
        ops = []
        per_lock: dict[str, list[bytes]] = {}
        for p in todo:
            pid = p["person"]
            tpls = sorted(self.db["templates"].get(pid, {}).items()) if p["op"] != "del-person" else []
            if p["op"] != "del-person" and not tpls:
                continue  # templates gone without a deletion (an old store): nothing to send
            ops.append(bundle.Operation(p["op"], pid, [(int(f), t) for f, t in tpls]))
            p["bundles"].append(bid.hex())
            lock = p["lock"]
            if lock and lock in self.seal_keys:
                key = self.seal_keys[lock]
                entries = per_lock.setdefault(lock, [])
                chunks = [tpls[i : i + 4] for i in range(0, len(tpls), 4)] or [[]]
                idxs = []
                for k, chunk in enumerate(chunks):
                    op = p["op"] if k == 0 else "add"  # a person's 5th finger onwards: further adds
                    idxs.append(len(entries))
                    # The gate enrols every view of a record; a lock gets the
                    # first (its entries are sized for one view a finger).
                    m = lockentry.plain(lock, bid, seq, len(entries), op, pid, now + BUNDLE_DAYS * 86400,
                                        [(int(f), iso19794.first_view(t)) for f, t in chunk])  # fmt: skip
                    entries.append(lockentry.seal_entry(key, m, now))
                p["entries"][bid.hex()] = idxs
        data = bundle.build(bundle.Payload(ops, per_lock), self.signer, gateway_public, seq, self.site, now,
                            now + BUNDLE_DAYS * 86400, bid)  # fmt: skip
        stick.mkdir(parents=True, exist_ok=True)
        out = stick / (name or f"bundle-{seq:06d}.lkb")
        tmp = out.with_suffix(".tmp")
        tmp.write_bytes(data)
        os.replace(tmp, out)
        self._save()
        return out

    def read_receipts(self, stick: Path, gateway_pub: Any) -> dict[str, str]:
        """Check the gateway's signed import receipts on a returned stick: the
        operations an imported bundle carried are confirmed at the gate.
        Returns bundle id -> result."""
        from gateway.usb_import import verify_receipt

        out = {}
        for f in sorted(stick.glob("*.receipt")):
            try:
                body = verify_receipt(f.read_bytes(), gateway_pub)
            except ValueError:
                continue  # not a receipt of this gateway's: proves nothing
            bid, result = str(body.get(1, "")), str(body.get(3, ""))
            out[bid] = result
            if result == "imported":
                for o in self.db["ops"]:
                    if o["gate"] is None and bid in o["bundles"]:
                        o["gate"] = {"bundle": bid}
        self._save()
        return out

    def apply_delivery(self, receipts: list[tuple[str, bytes]]) -> dict[str, int]:
        """The locks' delivery receipts, as the cloud received them from the
        gateways. Each is checked with that lock's seal key (a forged or
        misattributed one counts as "bad" and changes nothing). An operation
        is applied at its lock once every entry it was sealed into, in one
        bundle, was answered "ok" or "duplicate"; other answers (an expired
        add, a rollback) leave it open, to go again with the next export."""
        counts = {"applied": 0, "answered": 0, "unknown": 0, "bad": 0}
        for lock, data in receipts:
            key = self.seal_keys.get(lock)
            try:
                if key is None:
                    raise ProtocolError("unknown-sender", "no seal key for this lock")
                r = seal.open_receipt(key, lock, data)
            except ProtocolError:
                counts["bad"] += 1
                continue
            bid = r["bundle"].hex()
            op = None
            for o in self.db["ops"]:
                if o["lock"] == lock and o["person"] == r["person"] and r["idx"] in o["entries"].get(bid, []):
                    op = o
            if op is None:
                counts["unknown"] += 1
                continue
            counts["answered"] += 1
            if r["result"] not in ("ok", "duplicate"):
                op["door_last"] = r["result"]
                continue
            done = op["done"].setdefault(bid, {})
            done[str(r["idx"])] = bytes(data).hex()
            if op["door"] is None and len(done) == len(op["entries"][bid]):
                op["door"] = {"bundle": bid, "receipts": list(done.values())}
                counts["applied"] += 1
        self._save()
        return counts

    def status(self) -> list[dict[str, Any]]:
        """Per tenant and device, each person's newest operation: applied
        (with its proof: the bundle, and the lock's receipt) or pending."""
        rows = []
        for o in self.db["ops"]:
            if o.get("superseded"):
                continue
            base = {"tenant": o["tenant"], "person": o["person"], "op": o["op"], "since": o["at"]}
            g = o["gate"]
            gate_proof = "import receipt, bundle " + g["bundle"][:12] if g else ""
            rows.append(
                {**base, "device": "gate", "state": "applied" if g else "pending", "proof": gate_proof}
            )
            if o["lock"] in self.seal_keys:
                d = o["door"]
                proof = ""
                if d:
                    digest = hashlib.sha256(bytes.fromhex(d["receipts"][0])).hexdigest()[:12]
                    proof = "lock receipt " + digest + ", bundle " + d["bundle"][:12]
                elif o["door_last"]:
                    proof = "last answer: " + o["door_last"]
                state = "applied" if d else "pending"
                rows.append({**base, "device": o["lock"], "state": state, "proof": proof})
        return rows
