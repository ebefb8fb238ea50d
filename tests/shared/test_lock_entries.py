# Sealed bundle entries on the lock (protocol/seal.py, LockCore.load_entry),
# on CPython and MicroPython. The tokens were sealed on CPython with
# `cryptography`'s Fernet (tests/vectors/generate.py).
from protocol import aes, seal
from tests.shared.test_lock_core import NOW, _fp_rig, _lock, _reopen, _tpl
from tests.shared.util import load_vectors, raises, unhex

V = load_vectors("seal")
E = dict((k, unhex(v)) for k, v in V["entries"].items())


def test_aes_cbc_matches_the_reference():
    for b in V["aes_cbc"]:
        k, iv, ct = unhex(b["key"]), unhex(b["iv"]), unhex(b["ct"])
        assert aes.cbc_decrypt_pure(k, iv, ct) == unhex(b["pt"])
        assert aes.cbc_decrypt(k, iv, ct) == unhex(b["pt"])


def test_open_refuses_each_bad_entry_with_its_reason():
    core, _hal, _fs = _lock()
    k = core.k_seal
    e = seal.open_entry(k, E["add-p42"], "lock-1", NOW)
    assert (e.op, e.person, e.seq, e.idx, e.templates[0][0]) == ("add", "p-0042", 1, 0, 1)
    assert "p-0042" in repr(e) and "%02x" % e.templates[0][1][0] not in repr(e).split("templates")[1]
    raises("bad-tag", seal.open_entry, k, E["tampered"], "lock-1", NOW)
    raises("bad-tag", seal.open_entry, k, E["wrong-key"], "lock-1", NOW)
    raises("bad-tag", seal.open_entry, k, E["other-lock"], "lock-1", NOW)  # lock-2's key
    raises("expired", seal.open_entry, k, E["expired"], "lock-1", NOW)
    raises("malformed", seal.open_entry, k, E["add-p42"][:-1], "lock-1", NOW)
    raises("malformed", seal.open_entry, k, b"", "lock-1", NOW)
    raises("version", seal.open_entry, k, b"\x81" + E["add-p42"][1:], "lock-1", NOW)
    raises("too-large", seal.open_entry, k, bytes(4097), "lock-1", NOW)
    raises("bad-key", seal.open_entry, k[:16], E["add-p42"], "lock-1", NOW)
    # Clock unset: the MAC still holds, only the expiry is not checked.
    assert seal.open_entry(k, E["expired"], "lock-1", None).person == "p-9"


def test_entries_enrol_replace_and_delete_on_the_module():
    core, hal, fs = _lock()
    emu, fp = _fp_rig()
    assert core.load_entry(fp, E["add-p42"], NOW, 1)[0] == "ok"
    assert core.load_entry(fp, E["add-p7"], NOW, 2)[0] == "ok"
    emu.finger = _tpl(7)
    assert core.finger(fp, NOW, 3) == "ok" and hal.strike_on
    assert core.journal.pending(10)[-1].ref == "p-0042"
    emu.finger = _tpl(1)
    assert core.finger(fp, NOW, 4) == "ok"
    assert len(emu.library) == 2
    # Replace: the old finger no longer opens, the two new ones do.
    assert core.load_entry(fp, E["replace-p42"], NOW, 5)[0] == "ok"
    emu.finger = _tpl(7)
    assert core.finger(fp, NOW, 6) == "no-match"
    for t in (9, 10):
        emu.finger = _tpl(t)
        assert core.finger(fp, NOW, 7) == "ok"
    assert core.load_entry(fp, E["delfinger-p42"], NOW, 8)[0] == "ok"
    emu.finger = _tpl(10)
    assert core.finger(fp, NOW, 9) == "no-match"
    emu.finger = _tpl(9)
    assert core.finger(fp, NOW, 10) == "ok"
    # A reboot keeps the slot table and the rollback mark.
    core2 = _reopen(fs, hal)
    assert core2.load_entry(fp, E["delperson-p7"], NOW, 11)[0] == "ok"
    emu.finger = _tpl(1)
    assert core2.finger(fp, NOW, 12) == "no-match"
    assert len(emu.library) == 1  # erased from the module too
    # Replays: the same entry again is a duplicate, an older one a rollback;
    # neither changes anything (p-7 stays deleted).
    assert core2.load_entry(fp, E["delperson-p7"], NOW, 13)[0] == "duplicate"
    assert core2.load_entry(fp, E["add-p7"], NOW, 14)[0] == "rollback"
    assert core2.finger(fp, NOW, 15) == "no-match"
    assert core2.load_entry(fp, E["many"], NOW, 16)[0] == "ok"
    assert len(core2.slots) == 5


