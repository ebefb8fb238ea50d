# What the lock answers, exactly, on both interpreters: a repeated command
# gets the ack its first arrival got, refusal or not, and is not run again;
# a fingerprint-module fault is an event with the module's code, or -1 for
# a fault that has none (a UART error). From the mutation run.
from firmware.core import LockCore
from firmware.fpmodule import FPError
from firmware.fsio import FlashFS
from firmware.journal import Journal
from protocol import envelope, keys
from tests.shared.util import fresh_dir

ROOT = bytes(range(32))
NOW = 1795000000


class _HAL:
    def __init__(self):
        self.opened = 0

    def strike(self, on):
        if on:
            self.opened += 1

    def beep(self, n):
        pass


def _lock():
    fs = FlashFS(fresh_dir("answers"))
    hal = _HAL()
    return LockCore("lock-1", ROOT, Journal(fs, "lock-1"), hal, fs, open_s=5, held_open_s=60), hal


def _cmd(seq, cmd_id, deadline, action="unlock"):
    k = keys.derive(ROOT, keys.CMD, "lock-1")
    return envelope.seal(k, "cmd", "cloud", seq, NOW, {1: action, 2: cmd_id, 3: deadline}, "lock-1")


def _acks(core):
    k = keys.derive(ROOT, keys.UPLINK, "lock-1")
    return [envelope.verify(envelope.parse(a), k).body for _t, a in core.outbox]


def test_a_repeated_command_gets_its_first_answer_and_does_not_run_again():
    core, hal = _lock()
    assert core.command(_cmd(1, "late", NOW - 1), NOW, 1) == "deadline"
    assert core.command(_cmd(2, "late", NOW + 30), NOW, 2) == "deadline"  # a repeat: same id
    assert core.command(_cmd(3, "odd", NOW + 30, "open-sesame"), NOW, 3) == "bad-command"
    assert core.command(_cmd(4, "odd", NOW + 30), NOW, 4) == "bad-command"
    assert core.command(_cmd(5, "go", NOW + 30), NOW, 5) == "ok"
    assert core.command(_cmd(6, "go", NOW + 30), NOW, 6) == "ok"
    assert hal.opened == 1
    assert _acks(core) == [
        {1: "late", 2: "deadline"},
        {1: "late", 2: "deadline"},
        {1: "odd", 2: "bad-command"},
        {1: "odd", 2: "bad-command"},
        {1: "go", 2: "done"},
        {1: "go", 2: "done"},
    ]


class _FaultyModule:
    def __init__(self, exc):
        self.exc = exc

    def capture(self):
        raise self.exc


def test_a_module_fault_event_carries_the_modules_code_or_minus_one():
    for exc, code in ((FPError(0x18, "flash error"), 0x18), (OSError(5, "uart"), -1), (ValueError("x"), -1)):
        core, _hal = _lock()
        assert core.finger(_FaultyModule(exc), NOW, 10) == "sensor-error"
        assert core.events == [{"event": "fingerprint-module-error", "code": code}], exc


def test_the_lock_defaults_are_the_documented_ones():
    core, _hal = _lock()
    # The strike opens 5 s and a door held open 60 s alarms, unless the
    # configuration says otherwise; docs/protocol.md's replay window of 64
    # per sender, for the two senders a lock hears (gateway, cloud); an R503
    # module's 200 library pages.
    fs = FlashFS(fresh_dir("defaults"))
    plain = LockCore("lock-1", ROOT, Journal(fs, "lock-1"), _HAL(), fs)
    assert (plain.open_s, plain.held_open_s) == (5, 60)
    assert (plain.rx.window, plain.rx.max_senders, plain.capacity) == (64, 2, 200)
    # The first message the lock sends is number 1.
    assert core.command(_cmd(1, "c-1", NOW + 30), NOW, 1) == "ok"
    assert envelope.parse(core.outbox[0][1]).seq == 1


def test_a_rekey_to_the_highest_epochs_is_recorded_under_the_reference_limit():
    # Five purposes at epoch 65,535 name 47 characters: the record keeps the
    # first 40 (a pass record's reference limit) and the rekey still applies.
    core, _hal = _lock()
    epochs = {p: keys.MAX_EPOCH for p in keys.PURPOSES}
    k = keys.derive(ROOT, keys.CMD, "lock-1")
    data = envelope.seal(k, "cmd", "cloud", 1, NOW, {1: "rekey", 2: "rk-1", 3: NOW + 30, 4: epochs}, "lock-1")
    assert core.command(data, NOW, 1) == "ok"
    full = ",".join("%s%d" % (p, keys.MAX_EPOCH) for p in keys.PURPOSES)
    assert len(full) > 40
    last = core.journal.pending(10)[-1]
    assert (last.kind, last.ref, last.reason) == ("none", full[:40], "rekeyed")
    assert core.epochs == epochs
