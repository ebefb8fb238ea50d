"""The importer's limits at their edges, and its reading of a stick that
answers in short reads or changes under it (gateway/usb_import.py). The
mutation run found each of these unpinned: a limit one off, a read loop
that stopped a byte early, a progress report that skipped, a receipt that
lost its per-operation results."""

from __future__ import annotations

import errno
import os
import shutil
from collections.abc import Callable
from pathlib import Path

import pytest

from gateway import usb_import
from gateway.usb_import import MAX_FILES, MAX_NAME, Importer
from simulators.office import Office, Tenant
from tests.test_bundles import NOW, SITE, Rig, iso


@pytest.fixture
def rig(tmp_path: Path) -> Rig:
    (tmp_path / "gw").mkdir()
    return Rig(tmp_path)


def _bundle(rig: Rig) -> Path:
    rig.enrol_all()
    return rig.office.export(rig.stick, rig.key.public_blob(), NOW)


def _importer(rig: Rig, max_bytes: int) -> Importer:
    return Importer("gw-1", SITE, rig.store, None, rig.key,
                    {usb_import.bundle.signer_id(rig.office.public_key()): rig.office.public_key()},
                    rig.gw_signer, max_bytes=max_bytes)  # fmt: skip


def test_a_name_of_the_longest_length_is_read_and_one_longer_is_not(rig: Rig) -> None:
    b = _bundle(rig)
    longest = rig.stick / ("n" * (MAX_NAME - 4) + ".lkb")
    b.rename(longest)
    [rep] = rig.importer.import_dir(rig.stick, NOW)
    assert (rep.result, rep.file) == ("imported", longest.name)
    longest.rename(rig.stick / ("n" * (MAX_NAME - 3) + ".lkb"))
    [rep] = rig.importer.import_dir(rig.stick, NOW)
    assert rep.result == "malformed" and "name" in rep.message
    (rig.stick / ("n" * (MAX_NAME - 3) + ".lkb")).rename(rig.stick / "bell\x07.lkb")
    [rep] = rig.importer.import_dir(rig.stick, NOW)
    assert rep.result == "malformed" and "name" in rep.message


def test_a_bundle_of_exactly_the_size_limit_is_read_and_one_byte_over_is_not(rig: Rig) -> None:
    b = _bundle(rig)
    size = b.stat().st_size
    assert _importer(rig, size - 1).import_file(b, NOW).result == "too-large"
    rep = _importer(rig, size).import_file(b, NOW)
    assert rep.result == "imported" and rep.operations == ["ok"] * 3  # one result per operation


def test_short_reads_are_joined_whole(rig: Rig, monkeypatch: pytest.MonkeyPatch) -> None:
    # A USB stick may answer a read with fewer bytes than asked.
    b = _bundle(rig)
    real = os.read
    monkeypatch.setattr(usb_import.os, "read", lambda fd, n: real(fd, min(n, 333)))
    assert _importer(rig, b.stat().st_size).import_file(b, NOW).result == "imported"


def _fstat_saying_ten_bytes(real: Callable[[int], os.stat_result]) -> Callable[[int], os.stat_result]:
    """fstat as a stick may answer it: the file's size given as 10 bytes."""

    def small(fd: int) -> os.stat_result:
        st = real(fd)
        return os.stat_result((st.st_mode, st.st_ino, st.st_dev, st.st_nlink, st.st_uid, st.st_gid, 10,
                               int(st.st_atime), int(st.st_mtime), int(st.st_ctime)))  # fmt: skip

    return small


def test_a_file_that_grows_after_its_size_was_read_is_refused(
    rig: Rig, monkeypatch: pytest.MonkeyPatch
) -> None:
    # fstat said small; the content read is larger: the read stops one byte
    # past the limit and refuses, however the file's size was reported.
    b = _bundle(rig)
    size = b.stat().st_size
    monkeypatch.setattr(usb_import.os, "fstat", _fstat_saying_ten_bytes(os.fstat))
    # And a stingy stick: a byte short of what is asked, down to single bytes.
    real_read = os.read
    monkeypatch.setattr(usb_import.os, "read", lambda fd, n: real_read(fd, max(1, min(n, 4096) - 1)))
    rep = _importer(rig, size - 1).import_file(b, NOW)
    assert (rep.result, rep.message) == ("too-large", "too-large: grew while read")
    assert _importer(rig, size).import_file(b, NOW).result == "imported"


