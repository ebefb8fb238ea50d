"""Encrypted biometric bundles end to end (issue 6): office enrolment with
consent and identity check, export to a simulated USB stick found through
pyusb, gateway import (atomic, every refusal with its reason), the gate's
matcher, a unit lock's sealed entries and module, and a move-out."""

from __future__ import annotations

import logging
import os
from pathlib import Path

import pytest
from cryptography.hazmat.primitives.asymmetric import ed25519

from firmware.core import LockCore
from firmware.fpmodule import FingerprintModule
from firmware.fsio import FlashFS
from firmware.journal import Journal
from gateway import biostore, bundle
from gateway.biometrics import iso19794
from gateway.biometrics.gallery import Gallery
from gateway.usb_import import Importer, allowed, find_sticks, verify_receipt
from protocol import keys
from protocol import passcode as pc
from simulators import fingerprints as fpg
from simulators.fpemu import FingerprintEmulator, VirtualUART
from simulators.locksim import _module_match
from simulators.office import Office, OfficeError, Tenant
from simulators.usbstick import SimBackend, SimDevice

SITE = "site-7"
NOW = 1_795_000_000
ROOTS = {"lock-1": bytes(range(32)), "lock-2": bytes(range(1, 33))}
SEAL_KEYS = {lk: keys.derive(r, keys.SEAL, lk) for lk, r in ROOTS.items()}  # all the office holds
TENANTS = [
    Tenant("t-1", "Ana Lima", "ID-1001", "lock-1"),
    Tenant("t-2", "Bo Chen", "ID-1002", "lock-1"),
    Tenant("t-3", "Cy Okafor", "ID-1003", "lock-2"),
]
STICK = (0x0781, 0x5567, "PROV-0001")


def iso(finger: int, i: int) -> bytes:
    im = fpg.impression(fpg.master(finger, 21), i, 21)
    return iso19794.single(im.minutiae, im.width, im.height)


class Rig:
    def __init__(self, tmp: Path, kem: str = bundle.KEM_HYBRID) -> None:
        self.office = Office(tmp / "office", SITE, SEAL_KEYS)
        for t in TENANTS:
            self.office.add_tenant(t)
        self.key = bundle.RecipientKey.new(kem)
        self.gw_signer = ed25519.Ed25519PrivateKey.generate()
        self.store = biostore.BioStore(tmp / "gw" / "biometrics.enc", biostore.load_key(tmp / "gw.key"))
        self.gallery = Gallery()
        self.audits: list[object] = []
        self.progress: list[tuple[str, int, int]] = []
        self.importer = Importer(
            "gw-1", SITE, self.store, self.gallery, self.key,
            {bundle.signer_id(self.office.public_key()): self.office.public_key()}, self.gw_signer,
            audit=self.audits.append, progress=lambda f, d, t: self.progress.append((f, d, t)),
        )  # fmt: skip
        self.usb = SimBackend()
        self.stick = tmp / "stick"
        self.stick.mkdir()

    def insert_and_import(self, now: int = NOW) -> list:
        dev = self.usb.insert(SimDevice(*STICK, folder=self.stick))
        try:
            sticks = [s for s in find_sticks(self.usb) if allowed(s, [STICK])]
            assert len(sticks) == 1
            return self.importer.import_dir(self.usb.mounts()[sticks[0].serial], now)
        finally:
            self.usb.remove(dev)

    def enrol_all(self) -> None:
        for k, t in enumerate(TENANTS):
            self.office.enrol(t.id, t.document, t.name, [(1, iso(k, 0)), (6, iso(k + 10, 0))],
                              "door access", "site-7 gate and unit door", NOW)  # fmt: skip


@pytest.fixture
def rig(tmp_path: Path) -> Rig:
    (tmp_path / "gw").mkdir()
    return Rig(tmp_path)


def _lock(tmp: Path, lock: str) -> tuple[LockCore, FingerprintEmulator, FingerprintModule]:
    fs = FlashFS(str(tmp / lock))
    emu = FingerprintEmulator(match=_module_match)
    t = [0]

    def ticks() -> int:
        t[0] += 1
        return t[0]

    fp = FingerprintModule(VirtualUART(emu), ticks, timeout_ms=50)

    class HAL:
        def strike(self, on: bool) -> None:
            pass

        def beep(self, n: int) -> None:
            pass

    return LockCore(lock, ROOTS[lock], Journal(fs, lock), HAL(), fs, fp=fp), emu, fp


