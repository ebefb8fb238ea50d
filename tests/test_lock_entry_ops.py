"""What each bundle-entry operation does to the lock's slot table and its
fingerprint module, entry by entry (firmware/core.py load_entry). Entries are
sealed here with the office's code (gateway/lockentry.py), so any operation
can be tried; written from the mutation run (re-adding a finger, the exact
capacity and a module fault on delete had no test)."""

from __future__ import annotations

from pathlib import Path

from firmware.core import LockCore
from firmware.fsio import FlashFS
from firmware.journal import Journal
from gateway import lockentry
from protocol import envelope, keys
from tests.shared.test_lock_core import FakeHAL, _fp_rig

ROOT = bytes(range(32))
NOW = 1_795_000_000
K_SEAL = keys.derive(ROOT, keys.SEAL, "lock-1")
_seq = [0]


def _core(tmp_path: Path) -> tuple[LockCore, FakeHAL]:
    fs = FlashFS(str(tmp_path / "flash"))
    hal = FakeHAL()
    return LockCore("lock-1", ROOT, Journal(fs, "lock-1"), hal, fs), hal


def _entry(op: str, person: str, fingers: list[int]) -> bytes:
    _seq[0] += 1
    tpls = [
        (f, bytes((f * 7 + i) & 0xFF for i in range(64)) if op in ("add", "replace") else b"")
        for f in fingers
    ]
    m = lockentry.plain("lock-1", bytes(16), _seq[0], 0, op, person, NOW + 86400, tpls)
    return lockentry.seal_entry(K_SEAL, m, NOW)


def _table(core: LockCore) -> list[tuple[str, int]]:
    return sorted((v[0], v[1]) for v in core.slots.values())


def test_re_adding_a_finger_replaces_that_finger_only(tmp_path: Path) -> None:
    core, _hal = _core(tmp_path)
    _emu, fp = _fp_rig()
    assert core.load_entry(fp, _entry("add", "p-1", [1]), NOW, 1)[0] == "ok"
    first = dict(core.slots)
    assert core.load_entry(fp, _entry("add", "p-1", [1]), NOW, 2)[0] == "ok"
    assert _table(core) == [("p-1", 1)] and core.slots != first  # one slot for the finger, a new page
    assert core.load_entry(fp, _entry("add", "p-1", [2]), NOW, 3)[0] == "ok"
    assert _table(core) == [("p-1", 1), ("p-1", 2)]  # another finger: the first stays
    assert core.load_entry(fp, _entry("replace", "p-1", [6]), NOW, 4)[0] == "ok"
    assert _table(core) == [("p-1", 6)]
    assert core.load_entry(fp, _entry("add", "p-2", [1]), NOW, 5)[0] == "ok"
    assert core.load_entry(fp, _entry("del-finger", "p-2", [1]), NOW, 6)[0] == "ok"
    assert _table(core) == [("p-1", 6)]


def test_the_module_is_full_at_exactly_its_capacity(tmp_path: Path) -> None:
    core, _hal = _core(tmp_path)
    _emu, fp = _fp_rig()
    core.capacity = 3
    assert core.load_entry(fp, _entry("add", "p-1", [1, 2]), NOW, 1)[0] == "ok"
    assert core.load_entry(fp, _entry("add", "p-2", [1]), NOW, 2)[0] == "ok"  # exactly the last page
    assert core.load_entry(fp, _entry("add", "p-3", [1]), NOW, 3)[0] == "store-full"
    assert _table(core) == [("p-1", 1), ("p-1", 2), ("p-2", 1)]


def test_a_module_fault_on_delete_still_forgets_the_pages_and_says_so(tmp_path: Path) -> None:
    core, _hal = _core(tmp_path)
    emu, fp = _fp_rig()
    assert core.load_entry(fp, _entry("add", "p-1", [1]), NOW, 1)[0] == "ok"
    emu.address = 1  # the module stops answering
    core.events.clear()
    assert core.load_entry(fp, _entry("del-person", "p-1", []), NOW, 2)[0] == "ok"
    assert core.slots == {}  # forgotten by the table first: the page can never open the door
    assert core.events == [{"event": "fingerprint-module-error", "code": -1}]


def test_receipts_acks_and_the_strike_carry_exact_values(tmp_path: Path) -> None:
    core, hal = _core(tmp_path)
    _emu, fp = _fp_rig()
    _res, e = core.load_entry(fp, _entry("add", "p-1", [1]), NOW, 1)
    k_r = keys.derive(ROOT, keys.SEAL, "lock-1")
    from protocol import seal

    rk = seal.receipt_key(k_r)
    assert envelope.verify(envelope.parse(core.receipt(e, "ok", None)), rk).ts == 0  # clock unset: 0
    assert envelope.verify(envelope.parse(core.receipt(e, "ok", NOW + 3)), rk).ts == NOW + 3
    k_cmd = keys.derive(ROOT, keys.CMD, "lock-1")
    list_body = envelope.seal(k_cmd, "cmd", "cloud", 1, NOW, [1, 2], "lock-1")
    assert core.command(list_body, NOW, 2) == "bad-command"
    assert core.journal.pending(10)[-1].ref == ""
    no_id = envelope.seal(k_cmd, "cmd", "cloud", 2, NOW, {1: "unlock", 2: 7, 3: NOW + 9}, "lock-1")
    core.command(no_id, NOW, 3)
    assert core.journal.pending(10)[-1].ref == ""  # a non-text id is not invented
    k_up = keys.derive(ROOT, keys.UPLINK, "lock-1")
    core.outbox.clear()
    ok = envelope.seal(k_cmd, "cmd", "cloud", 3, NOW, {1: "unlock", 2: "c-9", 3: NOW + 9}, "lock-1")
    assert core.command(ok, None, 4) == "clock-unset"
    ack = envelope.verify(envelope.parse(core.outbox[-1][1]), k_up)
    assert ack.ts == 0 and ack.body == {1: "c-9", 2: "clock-unset"}
    unlock = envelope.seal(k_cmd, "cmd", "cloud", 4, NOW, {1: "unlock", 2: "c-8", 3: NOW + 9}, "lock-1")
    assert core.command(unlock, NOW, 5) == "ok"
    assert hal.strike_on is True
    core.tick(5 + core.open_s, NOW + 5)
    assert hal.strike_on is False and core.last_mono == 5 + core.open_s


def test_each_refusal_beeps_as_documented(tmp_path: Path) -> None:
    core, hal = _core(tmp_path)
    emu, fp = _fp_rig()
    core.keypad("0000000000", NOW, 1)
    assert hal.beeps == 2  # a wrong code: two
    emu.finger = bytes(64)
    core.finger(fp, NOW, 2)
    assert hal.beeps == 4  # no match: two more
    emu.address = 1
    core.finger(fp, NOW, 3)
    assert hal.beeps == 7  # a module fault: three
