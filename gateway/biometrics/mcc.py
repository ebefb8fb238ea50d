"""Minutia Cylinder-Code features and matching, vectorised across a gallery.

Features (Cappelli, Ferrara, Maltoni, "Minutia Cylinder-Code", IEEE TPAMI
2010): around each minutia a cylinder of radius R, Ns x Ns spatial cells
times Nd angular sections, in the minutia's own frame (so it is invariant
to rotation and translation). A cell's value sums, over the neighbouring
minutiae, a Gaussian of the distance to the cell centre times the share of
a Gaussian of the neighbour's relative direction that falls in the cell's
angular section; the binary form keeps cells whose value passes a sigmoid
threshold. Cells outside the fingerprint (the minutiae's convex hull grown
by OMEGA) are invalid, and a cylinder with too few valid cells or
neighbours is dropped.

This implementation uses Ns = 8 and Nd = 6 so that one cylinder is six
64-bit words (one per angular section, one bit per spatial cell) plus one
64-bit validity mask (the gallery stores each word in 7 bytes, see
_IN_CIRCLE below), and the popcounts of the local similarity run over the whole
candidate set at once (np.bitwise_count).

Local similarity of cylinders a, b (binary MCC): over the cells valid in
both, 1 - sqrt(|a xor b|) / (sqrt(|a|) + sqrt(|b|)); zero if fewer than
MIN_COMMON of the cells are valid in both or the minutiae directions
differ by more than DELTA_THETA.

Global score. MCC's local similarity sort (LSS: the mean of the n_P best
local similarities) is computed, and then consolidated geometrically,
which is where most of the accuracy comes from on distorted partial
impressions: each of the SEEDS best local pairs proposes a rigid alignment
(the rotation between the two minutiae directions, the translation between
their positions); the probe's minutiae are moved by it and paired with the
gallery's by mutual nearest neighbour within a tolerance that grows away
from the seed pair (PAIR_DIST, PAIR_SLOPE, PAIR_DIST_MAX below) and
PAIR_ANGLE radians. The best seed's count of pairs m gives
m^2 / (n_probe_in_overlap * n_gallery_in_overlap), each count floored at
MIN_OVERLAP, so a small overlap cannot score as a large one. The final
score is that ratio times the LSS score (both in 0..1).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from functools import cached_property

import numpy as np

R = 70.0
NS = 8
ND = 6
SIGMA_S = 28.0 / 3.0
SIGMA_D = 2.0 * math.pi / 9.0
MU_PSI = 0.01
OMEGA = 50.0
MIN_VALID_CELLS = 0.75  # of the cells inside the cylinder's circle
MIN_NEIGHBOURS = 2
MIN_COMMON = 0.6  # of the cells inside the circle
DELTA_THETA = math.pi / 2
MAX_MINUTIAE = 56
NP_MIN, NP_MAX, NP_MU, NP_TAU = 4, 12, 20.0, 0.4
SEEDS = 30
PAIR_DIST = 10.0
PAIR_ANGLE = math.pi / 6
# Evidence floor: an overlap holding fewer minutiae than this counts as this
# many. A small overlap has little room for chance pairs to miss, so its
# ratio m^2 / (n_p * n_g) runs high for strangers: on the hard tier the
# impostor tail at FMR 1e-4 was made of 7-11 pairs in overlaps of 13-25
# minutiae, while the genuine comparisons that failed had 13-16 true pairs
# in overlaps of 26-44 (spurious and missing minutiae). At 12, that tail
# set the threshold; at 24 (chosen on seed 1 of the hard tier over 12-40,
# held on seeds 2 and 3; docs/matcher.md) FNMR at FMR 1e-4 halves and a
# mate with a small overlap still scores by its pairs.
MIN_OVERLAP = 24
REFINE = 2
GRID = 12.0  # seed screening grid cell, pixels
KEEP = 3  # seed alignments paired exactly and refined
LAMBDA_FULL = 0.7  # a pair with this local similarity or more counts fully
# Skin stretches: two impressions of one finger differ by 8-9 px RMS after
# the best rigid fit on FVC2004-like data (simulators/fingerprints.py, tier
# hard), and more far from where they touched alike. So the pairing
# tolerance grows with the distance from the seed pair: PAIR_DIST at the
# seed, PAIR_SLOPE pixels more per pixel away, at most PAIR_DIST_MAX.
PAIR_SLOPE = 0.05
PAIR_DIST_MAX = 18.0

_CELL = 2 * R / NS
_ij = np.arange(NS) - (NS - 1) / 2.0
# Cell centres in the cylinder's local frame: (NS*NS, 2), row-major.
_LOCAL = np.stack(np.meshgrid(_ij * _CELL, _ij * _CELL, indexing="ij"), -1).reshape(-1, 2)
# Cells inside the circle first: only they can be set or valid, so every
# word is below 2^52 and the gallery stores it in 7 bytes (gallery.py).
# The local similarity is a popcount, blind to the order.
_LOCAL = _LOCAL[np.argsort(np.hypot(_LOCAL[:, 0], _LOCAL[:, 1]) > R, kind="stable")]
_IN_CIRCLE = np.hypot(_LOCAL[:, 0], _LOCAL[:, 1]) <= R
_N_CIRCLE = int(_IN_CIRCLE.sum())
WORD_BITS = _N_CIRCLE  # bits a cylinder word can use (52)
_SECTION = -math.pi + (np.arange(ND) + 0.5) * (2 * math.pi / ND)
_FAR = np.float32(1e12)
_COS_PAIR = np.float32(math.cos(PAIR_ANGLE))
_COS_DELTA = np.float32(math.cos(DELTA_THETA) - 1e-6)
_BITW = (np.uint64(1) << np.arange(64, dtype=np.uint64)).astype(np.uint64)
_CIRCLE = np.uint64((_IN_CIRCLE.astype(np.uint64) * _BITW).sum(dtype=np.uint64))  # a mask valid everywhere


@dataclass(repr=False)
class Features:
    """What the gallery keeps per template: never the record itself."""

    xy: np.ndarray  # (n, 2) float32, math frame (y up)
    theta: np.ndarray  # (n,) float32
    bits: np.ndarray  # (n, ND) uint64
    mask: np.ndarray  # (n,) uint64, 0 for an invalid cylinder
    width: int
    height: int

    @property
    def n(self) -> int:
        return len(self.theta)

    def nbytes(self) -> int:
        return self.xy.nbytes + self.theta.nbytes + self.bits.nbytes + self.mask.nbytes

    def __repr__(self) -> str:
        # Biometric data stays out of reprs, tracebacks and logs.
        return f"Features({self.n} minutiae, {self.width}x{self.height})"


def _angle_diff(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """a - b wrapped to (-pi, pi]."""
    d = (a - b + np.pi) % (2 * np.pi) - np.pi
    return d


def _erf(x: np.ndarray) -> np.ndarray:
    # Abramowitz-Stegun 7.1.26 (|error| < 1.5e-7): keeps scipy out of the gateway.
    s = np.sign(x)
    x = np.abs(x)
    t = 1.0 / (1.0 + 0.3275911 * x)
    y = 1.0 - (
        ((((1.061405429 * t - 1.453152027) * t) + 1.421413741) * t - 0.284496736) * t + 0.254829592
    ) * t * np.exp(-x * x)
    return s * y


def _hull(pts: np.ndarray) -> np.ndarray:
    """Convex hull (Andrew's monotone chain), counter-clockwise."""
    p = sorted(map(tuple, pts.tolist()))
    if len(p) <= 2:
        return np.asarray(p, dtype=float)

    def cross(o: tuple[float, ...], a: tuple[float, ...], b: tuple[float, ...]) -> float:
        return (a[0] - o[0]) * (b[1] - o[1]) - (a[1] - o[1]) * (b[0] - o[0])

    lower: list[tuple[float, ...]] = []
    for q in p:
        while len(lower) >= 2 and cross(lower[-2], lower[-1], q) <= 0:
            lower.pop()
        lower.append(q)
    upper: list[tuple[float, ...]] = []
    for q in reversed(p):
        while len(upper) >= 2 and cross(upper[-2], upper[-1], q) <= 0:
            upper.pop()
        upper.append(q)
    return np.asarray(lower[:-1] + upper[:-1], dtype=float)


def _in_grown_hull(hull: np.ndarray, q: np.ndarray, grow: float) -> np.ndarray:
    """Points q (..., 2) inside the hull or within `grow` of it."""
    if len(hull) < 3:
        return np.ones(q.shape[:-1], dtype=bool)
    a = hull
    b = np.roll(hull, -1, axis=0)
    e = b - a  # (h, 2)
    qa = q[..., None, :] - a  # (..., h, 2)
    cross = e[:, 0] * qa[..., 1] - e[:, 1] * qa[..., 0]
    inside = (cross >= 0).all(-1)
    t = np.clip((qa * e).sum(-1) / (e * e).sum(-1), 0.0, 1.0)
    d = np.hypot(qa[..., 0] - t * e[:, 0], qa[..., 1] - t * e[:, 1]).min(-1)
    return inside | (d <= grow)


def extract(minutiae: np.ndarray, width: int, height: int) -> Features:
    """Features of one finger view: minutiae (n, >=3) in ISO conventions
    (x right, y down, angle counter-clockwise as seen); the best-quality
    MAX_MINUTIAE are kept when a column 4 (quality) is present."""
    m = np.asarray(minutiae, dtype=float).reshape(-1, minutiae.shape[-1] if np.ndim(minutiae) == 2 else 5)
    if len(m) > MAX_MINUTIAE and m.shape[1] >= 5:
        m = m[np.argsort(-m[:, 4], kind="stable")[:MAX_MINUTIAE]]
    elif len(m) > MAX_MINUTIAE:
        m = m[:MAX_MINUTIAE]
    n = len(m)
    xy = np.column_stack([m[:, 0], -m[:, 1]]) if n else np.zeros((0, 2))
    th = m[:, 2] % (2 * np.pi) if n else np.zeros(0)
    bits = np.zeros((n, ND), dtype=np.uint64)
    mask = np.zeros(n, dtype=np.uint64)
    if n >= 2:
        c, s = np.cos(th), np.sin(th)
        # Cell centres in the image frame for every cylinder: (n, cells, 2).
        cells = np.empty((n, NS * NS, 2))
        cells[..., 0] = xy[:, None, 0] + c[:, None] * _LOCAL[:, 0] - s[:, None] * _LOCAL[:, 1]
        cells[..., 1] = xy[:, None, 1] + s[:, None] * _LOCAL[:, 0] + c[:, None] * _LOCAL[:, 1]
        valid = _IN_CIRCLE[None, :] & _in_grown_hull(_hull(xy), cells, OMEGA)
        d2 = ((cells[:, :, None, :] - xy[None, None, :, :]) ** 2).sum(-1)  # (n, cells, n)
        near = d2 <= (3 * SIGMA_S) ** 2
        near[np.arange(n), :, np.arange(n)] = False  # a minutia is not its own neighbour
        cs = np.where(near, np.exp(-d2 / (2 * SIGMA_S**2)) / (SIGMA_S * math.sqrt(2 * math.pi)), 0.0)
        # Directional part: the neighbour's direction relative to the centre
        # minutia's, integrated over each angular section.
        rel = _angle_diff(th[None, :], th[:, None])  # (n centre, n neighbour)
        dd = _angle_diff(_SECTION[None, None, :], rel[:, :, None])  # (n, n, ND)
        half = math.pi / ND
        cd = 0.5 * (
            _erf((dd + half) / (SIGMA_D * math.sqrt(2))) - _erf((dd - half) / (SIGMA_D * math.sqrt(2)))
        )
        val = np.einsum("icj,ijk->ick", cs, cd)  # (n, cells, ND)
        on = (val > MU_PSI) & valid[..., None]
        # Pack: word k holds section k, bit c holds cell c.
        bits = (on.transpose(0, 2, 1).astype(np.uint64) * _BITW).sum(-1, dtype=np.uint64)
        vmask = (valid.astype(np.uint64) * _BITW).sum(-1, dtype=np.uint64)
        neighbours = (((xy[:, None, :] - xy[None, :, :]) ** 2).sum(-1) <= (R + 3 * SIGMA_S) ** 2).sum(-1) - 1
        ok = (valid.sum(-1) >= MIN_VALID_CELLS * _N_CIRCLE) & (neighbours >= MIN_NEIGHBOURS)
        mask = np.where(ok, vmask, np.uint64(0)).astype(np.uint64)
        bits[~ok] = 0  # a dropped cylinder keeps no bits (its mask is 0 too)
    return Features(xy.astype(np.float32), th.astype(np.float32), bits, mask, int(width), int(height))


def n_pairs(na: np.ndarray, nb: np.ndarray) -> np.ndarray:
    """MCC's n_P: how many of the best local similarities the LSS averages."""
    mn = np.minimum(na, nb)
    return NP_MIN + np.rint((NP_MAX - NP_MIN) / (1 + np.exp(-NP_TAU * (mn - NP_MU)))).astype(int)


@dataclass(repr=False)
class Batch:
    """Features of many templates padded to MAX_MINUTIAE, for array matching."""

    xy: np.ndarray  # (T, M, 2) float32
    theta: np.ndarray  # (T, M) float32
    bits: np.ndarray  # (T, M, ND) uint64
    mask: np.ndarray  # (T, M) uint64
    count: np.ndarray  # (T,) int
    size: np.ndarray  # (T, 2) width, height

    # Derived once per batch (a scoring call reads them up to five times)
    # and not stored in the gallery, which keeps only theta. Batches that get
    # scored are the ones take() and of() return, never changed afterwards;
    # the gallery's own growing batch is only ever read through take().
    @cached_property
    def cos(self) -> np.ndarray:
        return np.cos(self.theta)

    @cached_property
    def sin(self) -> np.ndarray:
        return np.sin(self.theta)

    @cached_property
    def present(self) -> np.ndarray:
        return np.arange(MAX_MINUTIAE)[None, :] < self.count[:, None]

    @cached_property
    def pair_terms(self) -> np.ndarray:
        """(T, 4, M): |m - g|^2 = [mx, my, 1, |m|^2] . [-2gx, -2gy, |g|^2, 1],
        about each image's centre; padding slots are _FAR away."""
        gx = self.xy[..., 0] - self.size[:, 0:1] / 2
        gy = self.xy[..., 1] + self.size[:, 1:2] / 2
        sq = np.where(self.present, gx * gx + gy * gy, _FAR)
        return np.stack([-2 * gx, -2 * gy, sq, np.ones_like(gx)], 1).astype(np.float32)

    @cached_property
    def directions(self) -> np.ndarray:
        """(T, 2, M): [cos, sin] of the minutiae directions."""
        return np.stack([self.cos, self.sin], 1)

    @staticmethod
    def of(feats: list[Features]) -> Batch:
        t, m = len(feats), MAX_MINUTIAE
        b = Batch(
            np.zeros((t, m, 2), np.float32),
            np.zeros((t, m), np.float32),
            np.zeros((t, m, ND), np.uint64),
            np.zeros((t, m), np.uint64),
            np.zeros(t, int),
            np.zeros((t, 2), np.float32),
        )
        for i, f in enumerate(feats):
            b.xy[i, : f.n] = f.xy
            b.theta[i, : f.n] = f.theta
            b.bits[i, : f.n] = f.bits
            b.mask[i, : f.n] = f.mask
            b.count[i] = f.n
            b.size[i] = (f.width, f.height)
        return b

    def __repr__(self) -> str:
        return f"Batch({len(self.count)} templates)"

    def take(self, idx: np.ndarray) -> Batch:
        return Batch(
            self.xy[idx], self.theta[idx], self.bits[idx], self.mask[idx], self.count[idx], self.size[idx]
        )


def _unpack(words: np.ndarray) -> np.ndarray:
    """(..., ) uint64 -> (..., 64) uint8 bits, cell c at index c."""
    return np.unpackbits(np.ascontiguousarray(words)[..., None].view(np.uint8), axis=-1, bitorder="little")


def local_similarity(p: Features, g: Batch) -> np.ndarray:
    """(T, n_probe, M) binary-MCC local similarities, 0 where not comparable.

    Each cylinder's bits lie inside its own valid cells, so over the cells
    valid in both: |a| = popcount(a & mask_b), |b| = popcount(b & mask_a),
    |a xor b| = |a| + |b| - 2 popcount(a & b). This is most of a
    comparison's cost, so each term takes its cheapest route. About two
    thirds of the cylinders are valid on their whole circle, and against
    those |a| is all of a, |b| all of b: |a| needs the product of a's
    per-cell section counts with the mask only for the gallery's other
    cylinders, |b| and the common cells popcounts only for the probe's.
    popcount(a & b) runs over contiguous per-section words, and the
    rest over the (T, n, M) block in place."""
    t, m = len(g.count), g.bits.shape[1]
    shape = (t, p.n, m)
    na = np.empty(shape, np.float32)
    na[:] = np.bitwise_count(p.bits).sum(1, dtype=np.uint16)[None, :, None]
    na *= (g.mask != 0)[:, None, :]
    tp, jp = np.nonzero((g.mask != _CIRCLE) & (g.mask != 0))
    if len(tp):
        cp = _unpack(p.bits).sum(1, dtype=np.uint8).astype(np.float32)  # (n, cells)
        na[tp, :, jp] = _unpack(g.mask[tp, jp]).astype(np.float32) @ cp.T
    nb = np.empty(shape, np.float32)
    nb[:] = np.bitwise_count(g.bits).sum(-1, dtype=np.uint16)[:, None, :]
    nc = np.empty(shape, np.uint8)
    nc[:] = np.bitwise_count(g.mask)[:, None, :]
    part = np.flatnonzero(p.mask != _CIRCLE)
    if len(part):
        mp = p.mask[part][None, :, None]
        acc = np.zeros((t, len(part), m), np.uint16)
        for k in range(ND):
            np.add(acc, np.bitwise_count(g.bits[:, None, :, k] & mp), out=acc)
        nb[:, part, :] = acc
        nc[:, part, :] = np.bitwise_count(mp & g.mask[:, None, :])
    nab = np.zeros(shape, np.uint16)
    gs = np.ascontiguousarray(g.bits.transpose(2, 0, 1))
    ps = np.ascontiguousarray(p.bits.T)
    w = np.empty(shape, np.uint64)
    c = np.empty(shape, np.uint8)
    for k in range(ND):
        np.bitwise_and(ps[k][None, :, None], gs[k][:, None, :], out=w)
        np.bitwise_count(w, out=c)
        nab += c
    # Counts are small integers, exact in float32: |a xor b| >= 0 as is.
    x = na + nb
    x -= nab
    x -= nab
    np.sqrt(x, out=x)
    denom = np.sqrt(na, out=na)
    denom += np.sqrt(nb, out=nb)
    ok = (nc >= MIN_COMMON * _N_CIRCLE) & (denom > 0)
    ok &= np.matmul(np.stack([np.cos(p.theta), np.sin(p.theta)], 1), g.directions) >= _COS_DELTA
    np.maximum(denom, np.float32(1e-9), out=denom)
    x /= denom
    lam = np.subtract(np.float32(1.0), x, out=x)
    lam *= ok
    return lam


def _best(lam: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    """Per template, the flat indices and values of the k largest local
    similarities, best first (ties: lower index first).

    A partition of every (n x M) matrix costs more than the similarities'
    arithmetic; but the k largest entries are all at least the k-th largest
    of the row maxima (those are k entries of the matrix), and few entries
    reach it, so only those are sorted."""
    t, n, m = lam.shape
    flat = lam.reshape(t, n * m)
    if n < k:
        order = np.lexsort((np.broadcast_to(np.arange(n * m), flat.shape), -flat), axis=1)[:, :k]
        return order, np.take_along_axis(flat, order, 1)
    floor = -np.partition(-lam.max(2), k - 1, axis=1)[:, k - 1]
    tt, jj = np.nonzero(flat >= floor[:, None])
    v = flat[tt, jj]
    o = np.lexsort((jj, -v, tt))
    tt, jj, v = tt[o], jj[o], v[o]
    start = np.searchsorted(tt, np.arange(t))
    rank = np.arange(len(tt)) - start[tt]
    keep = rank < k
    top_idx = np.zeros((t, k), np.int64)
    top_val = np.zeros((t, k), lam.dtype)
    top_idx[tt[keep], rank[keep]] = jj[keep]
    top_val[tt[keep], rank[keep]] = v[keep]
    return top_idx, top_val


def _lss(lam: np.ndarray, p: Features, g: Batch) -> tuple[np.ndarray, np.ndarray]:
    """(LSS score per template, flat indices of the best pairs, best first)."""
    t = lam.shape[0]
    flat = lam.reshape(t, -1)
    npair = n_pairs(np.full(t, int((p.mask != 0).sum())), (g.mask != 0).sum(1))
    kmax = int(min(flat.shape[1], max(NP_MAX, SEEDS)))
    top_idx, top_val = _best(lam, kmax)
    ranks = np.arange(kmax)[None, :]
    lss = np.where(ranks < npair[:, None], top_val, 0.0).sum(1) / npair
    return lss, top_idx


def _move(p: Features, al: Align) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Probe positions and direction cosines under alignments (T, S)."""
    pxy = p.xy
    c, s = al.c[..., None], al.s[..., None]
    mx = c * pxy[:, 0] - s * pxy[:, 1] + al.tx[..., None]  # (T, S, n)
    my = s * pxy[:, 0] + c * pxy[:, 1] + al.ty[..., None]
    pc, ps = np.cos(p.theta), np.sin(p.theta)
    return mx, my, c * pc - s * ps, s * pc + c * ps


@dataclass
class Align:
    """Rigid alignments (T, S): rotation (c, s), translation (tx, ty), and
    the anchor (ax, ay), in the gallery's frame, that the pairing tolerance
    grows from (the seed pair's gallery minutia)."""

    c: np.ndarray
    s: np.ndarray
    tx: np.ndarray
    ty: np.ndarray
    ax: np.ndarray
    ay: np.ndarray

    def take(self, keep: np.ndarray) -> Align:
        return Align(*(np.take_along_axis(v, keep, 1) for v in vars(self).values()))

    def where(self, ok: np.ndarray, other: Align) -> Align:
        return Align(
            *(np.where(ok, a, b) for a, b in zip(vars(other).values(), vars(self).values(), strict=True))
        )


def _near(g: Batch, mx: np.ndarray, my: np.ndarray, al: Align) -> tuple[np.ndarray, np.ndarray]:
    """Flat indices into (T, S, n, M) of the (moved probe, gallery) minutia
    pairs within the pairing tolerance (PAIR_DIST at the alignment's
    anchor, growing by PAIR_SLOPE to PAIR_DIST_MAX), ascending, with their
    squared distances.

    One small matrix product per template (|m - g|^2 expanded) instead of
    elementwise passes over the whole block, of which only a few hundred
    entries are near: coordinates are taken about each gallery image's
    centre, so float32 keeps the distances to a few thousandths of a pixel;
    padding slots are _FAR away."""
    t, k, n = mx.shape
    a = np.empty((t, k, n, 4), np.float32)
    a[..., 0] = mx - (g.size[:, 0] / 2)[:, None, None]
    a[..., 1] = my + (g.size[:, 1] / 2)[:, None, None]
    a[..., 2] = 1.0
    a[..., 3] = a[..., 0] * a[..., 0] + a[..., 1] * a[..., 1]
    d2 = np.matmul(a.reshape(t, k * n, 4), g.pair_terms).reshape(-1)
    idx = np.flatnonzero(d2 <= max(PAIR_DIST, PAIR_DIST_MAX) ** 2)
    if PAIR_SLOPE:
        m = g.xy.shape[1]
        row = idx // m
        r = np.hypot(
            mx.reshape(-1)[row] - al.ax.reshape(-1)[row // n],
            my.reshape(-1)[row] - al.ay.reshape(-1)[row // n],
        )
        tol = np.minimum(PAIR_DIST + PAIR_SLOPE * r, max(PAIR_DIST, PAIR_DIST_MAX))
        idx = idx[d2[idx] <= tol * tol]
    return idx, d2[idx]


def _nearest(group: np.ndarray, d2: np.ndarray) -> np.ndarray:
    """Which entries are the nearest of their group (ties: the earlier
    entry; the sort is stable)."""
    order = np.lexsort((d2, group))
    first = np.ones(len(group), bool)
    first[1:] = group[order][1:] != group[order][:-1]
    out = np.zeros(len(group), bool)
    out[order[first]] = True
    return out


def _pairs(p: Features, g: Batch, al: Align) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Move the probe by each alignment (T, S) and pair minutiae by mutual
    nearest neighbour within the tolerances (distance, and directions
    through cos(a - b) >= cos(PAIR_ANGLE)); ties go to the lower index.
    Returns (hit (T,S,n), partner (T,S,n), moved x, moved y); a partner
    means nothing where there is no hit."""
    mx, my, mc, ms = _move(p, al)
    t, k, n = mx.shape
    m = g.xy.shape[1]
    idx, d2 = _near(g, mx, my, al)
    row, j = idx // m, idx % m  # row: (template, alignment, probe minutia)
    tj = row // (k * n) * m + j
    cosd = mc.reshape(-1)[row] * g.cos.reshape(-1)[tj] + ms.reshape(-1)[row] * g.sin.reshape(-1)[tj]
    keep = cosd >= _COS_PAIR
    row, j, d2 = row[keep], j[keep], d2[keep]
    # Nearest per probe minutia, and per gallery minutia of the same
    # alignment; a mutual pair is both.
    mutual = _nearest(row, d2) & _nearest(row // n * m + j, d2)
    hit = np.zeros(t * k * n, bool)
    partner = np.zeros(t * k * n, np.intp)
    hit[row[mutual]] = True
    partner[row[mutual]] = j[mutual]
    return hit.reshape(t, k, n), partner.reshape(t, k, n), mx, my


def _fit(p: Features, g: Batch, hit: np.ndarray, partner: np.ndarray, anchor: Align) -> Align:
    """Refit each alignment (T, S) on the pairs it found: the least-squares
    rotation and translation taking the probe's paired minutiae onto their
    partners (2-D Kabsch), from per-alignment sums over the pairs only."""
    t, k, _n = hit.shape
    ti, ki, ii = np.nonzero(hit)
    grp = ti * k + ki
    a = p.xy[ii].astype(np.float64)
    b = g.xy[ti, partner[ti, ki, ii]].astype(np.float64)

    def total(w: np.ndarray | None = None) -> np.ndarray:
        return np.bincount(grp, w, minlength=t * k).reshape(t, k)

    sw = np.maximum(total(), 1)
    ax, ay, bx, by = (total(v) / sw for v in (a[:, 0], a[:, 1], b[:, 0], b[:, 1]))
    # Cross-covariances from raw sums (float64: the cancellation is harmless).
    h00 = total(a[:, 0] * b[:, 0]) / sw - ax * bx
    h11 = total(a[:, 1] * b[:, 1]) / sw - ay * by
    h01 = total(a[:, 0] * b[:, 1]) / sw - ax * by
    h10 = total(a[:, 1] * b[:, 0]) / sw - ay * bx
    phi = np.arctan2(h01 - h10, h00 + h11)
    c, s = np.cos(phi), np.sin(phi)
    tx = bx - (c * ax - s * ay)
    ty = by - (s * ax + c * ay)
    f = np.float32
    return Align(c.astype(f), s.astype(f), tx.astype(f), ty.astype(f), anchor.ax, anchor.ay)


def _grid(g: Batch) -> np.ndarray:
    """Per template, a (rows, cols) uint8 grid of GRID-pixel cells: bit k of
    a cell is set when a gallery minutia of direction sextant k-1, k or k+1
    lies in that cell or a neighbouring one. Cells start at (-2, -2) and the
    grid ends two cells past the image, so its outer ring stays empty and a
    position off the grid can be clipped onto it."""
    t = len(g.count)
    gx = np.floor(g.xy[..., 0] / GRID).astype(np.intp) + 2
    gy = np.floor(-g.xy[..., 1] / GRID).astype(np.intp) + 2
    gw = int(np.ceil(g.size[:, 0].max() / GRID)) + 5
    gh = int(np.ceil(g.size[:, 1].max() / GRID)) + 5
    k = np.floor(g.theta / (np.pi / 3)).astype(np.intp) % 6
    bits = np.where(g.present, np.left_shift(1, k), 0).astype(np.uint8)
    grid = np.zeros((t, gh, gw), np.uint8)
    ti = np.broadcast_to(np.arange(t)[:, None], gx.shape)
    # Validated records keep minutiae inside the image; the clip only keeps
    # a stray one from writing into another template's grid.
    np.bitwise_or.at(grid, (ti, np.clip(gy, 1, gh - 2), np.clip(gx, 1, gw - 2)), bits)
    grid |= ((grid << 1) | (grid << 5) | (grid >> 1) | (grid >> 5)) & 63  # adjacent sextants
    wide = grid.copy()  # then the 3 x 3 neighbourhood, one axis at a time
    wide[:, :, 1:] |= grid[:, :, :-1]
    wide[:, :, :-1] |= grid[:, :, 1:]
    grid[:] = wide
    grid[:, 1:] |= wide[:, :-1]
    grid[:, :-1] |= wide[:, 1:]
    return grid


def _consolidate(p: Features, g: Batch, seeds: np.ndarray, lam: np.ndarray) -> np.ndarray:
    """Geometric score 0..1 per template from seed pairs (T, S) of flat
    (probe, gallery) indices: the best alignment's paired-minutiae ratio."""
    t = seeds.shape[0]
    ar = np.arange(t)[:, None]
    si = seeds // MAX_MINUTIAE
    sj = seeds % MAX_MINUTIAE
    rot = g.theta[ar, sj] - p.theta[si]  # (T, S)
    c_seed, s_seed = np.cos(rot), np.sin(rot)
    gs = g.xy[ar, sj]
    qs = p.xy[si]
    tx_seed = gs[..., 0] - (c_seed * qs[..., 0] - s_seed * qs[..., 1])
    ty_seed = gs[..., 1] - (s_seed * qs[..., 0] + c_seed * qs[..., 1])
    c, s, tx, ty = c_seed, s_seed, tx_seed, ty_seed
    # Screen every seed's alignment on a coarse occupancy grid of the
    # gallery (cells of GRID pixels, dilated to their neighbours, one bit
    # per direction sextant, dilated to the adjacent sextants): how many
    # moved probe minutiae land near a gallery minutia of similar
    # direction. O(n) per seed instead of O(n * M); the KEEP best are then
    # paired exactly and refined.
    grid = _grid(g)
    gh, gw = grid.shape[1], grid.shape[2]
    px, py = p.xy[:, 0] / GRID, p.xy[:, 1] / GRID
    cx = np.floor(c[..., None] * px - s[..., None] * py + (tx / GRID)[..., None]).astype(np.intp) + 2
    cy = np.floor(-(s[..., None] * px + c[..., None] * py + (ty / GRID)[..., None])).astype(np.intp) + 2
    np.clip(cx, 0, gw - 1, out=cx)
    np.clip(cy, 0, gh - 1, out=cy)
    cell = grid.reshape(-1)[(np.arange(t)[:, None, None] * gh + cy) * gw + cx]
    sext = np.floor((p.theta + rot[..., None]) / (np.pi / 3)).astype(np.intp) % 6
    reach = (cell & np.left_shift(1, sext).astype(np.uint8)).astype(bool).sum(-1)  # (T, S)
    keep = np.argsort(-reach, axis=1, kind="stable")[:, :KEEP]
    al = Align(c_seed, s_seed, tx_seed, ty_seed, gs[..., 0], gs[..., 1]).take(keep)
    hit, partner, mx, my = _pairs(p, g, al)
    for _ in range(REFINE):
        # A seed's direction error of a few degrees moves far minutiae by
        # tens of pixels: refit on the pairs found, then pair again.
        ok = hit.sum(-1) >= 3
        al = al.where(ok, _fit(p, g, hit, partner, al))
        hit, partner, mx, my = _pairs(p, g, al)
    c, s, tx, ty = al.c, al.s, al.tx, al.ty
    # Pairs count by their local similarity: chance pairings of an impostor
    # are geometrically plausible but their neighbourhoods disagree.
    lp = lam[np.arange(t)[:, None, None], np.arange(p.n)[None, None, :], partner]  # (T, S, n)
    m = np.where(hit, np.minimum(lp / LAMBDA_FULL, 1.0), 0.0).sum(-1)
    # Overlap: probe minutiae that land inside the gallery image, gallery
    # minutiae that land inside the probe image moved the other way.
    w, h = g.size[:, 0][:, None, None], g.size[:, 1][:, None, None]
    n_p = ((mx >= 0) & (mx < w) & (my <= 0) & (my > -h)).sum(-1)
    bx = g.xy[:, None, :, 0] - tx[..., None]
    by = g.xy[:, None, :, 1] - ty[..., None]
    ix = c[..., None] * bx + s[..., None] * by
    iy = -s[..., None] * bx + c[..., None] * by
    n_g = ((ix >= 0) & (ix < p.width) & (iy <= 0) & (iy > -p.height) & g.present[:, None, :]).sum(-1)
    geo = (m * m) / (np.maximum(n_p, MIN_OVERLAP) * np.maximum(n_g, MIN_OVERLAP))
    return np.minimum(geo.max(1), 1.0)


def scores(p: Features, g: Batch) -> np.ndarray:
    """Similarity of one probe against every template of a batch, 0..1."""
    t = len(g.count)
    if p.n == 0 or t == 0:
        return np.zeros(t)
    lam = local_similarity(p, g)
    lss, top = _lss(lam, p, g)
    return np.asarray(_consolidate(p, g, top[:, :SEEDS], lam) * lss)


def score(a: Features, b: Features) -> float:
    """One 1:1 comparison; symmetric within a small tolerance (the probe's
    and the gallery's roles differ only in which side is moved)."""
    return float(scores(a, Batch.of([b]))[0])
