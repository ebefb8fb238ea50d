"""A USB stick is untrusted input (issue 18, item 3): no link is followed,
nothing but a verified bundle makes the gateway write, every malformed byte
is one documented refusal, and the store is byte-identical afterwards."""

from __future__ import annotations

import array
import os
import random
from pathlib import Path
from typing import Any

import cbor2
import pytest

from gateway import bundle
from tests.test_bundles import NOW, Rig

SOAK = os.environ.get("LOCKEDGE_SOAK") == "1"
# Every reason the import path may give a file (docs/bundle.md).
REASONS = {"malformed", "too-large", "version", "invalid-field", "unknown-issuer", "bad-signature",
           "wrong-recipient", "expired", "rollback", "decrypt-failed", "invalid-template", "unreadable",
           "not-a-file", "imported"}  # fmt: skip


@pytest.fixture
def rig(tmp_path: Path) -> Rig:
    (tmp_path / "gw").mkdir()
    r = Rig(tmp_path)
    r.enrol_all()
    return r


def _store_bytes(rig: Rig) -> bytes:
    return rig.store.path.read_bytes() if rig.store.path.exists() else b""


def test_a_planted_link_cannot_make_the_gateway_overwrite_its_store(rig: Rig, tmp_path: Path) -> None:
    good = rig.office.export(tmp_path / "made", rig.key.public_blob(), NOW)
    (rig.stick / "a-good.lkb").write_bytes(good.read_bytes())
    assert [r.result for r in rig.insert_and_import()] == ["imported"]
    os.remove(rig.stick / "a-good.lkb")
    os.remove(rig.stick / "a-good.lkb.receipt")
    before = _store_bytes(rig)
    target = rig.store.path
    # The reproduction: junk, and its receipt's temporary name a link to the store.
    (rig.stick / "zz.lkb").write_bytes(b"junk")
    os.symlink(target, rig.stick / "zz.lkb.receipt.tmp")
    # A bundle that is itself a link, a FIFO that would block a read, a folder.
    os.symlink(good, rig.stick / "b-link.lkb")
    os.mkfifo(rig.stick / "c-fifo.lkb")
    (rig.stick / "d-dir.lkb").mkdir()
    # A verified bundle whose receipt names are links to the store.
    rig.office.enrol("t-1", "ID-1001", "Ana Lima", [(3, _tpl())], "door", "gate", NOW)
    nxt = rig.office.export(tmp_path / "made2", rig.key.public_blob(), NOW)
    (rig.stick / "e-next.lkb").write_bytes(nxt.read_bytes())
    os.symlink(target, rig.stick / "e-next.lkb.receipt.tmp")
    os.symlink(target, rig.stick / "e-next.lkb.receipt")
    reps = {r.file: r.result for r in rig.insert_and_import()}
    assert reps == {"b-link.lkb": "not-a-file", "c-fifo.lkb": "not-a-file", "d-dir.lkb": "not-a-file",
                    "e-next.lkb": "imported", "zz.lkb": "malformed"}  # fmt: skip
    after = target.read_bytes()
    assert after != before  # e-next was applied, through the store's own atomic write...
    assert rig.store.state is not None
    # ...and nothing was written through a link: the links are replaced or gone.
    assert not (rig.stick / "zz.lkb.receipt").exists()  # no receipt for a file never verified
    assert os.path.islink(rig.stick / "zz.lkb.receipt.tmp")  # left as it was, not written through
    assert not os.path.islink(rig.stick / "e-next.lkb.receipt")  # a real receipt replaced the link
    assert not os.path.exists(rig.stick / "e-next.lkb.receipt.tmp")
    from gateway import biostore

    biostore.BioStore(target, biostore.load_key(tmp_path / "gw.key"))  # still opens with its key


def _tpl() -> bytes:
    from tests.test_bundles import iso

    return iso(44, 0)