def test_enrol_export_import_match_at_gate_and_lock_then_move_out(rig: Rig, tmp_path: Path) -> None:
    rig.enrol_all()
    rig.office.export(rig.stick, rig.key.public_blob(), NOW)
    (rig.stick / "holiday.jpg").write_bytes(os.urandom(100))  # other files on the stick are ignored
    [rep] = rig.insert_and_import()
    assert rep.result == "imported" and rep.counts["added"] == 6 and rep.counts["lock-entries"] == 3
    assert len(rig.gallery) == 6 and rig.store.state.templates() == 6
    assert rig.progress[-1][1:] == (3, 3)
    # The gate recognises tenant 2 from another impression.
    m = rig.gallery.identify(iso(1, 3))
    assert m is not None and m.ref == Office.person_id("t-2") + "/1"
    assert rig.gallery.identify(iso(99, 0)) is None  # a stranger
    # The office reads back a signed receipt.
    body = verify_receipt((rig.stick / "bundle-000001.lkb.receipt").read_bytes(), rig.gw_signer.public_key())
    assert body[3] == "imported" and body[4]["added"] == 6
    # The audit record names counts and ids, never templates.
    assert rig.audits and "added" in str(rig.audits[0]) and iso(1, 0).hex()[:40] not in str(rig.audits[0])
    # Lock 1 gets its two tenants' sealed entries and its module matches.
    core, emu, fp = _lock(tmp_path, "lock-1")
    pending = rig.store.state.pending["lock-1"]
    assert len(pending) == 2 and "lock-2" in rig.store.state.pending
    for _bid, _idx, sealed in pending:
        assert core.load_entry(fp, sealed, NOW, 1)[0] == "ok"
    emu.finger = iso(1, 4)
    assert core.finger(fp, NOW, 2) == "ok" and core.journal.pending(5)[-1].ref == Office.person_id("t-2")
    emu.finger = iso(2, 4)  # tenant 3 lives behind lock 2
    assert core.finger(fp, NOW, 3) == "no-match"
    # The stick comes back: its receipt confirms the first bundle's operations.
    assert rig.office.read_receipts(rig.stick, rig.gw_signer.public_key()) == {body[1]: "imported"}
    # Tenant 2 moves out: one bundle deletes them everywhere.
    rig.office.delete_person("t-2", "move-out", NOW + 100)
    rig.office.export(rig.stick, rig.key.public_blob(), NOW + 100)
    reps = rig.insert_and_import(NOW + 200)
    assert [r.result for r in reps] == ["rollback", "imported"]  # the first bundle is not applied again
    assert reps[1].counts["persons-deleted"] == 1 and len(rig.gallery) == 4
    assert rig.gallery.identify(iso(1, 3)) is None
    assert Office.person_id("t-2") not in rig.store.state.persons
    new = [e for e in rig.store.state.pending["lock-1"] if e[0] != pending[0][0]]
    # The deletion, and tenant 1's enrolment again: no lock receipt has
    # confirmed it at the office yet, so every export carries it.
    assert len(new) == 2
    assert [core.load_entry(fp, e[2], NOW + 200, 4)[0] for e in new] == ["ok", "ok"]
    emu.finger = iso(1, 4)
    assert core.finger(fp, NOW + 200, 5) == "no-match"
    emu.finger = iso(0, 4)  # tenant 1 still opens
    assert core.finger(fp, NOW + 200, 6) == "ok"


def test_identity_check_and_consent_come_before_any_template(rig: Rig) -> None:
    t = TENANTS[0]
    cases = [
        (("t-9", t.document, t.name), "unknown-tenant"),
        ((t.id, "ID-9999", t.name), "identity-mismatch"),
        ((t.id, t.document, "Ana Silva"), "identity-mismatch"),
    ]
    for (tid, doc, name), reason in cases:
        with pytest.raises(OfficeError) as e:
            rig.office.enrol(tid, doc, name, [(1, iso(0, 0))], "door access", "site", NOW)
        assert e.value.reason == reason
    with pytest.raises(OfficeError) as e:
        rig.office.enrol(t.id, t.document, " ana  LIMA ", [(1, iso(0, 0))], "", "site", NOW)
    assert e.value.reason == "no-consent"
    with pytest.raises(OfficeError) as e:
        rig.office.enrol(t.id, t.document, t.name, [(1, b"FMR\x00junk")], "door access", "site", NOW)
    assert e.value.reason == "invalid-template"
    assert rig.office.enrol(t.id, t.document, " ana  LIMA ", [(1, iso(0, 0))], "door access", "site", NOW)


def test_a_finger_pressed_three_times_is_three_templates_at_the_gate_and_one_at_the_lock(
    rig: Rig, tmp_path: Path
) -> None:
    t = TENANTS[0]
    presses = [(1, iso(0, 0)), (1, iso(0, 1)), (1, iso(0, 2)), (6, iso(10, 0))]
    rig.office.enrol(t.id, t.document, t.name, presses, "door access", "gate and door", NOW)
    rig.office.export(rig.stick, rig.key.public_blob(), NOW)
    [rep] = rig.insert_and_import()
    assert rep.result == "imported" and rep.counts["added"] == 2  # two fingers...
    assert len(rig.gallery) == 4  # ...of four templates: finger 1's three presses, finger 6's one
    pid = Office.person_id(t.id)
    rec = iso19794.parse(rig.store.state.persons[pid][1])
    assert [(v.finger_position, v.view_number) for v in rec.views] == [(1, 0), (1, 1), (1, 2)]
    m = rig.gallery.identify(iso(0, 3))
    assert m is not None and m.ref == pid + "/1"
    # The lock's entry holds the first press only (its entries are sized for one).
    core, emu, fp = _lock(tmp_path, "lock-1")
    [(_bid, _idx, sealed)] = rig.store.state.pending["lock-1"]
    assert core.load_entry(fp, sealed, NOW, 1)[0] == "ok"
    assert [len(iso19794.parse(tp).views) for tp in emu.library.values()] == [1, 1]
    assert (
        iso19794.parse(emu.library[min(emu.library)]).views[0].minutiae.tolist()
        == rec.views[0].minutiae.tolist()
    )
    emu.finger = iso(0, 4)
    assert core.finger(fp, NOW, 2) == "ok"
    # Presses from two sensors, or more than four, are not one finger's record.
    other = fpg.impression(fpg.master(0, 21), 1, 21)
    wide = iso19794.single(other.minutiae, other.width + 40, other.height)
    for bad in ([(1, iso(0, 0)), (1, wide)], [(1, iso(0, i)) for i in range(5)]):
        with pytest.raises(OfficeError) as e:
            rig.office.enrol(t.id, t.document, t.name, bad, "door access", "gate and door", NOW)
        assert e.value.reason == "invalid-template"


