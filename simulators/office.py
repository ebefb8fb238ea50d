"""The management office: enrolment with consent and an identity check,
templates encrypted at rest, bundle export to a folder standing for the
USB stick, receipt checking (`lockedge office ...`).

Store (a folder): `office.key` (Ed25519 signing key) and `store.key`
(AES-256-GCM at-rest key), both 0600; `office.enc`, the encrypted store:
tenants (id, name, identity-document number, unit lock), consent records
(who, when, purpose, scope; withdrawal deletes), enrolled templates per
person and finger, operations not yet exported, the bundle sequence.

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
            return {"tenants": {}, "consent": {}, "templates": {}, "pending": [], "seq": 0, "log": []}
        data = self.path.read_bytes()
        db: dict[str, Any] = cbor2.loads(self._aead.decrypt(data[:12], data[12:], AAD))
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
        person id. Refusals: unknown-tenant, identity-mismatch, no-consent,
        invalid-template."""
        acct = self.db["tenants"].get(tenant)
        if acct is None:
            raise OfficeError("unknown-tenant", f"no tenant account {tenant!r}")
        if document.strip() != acct["document"] or _norm(name_on_document) != _norm(acct["name"]):
            raise OfficeError("identity-mismatch", "the identity document does not match the tenant account")
        if not purpose or not scope:
            raise OfficeError("no-consent", "consent needs a purpose and a scope")
        if not templates:
            raise OfficeError("invalid-template", "no template taken")
        for pos, tpl in templates:
            try:
                iso19794.parse(tpl)
            except iso19794.TemplateError as e:
                raise OfficeError("invalid-template", f"finger {pos}: {e}") from None
        pid = self.person_id(tenant)
        self.db["consent"][pid] = {"tenant": tenant, "at": now, "purpose": purpose, "scope": scope}
        op = "replace" if pid in self.db["templates"] else "add"
        self.db["templates"][pid] = {pos: tpl for pos, tpl in templates}
        self.db["pending"].append({"op": op, "person": pid, "tenant": tenant})
        self._save()
        return pid

    def delete_person(self, tenant: str, why: str, now: int) -> str:
        """Consent withdrawn or moved out: templates and consent go now; the
        deletion reaches the devices with the next bundle."""
        pid = self.person_id(tenant)
        self.db["templates"].pop(pid, None)
        self.db["consent"].pop(pid, None)
        self.db["pending"].append({"op": "del-person", "person": pid, "tenant": tenant})
        self.db["log"].append({"at": now, "person": pid, "event": why})
        self._save()
        return pid

    # -- export ------------------------------------------------------------------

    def export(self, stick: Path, gateway_public: bytes, now: int, name: str | None = None) -> Path:
        """Write the pending operations as one bundle onto the stick."""
        unconfirmed = self.db.setdefault("unconfirmed", {})
        again = [p for ops in unconfirmed.values() for p in ops]
        if again:
            # Operations no receipt confirmed go again, before the new ones
            # (each is idempotent at the gateway and the locks).
            self.db["pending"] = again + self.db["pending"]
            unconfirmed.clear()
        if not self.db["pending"]:
            raise OfficeError("nothing-to-export", "no enrolment or deletion since the last export")
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
        for p in self.db["pending"]:
            pid, tenant = p["person"], p["tenant"]
            tpls = sorted(self.db["templates"].get(pid, {}).items()) if p["op"] != "del-person" else []
            if p["op"] != "del-person" and not tpls:
                continue  # enrolled then deleted before this export: the deletion follows
            ops.append(bundle.Operation(p["op"], pid, [(int(f), t) for f, t in tpls]))
            lock = self.db["tenants"].get(tenant, {}).get("lock")
            if lock and lock in self.seal_keys:
                key = self.seal_keys[lock]
                entries = per_lock.setdefault(lock, [])
                chunks = [tpls[i : i + 4] for i in range(0, len(tpls), 4)] or [[]]
                for k, chunk in enumerate(chunks):
                    op = p["op"] if k == 0 else "add"  # a person's 5th finger onwards: further adds
                    m = lockentry.plain(lock, bid, seq, len(entries), op, pid, now + BUNDLE_DAYS * 86400,
                                        [(int(f), t) for f, t in chunk])  # fmt: skip
                    entries.append(lockentry.seal_entry(key, m, now))
        data = bundle.build(bundle.Payload(ops, per_lock), self.signer, gateway_public, seq, self.site, now,
                            now + BUNDLE_DAYS * 86400, bid)  # fmt: skip
        stick.mkdir(parents=True, exist_ok=True)
        out = stick / (name or f"bundle-{seq:06d}.lkb")
        tmp = out.with_suffix(".tmp")
        tmp.write_bytes(data)
        os.replace(tmp, out)
        # Kept until a receipt says the gateway imported them: a stick that
        # never arrives, or arrives after a newer one (then a rollback),
        # costs nothing, the next export carries them again.
        self.db.setdefault("unconfirmed", {})[bid.hex()] = self.db["pending"]
        self.db["pending"] = []
        self._save()
        return out

    def read_receipts(self, stick: Path, gateway_pub: Any) -> dict[str, str]:
        """Check the gateway's signed receipts on a returned stick; an
        imported bundle's operations are confirmed. Returns bundle id ->
        result. Every operation still unconfirmed goes into the next export."""
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
                self.db.setdefault("unconfirmed", {}).pop(bid, None)
        self._save()
        return out