def test_header_fields_of_any_type_are_refused_not_raised() -> None:
    prot = cbor2.dumps({1: "LKB1", 2: bytes(16), 3: bytes(8), 4: 0, 5: 0, 6: 0, 7: [], 8: [], 9: "s"})
    with pytest.raises(bundle.BundleError) as e:
        bundle.read_header(cbor2.dumps([prot, b"", bytes(64)]))  # was TypeError (unhashable list)
    assert str(e.value) == "invalid-field: bundle header field of the wrong type"
    from protocol import cbor

    cases: tuple[tuple[int, object], ...] = (
        (2, 5),
        (3, "x"),
        (4, -1),
        (6, True),
        (7, [1]),
        (7, "ab"),
        (7, []),
        (8, 3),
        (8, "rsa"),
        (9, b"s"),
    )
    for field, value in cases:
        h = {1: "LKB1", 2: bytes(16), 3: bytes(8), 4: 0, 5: 0, 6: 0, 7: [bytes(8)], 8: "x25519", 9: "s"}
        h[field] = value
        data = cbor.encode([cbor.encode(h), b"", bytes(64)])
        with pytest.raises(bundle.BundleError) as e:
            bundle.read_header(data)
        assert e.value.reason == "invalid-field", (field, value)
    h[5] = 1.5  # a float: not in the deterministic subset the header uses
    with pytest.raises(bundle.BundleError) as e:
        bundle.read_header(cbor.encode([cbor2.dumps(h), b"", bytes(64)]))
    assert str(e.value) == "malformed: bundle header is not deterministic CBOR"


def test_junk_appended_to_a_signed_bundle_is_refused(rig: Rig, tmp_path: Path) -> None:
    good = rig.office.export(tmp_path / "made", rig.key.public_blob(), NOW).read_bytes()
    for tail in (b"\x00", b"junk", good[:10]):
        (rig.stick / "x.lkb").write_bytes(good + tail)
        assert [r.result for r in rig.insert_and_import()] == ["malformed"]  # cbor2 ignored the tail
    (rig.stick / "x.lkb").write_bytes(good)
    assert [r.result for r in rig.insert_and_import()] == ["imported"]


def _mutants(good: bytes, n: int, seed: int) -> list[bytes]:
    rng = random.Random(seed)
    out = []
    for _ in range(n):
        b = bytearray(good)
        k = rng.random()
        if k < 0.4:
            for _ in range(rng.randint(1, 4)):
                b[rng.randrange(len(b))] ^= 1 << rng.randrange(8)
        elif k < 0.55:
            b = b[: rng.randrange(len(b))]
        elif k < 0.7:
            at = rng.randrange(len(b))
            b[at:at] = os.urandom(rng.randint(1, 16))
        elif k < 0.85:
            at = rng.randrange(min(len(b), 400))  # the header and the start of the ciphertext
            b[at] = rng.randrange(256)
        else:
            lo = rng.randrange(len(b))
            b[lo : lo + rng.randint(1, 64)] = bytes(rng.choice((0, 0xFF)) for _ in range(1))
        out.append(bytes(b))
    return out


def test_fuzzed_bundles_get_only_documented_refusals_and_change_nothing(rig: Rig, tmp_path: Path) -> None:
    """300 mutants in `make test`, 10,000 in `make soak`."""
    good = rig.office.export(tmp_path / "made", rig.key.public_blob(), NOW).read_bytes()
    before = _store_bytes(rig)
    seen: dict[str, int] = {}
    for i, data in enumerate(_mutants(good, 10_000 if SOAK else 300, 18)):
        if data == good:
            continue
        f = tmp_path / "fuzz" / f"m{i}.lkb"
        f.parent.mkdir(exist_ok=True)
        f.write_bytes(data)
        rep = rig.importer.import_file(f, NOW)
        f.unlink()
        assert rep.result in REASONS and rep.result != "imported", (i, rep.result)
        seen[rep.result] = seen.get(rep.result, 0) + 1
        assert _store_bytes(rig) == before, i
    assert len(rig.gallery) == 0
    assert {"malformed", "bad-signature"} <= set(seen), seen


def test_an_entry_sealed_with_this_locks_key_but_naming_another_lock_is_wrong_lock() -> None:
    # With the check removed, every test passed (the audit's mutant).
    from gateway import lockentry
    from protocol import seal
    from protocol.errors import ProtocolError
    from tests.test_bundles import ROOTS

    k1 = lockentry.seal_key(ROOTS["lock-1"], "lock-1")
    m = lockentry.plain("lock-2", bytes(16), 1, 0, "del-person", "p-1", NOW + 3600, [])
    token = lockentry.seal_entry(k1, m, NOW)
    with pytest.raises(ProtocolError) as e:
        seal.open_entry(k1, token, "lock-1", NOW)
    assert e.value.reason == "wrong-lock"
    assert (
        seal.open_entry(k1, lockentry.seal_entry(k1, {**m, 2: "lock-1"}, NOW), "lock-1", NOW).lock == "lock-1"
    )