def test_the_folder_of_one_bundle_is_opened_once_and_the_bundle_time_is_used(rig: Rig) -> None:
    b = _bundle(rig)
    assert rig.importer.import_file(b, NOW + 10 * 365 * 86400).result == "expired"
    assert rig.importer.import_file(rig.stick / "absent.lkb", NOW).result == "unreadable"
    rep = rig.importer.import_file(rig.stick / "nowhere" / "b.lkb", NOW)
    assert (rep.file, rep.result, rep.message) == ("b.lkb", "unreadable", os.strerror(errno.ENOENT))
    [rep] = rig.importer.import_dir(rig.stick / "gone", NOW)  # the stick pulled before its folder opened
    assert (rep.file, rep.result, rep.message) == ("gone", "unreadable", os.strerror(errno.ENOENT))
    (rig.stick / "plain").write_bytes(b"")
    [rep] = rig.importer.import_dir(rig.stick / "plain", NOW)  # not a folder
    assert (rep.file, rep.result, rep.message) == ("plain", "unreadable", os.strerror(errno.ENOTDIR))
    rep = rig.importer.import_file(rig.stick / "plain" / "b.lkb", NOW)
    assert (rep.file, rep.result, rep.message) == ("b.lkb", "unreadable", os.strerror(errno.ENOTDIR))


def test_the_files_considered_per_stick_stop_at_the_cap(rig: Rig) -> None:
    for k in range(MAX_FILES):
        (rig.stick / f"junk-{k:03d}.lkb").write_bytes(b"\x00junk")
    reps = rig.importer.import_dir(rig.stick, NOW)
    assert len(reps) == MAX_FILES and {r.result for r in reps} == {"malformed"}
    (rig.stick / "junk-999.lkb").write_bytes(b"\x00junk")
    reps = rig.importer.import_dir(rig.stick, NOW)
    assert len(reps) == MAX_FILES + 1 and (reps[-1].file, reps[-1].result) == ("1 more", "too-many")


def test_progress_is_reported_at_the_first_every_hundredth_and_the_last(tmp_path: Path) -> None:
    (tmp_path / "gw").mkdir()
    rig = Rig(tmp_path)
    office = Office(tmp_path / "office-big", SITE, {})  # no locks: gate operations only
    rig.office = office
    rig.importer.issuers = {usb_import.bundle.signer_id(office.public_key()): office.public_key()}
    for k in range(102):
        office.add_tenant(Tenant(f"t-{k}", f"Person {k}", f"ID-{k}", ""))
        office.enrol(f"t-{k}", f"ID-{k}", f"Person {k}", [(1, iso(k, 0))], "door access", "gate", NOW)
    b = office.export(rig.stick, rig.key.public_blob(), NOW)
    [rep] = rig.importer.import_dir(rig.stick, NOW)
    assert rep.result == "imported" and rep.counts["added"] == 102
    assert [(d, t) for f, d, t in rig.progress if f == b.name] == [(1, 102), (101, 102), (102, 102)]
    shutil.rmtree(rig.stick)


def test_each_operation_leaves_the_gate_gallery_with_exactly_the_persons_fingers() -> None:
    """What the gate matches against after each kind of operation (the
    mutation run: no test applied a replace to the gallery)."""
    from gateway.biometrics.gallery import Gallery
    from gateway.bundle import Operation
    from gateway.usb_import import apply_to_gallery

    g = Gallery()
    apply_to_gallery(g, Operation("add", "p-1", [(1, iso(1, 0)), (2, iso(2, 0))]))
    apply_to_gallery(g, Operation("add", "p-2", [(1, iso(3, 0))]))
    assert sorted(g.refs()) == ["p-1/1", "p-1/2", "p-2/1"]
    apply_to_gallery(g, Operation("add", "p-1", [(6, iso(4, 0))]))  # a finger more
    assert sorted(g.refs_of("p-1")) == ["p-1/1", "p-1/2", "p-1/6"]
    apply_to_gallery(g, Operation("replace", "p-1", [(2, iso(5, 0))]))  # re-enrolled: only this finger
    assert sorted(g.refs_of("p-1")) == ["p-1/2"]
    apply_to_gallery(g, Operation("del-finger", "p-1", [(2, b"")]))
    assert g.refs_of("p-1") == []
    apply_to_gallery(g, Operation("del-person", "p-2", []))
    assert g.refs() == []


def test_a_stick_folder_that_opens_but_cannot_be_listed_reports_why(
    rig: Rig, monkeypatch: pytest.MonkeyPatch
) -> None:
    def failing(path: object) -> list[str]:
        raise OSError(errno.EIO, os.strerror(errno.EIO))

    monkeypatch.setattr(usb_import.os, "listdir", failing)
    assert [(r.file, r.result, r.message) for r in rig.importer.import_dir(rig.stick, NOW)] == [
        (rig.stick.name, "unreadable", os.strerror(errno.EIO))
    ]


