# Pass-code scenarios, checked on CPython and on MicroPython.
from protocol import passcode
from tests.shared.passcode_scenarios import check
from tests.shared.util import load_vectors


def test_passcode_scenarios():
    v = load_vectors("passcode")
    assert len(v["scenarios"]) >= 9
    for sc in v["scenarios"]:
        check(sc)


def test_issued_codes_match_vectors():
    from protocol import keys
    from tests.shared.util import unhex

    for c in load_vectors("passcode")["issued"]:
        key = keys.derive(unhex(c["root"]), keys.CODE, c["target"])
        code = passcode.make_keypad(
            key, c["target"], c["profile"], c["start_unit"], c["variant"], c["serial"]
        )
        assert code.digits == c["digits"] and code.code_id == c["code_id"]
        assert [code.start, code.end] == c["window"]


def test_base32_roundtrip_and_strictness():
    for n in range(0, 40):
        data = bytes(range(n))
        assert passcode.b32decode(passcode.b32encode(data)) == data
    for bad in ("A", "ABC", "a2", "AB1", "AZ"):
        try:
            passcode.b32decode(bad)
        except Exception as e:
            assert e.reason == "malformed"
        else:
            raise AssertionError("accepted " + bad)


def test_profile_table_fits_payload():
    assert passcode.PAYLOAD_USED <= passcode.PAYLOAD_MOD
    assert len(passcode.PROFILES) == 188