def test_a_signed_bundle_that_does_not_decrypt_is_decrypt_failed(rig: Rig, tmp_path: Path) -> None:
    """Signed by the trusted office and addressed to this gateway's key id,
    but encrypted to another key: refused after the signature, before any
    payload is read."""
    from protocol import cbor

    other = bundle.RecipientKey.new()
    good = rig.office.export(tmp_path / "made", other.public_blob(), NOW).read_bytes()
    outer = cbor.decode(good)
    assert isinstance(outer, list)
    prot, ct, _sig = outer
    h = cbor.decode(prot)
    assert isinstance(h, dict)
    h[7] = [rig.key.public_id()]  # addressed to us...
    prot2 = cbor.encode(h)
    sig = rig.office.signer.sign(bundle._sig_input(prot2, ct))  # ...signed by the trusted office
    (rig.stick / "x.lkb").write_bytes(cbor.encode([prot2, ct, sig]))
    assert [r.result for r in rig.insert_and_import()] == ["decrypt-failed"]


def test_a_missing_folder_is_unreadable_and_too_many_bundles_are_capped(rig: Rig, tmp_path: Path) -> None:
    from gateway import usb_import

    assert [r.result for r in rig.importer.import_dir(tmp_path / "no-such-stick", NOW)] == ["unreadable"]
    for i in range(usb_import.MAX_FILES + 3):
        (rig.stick / f"b{i:03d}.lkb").write_bytes(b"junk")
    reps = rig.insert_and_import()
    assert len(reps) == usb_import.MAX_FILES + 1
    assert reps[-1].result == "too-many" and reps[-1].file == "3 more"
    assert all(r.result == "malformed" for r in reps[:-1])


def test_a_bundle_for_another_site_is_refused_even_signed_and_addressed_to_us(
    rig: Rig, tmp_path: Path
) -> None:
    # With the site check removed, tests/test_bundles.py still passed (the audit's mutant).
    from protocol import cbor

    good = rig.office.export(tmp_path / "made", rig.key.public_blob(), NOW).read_bytes()
    outer = cbor.decode(good)
    assert isinstance(outer, list)
    prot, ct, _sig = outer
    h = cbor.decode(prot)
    assert isinstance(h, dict)
    h[9] = "site-8"
    prot2 = cbor.encode(h)
    (rig.stick / "x.lkb").write_bytes(
        cbor.encode([prot2, ct, rig.office.signer.sign(bundle._sig_input(prot2, ct))])
    )
    assert [r.result for r in rig.insert_and_import()] == ["wrong-recipient"]


def test_a_junk_receipt_on_a_returned_stick_is_a_clear_error_for_the_office(tmp_path: Path) -> None:
    """Written from the mutation run: verify_receipt raised ProtocolError on
    junk CBOR, which the office (catching ValueError) let through as a
    traceback. Every truncation, flipped byte and junk file is a ValueError,
    and the office's read_receipts skips them."""
    import random

    from cryptography.hazmat.primitives.asymmetric import ed25519

    from gateway.usb_import import verify_receipt
    from protocol import cbor
    from simulators.office import Office

    signer = ed25519.Ed25519PrivateKey.generate()
    body = cbor.encode({1: "00" * 16, 3: "imported"})
    good = cbor.encode([body, signer.sign(cbor.encode(["LKBReceipt1", body]))])
    assert verify_receipt(good, signer.public_key())[3] == "imported"
    rng = random.Random(21)
    bad = [good[:i] for i in range(len(good))]
    bad += [good[:i] + bytes([good[i] ^ 0x40]) + good[i + 1 :] for i in range(len(good))]
    bad += [rng.randbytes(rng.randrange(1, 200)) for _ in range(500)]
    bad.append(cbor.encode([cbor.encode([1]), signer.sign(cbor.encode(["LKBReceipt1", cbor.encode([1])]))]))
    junk_body = b"\xff\xff"
    bad.append(cbor.encode([junk_body, signer.sign(cbor.encode(["LKBReceipt1", junk_body]))]))
    # A good receipt's two parts with a third after them; its parts as a map's keys.
    bad.append(cbor.encode([body, signer.sign(cbor.encode(["LKBReceipt1", body])), b""]))
    bad.append(cbor.encode({body: 1, signer.sign(cbor.encode(["LKBReceipt1", body])): 2}))
    for data in bad:
        with pytest.raises(
            ValueError,
            match=r"^(not a lockedge receipt|receipt signature does not verify|receipt body unreadable)",
        ):
            verify_receipt(data, signer.public_key())
    stick = tmp_path / "stick"
    stick.mkdir()
    for i, data in enumerate(bad[:50]):
        (stick / f"x{i}.lkb.receipt").write_bytes(data)
    (stick / "ok.lkb.receipt").write_bytes(good)
    office = Office(tmp_path / "office", "site-7")
    assert office.read_receipts(stick, signer.public_key()) == {"00" * 16: "imported"}


