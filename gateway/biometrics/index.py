"""Candidate reduction for 1:N identification: an inverted index of
minutia pairs with a Hough vote on rotation (geometric hashing).

Each minutia is paired with its NEIGHBOURS nearest neighbours between
MIN_DIST and MAX_DIST pixels. A pair i -> j is described by features that
no rotation or translation changes: its length and the directions of i
and j measured from the line i -> j. Quantised (DIST_BIN pixels,
ANGLE_BINS sectors) they form a key; the gallery stores, per key, the
template number and the pair's own direction in the image (quantised to
ROT_BINS), in a compressed-row layout over all keys. A probe looks up each
of its pairs (and, for a feature within SOFT of a bin edge, the
neighbouring bin too); every hit implies a rotation between probe and
template (the difference of the two pairs' directions), and the template's
score is its largest number of hits that agree on one rotation, divided by
the square root of its pair count so large templates do not win by size.
The best-scored templates go to the full matcher.

A query reads only the buckets of its own keys, and the full matcher runs
on a bounded candidate list, so the expensive part of identification does
not grow with the gallery; the index part is a few per cent of the
gallery's entries.

Tried first and dropped (figures in docs/matcher.md): LSH of the binary
cylinders (Cappelli et al. 2011) - with 8 x 8 x 6 cylinders at about 5 %
bit density the true mate was among the best 100 of 1,000 only about 40 %
of the time; pair keys without the rotation vote, 29 %.
"""

from __future__ import annotations

import numpy as np

from gateway.biometrics import mcc

NEIGHBOURS = 8
MIN_DIST = 20.0
MAX_DIST = 150.0
DIST_BIN = 10.0
ANGLE_BINS = 12
N_DIST = int(np.ceil((MAX_DIST - MIN_DIST) / DIST_BIN))
KEYS = N_DIST * ANGLE_BINS * ANGLE_BINS
ROT_BINS = 36
SOFT = 0.25  # share of a bin, at each edge, that also looks in the neighbour


