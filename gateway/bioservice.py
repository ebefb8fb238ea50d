"""The gateway daemon's biometrics duties (docs/bundle.md): watch for an
allow-listed provisioning stick and import its bundles, deliver queued
sealed entries to their locks over `lock/<id>/ent` until each lock answers
`ent-ack`, and report: an audit pass record per bundle into the outbox,
progress and delivery events for the cloud, and each lock's delivery
receipt (which only the office and the cloud can check) passed on to it.
"""

from __future__ import annotations

import hashlib
import logging
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from cryptography.hazmat.primitives import serialization as ser
from cryptography.hazmat.primitives.asymmetric import ed25519

from gateway import biostore, bundle, usb_import
from gateway.biometrics.featurecache import FeatureCache
from gateway.biometrics.gallery import Gallery
from gateway.config import BiometricsConfig, read_secret, write_secret
from gateway.outbox import Outbox
from protocol import envelope, seal
from protocol.errors import ProtocolError

log = logging.getLogger("lockedge.biometrics")

RESEND_S = 30.0
UDEV_RULE = "packaging/udev/70-lockedge-sticks.rules"
# Answers after which the lock may get the entry again: the module was busy
# or full (a later deletion may free it). Every other answer is final.
TRANSIENT = ("sensor-error", "store-full", "busy")
IN_FLIGHT = 4  # entries sent to one lock before its acks


def _signing_key(path: Path) -> ed25519.Ed25519PrivateKey:
    if not path.exists():
        raw = ed25519.Ed25519PrivateKey.generate().private_bytes(
            ser.Encoding.Raw, ser.PrivateFormat.Raw, ser.NoEncryption()
        )
        write_secret(path, raw)
    return ed25519.Ed25519PrivateKey.from_private_bytes(read_secret(path))