def test_the_mount_point_is_found_by_the_sticks_serial_only(tmp_path: Path) -> None:
    from gateway.usb_import import Stick, mount_point

    by_id, dev = tmp_path / "by-id", tmp_path / "dev"
    by_id.mkdir()
    dev.mkdir()
    (dev / "sdz1").write_text("")
    (dev / "sdy1").write_text("")
    (by_id / "usb-SanDisk_Cruzer_PROV-0001-0:0-part1").symlink_to(dev / "sdz1")
    (by_id / "usb-SanDisk_Cruzer_PROV-00012-0:0-part1").symlink_to(dev / "sdy1")
    (by_id / "ata-Disk_PROV-0001-part1").symlink_to(dev / "sdy1")  # not USB
    mounts = tmp_path / "mounts"
    mounts.write_text(
        f"proc /proc proc rw 0 0\n{dev / 'sdy1'} /media/other vfat rw 0 0\n"
        f"{dev / 'sdz1'} /media/prov\\040stick vfat ro,nosuid 0 0\nshort\n"
    )
    stick = Stick(0x0781, 0x5567, "PROV-0001")
    assert mount_point(stick, by_id, mounts) == Path("/media/prov stick")
    assert mount_point(Stick(0x0781, 0x5567, "PROV-0002"), by_id, mounts) is None
    assert mount_point(stick, tmp_path / "no-by-id", mounts) is None
    assert mount_point(stick, by_id, tmp_path / "no-mounts") is None
    mounts.write_text(f"{dev / 'sdy1'} /media/other vfat rw 0 0\n")
    assert mount_point(stick, by_id, mounts) is None  # plugged in, not mounted yet
    mounts.write_text(f"{dev / 'sdz1'} /media/bare\n")  # a device and a mount point are all it reads
    assert mount_point(stick, by_id, mounts) == Path("/media/bare")


def test_what_a_cli_is_shown_of_an_import_names_no_person() -> None:
    from gateway.usb_import import Report

    r = Report("b.lkb", "imported", "ab" * 8, {"added": 2}, ["add p-1", "del p-2"], "ok")
    assert r.as_dict() == {"file": "b.lkb", "result": "imported", "message": "ok", "counts": {"added": 2}}
    counts = r.as_dict()["counts"]
    assert isinstance(counts, dict)
    counts["added"] = 9  # a copy: the report is not changed through it
    assert r.counts == {"added": 2}


def test_sticks_are_found_among_other_devices_with_their_serials() -> None:
    """Written from the mutation run: a device that is not storage, listed
    first, must not hide the sticks after it; a readable serial has no
    error; the language-id request is the standard one (the simulated
    device stalls on any other, as a stick does)."""
    from gateway.usb_import import find_sticks
    from simulators.usbstick import SimBackend, SimDevice

    usb = SimBackend()
    usb.insert(SimDevice(0x1D6B, 0x0002, "HUB-1", interface_class=0x09))  # a hub
    usb.insert(SimDevice(0x0781, 0x5567, "PROV-0001", address=3))
    usb.insert(SimDevice(0x0781, 0x5567, "PROV-0002", bus=2, address=4))
    got = [(s.vendor, s.product, s.serial, s.bus, s.address, s.serial_error) for s in find_sticks(usb)]
    assert got == [(0x0781, 0x5567, "PROV-0001", 1, 3, ""), (0x0781, 0x5567, "PROV-0002", 2, 4, "")]