def _pairs(xy: np.ndarray, theta: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Continuous bin coordinates (d, a_i, a_j) of a template's pairs, and
    each pair's direction in the image (radians)."""
    n = len(theta)
    if n < 2:
        z = np.zeros(0)
        return z, z, z, z
    xy = xy.astype(np.float64)
    d = np.hypot(xy[:, None, 0] - xy[None, :, 0], xy[:, None, 1] - xy[None, :, 1])
    d[np.arange(n), np.arange(n)] = np.inf
    d[(d < MIN_DIST) | (d >= MAX_DIST)] = np.inf
    k = min(NEIGHBOURS, n - 1)
    nb = np.argpartition(d, k - 1, axis=1)[:, :k]
    i = np.repeat(np.arange(n), k)
    j = nb.ravel()
    dij = d[i, j]
    ok = np.isfinite(dij)
    i, j, dij = i[ok], j[ok], dij[ok]
    phi = np.arctan2(xy[j, 1] - xy[i, 1], xy[j, 0] - xy[i, 0])
    step = 2 * np.pi / ANGLE_BINS
    ai = ((theta[i] - phi) % (2 * np.pi)) / step
    aj = ((theta[j] - phi) % (2 * np.pi)) / step
    return (dij - MIN_DIST) / DIST_BIN, ai, aj, phi


def _key(d: np.ndarray, ai: np.ndarray, aj: np.ndarray) -> np.ndarray:
    return (d * ANGLE_BINS + ai % ANGLE_BINS) * ANGLE_BINS + aj % ANGLE_BINS


def gallery_keys(f: mcc.Features) -> tuple[np.ndarray, np.ndarray]:
    """(keys, pair directions quantised to ROT_BINS) of a template's pairs."""
    d, ai, aj, phi = _pairs(f.xy, f.theta)
    k = _key(np.floor(d).astype(np.int64), np.floor(ai).astype(np.int64), np.floor(aj).astype(np.int64))
    return k, (np.floor((phi % (2 * np.pi)) / (2 * np.pi) * ROT_BINS).astype(np.int64) % ROT_BINS).astype(
        np.uint8
    )


def probe_keys(f: mcc.Features) -> tuple[np.ndarray, np.ndarray]:
    """Each pair's key, plus the neighbouring bin of any feature whose value
    lies within SOFT of a bin edge; with the pair's direction (radians)."""
    d, ai, aj, phi = _pairs(f.xy, f.theta)
    keys = []
    dirs = []
    for dd in (0, 1):
        fd = np.floor(d) + dd * np.where(d % 1 < 0.5, -1, 1)
        okd = (fd >= 0) & (fd < N_DIST) & ((dd == 0) | (np.abs(d % 1 - 0.5) > 0.5 - SOFT))
        for da in (0, 1):
            fa = np.floor(ai) + da * np.where(ai % 1 < 0.5, -1, 1)
            oka = (da == 0) | (np.abs(ai % 1 - 0.5) > 0.5 - SOFT)
            for db in (0, 1):
                fb = np.floor(aj) + db * np.where(aj % 1 < 0.5, -1, 1)
                okb = (db == 0) | (np.abs(aj % 1 - 0.5) > 0.5 - SOFT)
                ok = okd & oka & okb
                keys.append(_key(fd.astype(np.int64), fa.astype(np.int64), fb.astype(np.int64))[ok])
                dirs.append(phi[ok])
    return np.concatenate(keys), np.concatenate(dirs)


class Index:
    """Inverted index from pair keys to template numbers."""

    def __init__(self) -> None:
        self._start = np.zeros(KEYS + 1, np.int64)  # CSR row starts
        self._tids = np.zeros(0, np.int32)
        self._dirs = np.zeros(0, np.uint8)
        self._pairs = np.zeros(0, np.int32)  # per template number: pairs indexed
        self._pending: list[tuple[int, tuple[np.ndarray, np.ndarray]]] = []

    def add(self, tid: int, f: mcc.Features) -> None:
        self._pending.append((tid, gallery_keys(f)))

    def _flush(self) -> None:
        if not self._pending:
            return
        old_keys = np.repeat(np.arange(KEYS), np.diff(self._start))
        new_keys = np.concatenate([k for _t, (k, _d) in self._pending])
        new_dirs = np.concatenate([d for _t, (_k, d) in self._pending])
        new_tids = np.concatenate([np.full(len(k), t, np.int32) for t, (k, _d) in self._pending])
        keys = np.concatenate([old_keys, new_keys])
        tids = np.concatenate([self._tids, new_tids])
        dirs = np.concatenate([self._dirs, new_dirs])
        order = np.argsort(keys, kind="stable")
        self._tids = tids[order]
        self._dirs = dirs[order]
        self._start = np.concatenate([[0], np.cumsum(np.bincount(keys, minlength=KEYS))])
        top = max(t for t, _k in self._pending) + 1
        if top > len(self._pairs):
            self._pairs = np.concatenate([self._pairs, np.zeros(top - len(self._pairs), np.int32)])
        for t, (k, _d) in self._pending:
            self._pairs[t] = len(k)
        self._pending.clear()

    def remove(self, tids: set[int]) -> None:
        self._flush()
        keys = np.repeat(np.arange(KEYS), np.diff(self._start))
        keep = ~np.isin(self._tids, np.array(sorted(tids), dtype=np.int32))
        self._tids = self._tids[keep]
        self._dirs = self._dirs[keep]
        self._start = np.concatenate([[0], np.cumsum(np.bincount(keys[keep], minlength=KEYS))])
        for t in tids:
            if t < len(self._pairs):
                self._pairs[t] = 0

    def nbytes(self) -> int:
        self._flush()
        return int(self._tids.nbytes + self._dirs.nbytes + self._start.nbytes + self._pairs.nbytes)

    def votes(self, f: mcc.Features, n_templates: int) -> np.ndarray:
        """Per template, the largest number of its pairs that match the
        probe's under one common rotation (a Hough vote over ROT_BINS)."""
        self._flush()
        q, qdir = probe_keys(f)
        lo, hi = self._start[q], self._start[q + 1]
        n = hi - lo
        total = int(n.sum())
        if total == 0:
            return np.zeros(n_templates)
        idx = np.repeat(lo - np.concatenate([[0], np.cumsum(n)[:-1]]), n) + np.arange(total)
        pq = np.repeat(np.floor((qdir % (2 * np.pi)) / (2 * np.pi) * ROT_BINS).astype(np.int64), n)
        rot = (self._dirs[idx].astype(np.int64) - pq) % ROT_BINS
        tid = self._tids[idx].astype(np.int64)
        acc = np.bincount(tid * ROT_BINS + rot, minlength=n_templates * ROT_BINS)[: n_templates * ROT_BINS]
        acc = acc.reshape(n_templates, ROT_BINS)
        acc = acc + np.roll(acc, 1, axis=1)  # a rotation on a bin edge splits its votes
        v = acc.max(1).astype(np.float64)
        size = np.zeros(n_templates)
        m = min(n_templates, len(self._pairs))
        size[:m] = self._pairs[:m]
        return v / np.sqrt(np.maximum(size, 1.0))

    def candidates(self, f: mcc.Features, n_templates: int, count: int) -> np.ndarray:
        v = self.votes(f, n_templates)
        count = min(count, n_templates)
        if count <= 0:
            return np.zeros(0, np.int64)
        top = np.argpartition(-v, count - 1)[:count]
        return top[np.argsort(-v[top], kind="stable")]