def test_a_signed_bundle_with_a_malformed_template_is_refused_whole_with_its_report(
    rig: Rig, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """An office that let a broken template through (its own check is
    bypassed here) signs a bundle the gateway must still refuse, file by
    name, with the template reader's message, and apply none of it."""
    from simulators import office as office_mod

    with monkeypatch.context() as m:  # the office's reader is blind while it enrols and exports
        m.setattr(office_mod.iso19794, "parse", lambda tpl: None)
        m.setattr(office_mod.iso19794, "first_view", lambda tpl: tpl)
        rig.office.enrol("t-1", "ID-1001", "Ana Lima", [(2, b"FMR\x00 20\x00broken")], "door", "gate", NOW)
        made = rig.office.export(tmp_path / "made", rig.key.public_blob(), NOW)
    (rig.stick / "b.lkb").write_bytes(made.read_bytes())
    before = rig.store.path.read_bytes() if rig.store.path.exists() else b""
    [rep] = rig.importer.import_dir(rig.stick, NOW)
    assert (rep.file, rep.result) == ("b.lkb", "invalid-template")
    from gateway.biometrics import iso19794

    with pytest.raises(iso19794.TemplateError) as e:
        iso19794.parse(b"FMR\x00 20\x00broken")
    assert rep.message == str(e.value) and "broken" not in rep.message  # the reader's words, not the bytes
    assert (rig.store.path.read_bytes() if rig.store.path.exists() else b"") == before


def test_an_unexpected_fault_while_applying_a_bundle_is_a_malformed_report_not_a_crash(
    rig: Rig, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The trust boundary: whatever a stick's content makes the importer
    raise, the daemon goes on with a report (and names no exception text)."""
    rig.office.enrol("t-1", "ID-1001", "Ana Lima", [(2, iso(7, 0))], "door", "gate", NOW)
    made = rig.office.export(tmp_path / "made", rig.key.public_blob(), NOW)
    (rig.stick / "b.lkb").write_bytes(made.read_bytes())

    def broken(*a: object) -> None:
        raise RuntimeError("secret internals")

    monkeypatch.setattr(usb_import.biostore, "apply", broken)
    [rep] = rig.importer.import_dir(rig.stick, NOW)
    assert (rep.file, rep.result, rep.message) == ("b.lkb", "malformed", "content the importer cannot read")


def test_a_file_that_never_ends_is_read_to_one_byte_past_the_limit_and_no_further(
    rig: Rig, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A stick's file system may hand out more than its size says, without
    end (a damaged FAT chain): the read stops at the limit plus one byte."""
    b = _bundle(rig)
    limit = 10_000
    got = [0]

    def endless(fd: int, n: int) -> bytes:
        got[0] += n
        assert got[0] <= limit + 1, "read past the limit"
        return b"x" * n

    monkeypatch.setattr(usb_import.os, "fstat", _fstat_saying_ten_bytes(os.fstat))
    monkeypatch.setattr(usb_import.os, "read", endless)
    rep = _importer(rig, limit).import_file(b, NOW)
    assert (rep.result, rep.message) == ("too-large", "too-large: grew while read")
    assert got[0] == limit + 1


def test_every_descriptor_on_the_stick_is_close_on_exec_and_never_follows_a_link(
    rig: Rig, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The daemon starts helpers (the mount, the lock link): a descriptor on
    the untrusted stick must not leak into them, the folder must be a folder
    when opened (not a file or a device the name was swapped for), and no
    open on the stick follows a link. Written from the mutation run: the
    flags could be dropped without a failing test."""
    _bundle(rig)
    opened: list[tuple[str, int, int | None]] = []
    real_open = os.open

    def spy(path: object, flags: int, mode: int = 0o777, *, dir_fd: int | None = None) -> int:
        opened.append((str(path), flags, mode if flags & os.O_CREAT else None))
        return real_open(path, flags, mode, dir_fd=dir_fd)  # type: ignore[arg-type]

    monkeypatch.setattr(os, "open", spy)
    reps = rig.insert_and_import()
    rig.importer.import_file(next(rig.stick.glob("*.lkb")), NOW)
    monkeypatch.undo()
    assert [r.result for r in reps] == ["imported"]
    on_stick = [o for o in opened if o[0] == str(rig.stick) or not o[0].startswith("/")]
    kinds = {"folder": 0, "bundle": 0, "receipt": 0}
    for path, flags, mode in on_stick:
        assert flags & os.O_CLOEXEC, path
        if path == str(rig.stick):
            kinds["folder"] += 1
            assert flags & os.O_DIRECTORY and flags & os.O_ACCMODE == os.O_RDONLY, path
        elif path.endswith(".receipt.tmp"):
            kinds["receipt"] += 1
            assert flags & os.O_EXCL and flags & os.O_CREAT and flags & os.O_NOFOLLOW, path
            assert mode == 0o644, path  # the office reads it back; nobody else may write it
        else:
            kinds["bundle"] += 1
            assert flags & os.O_NOFOLLOW and flags & os.O_ACCMODE == os.O_RDONLY, path
    assert kinds == {"folder": 2, "bundle": 2, "receipt": 1}


def test_log_lines_name_a_sticks_file_printably(rig: Rig, caplog: pytest.LogCaptureFixture) -> None:
    """A file name on a stick is the stick maker's text: the log shows it
    escaped and bounded, so it cannot forge a line of its own."""
    import logging

    names = ["a\nforged line.lkb", "b\x1b[2J.lkb", "n" * (MAX_NAME - 4) + ".lkb"]
    for n in names:
        (rig.stick / n).write_bytes(b"junk")
    with caplog.at_level(logging.INFO, logger=usb_import.log.name):
        rig.insert_and_import()
    shown = [r.args[0] for r in caplog.records if r.msg.startswith("bundle %s")]  # type: ignore[index]
    assert shown == ["a\\nforged line.lkb", "b\\x1b[2J.lkb", "n" * (MAX_NAME - 4) + ".lkb"]
    assert usb_import._shown("n" * (MAX_NAME + 9)) == "n" * MAX_NAME


def test_a_receipt_names_the_last_hundred_missing_bundles(rig: Rig) -> None:
    """The office fills gaps from the receipt's list of missing bundle
    numbers; it carries the newest 100 (the store remembers more)."""
    first = _bundle(rig)
    assert [r.result for r in rig.insert_and_import()] == ["imported"]  # bundle 1
    first.unlink()
    rid = usb_import.bundle.key_id(rig.key.public_blob()).hex()
    rig.office.db["seq_to"][rid] = 150  # bundles 2..150 never reached this gateway
    rig.office.enrol("t-1", "ID-1001", "Ana Lima", [(3, iso(44, 0))], "door", "gate", NOW)
    nxt = rig.office.export(rig.stick, rig.key.public_blob(), NOW)
    [rep] = rig.insert_and_import()
    assert rep.result == "imported" and rep.counts["missing"] == 149
    receipt = nxt.with_name(nxt.name + ".receipt").read_bytes()
    body = usb_import.verify_receipt(receipt, rig.gw_signer.public_key())
    assert body[8] == list(range(51, 151))


def test_the_feature_cache_follows_each_import_and_serves_the_next_start(
    rig: Rig, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The daemon's importer keeps the gallery's features at rest: after an
    import the cache holds every stored template's features, and the next
    start loads the gallery from it without extracting any. An import-only
    importer (no gallery: the CLI) leaves the cache alone."""
    from gateway.biometrics import featurecache, gallery
    from gateway.biometrics.featurecache import FeatureCache
    from gateway.biometrics.gallery import Gallery

    cache = FeatureCache(tmp_path / "features.enc", os.urandom(32))
    issuers = {usb_import.bundle.signer_id(rig.office.public_key()): rig.office.public_key()}

    def importer(g: Gallery | None) -> Importer:
        return Importer("gw-1", SITE, rig.store, g, rig.key, issuers, rig.gw_signer, features=cache)

    b = _bundle(rig)
    assert importer(Gallery()).import_file(b, NOW).result == "imported"
    st = rig.store.state
    assert set(cache.load()) == {featurecache.digest(t) for f in st.persons.values() for t in f.values()}
    extracted: list[int] = []
    real = gallery.features_of

    def counted(r: bytes) -> object:
        extracted.append(1)
        return real(r)

    monkeypatch.setattr(gallery, "features_of", counted)
    g = Gallery()
    importer(g)
    assert extracted == [] and len(g.refs()) == st.templates()
    monkeypatch.undo()
    before = cache.path.read_bytes()
    rig.office.enrol("t-1", "ID-1001", "Ana Lima", [(3, iso(44, 0))], "door", "gate", NOW)
    nxt = rig.office.export(tmp_path / "made2", rig.key.public_blob(), NOW)
    assert importer(None).import_file(nxt, NOW).result == "imported"
    assert cache.path.read_bytes() == before


def test_a_bundle_the_stick_will_not_let_be_read_is_reported_by_its_name(
    rig: Rig, monkeypatch: pytest.MonkeyPatch
) -> None:
    b = _bundle(rig)
    real = os.open

    def refusing(path: object, flags: int, *a: object, **kw: object) -> int:
        if str(path) == b.name:
            raise PermissionError(errno.EACCES, os.strerror(errno.EACCES))
        return real(path, flags, *a, **kw)  # type: ignore[arg-type]

    monkeypatch.setattr(os, "open", refusing)
    [rep] = rig.importer.import_dir(rig.stick, NOW)
    assert (rep.file, rep.result, rep.message) == (b.name, "unreadable", os.strerror(errno.EACCES))