class BioService:
    def __init__(
        self,
        cfg: BiometricsConfig,
        gateway_id: str,
        site: str,
        state_dir: Path,
        lock_keys: dict[str, bytes],
        outbox: Outbox,
        publish_local: Callable[[str, bytes], None],
        event: Callable[[dict[str, Any]], None],
        usb_backend: Any = None,
        mount_of: Callable[[usb_import.Stick], Path | None] = usb_import.mount_point,
        matching: bool = True,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.cfg = cfg
        self.id = gateway_id
        self.lock_keys = lock_keys
        self.results: dict[str, int] = {}  # bundle files imported, by result
        self.outbox = outbox
        self.publish_local = publish_local
        self.event = event
        self.usb_backend = usb_backend
        self._scan_error = ""  # the last scan failure said, so it is said once
        # Called as a long import makes progress: the daemon's watchdog ping,
        # so systemd does not restart a gateway busy enrolling 10,000 fingers.
        self.keepalive: Callable[[], None] = lambda: None
        self.mount_of = mount_of
        self.clock = clock
        # The gate's matcher; `matching=False` (a manual import) skips loading
        # it: feature extraction is about 9 ms a template.
        self.gallery = Gallery(fpir=cfg.fpir) if matching else None
        store_key = biostore.load_key(cfg.store_key_file)
        self.store = biostore.BioStore(state_dir / "biometrics.enc", store_key)
        # The gallery's features, kept under the same key: a restart with
        # 10,000 templates decides fingers in seconds, not minutes.
        features = FeatureCache(state_dir / "gallery-features.enc", store_key) if matching else None
        issuers = {}
        for h in cfg.issuers:
            pub = ed25519.Ed25519PublicKey.from_public_bytes(bytes.fromhex(h))
            issuers[bundle.signer_id(pub)] = pub
        self.importer = usb_import.Importer(
            gateway_id, site, self.store, self.gallery, bundle.RecipientKey(read_secret(cfg.bundle_key_file)),
            issuers, _signing_key(cfg.signing_key_file), audit=self._audit, progress=self._progress,
            features=features,
        )  # fmt: skip
        self._seen: set[str] = set()  # serials imported while still inserted
        self._next_poll = 0.0
        self._inflight: dict[str, float] = {}  # lock -> when its entries were last sent

    # -- sticks ----------------------------------------------------------------

    def poll(self, mono: float) -> None:
        if mono < self._next_poll:
            return
        self._next_poll = mono + self.cfg.poll_s
        try:
            sticks = usb_import.find_sticks(self.usb_backend)
        except Exception as e:  # no USB access (permissions, no backend): say so, keep running
            why = type(e).__name__
            if why != self._scan_error:  # once per cause, not every poll
                self._scan_error = why
                fix = " (install libusb-1.0-0)" if why == "NoBackendError" else ""
                log.warning(
                    "USB scan failed: %s%s; provisioning sticks are not read until it works", why, fix
                )
            return
        if self._scan_error:
            log.info("USB scan works again")
            self._scan_error = ""
        present = {s.serial for s in sticks} | {f"{s.bus}:{s.address}" for s in sticks}
        self._seen &= present  # a removed stick may come back with new bundles
        for s in sticks:
            if s.serial in self._seen:
                continue
            if s.serial_error:
                self._serial_unreadable(s)
                continue
            if not usb_import.allowed(s, self.cfg.sticks):
                log.info("ignoring USB storage %04x:%04x (not a provisioning stick)", s.vendor, s.product)
                self._seen.add(s.serial or f"{s.bus}:{s.address}")
                continue
            mount = self.mount_of(s)
            if mount is None:
                continue  # not mounted yet: try again next poll
            self._seen.add(s.serial)
            reports = self.import_dir(mount, int(self.clock()))
            self.event({"event": "bundle-import-done", "files": len(reports),
                        "imported": sum(r.result == "imported" for r in reports)})  # fmt: skip

    def import_dir(self, folder: Path, now: int) -> list[usb_import.Report]:
        """Import a folder's bundles, counting each file's result (metrics)."""
        reports = self.importer.import_dir(folder, now)
        for r in reports:
            self.results[r.result] = self.results.get(r.result, 0) + 1
        return reports

    def _serial_unreadable(self, s: usb_import.Stick) -> None:
        where = f"{s.bus}:{s.address}"
        if where in self._seen:
            return  # said once per insertion, not on every poll
        self._seen.add(where)
        fix = ""
        if s.serial_error == "permission denied":
            fix = f"; install {UDEV_RULE} and give the daemon's user the lockedge-usb group (docs/bundle.md)"
        log.warning("USB storage %04x:%04x refused: serial-unreadable (%s)%s", s.vendor, s.product,
                    s.serial_error, fix)  # fmt: skip
        self.event({"event": "stick-refused", "reason": "serial-unreadable", "why": s.serial_error})

    def _progress(self, name: str, done: int, total: int) -> None:
        self.keepalive()
        self.event({"event": "bundle-import-progress", "file": name[:40], "done": done, "total": total})

    def _audit(self, rep: usb_import.Report) -> None:
        ok = rep.result == "imported"
        c = rep.counts
        ref = f"b:{rep.bundle_id[:16]}:a{c.get('added', 0)}r{c.get('replaced', 0)}d{c.get('deleted', 0)}"
        if not ok:
            ref = "b:" + hashlib.sha256(rep.file.encode()).hexdigest()[:16]
        now = int(self.clock())
        self.outbox.append_own(self.id, now, self.id, "none", ref[:40], ok, "ok" if ok else rep.result[:24])
        if c.get("missing"):
            # Bundles skipped over: the cloud and the office learn it (their
            # operations come again in the office's next export).
            gap = f"b:{rep.bundle_id[:16]}:m{c['missing']}"
            self.outbox.append_own(self.id, now, self.id, "none", gap, False, "bundle-gap")

    # -- delivery to locks -------------------------------------------------------

    def deliver(self, mono: float, online: set[str]) -> None:
        for lock, q in self.store.state.pending.items():
            if not q or lock not in online or lock not in self.lock_keys:
                continue
            if mono - self._inflight.get(lock, -RESEND_S) < RESEND_S:
                continue
            for _bid, _idx, sealed in q[:IN_FLIGHT]:
                self.publish_local(f"lock/{lock}/ent", sealed)
            self._inflight[lock] = mono

    def on_ack(self, lock: str, payload: bytes) -> None:
        key = self.lock_keys.get(lock)
        if key is None:
            return
        try:
            env = envelope.verify(envelope.parse(payload), key)
        except ProtocolError as e:
            log.warning("ent-ack from %s refused: %s", lock, e.reason)
            return
        body = env.body
        if env.type != "ent-ack" or env.sender != lock or not isinstance(body, dict):
            return
        rc = body.get(5)
        if isinstance(rc, bytes) and len(rc) <= seal.MAX_RECEIPT:
            # The lock's delivery receipt, for the office by way of the cloud.
            # MACed with a key this gateway does not hold: carried, not checked.
            self.event({"event": "delivery-receipt", "lock": lock, "receipt": rc.hex()})
        result, digest = str(body.get(1))[:24], body.get(2)
        st = self.store.state.copy()
        q = st.pending.get(lock, [])
        mine = [e for e in q if hashlib.sha256(e[2]).digest()[:16] == digest]
        if not mine:
            return  # an ack for something already settled
        if result not in ("ok", "duplicate"):
            # Durable: an entry the lock could not apply (a deletion above
            # all) is an alarm record in the outbox, not only a log line.
            self._alarm(lock, digest if isinstance(digest, bytes) else b"", result)
        if result in TRANSIENT:
            # Not final: it stays queued and goes again (a deletion must
            # arrive); the others in the queue are not held behind it.
            log.warning("lock %s could not apply a bundle entry yet: %s; retrying", lock, result)
            others = [e for e in q if e not in mine]
            if others:
                st.pending[lock] = others + mine  # retried after the rest
                self.store.commit(st)
                self._inflight[lock] = -RESEND_S  # send the rest at once
            return  # alone: sent again after RESEND_S
        keep = [e for e in q if e not in mine]
        st.pending[lock] = keep
        rep = st.delivered.setdefault(lock, {})
        rep[result] = rep.get(result, 0) + 1
        self.store.commit(st)
        if result not in ("ok", "duplicate"):
            log.warning("lock %s refused a bundle entry: %s", lock, result)
        if not keep:
            self._inflight.pop(lock, None)
            self.event({"event": "bundle-delivered", "lock": lock, **{k: v for k, v in rep.items()}})
        else:
            self._inflight[lock] = -RESEND_S  # send the next ones at once

    def _alarm(self, lock: str, digest: bytes, result: str) -> None:
        self.outbox.append_own(self.id, int(self.clock()), lock, "none", "e:" + digest.hex()[:32], False,
                               ("entry-" + result)[:24])  # fmt: skip

    def report(self) -> dict[str, Any]:
        st = self.store.state
        return {
            "templates": st.templates(),
            "persons": len(st.persons),
            "pending": {k: len(v) for k, v in st.pending.items() if v},
            "delivered": st.delivered,
            "imports": dict(self.results),
        }
