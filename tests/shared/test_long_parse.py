# A long code's text read back (protocol/passcode.py parse_long, make_long),
# each refusal by its exact reason and each limit at its edge, on both
# interpreters. The verifier folds every parse refusal into "malformed", so
# only these tests see which check refused. From the mutation run
# (docs/testing.md).
from protocol import cbor, keys
from protocol import passcode as pc
from protocol.errors import ProtocolError
from tests.shared.util import raises

ROOT = bytes(range(32))
KEY = keys.derive(ROOT, keys.CODE, "lock-1")
START_H = 498624  # 2026-11-18 00:00 UTC, in hours


def _text(item):
    return pc.LONG_PREFIX + pc.b32encode(cbor.encode(item))


def _fields(**kw):
    f = [1, "lock-1", pc.WINDOW, "h-1", START_H, START_H + 2, 0, None, 0]
    for i, name in enumerate(("v", "target", "kind", "holder", "start", "end", "uses", "daily", "serial")):
        if name in kw:
            f[i] = kw[name]
    return f


def test_a_long_code_reads_back_field_for_field():
    code = pc.make_long(KEY, "lock-1", pc.DAILY, "h-1", START_H, START_H + 48, daily=[8, 4])
    back = pc.parse_long(code.text())
    assert back.fields() == [1, "lock-1", pc.DAILY, "h-1", START_H, START_H + 48, 0, [8, 4], 0]
    assert back.mac == code.mac and back.code_id == code.code_id
    # Defaults: unlimited uses, serial 0; a one-time code has exactly one use.
    w = pc.make_long(KEY, "lock-1", pc.WINDOW, "h-1", START_H, START_H + 2)
    assert (w.uses, w.serial, w.daily) == (0, 0, None)
    o = pc.make_long(KEY, "lock-1", pc.ONCE, "h-1", START_H, START_H + 2, uses=5, serial=3)
    assert (o.uses, o.serial) == (1, 3)
    # What a scanner adds (case, surrounding blanks) is not part of the code.
    assert pc.parse_long("  " + code.text().lower() + "\n").fields() == back.fields()


def test_each_malformed_long_code_has_its_reason():
    mac = b"\x00" * pc.LONG_MAC_LEN
    good = _fields()
    assert pc.parse_long(_text(good + [mac])).fields() == good
    cases = (
        ("malformed", b"LE1AAAA"),
        ("malformed", None),
        ("version", "LE2" + _text(good + [mac])[3:]),
        ("version", "QR" + _text(good + [mac])),
        ("malformed", _text({1: 2})),
        ("malformed", _text(good)),
        ("malformed", _text(good + [mac, mac])),
        ("malformed", _text([2] + good[1:] + [mac])),
        ("malformed", _text([True] + good[1:] + [mac])),
        ("malformed", _text(good + [mac[:-1]])),
        ("malformed", _text(good + [mac + b"\x00"])),
        ("malformed", _text(good + ["0" * pc.LONG_MAC_LEN])),
        ("invalid-field", _text(_fields(kind=pc.SETUP) + [mac])),
        ("too-deep", _text(_fields(daily=[[8], 4]) + [mac])),
    )
    for reason, text in cases:
        raises(reason, pc.parse_long, text)


def test_a_long_codes_text_limit_holds_at_its_edge():
    # At most 16 characters over the QR capacity (the blanks a scanner may
    # add). That bounds the CBOR inside to 64 bytes, under the decoder's 128.
    mac = b"\x00" * pc.LONG_MAC_LEN
    at = _text(_fields() + [mac])
    pad = " " * (pc.QR_V4_M_ALNUM + 16 - len(at))
    assert pc.parse_long(at + pad).fields() == _fields()
    raises("malformed", pc.parse_long, at + pad + " ")
    assert (pc.QR_V4_M_ALNUM + 16 - len(pc.LONG_PREFIX)) * 5 // 8 <= 64