def test_every_bad_bundle_is_refused_with_its_reason_and_changes_nothing(
    rig: Rig, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    rig.enrol_all()
    good = rig.office.export(tmp_path / "made", rig.key.public_blob(), NOW).read_bytes()
    other_gw = bundle.RecipientKey.new()
    rig.office.enrol("t-1", "ID-1001", "Ana Lima", [(2, iso(30, 0))], "door access", "site", NOW)
    for_other = rig.office.export(tmp_path / "made", other_gw.public_blob(), NOW).read_bytes()
    stranger = Office(tmp_path / "rogue", SITE)
    stranger.add_tenant(TENANTS[0])
    stranger.enrol("t-1", "ID-1001", "Ana Lima", [(1, iso(40, 0))], "x", "y", NOW)
    rogue = stranger.export(tmp_path / "rogue-out", rig.key.public_blob(), NOW).read_bytes()
    tampered = bytearray(good)
    tampered[len(good) // 2] ^= 1
    cases = {
        "a-junk.lkb": (os.urandom(300), "malformed"),
        "b-truncated.lkb": (good[: len(good) // 2], "malformed"),
        "c-other-gateway.lkb": (for_other, "wrong-recipient"),
        "d-tampered.lkb": (bytes(tampered), "bad-signature"),
        "e-unknown-issuer.lkb": (rogue, "unknown-issuer"),
    }
    for name, (data, _r) in cases.items():
        (rig.stick / name).write_bytes(data)
    before = rig.store.path.read_bytes() if rig.store.path.exists() else b""
    reps = {r.file: r.result for r in rig.insert_and_import()}
    assert reps == {name: r for name, (_d, r) in cases.items()}
    assert (rig.store.path.read_bytes() if rig.store.path.exists() else b"") == before
    assert len(rig.gallery) == 0 and rig.audits
    assert all(getattr(r, "result", "") != "imported" for r in rig.audits)
    for name in cases:
        os.remove(rig.stick / name)
    (rig.stick / "f-good.lkb").write_bytes(good)
    assert [r.result for r in rig.insert_and_import(NOW + 8 * 86400)] == ["expired"]
    assert [r.result for r in rig.insert_and_import()] == ["imported"]
    assert [r.result for r in rig.insert_and_import()] == ["rollback"]  # replayed
    # Nothing secret in any log line or refusal message.
    secrets = [iso(k, 0).hex()[60:100] for k in range(3)] + [rig.key.secret.hex()[:32]]
    text = caplog.text + " ".join(str(r) for r in rig.audits)
    for s in secrets:
        assert s not in text


def test_compatible_x25519_kem_and_at_rest_encryption(tmp_path: Path) -> None:
    (tmp_path / "gw").mkdir()
    rig = Rig(tmp_path, bundle.KEM_X25519)
    rig.enrol_all()
    rig.office.export(rig.stick, rig.key.public_blob(), NOW)
    assert [r.result for r in rig.insert_and_import()] == ["imported"]
    raw = rig.store.path.read_bytes()
    assert iso(0, 0)[:40] not in raw and b"FMR" not in raw  # encrypted at rest
    assert oct(rig.store.path.stat().st_mode & 0o777) == "0o600"
    assert oct((tmp_path / "gw.key").stat().st_mode & 0o777) == "0o600"
    # A restart reloads the store into a fresh gallery.
    g2 = Gallery()
    Importer("gw-1", SITE, biostore.BioStore(rig.store.path, biostore.load_key(tmp_path / "gw.key")), g2,
             rig.key, {}, rig.gw_signer)  # fmt: skip
    assert len(g2) == 6
    with pytest.raises(ValueError, match="does not decrypt"):
        biostore.BioStore(rig.store.path, bytes(32))


def test_sticks_not_on_the_allow_list_are_not_read(rig: Rig) -> None:
    rig.usb.insert(SimDevice(0x0781, 0x5567, "OTHER-9", folder=rig.stick))
    rig.usb.insert(SimDevice(0x046D, 0xC52B, "KB-1", interface_class=3))  # a keyboard
    found = find_sticks(rig.usb)
    assert [s.serial for s in found] == ["OTHER-9"]
    assert not allowed(found[0], [STICK])


def test_gateway_daemon_imports_from_the_stick_and_delivers_to_the_lock(tmp_path: Path) -> None:
    """Real brokers, the real daemon, the unchanged firmware in the lock
    simulator: insert the stick, the gateway imports, audits, delivers the
    sealed entries, and the lock opens for the enrolled finger."""
    import time as _t

    from gateway.config import write_secret
    from simulators.locksim import SimLock
    from tests.gwfixtures import GW, open_site, wait_for

    (tmp_path / "site").mkdir()
    office = Office(tmp_path / "office", "site-7")
    gw_key = bundle.RecipientKey.new()
    write_secret(tmp_path / "site" / "bundle.key", gw_key.secret)
    from cryptography.hazmat.primitives import serialization as ser

    pub = office.public_key().public_bytes(ser.Encoding.Raw, ser.PublicFormat.Raw).hex()
    usb = SimBackend()
    s = open_site(tmp_path / "site", n_locks=0)
    try:
        s.stop_gateway()
        lid = "lock-0000"
        s.lock_roots[lid] = os.urandom(32)
        s.passwords[lid] = "pw-" + os.urandom(6).hex()
        assert s.local_broker
        s.local_broker.close()

        from simulators.broker import local_mosquitto

        s.local_broker = local_mosquitto(s.dir / "local-broker2", s.passwords).start()
        s.extra_config = (
            '\n[biometrics]\nbundle_key_file = "bundle.key"\n'
            f'issuers = ["{pub}"]\npoll_s = 0.2\n'
            'sticks = [{vendor = "0781", product = "5567", serial = "PROV-0001"}]\n'
        )
        s.usb = usb
        assert s.cloud
        s.cloud.stop()
        from simulators.cloud.receiver import CloudReceiver
        from tests.gwfixtures import SITE as GSITE

        assert s.cloud_broker
        s.cloud = CloudReceiver(s.cloud_broker.port, GSITE, {GW: s.gw_root}, s.lock_roots).start()
        s.start_gateway()
        sim = SimLock(
            lid, s.lock_roots[lid], tmp_path / "flash", GW, s.local_broker.port, s.passwords[lid]
        ).boot()
        wait_for(lambda: sim.app is not None and sim.app.link.connected, what="lock online")
        office.seal_keys[lid] = keys.derive(s.lock_roots[lid], keys.SEAL, lid)
        office.site = GSITE
        office.add_tenant(Tenant("t-9", "Di Park", "ID-9", lid))
        now = int(_t.time())
        office.enrol("t-9", "ID-9", "Di Park", [(2, iso(50, 0))], "door access", "unit door", now)
        stick = tmp_path / "stick"
        office.export(stick, gw_key.public_blob(), now)
        usb.insert(SimDevice(*STICK, folder=stick))
        assert s.gateway and s.gateway.bio
        bio = s.gateway.bio
        wait_for(lambda: bio.report()["delivered"].get(lid, {}).get("ok") == 1, timeout=30, what="delivery")
        assert (
            (stick / "bundle-000001.lkb.receipt").exists()
            and bio.gallery is not None
            and len(bio.gallery) == 1
        )
        sim.present_finger(iso(50, 5))
        cloud = s.cloud
        # The lock's decision as recorded (its reason says why if it failed),
        # then the strike it drove.
        try:
            wait_for(
                lambda: sim.app is not None and sim.app.journal.next_seq > 1, what="the finger's decision"
            )
        except AssertionError:
            app = sim.app
            raise AssertionError(
                f"no decision; lock faults {app and app.faults} ({app and app.last_fault})"
            ) from None
        wait_for(
            lambda: any(k[0] == lid for k in cloud.records()), what="the finger's pass record in the cloud"
        )
        rec = next(r for k, r in cloud.records().items() if k[0] == lid)
        assert (rec.kind, rec.granted, rec.reason) == ("finger", True, "ok"), rec
        assert any(on for _t, on in sim.hal.strike_log)
        wait_for(lambda: any(k[0] == GW for k in cloud.records()), what="the import's audit record")
        audit = next(r for k, r in cloud.records().items() if k[0] == GW)
        assert audit.kind == "none" and audit.ref.startswith("b:") and audit.granted
        # The lock's delivery receipt came back through the gateway and the
        # cloud; with it and the stick's import receipt, the office shows the
        # enrolment applied at both devices.
        wait_for(lambda: bool(cloud.receipts), what="the lock's delivery receipt at the cloud")
        office.read_receipts(stick, bio.importer.signer.public_key())
        assert office.apply_delivery(list(cloud.receipts))["applied"] == 1
        states = {r["device"]: r["state"] for r in office.status()}
        assert states == {"gate": "applied", lid: "applied"}
        sim.power_cut()
    finally:
        s.close()


def test_office_and_import_command_lines(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from gateway.config import write_secret
    from lockedge.cli import main

    off = ["office", "--folder", str(tmp_path / "office"), "--site", SITE]
    assert (
        main([*off, "tenant", "--id", "t-1", "--name", "Ana Lima", "--document", "ID-1", "--lock", "x"]) == 0
    )
    (tmp_path / "f1.iso").write_bytes(iso(0, 0))
    enrol = [*off, "enrol", "--id", "t-1", "--document", "ID-1", "--purpose", "door", "--scope", "gate"]
    assert main([*enrol, "--name", "Ana Silva", "--template", f"1={tmp_path / 'f1.iso'}"]) == 2
    assert "identity-mismatch" in capsys.readouterr().err
    assert main([*enrol, "--name", "Ana Lima", "--template", f"1={tmp_path / 'f1.iso'}"]) == 0
    key = bundle.RecipientKey.new()
    (tmp_path / "gw.pub").write_bytes(key.public_blob())
    assert (
        main(
            [*off, "export", "--stick", str(tmp_path / "stick"), "--gateway-public", str(tmp_path / "gw.pub")]
        )
        == 0
    )
    capsys.readouterr()
    assert main([*off, "delete", "--id", "nobody"]) == 2  # was: silently "deleted"
    assert "unknown-tenant" in capsys.readouterr().err
    assert main([*off, "status"]) == 0
    assert "t-1" in (row := capsys.readouterr().out) and "add" in row and "gate" in row and "pending" in row
    (tmp_path / "r.txt").write_text("lock-1 zz\n")
    assert main([*off, "receipts", "--file", str(tmp_path / "r.txt")]) == 2
    assert "not hex" in capsys.readouterr().err
    (tmp_path / "r.txt").write_text("x " + os.urandom(80).hex() + "\n\n")
    assert main([*off, "receipts", "--file", str(tmp_path / "r.txt")]) == 0
    assert "1 refused" in capsys.readouterr().out
    assert main([*off, "public-key"]) == 0
    pub = capsys.readouterr().out.strip().splitlines()[-1]
    write_secret(tmp_path / "bundle.key", key.secret)
    write_secret(tmp_path / "root.key", os.urandom(32))
    write_secret(tmp_path / "locks.json", b"{}")
    (tmp_path / "gw.toml").write_text(
        f'[gateway]\nid = "gw-1"\nsite = "{SITE}"\nroot_key_file = "root.key"\nlocks_file = "locks.json"\n'
        f'[biometrics]\nbundle_key_file = "bundle.key"\nissuers = ["{pub}"]\n'
    )
    assert (
        main(["gateway", "import", "--config", str(tmp_path / "gw.toml"), "--dir", str(tmp_path / "stick")])
        == 0
    )
    out = capsys.readouterr().out
    assert "bundle-000001.lkb: imported" in out and "[" in out and "1/1" in out


def test_a_deletion_reaches_a_lock_that_was_away_past_the_bundle_expiry(rig: Rig, tmp_path: Path) -> None:
    """Was: a del-person entry carried the bundle's 7-day expiry; delivered
    after 8 days it was refused as expired, the tenant stayed in the lock's
    slot table and nothing was pending anywhere."""
    rig.enrol_all()
    rig.office.export(rig.stick, rig.key.public_blob(), NOW)
    rig.insert_and_import()
    core, emu, fp = _lock(tmp_path, "lock-1")
    first = list(rig.store.state.pending["lock-1"])
    for _bid, _idx, sealed in first:
        assert core.load_entry(fp, sealed, NOW, 1)[0] == "ok"
    rig.office.read_receipts(rig.stick, rig.gw_signer.public_key())
    rig.office.delete_person("t-2", "move-out", NOW + 100)
    rig.office.export(rig.stick, rig.key.public_blob(), NOW + 100)
    rig.insert_and_import(NOW + 200)
    late = [e for e in rig.store.state.pending["lock-1"] if e not in first]
    eight_days = NOW + 8 * 86400
    answers = [(core.load_entry(fp, e[2], eight_days, 2), e) for e in late]
    # Tenant 1's add, sent again (no lock receipt yet), may expire: it goes
    # again with the next export. The deletion never does (was "expired").
    assert sorted((res, op.op if op else None) for (res, op), _e in answers) == [
        ("expired", None),
        ("ok", "del-person"),
    ]
    late = [e for (res, _op), e in answers if res == "ok"]
    emu.finger = iso(1, 4)
    assert core.finger(fp, eight_days, 3) == "no-match"
    # An old add replayed after the deletion brings nothing back; the late
    # deletion replayed is a duplicate.
    assert core.load_entry(fp, first[1][2], eight_days, 4)[0] == "expired"  # its week is over
    assert core.load_entry(fp, late[0][2], eight_days, 5)[0] == "duplicate"


def test_the_gateway_retries_an_entry_until_a_final_answer_and_alarms_durably(tmp_path: Path) -> None:
    """Was: the entry left the delivery queue whatever the lock answered
    (sensor-error, store-full), and only a log line said so."""
    import hashlib

    from gateway.bioservice import BioService
    from gateway.config import BiometricsConfig, write_secret
    from gateway.outbox import Outbox
    from protocol import envelope, keys

    key = bundle.RecipientKey.new()
    write_secret(tmp_path / "bundle.key", key.secret)
    office = Office(tmp_path / "office", SITE, SEAL_KEYS)
    office.add_tenant(TENANTS[0])
    office.enrol("t-1", "ID-1001", "Ana Lima", [(1, iso(0, 0))], "door access", "unit door", NOW)
    stick = tmp_path / "stick"
    office.export(stick, key.public_blob(), NOW)
    from cryptography.hazmat.primitives import serialization as ser

    pub = office.public_key().public_bytes(ser.Encoding.Raw, ser.PublicFormat.Raw).hex()
    cfg = BiometricsConfig(tmp_path / "bundle.key", tmp_path / "store.key", tmp_path / "sign.key", [pub], [])
    ob = Outbox(tmp_path / "outbox")
    sent: list[bytes] = []
    local = {lk: keys.derive(r, keys.LOCAL, lk) for lk, r in ROOTS.items()}
    svc = BioService(cfg, "gw-1", SITE, tmp_path, local, ob, lambda t, b: sent.append(b), lambda e: None,
                     clock=lambda: NOW, matching=False)  # fmt: skip
    assert [r.result for r in svc.importer.import_dir(stick, NOW)] == ["imported"]
    entry = svc.store.state.pending["lock-1"][0][2]
    digest = hashlib.sha256(entry).digest()[:16]

    def ack(result: str, seq: int) -> None:
        body = {1: result, 2: digest}
        svc.on_ack("lock-1", envelope.seal(local["lock-1"], "ent-ack", "lock-1", seq, NOW, body))

    ack("sensor-error", 1)
    assert svc.store.state.pending["lock-1"][0][2] == entry  # still queued: sent again
    svc.deliver(1000.0, {"lock-1"})
    assert entry in sent
    ack("store-full", 2)
    assert svc.store.state.pending["lock-1"]
    ack("ok", 3)
    assert not svc.store.state.pending["lock-1"]  # final: settled
    alarms = [e for e in ob.pending(100) if e.device == "gw-1"]
    from protocol.record import PassRecord

    reasons = [PassRecord.decode(e.data).reason for e in alarms]
    assert "entry-sensor-error" in reasons and "entry-store-full" in reasons
    ob.close()


def test_a_stick_whose_serial_cannot_be_read_is_refused_saying_why_once(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """Under the shipped unit (User=lockedge) pyusb cannot open a stick
    without the udev rule; the stick was refused without saying why."""
    from gateway.bioservice import BioService
    from gateway.config import BiometricsConfig, write_secret
    from gateway.outbox import Outbox

    key = bundle.RecipientKey.new()
    write_secret(tmp_path / "bundle.key", key.secret)
    cfg = BiometricsConfig(tmp_path / "bundle.key", tmp_path / "s.key", tmp_path / "g.key", [], [STICK])
    ob = Outbox(tmp_path / "outbox")
    usb = SimBackend()
    usb.insert(SimDevice(*STICK, folder=tmp_path, no_access=True))
    events: list[dict[str, object]] = []
    svc = BioService(cfg, "gw-1", SITE, tmp_path, {}, ob, lambda t, b: None, events.append, usb_backend=usb,
                     mount_of=lambda st: tmp_path, clock=lambda: NOW, matching=False)  # fmt: skip
    caplog.set_level(logging.WARNING)
    for i in range(5):
        svc.poll(float(i * 10))
    said = [r.getMessage() for r in caplog.records if "serial-unreadable" in r.getMessage()]
    assert len(said) == 1 and "permission denied" in said[0] and "70-lockedge-sticks.rules" in said[0]
    assert [e.get("reason") for e in events if e.get("event") == "stick-refused"] == ["serial-unreadable"]
    ob.close()


def test_a_long_import_keeps_the_watchdog_fed(tmp_path: Path) -> None:
    """An import runs in the daemon's main loop; with 10,000 fingers it takes
    minutes, longer than the unit's WatchdogSec: each progress step pings."""
    from cryptography.hazmat.primitives import serialization as ser

    from gateway.bioservice import BioService
    from gateway.config import BiometricsConfig, write_secret
    from gateway.outbox import Outbox

    key = bundle.RecipientKey.new()
    write_secret(tmp_path / "bundle.key", key.secret)
    office = Office(tmp_path / "office", SITE, {})
    for k in range(3):
        office.add_tenant(Tenant(f"t-{k}", f"P {k}", f"ID-{k}", ""))
        office.enrol(f"t-{k}", f"ID-{k}", f"P {k}", [(1, iso(k, 0))], "door access", "gate", NOW)
    office.export(tmp_path / "stick", key.public_blob(), NOW)
    pub = office.public_key().public_bytes(ser.Encoding.Raw, ser.PublicFormat.Raw).hex()
    cfg = BiometricsConfig(tmp_path / "bundle.key", tmp_path / "store.key", tmp_path / "sign.key", [pub], [])
    ob = Outbox(tmp_path / "outbox")
    svc = BioService(
        cfg, "gw-1", SITE, tmp_path, {}, ob, lambda t, b: None, lambda e: None, clock=lambda: NOW
    )
    pings: list[int] = []
    svc.keepalive = lambda: pings.append(1)
    assert [r.result for r in svc.importer.import_dir(tmp_path / "stick", NOW)] == ["imported"]
    assert len(pings) == 2  # the first operation and the last (every hundredth between)
    ob.close()


def test_a_usb_scan_that_fails_is_said_once_with_the_fix_and_its_recovery(
    tmp_path: Path, caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Was: "USB scan failed: NoBackendError" every poll (2 s), with no fix."""
    import usb.core

    from gateway import usb_import as ui
    from gateway.bioservice import BioService
    from gateway.config import BiometricsConfig, write_secret
    from gateway.outbox import Outbox

    key = bundle.RecipientKey.new()
    write_secret(tmp_path / "bundle.key", key.secret)
    cfg = BiometricsConfig(tmp_path / "bundle.key", tmp_path / "s.key", tmp_path / "g.key", [], [STICK])
    ob = Outbox(tmp_path / "outbox")
    svc = BioService(cfg, "gw-1", SITE, tmp_path, {}, ob, lambda t, b: None, lambda e: None,
                     clock=lambda: NOW, matching=False)  # fmt: skip
    broken = [True]

    def scan(backend: object) -> list[ui.Stick]:
        if broken[0]:
            raise usb.core.NoBackendError("No backend available")
        return []

    monkeypatch.setattr(ui, "find_sticks", scan)
    caplog.set_level(logging.INFO, logger="lockedge")
    for i in range(5):
        svc.poll(float(i * 10))
    said = [r for r in caplog.records if "USB scan" in r.getMessage()]
    assert len(said) == 1 and "libusb-1.0-0" in said[0].getMessage() and said[0].levelno == logging.WARNING
    broken[0] = False
    svc.poll(60.0)
    svc.poll(70.0)
    lines = [r.getMessage() for r in caplog.records if "USB scan" in r.getMessage()]
    assert lines[1:] == ["USB scan works again"]
    ob.close()


def test_a_missed_stick_costs_nothing_and_the_gap_is_reported(rig: Rig, tmp_path: Path) -> None:
    """Was: a newer bundle imported before an older one made the older a
    rollback and its operations were lost silently."""
    rig.office.enrol("t-3", "ID-1003", "Cy Okafor", [(1, iso(2, 0))], "door access", "gate", NOW)
    rig.office.export(rig.stick, rig.key.public_blob(), NOW)
    assert [r.result for r in rig.insert_and_import(NOW + 1)] == ["imported"]  # bundle 1
    rig.office.read_receipts(rig.stick, rig.gw_signer.public_key())
    rig.office.enrol("t-1", "ID-1001", "Ana Lima", [(1, iso(0, 0))], "door access", "gate", NOW + 5)
    lost_stick = tmp_path / "lost"
    rig.office.export(lost_stick, rig.key.public_blob(), NOW + 5)  # bundle 2 never reaches the gateway
    rig.office.enrol("t-2", "ID-1002", "Bo Chen", [(1, iso(1, 0))], "door access", "gate", NOW + 10)
    rig.office.export(rig.stick, rig.key.public_blob(), NOW + 10)  # bundle 3 carries bundle 2's too
    reps = {r.file: r for r in rig.insert_and_import(NOW + 20)}
    rep = reps["bundle-000003.lkb"]
    assert rep.result == "imported" and rep.counts["missing"] == 1
    assert rig.gallery.identify(iso(0, 3)) is not None  # t-1, from the missed bundle, is enrolled
    assert rig.gallery.identify(iso(1, 3)) is not None
    body = verify_receipt((rig.stick / "bundle-000003.lkb.receipt").read_bytes(), rig.gw_signer.public_key())
    assert body[8] == [2]  # the receipt names the sequence the gateway never saw
    confirmed = rig.office.read_receipts(rig.stick, rig.gw_signer.public_key())
    assert confirmed[rep.bundle_id] == "imported"
    # The missed stick turns up later: a rollback, and nothing is lost by it.
    for f in lost_stick.glob("*.lkb"):
        (rig.stick / f.name).write_bytes(f.read_bytes())
    results = {r.file: r.result for r in rig.insert_and_import(NOW + 30)}
    assert results["bundle-000002.lkb"] == "rollback" and len(rig.gallery) == 3
    # The gate has confirmed all three; no lock receipt has come, so each
    # stays open at its lock and goes again with the next export.
    states = {(r["person"], r["device"]): r["state"] for r in rig.office.status()}
    assert sorted(set(states.values())) == ["applied", "pending"]
    assert all(v == ("applied" if d == "gate" else "pending") for (_p, d), v in states.items())
    rig.office.export(rig.stick, rig.key.public_blob(), NOW + 40)


def test_the_office_holds_only_seal_keys_and_cannot_forge_an_unlock_or_a_code(tmp_path: Path) -> None:
    """Issue 17 item 5: the office got full lock roots, from which the cmd
    and code keys derive. Now it is given each lock's seal key and nothing
    else: nothing it holds opens a door through a command or a code."""
    from protocol import envelope
    from protocol.verifier import CodeVerifier

    office = Office(tmp_path / "office", SITE, SEAL_KEYS)
    held = set(office.seal_keys.values())
    for lk, root in ROOTS.items():
        for purpose in (keys.CMD, keys.UPLINK, keys.LOCAL, keys.CODE):
            assert keys.derive(root, purpose, lk) not in held
    core, _emu, _fp = _lock(tmp_path, "lock-1")
    for i, k in enumerate(held):
        forged = envelope.seal(k, "cmd", "cloud", 100 + i, 0, {1: "unlock", 2: f"f{i}", 3: 2**40}, "lock-1")
        assert core.command(forged, 1_800_000_000, 10 + i) == "bad-tag"
    issued = pc.make_keypad(
        office.seal_keys["lock-1"], "lock-1", pc.find_profile(pc.WINDOW, pc.DEVICE, pc.HOUR, 5), 500000, 0, 1
    )
    d = CodeVerifier("lock-1", keys.derive(ROOTS["lock-1"], keys.CODE, "lock-1")).keypad(
        issued.digits, 500000 * 3600 + 60, 0
    )
    assert (d.granted, d.reason) == (False, "wrong-code")
    for f in (tmp_path / "office").rglob("*"):
        data = f.read_bytes()
        assert not any(r in data for r in ROOTS.values()), f


def test_the_deletion_scenario_ends_with_the_locks_receipt_at_the_office(rig: Rig, tmp_path: Path) -> None:
    """Issue 18's figure: move-out, the lock offline past the bundle expiry,
    the lock back. The tenant's finger is refused at the door and at the
    gate, and the office shows the lock's receipt; until it came, the
    deletion was pending at the lock (it was: gone from every queue)."""
    from protocol import envelope, seal

    rig.enrol_all()
    rig.office.export(rig.stick, rig.key.public_blob(), NOW)
    rig.insert_and_import()
    rig.office.read_receipts(rig.stick, rig.gw_signer.public_key())
    core, emu, fp = _lock(tmp_path, "lock-1")
    receipts = []
    for _bid, _idx, sealed in rig.store.state.pending["lock-1"]:
        res, e = core.load_entry(fp, sealed, NOW + 10, 1)
        assert res == "ok" and e is not None
        receipts.append(("lock-1", core.receipt(e, res, NOW + 10)))
    assert rig.office.apply_delivery(receipts)["applied"] == 2  # t-1 and t-2 at lock-1
    emu.finger = iso(1, 4)
    assert core.finger(fp, NOW + 20, 2) == "ok"  # t-2 is in

    rig.office.delete_person("t-2", "move-out", NOW + 100)
    pid = Office.person_id("t-2")
    rows = {(r["device"]): r for r in rig.office.status() if r["person"] == pid}
    assert (
        rows["gate"]["state"] == rows["lock-1"]["state"] == "pending" and rows["lock-1"]["op"] == "del-person"
    )
    rig.office.export(rig.stick, rig.key.public_blob(), NOW + 100)
    rig.insert_and_import(NOW + 200)
    rig.office.read_receipts(rig.stick, rig.gw_signer.public_key())
    assert rig.gallery.identify(iso(1, 4)) is None  # refused at the gate from the import on
    rows = {(r["device"]): r for r in rig.office.status() if r["person"] == pid}
    assert rows["gate"]["state"] == "applied" and rows["lock-1"]["state"] == "pending"  # the lock is away
    # Eight days later the lock is back; the gateway delivers what is queued.
    eight_days = NOW + 8 * 86400
    late = [x for x in rig.store.state.pending["lock-1"] if x[2] not in [y for _l, y in receipts]]
    answers = []
    for _bid, _idx, sealed in late:
        res, e = core.load_entry(fp, sealed, eight_days, 3)
        if e is not None:
            answers.append(("lock-1", core.receipt(e, res, eight_days)))
    assert core.finger(fp, eight_days, 4) == "no-match"  # refused at the door
    # Forged receipts change nothing: one MACed with what a gateway holds
    # (the local key), one attributed to another lock.
    local = keys.derive(ROOTS["lock-1"], keys.LOCAL, "lock-1")
    real = seal.open_receipt(SEAL_KEYS["lock-1"], "lock-1", answers[-1][1])
    assert (real["op"], real["person"], real["result"]) == ("del-person", pid, "ok")
    body = {1: real["bundle"], 2: real["seq"], 3: real["idx"], 4: "del-person", 5: pid, 6: "ok"}
    forged = envelope.seal(local, "receipt", "lock-1", 10**12, 0, body)
    c = rig.office.apply_delivery(
        [("lock-1", forged), ("lock-2", answers[-1][1]), ("lock-9", answers[-1][1])]
    )
    assert c["bad"] == 3 and c["applied"] == 0
    assert {r["device"]: r["state"] for r in rig.office.status() if r["person"] == pid}["lock-1"] == "pending"
    c = rig.office.apply_delivery(answers)
    assert c["applied"] >= 1
    row = next(r for r in rig.office.status() if r["person"] == pid and r["device"] == "lock-1")
    assert (
        row["state"] == "applied" and row["op"] == "del-person" and row["proof"].startswith("lock receipt ")
    )


def test_a_receipt_with_any_byte_changed_or_any_junk_is_refused_with_a_reason() -> None:
    """The office's receipt parser is untrusted input (it came through the
    gateway and the cloud): every single-byte change of a genuine receipt,
    every truncation and random junk is refused with a protocol reason."""
    import random

    from protocol import seal
    from protocol.errors import ProtocolError

    e = seal.Entry("lock-1", bytes(range(16)), 3, 1, "del-person", "p-x", NOW, [])
    k = SEAL_KEYS["lock-1"]
    good = seal.receipt(seal.receipt_key(k), "lock-1", 77, NOW, e, "ok")
    assert seal.open_receipt(k, "lock-1", good)["person"] == "p-x"
    from protocol import errors

    reasons = {v for k, v in vars(errors).items() if k.isupper() and isinstance(v, str)}
    rng = random.Random(18)
    cases = [good[:i] + bytes([good[i] ^ (1 << rng.randrange(8))]) + good[i + 1 :] for i in range(len(good))]
    cases += [good[:i] for i in range(len(good))] + [rng.randbytes(rng.randrange(600)) for _ in range(2000)]
    for bad in cases:
        with pytest.raises(ProtocolError) as ex:
            seal.open_receipt(k, "lock-1", bad)
        assert ex.value.reason in reasons, (bad.hex(), ex.value.reason)


def test_re_enrolling_after_an_undelivered_deletion_clears_the_old_fingers(rig: Rig, tmp_path: Path) -> None:
    """A tenant deleted, then enrolled again with fewer fingers before the
    deletion reached the door: the new enrolment is a replace, so a finger
    that was not taken again cannot open the door."""
    rig.office.enrol("t-1", "ID-1001", "Ana Lima", [(1, iso(0, 0)), (6, iso(10, 0))], "door", "door", NOW)
    rig.office.export(rig.stick, rig.key.public_blob(), NOW)
    rig.insert_and_import()
    core, _emu, fp = _lock(tmp_path, "lock-1")
    for _b, _i, sealed in list(rig.store.state.pending["lock-1"]):
        assert core.load_entry(fp, sealed, NOW, 1)[0] == "ok"
    rig.office.delete_person("t-1", "moved out", NOW + 10)
    rig.office.enrol(
        "t-1", "ID-1001", "Ana Lima", [(1, iso(0, 1))], "door", "door", NOW + 20
    )  # back, one finger
    rig.office.export(rig.stick, rig.key.public_blob(), NOW + 30)
    rig.insert_and_import(NOW + 40)
    ops = [o for o in rig.office.db["ops"] if not o.get("superseded")]
    assert [o["op"] for o in ops] == ["replace"]
    for _b, _i, sealed in list(rig.store.state.pending["lock-1"]):
        core.load_entry(fp, sealed, NOW + 50, 2)
    assert sorted(v[1] for v in core.slots.values()) == [1]  # finger 6 is gone
