"""Every matcher the bench compares reads the records the same way.

ISO/IEC 19794-2: x right, y down, angles counter-clockwise as seen on the
image. A record turned by 30 degrees about the image centre (positions and
angles turned together, in that convention) is the same finger and must
score as a strong genuine match; its mirror image (x -> width - x, angle ->
pi - angle) is a different finger and must not. A peer called with the
wrong axis convention fails the first check, which is how the bench once
called afis's MCC (it was given the image height, which flips y a second
time, and showed 31 % EER on data where it gets a few per cent).
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import pytest

from gateway.biometrics import gallery, iso19794, mcc
from simulators import fingerprints as fpg
from simulators.peer_matchers import afis_bozorth3, afis_mcc, afis_minutiae

W, H = fpg.SENSOR_W, fpg.SENSOR_H


def _turn(m: np.ndarray, phi: float) -> np.ndarray:
    out = m.copy()
    c, s = np.cos(phi), np.sin(phi)
    x, y = m[:, 0] - W / 2, m[:, 1] - H / 2
    out[:, 0] = W / 2 + c * x + s * y  # counter-clockwise as seen, y down
    out[:, 1] = H / 2 - s * x + c * y
    out[:, 2] = (m[:, 2] + phi) % (2 * np.pi)
    return out


def _mirror(m: np.ndarray) -> np.ndarray:
    out = m.copy()
    out[:, 0] = W - m[:, 0]
    out[:, 2] = (np.pi - m[:, 2]) % (2 * np.pi)
    return out


def _finger(f: int) -> np.ndarray:
    m = fpg.impression(fpg.master(f, 11), 0, 11).minutiae
    return m[np.hypot(m[:, 0] - W / 2, m[:, 1] - H / 2) < 130]  # stays in the window when turned


def _check(score: Callable[[np.ndarray, np.ndarray], float]) -> None:
    for f in range(3):
        m = _finger(f)
        same = score(m, m)
        turned = score(m, _turn(m, np.radians(30)))
        back = score(m, _turn(m, np.radians(-30)))
        mirrored = score(m, _mirror(m))
        stranger = score(m, _finger(f + 10))
        assert turned >= 0.5 * same and back >= 0.5 * same, (same, turned, back)
        assert mirrored <= 0.1 * same and stranger <= 0.1 * same, (same, mirrored, stranger)


def test_our_matcher_reads_iso_records_the_iso_way() -> None:
    def ours(a: np.ndarray, b: np.ndarray) -> float:
        fa = gallery.features_of(iso19794.single(a, W, H))
        return mcc.score(fa, gallery.features_of(iso19794.single(b, W, H)))

    _check(ours)


def test_afis_mcc_is_called_as_the_bench_calls_it() -> None:
    pytest.importorskip("afis.algorithms.mcc")

    build, match = afis_mcc()
    _check(lambda a, b: match(build(afis_minutiae(a)), build(afis_minutiae(b))))


def test_afis_mcc_given_the_height_mirrors_and_fails_the_check() -> None:
    # The sanity check itself can fail: the old call does.
    amcc = pytest.importorskip("afis.algorithms.mcc")
    p = amcc.MCCParams()

    def old(a: np.ndarray, b: np.ndarray) -> float:
        ca = amcc.build_cylinders(afis_minutiae(a), p, height=H)
        cb = amcc.build_cylinders(afis_minutiae(b), p, height=H)
        return float(amcc.match_cylinder_sets(ca, cb, p).score)

    with pytest.raises(AssertionError):
        _check(old)


def test_afis_bozorth3_is_called_as_the_bench_calls_it() -> None:
    pytest.importorskip("afis.algorithms.bozorth3")

    _check(lambda a, b: float(afis_bozorth3(afis_minutiae(a), afis_minutiae(b))))
