"""The list of refusal messages (tests/refusal_messages.py) is the source's,
and the check tests/conftest.py makes with it tells a listed message from
a changed one."""

from __future__ import annotations

import os

import pytest

from tests import refusal_messages as rm


@pytest.mark.skipif(
    os.environ.get("LOCKEDGE_MUTATION") == "1", reason="under mutmut the source holds every mutant's strings"
)
def test_the_list_is_the_sources_own() -> None:
    assert rm.load() == rm.from_source(), "run `make vectors` and review the new messages"


def test_a_listed_template_matches_its_messages_and_nothing_else() -> None:
    m = rm.matcher()
    assert m.fullmatch("delta from 4, list is at 3: snapshot needed")
    assert m.fullmatch("delta from None, list is at 0: snapshot needed")
    assert m.fullmatch("blacklist of 1025 entries over limit 1024")
    assert m.fullmatch("pass record: seq out of range")
    for changed in (
        "XXblacklist update is not a mapXX",
        "BLACKLIST UPDATE IS NOT A MAP",
        "blacklist update is not a map.",
        "blacklist of many entries over limit 1024",
        "pass record: ",
        "None",
        "",
    ):
        assert not m.fullmatch(changed), changed


def test_every_conversion_becomes_a_pattern() -> None:
    assert rm.to_regex("a %d b %s c %r d %02x e %%") == r"a\ -?\d+\ b\ .*\ c\ .*\ d\ [0-9a-fA-F]+\ e\ %"
