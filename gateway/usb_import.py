"""Import biometric bundles from a provisioning USB stick.

Detection: pyusb lists USB devices; a stick is a device with a mass-storage
interface (class 0x08) whose (vendor, product, serial) is on the config's
allow-list. Its mount point is found through udev's /dev/disk/by-id links
and /proc/mounts (`mount_point`); tests give pyusb a simulated backend and
a temporary folder instead.

Import: every `*.lkb` file, in name order, is read (size-capped), verified
and decrypted (gateway/bundle.py), applied to the encrypted store in one
atomic replacement (gateway/biostore.py), then to the in-memory gallery.
Each file gets a report and an audit callback with counts and ids, never
templates; a bundle whose issuer's signature verified also gets a receipt
written back to the stick (`<file>.receipt`, signed with the gateway's
Ed25519 key, for the office to verify). A refused file changes nothing and
its reason is in the log and the report. Files that are not `*.lkb` are
ignored.

The stick is untrusted input: names are resolved relative to the folder's
descriptor with O_NOFOLLOW, only regular files are read (a link or a device
is `not-a-file`), receipts are created with O_EXCL after removing whatever
sat at the temporary name and renamed over the final one (a rename replaces
a link, it never writes through it), and names and counts are capped.
Anything a file holds that the importer cannot read is one `malformed`
refusal: nothing on a stick can stop the daemon. Mount sticks read-only, or
with `nosymfollow,nodev,nosuid,noexec` (docs/bundle.md).
"""

from __future__ import annotations

import errno
import logging
import os
import stat
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from cryptography.hazmat.primitives.asymmetric import ed25519

from gateway import biostore, bundle
from gateway.biometrics import featurecache, iso19794
from gateway.biometrics.featurecache import FeatureCache
from gateway.biometrics.gallery import Gallery
from protocol import cbor
from protocol.errors import ProtocolError

log = logging.getLogger("lockedge.usb")

MASS_STORAGE = 0x08
RECEIPT_LABEL = "LKBReceipt1"
MAX_FILES = 64  # bundles considered per stick
MAX_NAME = 128  # characters of a bundle's file name
# Refusals decided before the issuer's signature verified: no receipt is
# written for them, so a junk file cannot make the gateway write anything.
UNVERIFIED = frozenset(
    {"malformed", "too-large", "version", "invalid-field", "unknown-issuer", "bad-signature",
     "unreadable", "not-a-file"}
)  # fmt: skip


@dataclass(frozen=True)
class Stick:
    vendor: int
    product: int
    serial: str
    bus: int = 0
    address: int = 0
    serial_error: str = ""  # why the serial could not be read ("" when it was, or there is none)

    def key(self) -> tuple[int, int, str]:
        return (self.vendor, self.product, self.serial)


def find_sticks(backend: Any = None) -> list[Stick]:
    """USB mass-storage devices present now (any, allowed or not)."""
    import usb.core
    import usb.util

    out = []
    for dev in usb.core.find(find_all=True, backend=backend) or []:
        is_storage = dev.bDeviceClass == MASS_STORAGE or any(
            intf.bInterfaceClass == MASS_STORAGE for cfg in dev for intf in cfg
        )
        if not is_storage:
            continue
        why = ""
        try:
            if dev.iSerialNumber:
                # String descriptor 0 (the language ids) first, directly:
                # pyusb's get_string turns a refused open into "no langid".
                dev.ctrl_transfer(0x80, 6, 0x0300, 0, 255)
                serial = usb.util.get_string(dev, dev.iSerialNumber)
            else:
                serial = ""
        except usb.core.USBError as e:
            # Unreadable: cannot be on an allow-list of serials. Say why: most
            # often the daemon's user may not open the device (no udev rule).
            serial = ""
            denied = e.errno in (errno.EACCES, errno.EPERM)
            why = "permission denied" if denied else (e.strerror or "USB error")
        except ValueError:
            serial, why = "", "no language for string descriptors"
        out.append(Stick(dev.idVendor, dev.idProduct, serial or "", dev.bus or 0, dev.address or 0, why))
    return out


def allowed(stick: Stick, allow: Iterable[tuple[int, int, str]]) -> bool:
    return bool(stick.serial) and stick.key() in set(allow)


def mount_point(stick: Stick, by_id: Path = Path("/dev/disk/by-id"), mounts: Path = Path("/proc/mounts")
                ) -> Path | None:  # fmt: skip
    """Where the stick's file system is mounted, via udev's by-id links
    (usb-<vendor>_<model>_<serial>-0:0-part1 -> /dev/sdX1)."""
    try:
        links = [p for p in by_id.iterdir() if p.name.startswith("usb-") and f"_{stick.serial}-" in p.name]
        devs = {os.path.realpath(p) for p in links}
        for line in mounts.read_text().splitlines():
            parts = line.split()
            if len(parts) >= 2 and os.path.realpath(parts[0]) in devs:
                return Path(parts[1].replace("\\040", " "))
    except OSError:
        return None
    return None


