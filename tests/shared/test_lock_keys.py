# Key epochs and the cloud's rekey command at the lock (issue 17 item 5), on
# CPython and MicroPython: a replaced gateway's local key stops working
# without re-rooting the lock, untouched purposes (issued codes) keep
# working, and a rekey cannot be forged, replayed or rolled back.
from firmware.main import LockApp
from protocol import envelope, keys, record
from protocol import passcode as pc
from tests.shared.test_lock_app import GW, LoopHAL, _run, _topics
from tests.shared.test_lock_clock import _online, _type
from tests.shared.test_lock_core import NOW, ROOT

LOCK = "lock-1"
_seq = [5000]


def _k(purpose, epoch=0):
    return keys.derive(ROOT, purpose, LOCK, epoch)


def _next():
    _seq[0] += 1
    return _seq[0]


def _rekey(hal, cmd_id, epochs, cmd_epoch=0, key=None):
    body = {1: "rekey", 2: cmd_id, 3: NOW + 86400, 4: epochs}
    data = envelope.seal(key or _k(keys.CMD, cmd_epoch), "cmd", "cloud", _next(), 0, body, LOCK)
    hal.broker.to_lock.append(("lock/%s/cmd" % LOCK, data))


def _acks(hal, up_epoch=0):
    out = []
    for m in _topics(hal, "ack"):
        try:
            out.append(envelope.verify(envelope.parse(m), _k(keys.UPLINK, up_epoch)).body)
        except Exception:  # noqa: S112  (sealed under another epoch's up key)
            continue
    return out


