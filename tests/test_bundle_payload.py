"""A decrypted bundle's payload, field by field at its edges and one past,
each refusal by its reason (gateway/bundle.py payload_from; docs/bundle.md).
The payload is reached only behind a genuine signature and decryption, so
the bundle tests never tried most of these; the mutation run showed it."""

from __future__ import annotations

from typing import Any

import cbor2
import pytest

from gateway import bundle
from gateway.bundle import MAX_TEMPLATE, BundleError, payload_from


def _reason(data: bytes) -> str:
    with pytest.raises(BundleError) as e:
        payload_from(data)
    return e.value.reason


def _op(op: str = "add", person: Any = "p-1", tpls: Any = ((1, b"t"),)) -> dict[int, Any]:
    return {1: op, 2: person, 3: [list(t) for t in tpls]}


def _with(ops: list[Any], ent: Any = None) -> bytes:
    m: dict[int, Any] = {1: ops}
    if ent is not None:
        m[2] = ent
    return cbor2.dumps(m)


def test_the_outer_shape() -> None:
    for junk in (b"", b"\xff", b"\x1c"):
        assert _reason(junk) == "malformed"
    shapes: list[Any] = [[], {2: {}}, {1: {}}, {1: [], 2: {}, 3: 0}, {1: "ops"}, "x"]
    for m in shapes:
        assert _reason(cbor2.dumps(m)) == "malformed", m
    assert payload_from(cbor2.dumps({1: []})).operations == []  # no lock entries: none
    assert payload_from(cbor2.dumps({1: []})).lock_entries == {}


def test_each_operation_is_one_of_the_four() -> None:
    for op in bundle.OPS:
        tpls = ((1, b"t"),) if op in ("add", "replace") else ()
        assert payload_from(_with([_op(op, tpls=tpls)])).operations[0].op == op
    for bad in ("ADD", "delete", None, 1):
        assert _reason(_with([_op(bad)])) == "invalid-field", bad  # type: ignore[arg-type]
    assert _reason(_with(["add"])) == "invalid-field"
    assert _reason(_with([{2: "p-1"}])) == "invalid-field"


def test_templates_at_most_ten_each_finger_0_to_10_and_bytes_up_to_the_limit() -> None:
    ten = [(f, b"t") for f in range(10)]
    assert len(payload_from(_with([_op(tpls=ten)])).operations[0].templates) == 10
    assert _reason(_with([_op(tpls=[*ten, (10, b"t")])])) == "invalid-field"
    assert payload_from(_with([{1: "del-person", 2: "p-1"}])).operations[0].templates == []
    assert _reason(_with([{1: "add", 2: "p-1", 3: "t"}])) == "invalid-field"
    assert payload_from(_with([_op(tpls=[(0, b"t"), (10, b"u")])])).operations[0].templates == [
        (0, b"t"), (10, b"u")]  # fmt: skip
    for t in ([11, b"t"], [-1, b"t"], [True, b"t"], ["1", b"t"], [1, "t"], [1], [1, b"t", 0]):
        assert _reason(_with([{1: "add", 2: "p-1", 3: [t]}])) == "invalid-field", t
    assert payload_from(_with([_op(tpls=[(1, bytes(MAX_TEMPLATE))])])).operations[0].templates[0][1] == bytes(
        MAX_TEMPLATE
    )
    assert _reason(_with([_op(tpls=[(1, bytes(MAX_TEMPLATE + 1))])])) == "invalid-field"


def test_an_add_or_replace_needs_template_bytes_a_deletion_does_not() -> None:
    for op in ("add", "replace"):
        assert _reason(_with([_op(op, tpls=[(1, b"")])])) == "invalid-field"
        assert _reason(_with([_op(op, tpls=[(1, b"t"), (2, b"")])])) == "invalid-field"
    assert payload_from(_with([_op("del-finger", tpls=[(1, b"")])])).operations[0].templates == [(1, b"")]


def test_person_ids_one_to_forty_characters_without_a_slash() -> None:
    for p in ("p", "p" * 40, "p-1.a_b"):
        assert payload_from(_with([_op(person=p)])).operations[0].person == p
    bad: list[Any] = ["", "p" * 41, "a/b", "/", None, 7, b"p"]
    for q in bad:
        assert _reason(_with([_op(person=q)])) == "invalid-field", q


def test_lock_entries_map_lock_ids_to_lists_of_sealed_bytes() -> None:
    ok = payload_from(_with([], {"lock-1": [b"a", b"b"], "lock-2": []}))
    assert ok.lock_entries == {"lock-1": [b"a", b"b"], "lock-2": []}
    entries: list[Any] = [
        [],
        {1: [b"a"]},
        {"lock-1": b"a"},
        {"lock-1": [b"a", "b"]},
        {"lock-1": [[b"a"]]},
        "x",
    ]
    for ent in entries:
        assert _reason(_with([], ent)) == "malformed", ent