@dataclass
class Report:
    file: str
    result: str  # "imported" or the refusal reason
    bundle_id: str = ""
    counts: dict[str, int] = field(default_factory=dict)
    operations: list[str] = field(default_factory=list)
    message: str = ""

    def as_dict(self) -> dict[str, object]:
        """What a CLI shows of an import the daemon did for it (no operations:
        they name persons)."""
        out: dict[str, object] = {"file": self.file, "result": self.result, "message": self.message}
        out["counts"] = dict(self.counts)
        return out


class Importer:
    def __init__(
        self,
        gateway_id: str,
        site: str,
        store: biostore.BioStore,
        gallery: Gallery | None,
        key: bundle.RecipientKey,
        issuers: dict[bytes, ed25519.Ed25519PublicKey],
        signer: ed25519.Ed25519PrivateKey,
        audit: Callable[[Report], None] = lambda r: None,
        progress: Callable[[str, int, int], None] = lambda f, done, total: None,
        max_bytes: int = bundle.MAX_BUNDLE,
        features: FeatureCache | None = None,
    ) -> None:
        self.gateway_id = gateway_id
        self.site = site
        self.store = store
        self.gallery = gallery
        self.key = key
        self.issuers = issuers
        self.signer = signer
        self.audit = audit
        self.progress = progress
        self.max_bytes = max_bytes
        self.features = features
        if gallery is not None:  # None: import only (the CLI, the benchmark); nothing to match against
            load_gallery(gallery, store.state, features)

    def import_dir(self, mount: Path, now: int) -> list[Report]:
        """Import every `*.lkb` on the stick mounted at `mount`. The stick is
        untrusted: its folder is opened once and every name is resolved
        relative to that descriptor without following links; anything but
        a regular file is refused; names and counts are capped."""
        try:
            dfd = os.open(mount, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
        except OSError as e:
            log.warning("stick folder %s unreadable: %s", mount, e.strerror)
            return [Report(mount.name, "unreadable", message=e.strerror or "")]
        try:
            try:
                names = sorted(n for n in os.listdir(dfd) if n.endswith(".lkb"))
            except OSError as e:
                log.warning("stick folder %s unreadable: %s", mount, e.strerror)
                return [Report(mount.name, "unreadable", message=e.strerror or "")]
            reports = []
            for name in names[:MAX_FILES]:
                rep = self._import_at(dfd, name, now)
                reports.append(rep)
                if rep.result not in UNVERIFIED:
                    self._receipt(dfd, name, rep, now)  # only for bundles whose signature verified
                self.audit(rep)
            if len(names) > MAX_FILES:
                log.warning("stick holds %d bundles; the first %d were considered", len(names), MAX_FILES)
                reports.append(Report(f"{len(names) - MAX_FILES} more", "too-many"))
            return reports
        finally:
            os.close(dfd)

    def import_file(self, f: Path, now: int) -> Report:
        """One bundle file (the benchmark's entry point): as `import_dir`
        would import it, without the receipt."""
        try:
            dfd = os.open(f.parent, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
        except OSError as e:
            return Report(f.name, "unreadable", message=e.strerror or "")
        try:
            return self._import_at(dfd, f.name, now)
        finally:
            os.close(dfd)

    def _read_at(self, dfd: int, name: str) -> bytes:
        if len(name) > MAX_NAME or not name.isprintable() or "/" in name:
            raise bundle.BundleError("malformed", "file name too long or not printable")
        try:
            fd = os.open(name, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC, dir_fd=dfd)
        except OSError as e:
            if e.errno == errno.ELOOP:
                raise bundle.BundleError("not-a-file", "a link, not a file: never followed") from None
            raise
        try:
            st = os.fstat(fd)
            if not stat.S_ISREG(st.st_mode):
                raise bundle.BundleError("not-a-file", "not a regular file")
            if st.st_size > self.max_bytes:
                raise bundle.BundleError("too-large", f"{st.st_size} bytes")
            chunks = []
            left = self.max_bytes + 1
            while left > 0:
                chunk = os.read(fd, min(left, 1 << 20))
                if not chunk:
                    break
                chunks.append(chunk)
                left -= len(chunk)
            data = b"".join(chunks)
            if len(data) > self.max_bytes:
                raise bundle.BundleError("too-large", "grew while read")
            return data
        finally:
            os.close(fd)

    def _import_at(self, dfd: int, name: str, now: int) -> Report:
        try:
            data = self._read_at(dfd, name)
            hdr, payload = bundle.open_bundle(
                data, self.issuers, self.key, self.site, now, self.store.state.last_seq
            )
            for op in payload.operations:  # every template must parse before anything changes
                for _pos, tpl in op.templates:
                    iso19794.parse(tpl)
            applied = biostore.apply(self.store.state, hdr, payload)
            self.store.commit(applied.state)
        except bundle.BundleError as e:
            log.warning("bundle %s refused: %s", _shown(name), e.reason)
            return Report(name, e.reason, message=str(e))
        except iso19794.TemplateError as e:
            log.warning("bundle %s refused: a template is malformed", _shown(name))
            return Report(name, "invalid-template", message=str(e))
        except OSError as e:
            log.warning("bundle %s unreadable: %s", _shown(name), e.strerror)
            return Report(name, "unreadable", message=e.strerror or "")
        except Exception as e:  # the trust boundary: nothing read from a stick may stop the daemon
            log.warning("bundle %s refused: malformed (%s)", _shown(name), type(e).__name__)
            return Report(name, "malformed", message="content the importer cannot read")
        total = len(payload.operations)
        for i, op in enumerate(payload.operations):
            if self.gallery is not None:
                apply_to_gallery(self.gallery, op)
            if i % 100 == 0 or i + 1 == total:
                self.progress(name, i + 1, total)
        if self.gallery is not None and self.features is not None:
            save_features(self.gallery, self.store.state, self.features)
        log.info("bundle %s imported: %s", _shown(name), applied.counts)
        return Report(name, "imported", hdr.bundle_id.hex(), applied.counts, applied.results)

    def _receipt(self, dfd: int, name: str, rep: Report, now: int) -> None:
        missing = [s for v in self.store.state.missing.values() for s in v][-100:]
        body = cbor.encode({1: rep.bundle_id, 2: self.gateway_id, 3: rep.result, 4: rep.counts,
                            5: rep.operations, 6: now, 7: rep.file, 8: missing})  # fmt: skip
        sig = self.signer.sign(cbor.encode([RECEIPT_LABEL, body]))
        tmp, final = name + ".receipt.tmp", name + ".receipt"
        try:
            try:
                os.unlink(tmp, dir_fd=dfd)  # whatever was planted there: a link is removed, not followed
            except FileNotFoundError:
                pass
            fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC, 0o644,
                         dir_fd=dfd)  # fmt: skip
            try:
                os.write(fd, cbor.encode([body, sig]))
            finally:
                os.close(fd)
            os.replace(tmp, final, src_dir_fd=dfd, dst_dir_fd=dfd)  # replaces a link, never writes through it
        except OSError as e:  # a read-only or pulled stick: the import stands, the log says so
            log.warning("receipt for %s not written: %s", _shown(name), e.strerror)


def _shown(name: str) -> str:
    """A stick's file name as logged: printable, bounded."""
    return repr(name[:MAX_NAME])[1:-1]


def verify_receipt(data: bytes, gateway_pub: ed25519.Ed25519PublicKey) -> dict[int, Any]:
    """The office's check of a receipt read back from the stick."""
    from cryptography.exceptions import InvalidSignature

    # Every failure is a ValueError: a junk file named *.receipt on a stick
    # was a ProtocolError here, which the office did not expect (a traceback).
    try:
        v = cbor.decode(data)
    except ProtocolError as e:
        raise ValueError(f"not a lockedge receipt ({e.reason})") from None
    if not isinstance(v, list) or len(v) != 2 or not all(isinstance(x, bytes) for x in v):
        raise ValueError("not a lockedge receipt")
    try:
        gateway_pub.verify(v[1], cbor.encode([RECEIPT_LABEL, v[0]]))
    except InvalidSignature:
        raise ValueError("receipt signature does not verify") from None
    try:
        body = cbor.decode(v[0])
    except ProtocolError as e:  # signed by the gateway, so its own bug; still a clear error
        raise ValueError(f"receipt body unreadable ({e.reason})") from None
    if not isinstance(body, dict):
        raise ValueError("not a lockedge receipt")
    return body


def apply_to_gallery(g: Gallery, op: bundle.Operation) -> None:
    if op.op in ("replace", "del-person"):
        g.remove_person(op.person)
    for pos, tpl in op.templates:
        g.remove(f"{op.person}/{pos}")
        if op.op in ("add", "replace"):
            g.enrol(f"{op.person}/{pos}", tpl)


def load_gallery(g: Gallery, st: biostore.State, cache: FeatureCache | None = None) -> None:
    """Enrol every stored template, taking its features from the cache
    where it has them; the cache is then rewritten to hold exactly the
    store's templates (new ones added, removed ones gone)."""
    saved = cache.load() if cache is not None else {}
    used = 0
    for person, fingers in st.persons.items():
        for pos, tpl in fingers.items():
            hit = saved.get(featurecache.digest(tpl))
            used += hit is not None
            if hit is not None:
                g.enrol_saved(f"{person}/{pos}", hit)
            else:
                g.enrol(f"{person}/{pos}", tpl)
    if cache is not None and (used != st.templates() or len(saved) != used):
        save_features(g, st, cache)


def save_features(g: Gallery, st: biostore.State, cache: FeatureCache) -> None:
    kept = g.saved_form()
    out = {}
    for person, fingers in st.persons.items():
        for pos, tpl in fingers.items():
            if f"{person}/{pos}" in kept:
                out[featurecache.digest(tpl)] = kept[f"{person}/{pos}"]
    try:
        cache.save(out)
    except OSError as e:  # derived data: the next start rebuilds it
        log.warning("gallery feature cache not saved: %s", e.strerror)
