"""Error rates from genuine and impostor scores (FVC conventions).

Genuine: every pair of impressions of the same finger. Impostor: the first
impression of each finger against the first of every other finger. Higher
score = more similar.
"""

from __future__ import annotations

import numpy as np


def fnmr_at_fmr(genuine: np.ndarray, impostor: np.ndarray, fmr: float) -> tuple[float, float]:
    """(FNMR, threshold) at the lowest threshold whose FMR <= fmr."""
    imp = np.sort(np.asarray(impostor, float))
    k = int(np.floor(fmr * len(imp)))  # impostor scores allowed at or above the threshold
    thr = np.nextafter(imp[-1], np.inf) if k == 0 else np.nextafter(imp[len(imp) - k - 1], np.inf)
    return float(np.mean(np.asarray(genuine) < thr)), float(thr)


def eer(genuine: np.ndarray, impostor: np.ndarray) -> float:
    g = np.asarray(genuine, float)
    i = np.asarray(impostor, float)
    ts = np.unique(np.concatenate([g, i]))
    best = 1.0
    for t in ts:
        fnmr = np.mean(g < t)
        fmr = np.mean(i >= t)
        best = min(best, max(fnmr, fmr))
    return float(best)
