# The blacklist (protocol/blacklist.py) refusal by refusal, on CPython and
# MicroPython: each malformed update gets its exact reason and changes
# nothing; each bound holds at its edge. Written from the mutation run
# (docs/testing.md): every check here was a change no test noticed.
from protocol.blacklist import MAX_ID, Blacklist
from tests.shared.util import raises

NOW = 1795000000


def _full(version, entries, **more):
    body = {1: "full", 2: version, 4: entries}
    body.update(more)
    return body


def _listed(bl):
    return sorted(bl.entries.items())


def test_each_malformed_update_has_its_reason_and_changes_nothing():
    bl = Blacklist()
    bl.apply(_full(3, [["c-1", 0]]), NOW)
    before = (bl.version, _listed(bl))
    cases = [
        ("malformed", "not a map"),
        ("malformed", {1: "sideways", 2: 4}),
        ("invalid-field", {1: "full", 2: 0, 4: []}),
        ("invalid-field", {1: "full", 2: True, 4: []}),
        ("invalid-field", {1: "full", 2: "4", 4: []}),
        ("invalid-field", {1: "full", 4: []}),
        ("stale", _full(3, [])),
        ("stale", _full(2, [])),
        ("duplicate", {1: "delta", 2: 3, 3: 2, 4: []}),
        ("gap", {1: "delta", 2: 5, 3: 4, 4: []}),
        ("gap", {1: "delta", 2: 4, 3: True, 4: []}),
        ("malformed", {1: "delta", 2: 4, 3: 3, 5: "c-1"}),
        ("malformed", {1: "delta", 2: 4, 3: 3, 5: [7]}),
        ("malformed", _full(4, "c-2")),
        ("malformed", _full(4, [["c-2"]])),
        ("malformed", _full(4, [["c-2", 0, 1]])),
        ("malformed", _full(4, ["c-2"])),
        ("invalid-field", _full(4, [["", 0]])),
        ("invalid-field", _full(4, [["x" * (MAX_ID + 1), 0]])),
        ("invalid-field", _full(4, [[7, 0]])),
        ("invalid-field", _full(4, [["c-2", -1]])),
        ("invalid-field", _full(4, [["c-2", True]])),
        ("invalid-field", _full(4, [["c-2", False]])),
        ("invalid-field", _full(4, [["c-2", "0"]])),
    ]
    for reason, body in cases:
        raises(reason, bl.apply, body, NOW)
        assert (bl.version, _listed(bl)) == before, (reason, body)


def test_bounds_hold_at_their_edges():
    bl = Blacklist(max_entries=3)
    # Ids of 1 and MAX_ID characters are fine; expiry 0 means "until removed".
    assert bl.apply(_full(1, [["a", 0], ["b" * MAX_ID, NOW + 1]]), NOW) == 1
    assert _listed(bl) == [("a", 0), ("b" * MAX_ID, NOW + 1)]
    # An entry expiring exactly now is dropped; one a second later kept.
    bl.apply(_full(2, [["x", NOW], ["y", NOW + 1], ["z", 0]]), NOW)
    assert _listed(bl) == [("y", NOW + 1), ("z", 0)]
    # Exactly max_entries is fine, one more is too-large (and changes nothing).
    bl.apply(_full(3, [["p", 0], ["q", 0], ["r", 0]]), NOW)
    assert bl.version == 3 and len(bl.entries) == 3
    raises("too-large", bl.apply, _full(4, [["p", 0], ["q", 0], ["r", 0], ["s", 0]]), NOW)
    assert bl.version == 3 and [i for i, _e in _listed(bl)] == ["p", "q", "r"]
    # Expired entries do not count against the limit.
    bl.apply(_full(4, [["p", 0], ["q", 0], ["r", 0], ["old", NOW - 5]]), NOW)
    assert bl.version == 4 and len(bl.entries) == 3


def test_a_delta_adds_removes_and_needs_its_base():
    bl = Blacklist()
    bl.apply(_full(1, [["c-1", 0], ["c-2", NOW + 100]]), NOW)
    assert bl.apply({1: "delta", 2: 2, 3: 1, 4: [["c-3", 0]], 5: ["c-1", "never-listed"]}, NOW) == 2
    assert _listed(bl) == [("c-2", NOW + 100), ("c-3", 0)]
    # Without removals or additions: a delta that only moves the version.
    assert bl.apply({1: "delta", 2: 3, 3: 2}, NOW) == 3
    assert _listed(bl) == [("c-2", NOW + 100), ("c-3", 0)]
    # A full snapshot replaces everything.
    bl.apply(_full(9, []), NOW)
    assert bl.entries == {} and bl.version == 9


def test_blocked_until_expiry_and_persons_under_both_names():
    bl = Blacklist()
    bl.apply(_full(1, [["c-1", NOW + 10], ["c-0", 0], ["v:p-7", 0], ["p-8", NOW + 10]]), NOW)
    assert bl.blocked(["c-1"], NOW + 9) and not bl.blocked(["c-1"], NOW + 10)
    assert bl.blocked(["c-0"], NOW + 10**6)  # 0: until removed
    assert not bl.blocked(["c-9"], NOW) and not bl.blocked([], NOW)
    assert bl.blocked(["c-9", "c-1"], NOW)  # any of the ids
    assert bl.person_blocked("p-7", NOW) and bl.person_blocked("p-8", NOW)
    assert not bl.person_blocked("p-8", NOW + 10) and not bl.person_blocked("p-9", NOW)
    other = Blacklist()
    other.load(bl.state())
    assert other.version == 1 and other.entries == bl.entries


def test_a_bool_is_never_a_delta_base_even_where_it_equals_the_version():
    # True == 1 and False == 0 in Python: at versions 1 and 0 a bool base
    # compares equal to the list's version and must still be refused.
    for version, flag in ((0, False), (1, True)):
        bl = Blacklist()
        if version:
            bl.apply(_full(version, [["c-1", 0]]), NOW)
        before = (bl.version, _listed(bl))
        raises("gap", bl.apply, {1: "delta", 2: version + 1, 3: flag, 4: [["c-2", 0]]}, NOW)
        assert (bl.version, _listed(bl)) == before
        assert bl.apply({1: "delta", 2: version + 1, 3: version, 4: [["c-2", 0]]}, NOW) == version + 1
