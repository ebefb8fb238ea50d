# Every field rule of a sealed entry's plaintext (protocol/seal.py
# check_plain), at its edge and one past it, on CPython and MicroPython.
# check_plain runs after the MAC, so only a genuine sealer could send these:
# the rules guard the lock against a broken office, and the mutation run
# found none of them pinned by a test.
from protocol import seal
from tests.shared.util import raises

BUNDLE = bytes(range(16))


def _plain(**over):
    m = {
        1: 1,
        2: "lock-1",
        3: BUNDLE,
        4: 7,
        5: 3,
        6: "add",
        7: "p-1",
        8: 2_000_000_000,
        9: [[1, b"\x01\x02"]],
    }
    for k, v in over.items():
        m[int(k[1:])] = v
    return m


def test_a_valid_entry_comes_back_field_by_field():
    e = seal.check_plain(_plain())
    assert (e.lock, e.bundle, e.seq, e.idx, e.op, e.person, e.expires) == (
        "lock-1",
        BUNDLE,
        7,
        3,
        "add",
        "p-1",
        2_000_000_000,
    )
    assert e.templates == [(1, b"\x01\x02")]


def test_the_map_version_and_keys():
    raises("malformed", seal.check_plain, [1, 2])
    raises("malformed", seal.check_plain, None)
    raises("version", seal.check_plain, _plain(f1=2))
    raises("version", seal.check_plain, _plain(f1=0))
    for bad in (0, 10, -1, "2"):  # True is the key 1 in a dict
        m = _plain()
        m[bad] = 1
        raises("invalid-field", seal.check_plain, m)
    for k in range(2, 10):
        m = _plain()
        del m[k]
        raises("invalid-field", seal.check_plain, m)


def test_each_bounded_field_at_its_edge_and_one_past():
    # (field, largest accepted, first refused, smallest accepted)
    ints = (
        (4, 0xFFFFFFFFFFFF, 0x1000000000000, 0),
        (5, 0xFFFFFF, 0x1000000, 0),
        (8, 0xFFFFFFFFFF, 0x10000000000, 0),
    )
    for f, hi, past, lo in ints:
        kw = {"f%d" % f: hi}
        assert seal.check_plain(_plain(**kw)) is not None
        kw = {"f%d" % f: lo}
        e = seal.check_plain(_plain(**kw))
        assert (e.seq, e.idx, e.expires)[(4, 5, 8).index(f)] == lo
        kw = {"f%d" % f: past}
        raises("invalid-field", seal.check_plain, _plain(**kw))
        kw = {"f%d" % f: -1}
        raises("invalid-field", seal.check_plain, _plain(**kw))
        kw = {"f%d" % f: True}
        raises("invalid-field", seal.check_plain, _plain(**kw))
    assert seal.check_plain(_plain(f2="L" * 64)).lock == "L" * 64
    assert seal.check_plain(_plain(f2="L")).lock == "L"
    assert seal.check_plain(_plain(f7="P")).person == "P"
    raises("invalid-field", seal.check_plain, _plain(f2="L" * 65))
    raises("invalid-field", seal.check_plain, _plain(f2=""))
    assert seal.check_plain(_plain(f7="P" * 40)).person == "P" * 40
    raises("invalid-field", seal.check_plain, _plain(f7="P" * 41))
    raises("invalid-field", seal.check_plain, _plain(f7=b"p-1"))
    for b in (bytes(15), bytes(17), "x" * 16):
        raises("invalid-field", seal.check_plain, _plain(f3=b))
    raises("invalid-field", seal.check_plain, _plain(f6="ADD"))


def test_templates_positions_and_sizes():
    four = [[f, b"\x05"] for f in (0, 3, 9, 10)]
    assert [f for f, _ in seal.check_plain(_plain(f9=four)).templates] == [0, 3, 9, 10]
    raises("invalid-field", seal.check_plain, _plain(f9=four + [[4, b"\x05"]]))
    raises("invalid-field", seal.check_plain, _plain(f9=[[11, b"\x05"]]))
    raises("invalid-field", seal.check_plain, _plain(f9=[[-1, b"\x05"]]))
    raises("invalid-field", seal.check_plain, _plain(f9=[[2, b"\x05"], [2, b"\x06"]]))
    raises("invalid-field", seal.check_plain, _plain(f9=[[0, b"\x05"], [0, b"\x06"]]))
    for item in ([1], [1, b"x", 2], (1, b"x"), [1, "x"], 1):
        raises("invalid-field", seal.check_plain, _plain(f9=[item]))
    raises("invalid-field", seal.check_plain, _plain(f9=(1, b"x")))
    for op in ("add", "replace"):
        big = seal.MAX_TEMPLATE
        assert seal.check_plain(_plain(f6=op, f9=[[1, bytes(big)]])).templates[0][1] == bytes(big)
        assert seal.check_plain(_plain(f6=op, f9=[[1, b"\x07"]])).templates == [(1, b"\x07")]
        raises("invalid-field", seal.check_plain, _plain(f6=op, f9=[[1, bytes(big + 1)]]))
        raises("invalid-field", seal.check_plain, _plain(f6=op, f9=[[1, b""]]))
        raises("invalid-field", seal.check_plain, _plain(f6=op, f9=[]))


def test_deletions_carry_positions_only():
    e = seal.check_plain(_plain(f6="del-finger", f9=[[2, b""], [5, b""]]))
    assert e.op == "del-finger" and e.templates == [(2, b""), (5, b"")]
    raises("invalid-field", seal.check_plain, _plain(f6="del-finger", f9=[[2, b"\x01"]]))
    raises("invalid-field", seal.check_plain, _plain(f6="del-finger", f9=[]))
    raises("invalid-field", seal.check_plain, _plain(f6="del-finger", f9=[[2, b""], [2, b""]]))
    e = seal.check_plain(_plain(f6="del-person", f9=[]))
    assert e.op == "del-person" and e.templates == []
    raises("invalid-field", seal.check_plain, _plain(f6="del-person", f9=[[2, b""]]))
    raises("invalid-field", seal.check_plain, _plain(f6="del-person", f9=[[2, b"\x01"]]))
