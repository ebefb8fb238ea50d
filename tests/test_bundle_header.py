"""A bundle's header and its checks at their edges and one past, each
refusal by its reason (gateway/bundle.py read_header, open_bundle,
recipient_public; docs/bundle.md). Written from the mutation run: the
bundle tests reached these only through whole imports, never at a bound."""

from __future__ import annotations

from typing import Any

import pytest
from cryptography.hazmat.primitives.asymmetric import ed25519

from gateway import bundle
from gateway.bundle import BundleError, Operation, Payload
from protocol import cbor

SITE = "site-7"
NOW = 1_795_000_000
OFFICE = ed25519.Ed25519PrivateKey.generate()
KEY = bundle.RecipientKey.new(bundle.KEM_X25519)
ISSUERS = {bundle.signer_id(OFFICE.public_key()): OFFICE.public_key()}
PAYLOAD = Payload([Operation("del-person", "p-1")], {})


def _bundle(seq: int = 5, created: int = NOW, expires: int = NOW + 3600, payload: Payload = PAYLOAD) -> bytes:
    return bundle.build(payload, OFFICE, KEY.public_blob(), seq, SITE, created, expires)


def _open(data: bytes, now: int = NOW, last: dict[bytes, int] | None = None) -> Any:
    return bundle.open_bundle(data, ISSUERS, KEY, SITE, now, {} if last is None else last)


def _reason(fn: Any, *args: Any) -> str:
    with pytest.raises(BundleError) as e:
        fn(*args)
    return e.value.reason


def _reheader(h: dict[int, Any], sig: bytes = bytes(64)) -> bytes:
    """A bundle whose protected header is `h` (unsigned: read_header only)."""
    return cbor.encode([cbor.encode(h), b"ct", sig])


def _header() -> dict[int, Any]:
    outer = cbor.decode(_bundle())
    assert isinstance(outer, list)
    prot = cbor.decode(outer[0])
    assert isinstance(prot, dict)
    return prot


def test_a_built_bundle_has_a_fresh_16_byte_id_and_opens() -> None:
    a, b = bundle.read_header(_bundle())[0], bundle.read_header(_bundle())[0]
    assert len(a.bundle_id) == 16 and a.bundle_id != b.bundle_id
    hdr, payload = _open(_bundle())
    assert hdr.seq == 5 and payload.operations[0].person == "p-1"


def test_the_size_limit_and_the_outer_shape() -> None:
    assert _reason(bundle.read_header, bytes(bundle.MAX_BUNDLE + 1)) == "too-large"
    assert (
        _reason(bundle.read_header, bytes(bundle.MAX_BUNDLE)) == "malformed"
    )  # at the limit: read, not CBOR
    for outer in ([b"p", b"c"], [b"p", b"c", 1], [b"p", b"c", b"s", b"x"], {1: b"p"}, b"p"):
        assert _reason(bundle.read_header, cbor.encode(outer)) == "malformed", outer
    assert _reason(bundle.read_header, _bundle() + b"\x00") == "malformed"  # junk after a signed bundle


def test_a_bundle_over_64_kib_is_read_whole() -> None:
    big = Payload([Operation("add", "p-1", [(f, bytes(4096)) for f in range(10)]) for _ in range(2)], {})
    data = _bundle(payload=big)
    assert len(data) > 65536
    assert len(_open(data)[1].operations) == 2


def test_the_header_must_be_the_format_and_have_every_field() -> None:
    assert _reason(bundle.read_header, _reheader({1: "LKB2"})) == "version"
    assert _reason(bundle.read_header, cbor.encode([cbor.encode([1]), b"ct", bytes(64)])) == "version"
    for k in range(2, 10):
        h = _header()
        del h[k]
        assert _reason(bundle.read_header, _reheader(h)) == "malformed", k
    h = _header()
    h[10] = "x" * (64 * 1024)  # a header over 64 KiB is not read, whatever it holds
    assert _reason(bundle.read_header, _reheader(h)) == "malformed"
    h = _header()
    h[4] = 0  # created at 0 is a number like any other
    assert bundle.read_header(_reheader(h))[0].created == 0
    for k, bad in (
        (4, -1),
        (5, True),
        (6, "5"),
        (2, bytes(15)),
        (3, bytes(9)),
        (7, []),
        (8, "rsa"),
        (9, "s" * 65),
    ):
        h = _header()
        h[k] = bad
        assert _reason(bundle.read_header, _reheader(h)) == "invalid-field", (k, bad)
    assert _reason(bundle.read_header, _reheader(_header(), bytes(63))) == "invalid-field"


def test_expiry_is_exclusive_and_a_sequence_must_grow() -> None:
    data = _bundle(expires=NOW + 100)
    assert _open(data, NOW + 99)[0].seq == 5
    assert _reason(_open, data, NOW + 100) == "expired"
    issuer = bundle.signer_id(OFFICE.public_key())
    assert _reason(_open, _bundle(seq=5), NOW, {issuer: 5}) == "rollback"
    assert _open(_bundle(seq=6), NOW, {issuer: 5})[0].seq == 6
    assert _open(_bundle(seq=0), NOW, {})[0].seq == 0  # the first bundle an office ever signs


def test_a_gateway_public_key_blob_is_checked_before_use() -> None:
    for blob in (cbor.encode([]), cbor.encode({1: 2}), cbor.encode(["rsa", b"k"]), cbor.encode("x25519")):
        with pytest.raises(ValueError, match="not a lockedge gateway public key"):
            bundle.recipient_public(blob)
    assert bundle.recipient_public(KEY.public_blob())[0] == bundle.KEM_X25519


def _message(fn: Any, *args: Any) -> str:
    with pytest.raises(BundleError) as e:
        fn(*args)
    return str(e.value)


def test_header_bounds_at_their_edges_and_one_past() -> None:
    for k, ok, bad in (
        (7, [bytes(8)] * 64, [bytes(8)] * 65),  # recipient key ids
        (9, "s" * 64, "s" * 65),  # the site
    ):
        h = _header()
        h[k] = ok
        bundle.read_header(_reheader(h))
        h[k] = bad
        assert _reason(bundle.read_header, _reheader(h)) == "invalid-field", k


def test_nesting_past_four_levels_is_refused_by_the_decoder_in_the_envelope_and_the_header() -> None:
    deep: Any = b""
    for _ in range(4):
        deep = [deep]
    outer = cbor.encode([cbor.encode(_header()), deep, bytes(64)])
    assert (
        _message(bundle.read_header, outer)
        == "malformed: not a lockedge bundle (not one deterministic CBOR item)"
    )
    h = _header()
    h[10] = [[[["x"]]]]
    assert _message(bundle.read_header, _reheader(h)) == "malformed: bundle header is not deterministic CBOR"
    h[10] = [[["x"]]]  # one level less: read (a field it does not know is ignored)
    assert bundle.read_header(_reheader(h))[0].site == SITE


def test_a_header_of_64_kib_is_read_and_one_byte_more_is_not() -> None:
    for size, readable in ((64 * 1024, True), (64 * 1024 + 1, False)):
        h = _header()
        h[10] = ""
        h[10] = "x" * (size - len(cbor.encode(h)) - 3)  # a 3-byte text head past 255
        while len(cbor.encode(h)) < size:
            h[10] += "x"
        assert len(cbor.encode(h)) == size
        if readable:
            assert bundle.read_header(_reheader(h))[0].site == SITE
        else:
            assert (
                _message(bundle.read_header, _reheader(h))
                == "malformed: bundle header is not deterministic CBOR"
            )