def test_refused_entries_change_nothing():
    core, _hal, fs = _lock()
    emu, fp = _fp_rig()
    before = (fs.read("core"), fs.read("core.b"))
    for name, reason in (("tampered", "bad-tag"), ("other-lock", "bad-tag"), ("expired", "expired")):
        assert core.load_entry(fp, E[name], NOW, 1)[0] == reason
    assert (fs.read("core"), fs.read("core.b")) == before and len(emu.library) == 0 and core.slots == {}
    core.capacity = 3  # a full module refuses the whole entry
    assert core.load_entry(fp, E["many"], NOW, 2)[0] == "store-full"
    assert core.slots == {} and len(emu.library) == 0
    emu.address = 1  # the module stops answering mid-entry
    assert core.load_entry(fp, E["add-p42"], NOW, 3)[0] == "sensor-error"
    assert core.slots == {} and core.entry_mark == [-1, -1]


def test_power_cut_between_module_and_table_leaves_no_wrong_name():
    core, _hal, _fs = _lock()
    emu, fp = _fp_rig()
    fp.enroll(_tpl(7), 0)  # stored on the module, cut before the table was saved
    emu.finger = _tpl(7)
    assert core.finger(fp, NOW, 1) == "no-match"  # an unnamed page never opens
    assert core.load_entry(fp, E["add-p42"], NOW, 2)[0] == "ok"  # page 0 is reused
    assert core.finger(fp, NOW, 3) == "ok"


def test_a_receipt_with_a_genuine_mac_and_bad_fields_is_refused_by_field():
    # The MAC is checked first; a lock that wrote a bad field (a bug, not an
    # attacker: the gateway cannot MAC) still gets an exact reason.
    from protocol import envelope

    k = bytes(range(32))
    rk = seal.receipt_key(k)

    def rc(body, typ="receipt", sender="lock-1"):
        return envelope.seal(rk, typ, sender, 5, 0, body)

    good = {1: bytes(16), 2: 0, 3: 100000, 4: "del-person", 5: "p" * 40, 6: "r" * 24}
    r = seal.open_receipt(k, "lock-1", rc(good))
    assert (r["seq"], r["idx"], r["person"], r["result"]) == (0, 100000, "p" * 40, "r" * 24)
    top = dict(good)
    top[2] = 2**63 - 1
    assert seal.open_receipt(k, "lock-1", rc(top))["seq"] == 2**63 - 1
    for field, value in (
        (1, bytes(15)),
        (1, "b" * 16),
        (2, -1),
        (2, 2**63),
        (2, True),
        (3, 100001),
        (3, -1),
        (4, "add-all"),
        (5, "p" * 41),
        (5, ""),
        (6, "r" * 25),
        (6, 7),
    ):
        bad = dict(good)
        bad[field] = value
        raises("invalid-field", seal.open_receipt, k, "lock-1", rc(bad))
    raises("malformed", seal.open_receipt, k, "lock-1", rc(good, typ="ent-ack"))
    raises("malformed", seal.open_receipt, k, "lock-1", rc(good, sender="lock-2"))
    raises("malformed", seal.open_receipt, k, "lock-1", rc([1, 2]))
    raises("malformed", seal.open_receipt, k, "lock-1", "not bytes")
    raises("malformed", seal.open_receipt, k, "lock-1", bytes(seal.MAX_RECEIPT + 1))
    assert len(rc(good)) <= seal.MAX_RECEIPT  # a receipt at the limit's side still opens
    raises("bad-key", seal.receipt_key, k[:31])
