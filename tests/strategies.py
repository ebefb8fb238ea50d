"""Hypothesis strategies for the protocol's CBOR value subset."""

from __future__ import annotations

from typing import Any

from hypothesis import strategies as st

U64 = 2**64
ints = st.integers(min_value=-U64, max_value=U64 - 1)
small_ints = st.one_of(
    st.integers(min_value=-300, max_value=300),
    st.sampled_from([23, 24, 255, 256, 65535, 65536, 2**32 - 1, 2**32, U64 - 1, -U64, -25, -257]),
)
keys = st.one_of(st.one_of(ints, small_ints), st.text(max_size=12), st.binary(max_size=12))
scalars = st.one_of(st.none(), st.booleans(), ints, small_ints, st.binary(max_size=40), st.text(max_size=40))
values = st.recursive(
    scalars,
    lambda children: st.one_of(
        st.lists(children, max_size=6),
        st.dictionaries(keys, children, max_size=6),
    ),
    max_leaves=30,
)


def depth(v: Any) -> int:
    if isinstance(v, list):
        return 1 + max((depth(x) for x in v), default=0)
    if isinstance(v, dict):
        return 1 + max((depth(x) for x in list(v.keys()) + list(v.values())), default=0)
    return 0
