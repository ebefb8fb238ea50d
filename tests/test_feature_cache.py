"""The gallery's features at rest (gateway/biometrics/featurecache.py): a
restart takes them instead of extracting every template again, the gallery
it builds is the one the records build, and a damaged, stale or foreign
cache is rebuilt from the store, never trusted and never fatal."""

from __future__ import annotations

import logging
import os
from pathlib import Path

import numpy as np
import pytest

from gateway import biostore
from gateway.biometrics import featurecache, gallery, index, iso19794, mcc
from gateway.biometrics.featurecache import FeatureCache
from gateway.biometrics.gallery import Gallery
from gateway.biometrics.index import gallery_keys
from gateway.usb_import import load_gallery, save_features
from simulators import fingerprints as fpg


def _rec(f: int, i: int) -> bytes:
    im = fpg.impression(fpg.master(f, 31), i, 31)
    return iso19794.single(im.minutiae, im.width, im.height)


def _state(n: int) -> biostore.State:
    st = biostore.State()
    for f in range(n):
        st.persons[f"p-{f}"] = {1: _rec(f, 0)}
    return st


def _decisions(g: Gallery, n: int) -> list[tuple[str | None, float]]:
    out: list[tuple[str | None, float]] = []
    for f in range(n + 3):  # mates, and three strangers
        m = g.identify(_rec(f, 1))
        out.append((m.ref, round(m.score, 6)) if m is not None else (None, 0.0))
    return out


def _rows(g: Gallery) -> dict[str, bytes]:
    """What the gallery keeps, comparable: equal rows score alike."""
    out = {}
    for ref in g.refs():
        out[ref] = b"".join(f.xy.tobytes() + f.theta.tobytes() + f.bits.tobytes() + f.mask.tobytes()
                            for f in g.stored(ref))  # fmt: skip
    return out


@pytest.fixture
def cache(tmp_path: Path) -> FeatureCache:
    return FeatureCache(tmp_path / "gallery-features.enc", os.urandom(32))


def test_a_gallery_from_the_cache_is_the_gallery_from_the_records(
    cache: FeatureCache, monkeypatch: pytest.MonkeyPatch
) -> None:
    st = _state(12)
    fresh = Gallery()
    load_gallery(fresh, st, cache)  # no cache yet: extracts, then saves
    assert cache.path.exists() and oct(cache.path.stat().st_mode & 0o777) == "0o600"
    assert len(cache.load()) == 12
    extracted: list[int] = []
    real = gallery.views_of

    def counted(r: bytes) -> list[mcc.Features]:
        extracted.append(1)
        return real(r)

    monkeypatch.setattr(gallery, "views_of", counted)
    keyed: list[int] = []
    real_keys = index.gallery_keys

    def keys_counted(f: mcc.Features) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        keyed.append(1)
        return real_keys(f)

    monkeypatch.setattr(index, "gallery_keys", keys_counted)
    saved_as = (cache.path.stat().st_ino, cache.path.read_bytes())
    again = Gallery()
    load_gallery(again, st, cache)
    assert extracted == []  # every template's features came from the cache...
    assert keyed == []  # ...and its index keys (most of an enrolment's cost)
    # The store did not change: the cache is left as it was, not rewritten.
    assert (cache.path.stat().st_ino, cache.path.read_bytes()) == saved_as
    monkeypatch.undo()
    assert _decisions(again, 12) == _decisions(fresh, 12)
    assert [m[0] for m in _decisions(fresh, 12)][:12] == [f"p-{f}/1" for f in range(12)]
    for ref in fresh.refs():
        a, b = fresh.stored(ref)[0], again.stored(ref)[0]
        assert np.array_equal(a.xy, b.xy) and np.array_equal(a.theta, b.theta)
        assert np.array_equal(a.bits, b.bits) and np.array_equal(a.mask, b.mask)
        # The index keys saved are the ones enrolment computes from the record
        # (in the index's order, which is its own affair: compared as sets).
        person = ref.split("/")[0]
        want = gallery_keys(gallery._Store.quantised(gallery.features_of(st.persons[person][1])))
        saved = cache.load()[featurecache.digest(st.persons[person][1])][0][1]
        o, so = np.lexsort(want[::-1]), np.lexsort(saved[::-1])
        assert all(np.array_equal(x[o], y[so]) for x, y in zip(want, saved, strict=True))