def test_make_long_refuses_a_code_that_would_not_fit_a_version_4_qr_code():
    fits = []
    for n in range(1, 25):
        try:
            code = pc.make_long(KEY, "lock-1", pc.WINDOW, "h" * n, START_H, START_H + 2, serial=1000)
        except ProtocolError as e:
            assert e.reason == "too-large", e
            fits.append(False)
        else:
            assert len(code.text()) <= pc.QR_V4_M_ALNUM
            fits.append(len(code.text()) == pc.QR_V4_M_ALNUM)
    assert True in fits and False in fits, fits  # the limit itself is reached, and refused past it


def test_every_field_rule_of_a_long_code_at_its_edge_and_one_past():
    ok = (
        _fields(target="t"),
        _fields(target="t" * 24),
        _fields(holder="h"),
        _fields(holder="h" * 24),
        _fields(start=0, end=1),
        _fields(start=0xFFFFFFFF - 1, end=0xFFFFFFFF),
        _fields(end=START_H + 1),
        _fields(end=START_H + 366 * 24),
        _fields(uses=0xFFFFFFFF, serial=0xFFFFFFFF),
        _fields(kind=pc.ONCE, uses=1),
        _fields(kind=pc.DAILY, daily=[0, 1]),
        _fields(kind=pc.DAILY, daily=[23, 23]),
    )
    for f in ok:
        pc._check_long_fields(f)
    bad = (
        _fields(target=""),
        _fields(target="t" * 25),
        _fields(target=7),
        _fields(holder=""),
        _fields(holder="h" * 25),
        _fields(holder=None),
        _fields(kind=-1),
        _fields(kind=pc.SETUP),
        _fields(kind=True),
        _fields(kind=False),
        _fields(kind="1"),
        _fields(start=-1, end=1),
        _fields(start=0xFFFFFFFF, end=0xFFFFFFFF + 1),
        _fields(start=True),
        _fields(end=START_H),
        _fields(end=START_H - 1),
        _fields(end=START_H + 366 * 24 + 1),
        _fields(uses=-1),
        _fields(uses=0xFFFFFFFF + 1),
        _fields(uses=False),
        _fields(serial=-1),
        _fields(serial=0xFFFFFFFF + 1),
        _fields(serial=True),
        _fields(serial="0"),
        _fields(kind=pc.ONCE, uses=0),
        _fields(kind=pc.ONCE, uses=2),
        _fields(kind=pc.DAILY, daily=None),
        _fields(kind=pc.DAILY, daily=[8]),
        _fields(kind=pc.DAILY, daily=[8, 4, 1]),
        _fields(kind=pc.DAILY, daily=(8, 4)),
        _fields(kind=pc.DAILY, daily=[24, 4]),
        _fields(kind=pc.DAILY, daily=[-1, 4]),
        _fields(kind=pc.DAILY, daily=[8, 0]),
        _fields(kind=pc.DAILY, daily=[8, 24]),
        _fields(kind=pc.DAILY, daily=["8", 4]),
        _fields(kind=pc.DAILY, daily=[8, "4"]),
        _fields(kind=pc.DAILY, daily=[True, 4]),
        _fields(kind=pc.DAILY, daily=[8, True]),
        _fields(kind=pc.DAILY, daily=[False, 4]),
        _fields(daily=[8, 4]),
        _fields(kind=pc.ONCE, uses=1, daily=[8, 4]),
    )
    for f in bad:
        raises("invalid-field", pc._check_long_fields, f)
    # False == ONCE == 0 and True == WINDOW == 1: a bool kind is refused as a kind.
    for flag in (True, False):
        assert (
            raises("invalid-field", pc._check_long_fields, _fields(kind=flag, uses=1)).message
            == "long code kind"
        )
    # The same rules hold for a code read from its text.
    mac = b"\x00" * pc.LONG_MAC_LEN
    raises("invalid-field", pc.parse_long, _text(_fields(holder="h" * 25) + [mac]))
    raises("invalid-field", pc.parse_long, _text(_fields(target="") + [mac]))
