# The fingerprint-module driver against the emulated module, on CPython and
# MicroPython.
from firmware.fpmodule import FingerprintModule, FPError, checksum, packet
from simulators.fpemu import FingerprintEmulator, VirtualUART

_t = [0]


def _ticks():
    _t[0] += 1
    return _t[0]


def _rig():
    emu = FingerprintEmulator()
    uart = VirtualUART(emu)
    return emu, uart, FingerprintModule(uart, _ticks, timeout_ms=50)


def _template(seed):
    return bytes((seed * 31 + i * 7) & 0xFF for i in range(512))


def test_packet_framing_and_checksum():
    p = packet(0xFFFFFFFF, 0x01, b"\x01")
    assert p == bytes((0xEF, 0x01, 0xFF, 0xFF, 0xFF, 0xFF, 0x01, 0x00, 0x03, 0x01, 0x00, 0x05))
    assert checksum(0x01, b"\x01") == 5


def test_enroll_search_delete():
    emu, _uart, fp = _rig()
    fp.verify_password()
    for page in range(3):
        fp.enroll(_template(page), page)  # DownChar in 128-byte data packets, then Store
    assert fp.template_count() == 3
    emu.finger = _template(1)
    assert fp.capture()
    fp.image_to_template(1)
    assert fp.search(1, 0, 200) == (1, 200)
    emu.finger = _template(9)  # not enrolled
    assert fp.capture()
    fp.image_to_template(1)
    assert fp.search() is None
    fp.delete(1)
    emu.finger = _template(1)
    fp.capture()
    fp.image_to_template(1)
    assert fp.search() is None
    fp.empty()
    assert fp.template_count() == 0


def test_no_finger_and_upload_roundtrip():
    _emu, _uart, fp = _rig()
    assert fp.capture() is False
    fp.download(_template(4), 2)
    assert fp.upload(2) == _template(4)


def test_errors_are_clear():
    emu, uart, fp = _rig()
    emu.password = 1234
    try:
        fp.verify_password()
        raise AssertionError("wrong password accepted")
    except FPError as e:
        assert e.code == 0x13 and "password" in str(e)
    uart.corrupt_next = True
    try:
        fp.template_count()
        raise AssertionError("corrupt packet accepted")
    except FPError as e:
        assert e.code == -3
    emu.address = 0x12345678  # the module ignores packets for another address
    try:
        fp.template_count()
        raise AssertionError("no answer expected")
    except FPError as e:
        assert e.code == -1 and "timed out" in str(e)
    emu.address = fp.address  # back on speaking terms
    try:
        fp.image_to_template(1)  # no image captured yet: the module says so
        raise AssertionError("a template from no image")
    except FPError as e:
        assert e.code == 0x15, e.code  # R30x: "no valid image in the buffer"