def test_every_view_of_a_record_is_cached_and_comes_back(cache: FeatureCache) -> None:
    """An enrolment of several presses (the views of one record) is as many
    templates, and a restart takes all of them from the cache, in order."""
    st = biostore.State()
    for f in range(4):
        ims = [fpg.impression(fpg.master(f, 31), i, 31) for i in range(f % 3 + 1)]
        st.persons[f"p-{f}"] = {
            1: iso19794.impressions([im.minutiae for im in ims], ims[0].width, ims[0].height)
        }
    fresh = Gallery()
    load_gallery(fresh, st, cache)
    assert len(fresh) == 1 + 2 + 3 + 1
    assert [len(v) for v in cache.load().values()] == [1, 2, 3, 1]
    again = Gallery()
    load_gallery(again, st, cache)
    assert _rows(again) == _rows(fresh) and len(again) == len(fresh)
    assert _decisions(again, 4) == _decisions(fresh, 4)


def test_quantised_features_enrol_to_the_same_rows() -> None:
    f = gallery.features_of(_rec(3, 0))
    q = gallery._Store.quantised(f)
    qq = gallery._Store.quantised(q)
    assert np.array_equal(q.xy, qq.xy) and np.array_equal(q.theta, qq.theta)
    assert mcc.score(q, f) > 0.5


def test_the_cache_follows_the_store_and_forgets_a_deleted_person(cache: FeatureCache) -> None:
    st = _state(5)
    g = Gallery()
    load_gallery(g, st, cache)
    gone = featurecache.digest(st.persons["p-2"][1])
    assert gone in cache.load()
    g.remove_person("p-2")
    del st.persons["p-2"]
    save_features(g, st, cache)
    assert gone not in cache.load() and len(cache.load()) == 4
    # A template replaced under the same name is extracted again, not taken stale.
    st.persons["p-3"] = {1: _rec(40, 0)}
    g2 = Gallery()
    load_gallery(g2, st, cache)
    assert featurecache.digest(_rec(40, 0)) in cache.load()
    m = g2.identify(_rec(40, 1))
    assert m is not None and m.ref == "p-3/1"


def test_a_damaged_or_foreign_cache_is_rebuilt_and_never_fatal(
    cache: FeatureCache, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    st = _state(3)
    load_gallery(Gallery(), st, cache)
    good = cache.path.read_bytes()
    ref = Gallery()
    load_gallery(ref, st, None)
    want = _rows(ref)
    damaged = [b"", good[:11], good[:12], good[: len(good) // 2], bytes(len(good)), good + b"\0"]
    damaged += [good[:k] + bytes([good[k] ^ 0x40]) + good[k + 1 :] for k in range(0, len(good), 211)]
    for blob in damaged:
        cache.path.write_bytes(blob)
        with caplog.at_level(logging.INFO, logger="lockedge.gallery"):
            assert cache.load() == {}
            g = Gallery()
            load_gallery(g, st, cache)  # rebuilt from the store
        assert _rows(g) == want
        assert len(cache.load()) == 3  # and saved again, whole
    assert "damaged: rebuilding" in caplog.text
    # Another key (another gateway's file) reads as damage, not as features.
    cache.path.write_bytes(good)
    assert FeatureCache(cache.path, os.urandom(32)).load() == {}
    # A directory where the file should be: unreadable, said, not raised.
    other = FeatureCache(tmp_path / "adir", os.urandom(32))
    (tmp_path / "adir").mkdir()
    assert other.load() == {}
    g = Gallery()
    load_gallery(g, st, other)  # cannot save there either: a warning, the gallery still loads
    assert len(g) == 3


def test_features_of_other_matcher_parameters_are_not_mixed_in(
    cache: FeatureCache, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    st = _state(2)
    load_gallery(Gallery(), st, cache)
    monkeypatch.setattr(featurecache, "TAG", b"\x00" * 16)
    with caplog.at_level(logging.INFO, logger="lockedge.gallery"):
        assert cache.load() == {}
    assert "other matcher parameters" in caplog.text


def test_the_cache_holds_no_record_bytes_and_logs_none(
    cache: FeatureCache, caplog: pytest.LogCaptureFixture
) -> None:
    st = _state(2)
    with caplog.at_level(logging.DEBUG):
        load_gallery(Gallery(), st, cache)
    raw = cache.path.read_bytes()
    for fingers in st.persons.values():
        assert fingers[1][:32] not in raw and fingers[1][40:72] not in raw
        assert fingers[1][:8].hex() not in caplog.text