def test_a_link_planted_between_removal_and_creation_is_not_followed(
    rig: Rig, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A stick is a block device its maker controls: a file can change under
    the gateway between two calls. The receipt's temporary name is removed,
    then created with O_EXCL | O_NOFOLLOW: a link that reappears in between
    makes the create fail (no receipt, a log line), never a write through
    it. Written from the mutation run (dropping both flags passed)."""
    good = rig.office.export(tmp_path / "made", rig.key.public_blob(), NOW)
    (rig.stick / "a.lkb").write_bytes(good.read_bytes())
    target = tmp_path / "outside"
    target.write_bytes(b"untouched")
    real_unlink = os.unlink

    def racing_unlink(path: object, *a: object, **kw: object) -> None:
        real_unlink(path, *a, **kw)  # type: ignore[arg-type]
        if str(path).endswith(".receipt.tmp"):
            os.symlink(target, rig.stick / str(path))

    monkeypatch.setattr(os, "unlink", racing_unlink)
    (rig.stick / "a.lkb.receipt.tmp").write_bytes(b"old")
    assert [r.result for r in rig.insert_and_import()] == ["imported"]
    assert target.read_bytes() == b"untouched"
    assert not (rig.stick / "a.lkb.receipt").exists()


def test_the_receipt_says_exactly_what_was_imported(rig: Rig, tmp_path: Path) -> None:
    from gateway.usb_import import verify_receipt

    good = rig.office.export(tmp_path / "made", rig.key.public_blob(), NOW)
    (rig.stick / "a.lkb").write_bytes(good.read_bytes())
    [rep] = rig.insert_and_import(NOW + 5)
    f = rig.stick / "a.lkb.receipt"
    body = verify_receipt(f.read_bytes(), rig.gw_signer.public_key())
    assert body == {1: rep.bundle_id, 2: "gw-1", 3: "imported", 4: rep.counts, 5: rep.operations, 6: NOW + 5,
                    7: "a.lkb", 8: []}  # fmt: skip
    assert not f.stat().st_mode & 0o022 and not f.is_symlink()  # nobody else may write it


def test_a_stick_whose_serial_cannot_be_read_says_why() -> None:
    """An unreadable serial is never on an allow-list, and the CLI shows why
    (the mutation run: only the happy path and permission denial were seen)."""
    import usb.core

    from gateway.usb_import import allowed, find_sticks
    from simulators.usbstick import SimBackend, SimDevice

    class Failing(SimBackend):
        def __init__(self, exc: Exception | None, langs: bytes = b"\x04\x03\x09\x04") -> None:
            super().__init__()
            self.exc, self.langs = exc, langs

        def ctrl_transfer(self, dev_handle: SimDevice, bmRequestType: int, bRequest: int, wValue: int,
                          wIndex: int, data: Any, timeout: int) -> int:  # fmt: skip
            if self.exc is not None:
                raise self.exc
            if wValue & 0xFF == 0:  # the language ids: none offered
                data[: len(self.langs)] = array.array("B", self.langs)
                return len(self.langs)
            return super().ctrl_transfer(dev_handle, bmRequestType, bRequest, wValue, wIndex, data, timeout)

    cases = (
        (Failing(usb.core.USBError("Pipe error", -9, None)), "Pipe error"),
        (Failing(usb.core.USBError("", -1, 5)), "USB error"),
        (Failing(usb.core.USBError("Access denied", -3, 1)), "permission denied"),  # EPERM
        (Failing(None, b"\x02\x03"), "no language for string descriptors"),
    )
    for backend, why in cases:
        backend.insert(SimDevice(0x0781, 0x5567, "PROV-0001", bus=0, address=0))
        [s] = find_sticks(backend)
        assert (s.serial, s.serial_error, s.bus, s.address) == ("", why, 0, 0), why
        assert not allowed(s, [(0x0781, 0x5567, "PROV-0001")])
    plain = SimBackend()
    plain.insert(SimDevice(0x0781, 0x5567, ""))  # a stick with no serial number at all
    [s] = find_sticks(plain)
    assert (s.serial, s.serial_error) == ("", "")
    assert not allowed(s, [(0x0781, 0x5567, "")])