def _code(epoch=0, serial=4):
    profile = pc.find_profile(pc.WINDOW, pc.DEVICE, pc.HOUR, 24)
    return pc.make_keypad(_k(keys.CODE, epoch), LOCK, profile, NOW // 3600 - 1, 0, serial)


def _refused_events(hal, up_epoch=0):
    out = []
    for m in _topics(hal, "evt"):
        try:
            e = envelope.verify(envelope.parse(m), _k(keys.UPLINK, up_epoch))
        except Exception:  # noqa: S112
            continue
        if e.type == "evt" and e.body.get("event") in ("refused", "time-refused"):
            out.append(e.body.get("reason"))
    return out


def _batches_open_under(hal, key):
    n = 0
    for m in _topics(hal, "rec"):
        try:
            record.batch_from_body(envelope.verify(envelope.parse(m), key).body)
            n += 1
        except Exception:  # noqa: S112
            continue
    return n


def test_rekey_of_local_retires_a_stolen_gateways_key_and_codes_keep_working():
    app, hal = _online()
    code = _code()
    assert _type(app, hal, code.digits).granted
    _run(app, hal, 6)
    _rekey(hal, "rk-1", {keys.LOCAL: 1})
    _run(app, hal, 1)
    assert {1: "rk-1", 2: "done"} in _acks(hal)  # up is untouched: acked under the old up key
    assert app.core.epochs == {keys.LOCAL: 1}
    rec = app.journal.pending(1000)[-1]
    assert (rec.kind, rec.ref, rec.granted, rec.reason) == ("none", "local1", False, "rekeyed")
    # The stolen gateway's copy of the local key: refused.
    old = envelope.seal(_k(keys.LOCAL), "rec-ack", GW, _next(), 0, [LOCK, [1, 2]])
    hal.broker.to_lock.append(("lock/%s/rec-ack" % LOCK, old))
    _run(app, hal, 1)
    assert "bad-tag" in _refused_events(hal) and app.journal.backlog() >= 2
    # The new gateway, provisioned by the cloud with the epoch-1 key: works.
    n_before = _batches_open_under(hal, _k(keys.LOCAL, 1))
    _run(app, hal, 11)  # the batch is sent again (no ack yet), now under the new key
    assert _batches_open_under(hal, _k(keys.LOCAL, 1)) > n_before
    new = envelope.seal(_k(keys.LOCAL, 1), "rec-ack", GW, _next(), 0, [LOCK, [1, 2]])
    hal.broker.to_lock.append(("lock/%s/rec-ack" % LOCK, new))
    _run(app, hal, 1)
    assert app.journal.backlog() == 0
    # An issued code (the code key was not touched) still opens.
    _run(app, hal, 6)
    assert _type(app, hal, code.digits).granted
    # The epochs survive a reboot.
    hal2 = LoopHAL()
    app2 = LockApp(hal2, app.core.fs, LOCK, ROOT, GW, "127.0.0.1", 1883, "pw", open_s=5, held_open_s=30)
    assert app2.core.epochs == {keys.LOCAL: 1} and app2.core.k_local == _k(keys.LOCAL, 1)


def test_rekey_of_every_purpose_without_re_rooting():
    app, hal = _online()
    every = {p: 1 for p in keys.PURPOSES}
    _rekey(hal, "rk-all", every)
    _run(app, hal, 1)
    assert {1: "rk-all", 2: "done"} in _acks(hal, up_epoch=1)  # the ack proves the new keys
    assert {1: "rk-all", 2: "done"} not in _acks(hal, up_epoch=0)
    assert app.core.k_seal == _k(keys.SEAL, 1) and app.core.k_cmd == _k(keys.CMD, 1)
    rec = _type(app, hal, _code(epoch=0).digits)
    assert (rec.granted, rec.reason) == (False, "wrong-code")  # codes of the old code key
    _run(app, hal, 1)
    assert _type(app, hal, _code(epoch=1, serial=5).digits).granted
    _run(app, hal, 6)
    old_cmd = envelope.seal(
        _k(keys.CMD), "cmd", "cloud", _next(), 0, {1: "unlock", 2: "u-old", 3: NOW + 9999}, LOCK
    )
    hal.broker.to_lock.append(("lock/%s/cmd" % LOCK, old_cmd))
    _run(app, hal, 1)
    rec = app.journal.pending(1000)[-1]
    assert (rec.kind, rec.granted, rec.reason) == ("remote", False, "bad-tag")
    new_cmd = envelope.seal(
        _k(keys.CMD, 1), "cmd", "cloud", _next(), 0, {1: "unlock", 2: "u-new", 3: NOW + 9999}, LOCK
    )
    hal.broker.to_lock.append(("lock/%s/cmd" % LOCK, new_cmd))
    _run(app, hal, 1)
    rec = app.journal.pending(1000)[-1]
    assert (rec.kind, rec.granted, rec.reason) == ("remote", True, "ok")
    # After a reboot the keypad checks codes under the new code key too
    # (the boot derives the keys of the saved epochs and hands the verifier
    # its key; from the mutation run: nothing rebooted a rekeyed lock and
    # typed a code).
    _run(app, hal, 6)
    hal2 = LoopHAL()
    hal2.t, hal2.wall = hal.t, hal.wall
    app2 = LockApp(hal2, app.core.fs, LOCK, ROOT, GW, "127.0.0.1", 1883, "pw", open_s=5, held_open_s=30)
    assert app2.core.verifier.code_key == _k(keys.CODE, 1)
    rec = _type(app2, hal2, _code(epoch=1, serial=6).digits)
    assert (rec.granted, rec.reason) == (True, "ok")
    _run(app2, hal2, 6)
    rec = _type(app2, hal2, _code(epoch=0, serial=7).digits)
    assert (rec.granted, rec.reason) == (False, "wrong-code")


def test_a_rekey_cannot_be_forged_replayed_or_rolled_back():
    app, hal = _online()
    _rekey(hal, "rk-2", {keys.LOCAL: 2})
    _run(app, hal, 1)
    assert app.core.epochs == {keys.LOCAL: 2}
    # Forged with the local key (all a gateway holds): refused, nothing moves.
    _rekey(hal, "rk-f", {keys.LOCAL: 3}, key=_k(keys.LOCAL, 2))
    _run(app, hal, 1)
    assert app.journal.pending(1000)[-1].reason == "bad-tag"
    # Replayed (same envelope: the window refuses it; same id: same answer).
    _rekey(hal, "rk-2", {keys.LOCAL: 2})
    _run(app, hal, 1)
    # Back to an older epoch, the same epoch, unknown purposes, junk: bad-command.
    for i, bad in enumerate(
        (
            {keys.LOCAL: 1},
            {keys.LOCAL: 2},
            {"root": 1},
            {keys.LOCAL: keys.MAX_EPOCH + 1},
            {},
            [1],
            {keys.LOCAL: "3"},
        )
    ):
        _rekey(hal, "rk-b%d" % i, bad)
        _run(app, hal, 1)
        assert app.journal.pending(1000)[-1].reason == "bad-command", bad
    assert app.core.epochs == {keys.LOCAL: 2}
    assert app.core.k_local == _k(keys.LOCAL, 2)


def test_key_epochs_are_part_of_the_derivation():
    assert keys.derive(ROOT, keys.LOCAL, LOCK, 0) == keys.derive(ROOT, keys.LOCAL, LOCK)
    seen = set(keys.derive(ROOT, keys.LOCAL, LOCK, e) for e in range(5))
    assert len(seen) == 5
    for bad in (-1, keys.MAX_EPOCH + 1, True, "1", 1.0):
        try:
            keys.derive(ROOT, keys.LOCAL, LOCK, bad)
        except Exception as e:
            assert getattr(e, "reason", "") == "bad-key"
        else:
            raise AssertionError("epoch %r accepted" % (bad,))
