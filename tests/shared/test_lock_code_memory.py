# A one-time code stays used across a reboot, whatever else the lock's code
# memory did before it (firmware/core.py: the codes file is rewritten only
# when its signature changes), on both interpreters.
from firmware.fsio import FlashFS
from protocol import keys
from protocol import passcode as pc
from tests.shared.test_lock_core import FakeHAL, _reopen
from tests.shared.util import fresh_dir

ROOT = bytes(range(32))
NOW = 1795000000 - 1795000000 % 3600
KEY = keys.derive(ROOT, keys.CODE, "lock-1")


def _boot(fs):
    return _reopen(fs, FakeHAL())  # the lock as test_lock_core boots it


def _once(start_h, serial):
    p = pc.find_profile(pc.ONCE, pc.DEVICE, pc.HOUR, 1)
    return pc.make_keypad(KEY, "lock-1", p, start_h, 0, serial)


def test_a_code_used_as_an_expired_one_is_pruned_stays_used_after_a_reboot():
    fs = FlashFS(fresh_dir("codemem"))
    core = _boot(fs)
    a = _once(NOW // 3600, 1)
    assert core.keypad(a.digits, NOW + 60, 100).granted
    # Hours later: a's record is pruned as b's is added, one for one.
    b = _once(NOW // 3600 + 5, 2)
    assert core.keypad(b.digits, NOW + 5 * 3600 + 60, 200).granted
    core = _boot(fs)  # a power cut, a reboot
    assert core.keypad(b.digits, NOW + 5 * 3600 + 120, 10).reason == "used"


def test_a_code_used_as_two_older_records_are_pruned_stays_used_after_a_reboot():
    fs = FlashFS(fresh_dir("codemem3"))
    core = _boot(fs)
    for serial in (1, 2):
        assert core.keypad(_once(NOW // 3600, serial).digits, NOW + 60 + serial, 100 + serial).granted
    c = _once(NOW // 3600 + 5, 3)  # both older records go as this one comes
    assert core.keypad(c.digits, NOW + 5 * 3600 + 60, 200).granted
    core = _boot(fs)
    assert core.keypad(c.digits, NOW + 5 * 3600 + 120, 10).reason == "used"
