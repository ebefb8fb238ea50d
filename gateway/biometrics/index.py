"""Candidate reduction for 1:N identification: an inverted index of
minutia pairs with a Hough vote on the rigid motion (geometric hashing).

Each minutia is paired with its NEIGHBOURS nearest neighbours between
MIN_DIST and MAX_DIST pixels. A pair i -> j is described by features that
no rotation or translation changes: its length and the directions of i
and j measured from the line i -> j. Quantised (DIST_BIN pixels,
ANGLE_BINS sectors) they form a key; per key the index stores, for each
gallery pair, the template number, the pair's direction in the image (a
byte) and its first minutia (a byte), in a compressed-row layout whose
rows are (key, DIR_SECTORS sector of the direction): a lookup reads only
the sectors a hit within MAX_ROTATION can lie in, about half the bucket.

A probe looks up each of its pairs (and, for a feature within SOFT of a
bin edge, the neighbouring bin too). Every hit implies a rotation (the
difference of the two pairs' directions) and, with the first minutiae's
positions, a translation; hits implying a rotation beyond MAX_ROTATION are
dropped (the matcher refuses those too, mcc.DELTA_THETA). The rest are
counted per (template, ROT_BINS sector, SHIFT_BIN-pixel translation cell),
in two grids, the second offset by half a cell in all three dimensions, so
that a mate's hits straddling a cell edge of one grid (a zero rotation sits
on one, and fingers are often placed as they were at enrolment) fall in one
cell of the other: first in a hash table, whose collisions can only add, so
a template's largest hashed count bounds its true best cell from above; the
PRESELECT best by that bound are then counted exactly. A template's score
is its best cell's count over the square root of its pair count, so large
templates do not win by size. The best-scored templates go to the full
matcher (gallery.py).

A query reads only its own keys' buckets, and the full matcher runs on a
bounded candidate list; the vote still grows with the gallery (the buckets
do): about 10 ms per 1,000 enrolled templates here (bench/README.md),
nearly all of it random reads of the hits' templates and hash slots. So
the hits are taken in passes of HITS_PER_PASS (temporaries the size of a
whole probe's millions of hits came as fresh pages from the allocator,
whose faults doubled the slowest tenth of votes), and the hashed bound
counts in uint16 (Index._bounds). With
one grid, a mate with a small overlap could fall out of the hashed
preselection in a large gallery (2 of 600 diagnostic probes at 50,000);
with two, none of those 600 did and the bench's 1,000 probes at 50,000
all had the mate among the candidates, for about 30 % more vote time.

A vote's time follows its hits (correlation 0.97 over 200 probes at
30,000 templates, about 85 ms a million), and a probe's hits grow with its
minutiae: one of 56 read 1.5 times the hits of one of 41, the median. So a
probe's work is bounded: past HITS_PER_TEMPLATE hits per enrolled
template (and HITS_ANYWAY: in a small gallery most hits are the mate's,
and cheap), its lookups are read likeliest first (by the odds probe_keys
gives: its own bins before the SOFT neighbours) and the rest left out. A
bound per template, not per probe, leaves the same share of lookups out at
every gallery size, so what it costs in accuracy does not grow with the
gallery; only time does. Chosen on data seed 5 (10,000 fingers from three
presses, 30,000 templates, 1,000 mates, the median probe reading about
117 hits a template): no bound, 150, 130, 110, 90 kept the mate among the
candidates for 98.6, 98.6, 98.3, 98.3, 97.7 % and the vote's p95 at 542,
514, 315, 289, 280 ms (two runs on the two cores).

Each hit is kept as one 32-bit hash of its (template, cell), whose top
bits are its slot in the bound's table and from which the exact count
recovers the cell: no hashing twice, no cell kept beside it.

Tried and dropped (development runs on the benchmark's galleries, true
mate among the candidates): LSH of the binary cylinders (Cappelli et al.
2011), about 40 % among the best 100 of 1,000; pair keys alone, 29 %; a
rotation-only vote before the translation vote, 99.3 % at 1,000 but
95-97 % at 10,000 (the preselection dropped mates whose overlap is small:
the keys carry little information, since ridge flow makes the directions
of neighbouring minutiae alike, and only the translation separates a mate
from chance); coarse (30 degree, 80-100 pixel) cells before the fine
ones, worse still; dropping the most frequent keys, fewer hits but the
mates lost as fast as the noise; fewer gallery pairs (4 neighbours), 96 %
at 10,000; sums over 2x2x2 neighbouring cells instead of the second grid,
no mate more of the 600 at 50,000, for four times the exact count's work.
"""

from __future__ import annotations

import itertools

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
DIR_SECTORS = 32  # a key's bucket sorted into sectors of its pairs' image direction
SHIFT_BIN = 40.0  # pixels per translation cell of the vote
SHIFT_CELLS = 32  # cells per axis (+/- 640 px)
PRESELECT = 200  # templates whose hashed bound passes them to the exact count
PRESELECT_SHARE = 0.02
HITS_PER_TEMPLATE = 130  # a probe's hits at most, per enrolled template (module docstring)
HITS_ANYWAY = 1 << 16  # read in any gallery: a small one's are mostly the mate's
HITS_PER_PASS = 1 << 18  # a probe's hits handled at once (Index.votes says why)
NARROW_HITS = 1 << 14  # hits of the heaviest template below which bounds count in uint16
SOFT = 0.15  # share of a bin, at each edge, that also looks in the neighbour
MAX_ROTATION = 64  # 256ths of a turn: 90 degrees, as mcc.DELTA_THETA
_EXP = np.exp(1j * np.arange(256) * (2 * np.pi / 256)).astype(np.complex64)
_NEAR = np.minimum(np.arange(256), 256 - np.arange(256)) <= MAX_ROTATION
_ROT_BIN = [(((np.arange(256) * ROT_BINS + 128 * o) >> 8) % ROT_BINS).astype(np.uint32) for o in (0, 1)]
_GRID = ROT_BINS * SHIFT_CELLS * SHIFT_CELLS
_SECTOR = 256 // DIR_SECTORS  # 256ths of a turn per direction sector
ROWS = KEYS * DIR_SECTORS


def _cells(rho: np.ndarray, t: np.ndarray, half: int) -> np.ndarray:
    """Vote cells (rotation sector, translation cell) of hits with rotations
    `rho` (256ths of a turn) and translations `t` (complex), in the grid
    offset by `half` half-cells; the second grid's cells numbered after
    the first's."""
    off = np.float32(SHIFT_BIN * SHIFT_CELLS / 2 + half * SHIFT_BIN / 2)
    xb = np.clip((t.real + off) * np.float32(1 / SHIFT_BIN), 0, SHIFT_CELLS - 1).astype(np.uint32)
    yb = np.clip((t.imag + off) * np.float32(1 / SHIFT_BIN), 0, SHIFT_CELLS - 1).astype(np.uint32)
    return (_ROT_BIN[half].take(rho) * SHIFT_CELLS + xb) * SHIFT_CELLS + yb + np.uint32(half * _GRID)


_MUL = (np.uint32(0x9E3779B1), np.uint32(0x85EBCA6B))
_UNMUL = np.uint32(0xA5CB9243)  # 0x85EBCA6B's inverse modulo 2^32


def _hash(tid: np.ndarray, cells: np.ndarray) -> np.ndarray:
    """A (template, vote cell) mixed into 32 bits (multiplicative hashing):
    its top bits pick the bound's hash slot (Index._bounds). Each step is
    invertible, so the cell comes back from the hash (_cell), and a hit is
    kept as these 4 bytes, not as its cell and again as its slot."""
    return (tid.astype(np.uint32) * _MUL[0] + cells) * _MUL[1]


def _cell(tid: np.ndarray, h: np.ndarray) -> np.ndarray:
    """The vote cell a _hash came from."""
    return h * _UNMUL - tid.astype(np.uint32) * _MUL[0]


def _pairs(xy: np.ndarray, theta: np.ndarray, both_ways: bool) -> tuple[np.ndarray, ...]:
    """Continuous bin coordinates (d, a_i, a_j) of a template's pairs, each
    pair's direction in the image (radians) and its first minutia.

    A pair joins a minutia to one of its NEIGHBOURS nearest. The gallery
    keeps each such pair once (first minutia the lower-numbered); a probe
    asks in both directions, so whichever way a gallery stored it, one of
    the two finds it. That halves nothing at the probe and saves a third
    of the gallery's entries (the pairs two minutiae share as mutual
    neighbours)."""
    n = len(theta)
    if n < 2:
        z = np.zeros(0)
        return z, z, z, z, np.zeros(0, np.int64)
    xy = xy.astype(np.float64)
    d = np.hypot(xy[:, None, 0] - xy[None, :, 0], xy[:, None, 1] - xy[None, :, 1])
    d[np.arange(n), np.arange(n)] = np.inf
    d[(d < MIN_DIST) | (d >= MAX_DIST)] = np.inf
    k = min(NEIGHBOURS, n - 1)
    nb = np.argpartition(d, k - 1, axis=1)[:, :k]
    linked = np.zeros((n, n), bool)
    linked[np.repeat(np.arange(n), k), nb.ravel()] = True
    linked &= np.isfinite(d)
    linked |= linked.T
    i, j = np.nonzero(linked if both_ways else np.triu(linked))
    dij = d[i, j]
    phi = np.arctan2(xy[j, 1] - xy[i, 1], xy[j, 0] - xy[i, 0])
    step = 2 * np.pi / ANGLE_BINS
    ai = ((theta[i] - phi) % (2 * np.pi)) / step
    aj = ((theta[j] - phi) % (2 * np.pi)) / step
    return (dij - MIN_DIST) / DIST_BIN, ai, aj, phi, i


def _key(d: np.ndarray, ai: np.ndarray, aj: np.ndarray) -> np.ndarray:
    return (d * ANGLE_BINS + ai % ANGLE_BINS) * ANGLE_BINS + aj % ANGLE_BINS


def _row(keys: np.ndarray, turns: np.ndarray) -> np.ndarray:
    """The index rows of pairs with these keys and image directions (256ths
    of a turn)."""
    return keys.astype(np.int64) * DIR_SECTORS + turns.astype(np.int64) // _SECTOR


def gallery_keys(f: mcc.Features) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(keys, pair directions in 256ths of a turn, first minutia) of a
    template's pairs."""
    d, ai, aj, phi, i = _pairs(f.xy, f.theta, both_ways=False)
    k = _key(np.floor(d).astype(np.int64), np.floor(ai).astype(np.int64), np.floor(aj).astype(np.int64))
    turn = (np.round((phi % (2 * np.pi)) / (2 * np.pi) * 256).astype(np.int64) % 256).astype(np.uint8)
    return k, turn, i.astype(np.uint8)


def probe_keys(f: mcc.Features) -> tuple[np.ndarray, ...]:
    """Each pair's key, plus the neighbouring bin of any feature whose value
    lies within SOFT of a bin edge; with the pair's direction (radians),
    its first minutia and how likely the lookup is to hold the mate's pair
    (a product over the three features: a feature at distance c from its
    nearest bin edge is taken to lie across it with chance
    0.5 (1 - c / SOFT), nil past SOFT)."""
    d, ai, aj, phi, first = _pairs(f.xy, f.theta, both_ways=True)
    keys = []
    dirs = []
    anchors = []
    odds = []
    # Per feature: (its bin and its chance, the neighbour's bin and its chance).
    across = [0.5 * np.maximum(0.0, 1 - (0.5 - np.abs(v % 1 - 0.5)) / SOFT) for v in (d, ai, aj)]
    bins = [
        ((np.floor(v), 1 - q), (np.floor(v) + np.where(v % 1 < 0.5, -1, 1), q))
        for v, q in zip((d, ai, aj), across, strict=True)
    ]
    for (fd, pd), (fa, pa), (fb, pb) in itertools.product(*bins):
        ok = (fd >= 0) & (fd < N_DIST) & (pd > 0) & (pa > 0) & (pb > 0)
        keys.append(_key(fd.astype(np.int64), fa.astype(np.int64), fb.astype(np.int64))[ok])
        dirs.append(phi[ok])
        anchors.append(first[ok])
        odds.append((pd * pa * pb)[ok])
    return np.concatenate(keys), np.concatenate(dirs), np.concatenate(anchors), np.concatenate(odds)


def probe_turns(radians: np.ndarray) -> np.ndarray:
    """A probe's pair directions in 256ths of a turn, in uint8 so that a
    rotation (the difference from a gallery pair's) wraps."""
    return (np.round((radians % (2 * np.pi)) * (256 / (2 * np.pi))).astype(np.int64) % 256).astype(np.uint8)


def positions(b: mcc.Batch) -> tuple[np.ndarray, np.ndarray]:
    """(first row per template, int16 positions) of a padded batch, the
    layout votes() reads."""
    m = b.xy.shape[1]
    return np.arange(len(b.count), dtype=np.int64) * m, np.rint(b.xy.reshape(-1, 2)).astype(np.int16)


class Index:
    """Inverted index from pair keys to template numbers."""

    def __init__(self) -> None:
        self._start = np.zeros(ROWS + 1, np.int64)  # CSR starts of the (key, direction sector) rows
        self._tids = np.zeros(0, np.uint16)  # uint32 once template numbers pass 65,535
        self._dirs = np.zeros(0, np.uint8)
        self._anchor = np.zeros(0, np.uint8)
        self._pairs = np.zeros(0, np.uint16)  # per template number: pairs indexed
        self._pending: list[tuple[int, tuple[np.ndarray, np.ndarray, np.ndarray]]] = []

    def add(
        self, tid: int, f: mcc.Features, keys: tuple[np.ndarray, np.ndarray, np.ndarray] | None = None
    ) -> None:
        """Index a template; `keys`: its gallery_keys(f) when already known
        (the feature cache keeps them: they are most of an enrolment's cost)."""
        self._pending.append((tid, keys if keys is not None else gallery_keys(f)))

    def _flush(self) -> None:
        if not self._pending:
            return
        old_rows = np.repeat(np.arange(ROWS), np.diff(self._start))
        new_rows = np.concatenate([_row(k, d) for _t, (k, d, _a) in self._pending])
        rows = np.concatenate([old_rows, new_rows])
        order = np.argsort(rows, kind="stable")
        top = max(t for t, _k in self._pending) + 1
        wide = np.uint16 if top <= 1 << 16 and self._tids.dtype == np.uint16 else np.uint32
        self._tids = np.concatenate(
            [self._tids.astype(wide)] + [np.full(len(k), t, wide) for t, (k, _d, _a) in self._pending]
        )[order]
        self._dirs = np.concatenate([self._dirs] + [d for _t, (_k, d, _a) in self._pending])[order]
        self._anchor = np.concatenate([self._anchor] + [a for _t, (_k, _d, a) in self._pending])[order]
        self._start = np.concatenate([[0], np.cumsum(np.bincount(rows, minlength=ROWS))])
        if top > len(self._pairs):
            self._pairs = np.concatenate([self._pairs, np.zeros(top - len(self._pairs), np.uint16)])
        for t, (k, _d, _a) in self._pending:
            self._pairs[t] = len(k)
        self._pending.clear()

    def keys_by_template(self) -> dict[int, tuple[np.ndarray, np.ndarray, np.ndarray]]:
        """Each indexed template's (keys, directions, first minutiae), read
        back from the index in one pass (in the index's row order, so add()
        of them rebuilds this same index) instead of computed again."""
        self._flush()
        keys = np.repeat(np.arange(ROWS) // DIR_SECTORS, np.diff(self._start))
        order = np.argsort(self._tids, kind="stable")
        tids = self._tids[order]
        cuts = np.flatnonzero(np.diff(tids)) + 1
        out = {}
        for part in np.split(order, cuts) if len(order) else []:
            out[int(self._tids[part[0]])] = (keys[part], self._dirs[part], self._anchor[part])
        return out

    def remove(self, tids: set[int]) -> None:
        self._flush()
        rows = np.repeat(np.arange(ROWS), np.diff(self._start))
        keep = ~np.isin(self._tids, np.array(sorted(tids), dtype=np.int64))
        self._tids = self._tids[keep]
        self._dirs = self._dirs[keep]
        self._anchor = self._anchor[keep]
        self._start = np.concatenate([[0], np.cumsum(np.bincount(rows[keep], minlength=ROWS))])
        for t in tids:
            if t < len(self._pairs):
                self._pairs[t] = 0

    def nbytes(self) -> int:
        self._flush()
        return int(
            self._tids.nbytes
            + self._dirs.nbytes
            + self._anchor.nbytes
            + self._start.nbytes
            + self._pairs.nbytes
        )

    def votes(self, f: mcc.Features, n_templates: int, first: np.ndarray, xy: np.ndarray) -> np.ndarray:
        """Per template, the largest number of its pairs that match the
        probe's under one common rigid motion: every hit implies a rotation
        (the two pairs' directions) and a translation (the anchors'
        positions); hits are counted per (template, ROT_BINS sector,
        SHIFT_BIN-pixel cell) and the best cell wins. The gallery's
        minutiae positions: `xy` (rows, 2) int16, template t's minutia k in
        row first[t] + k (see positions())."""
        self._flush()
        q, qdir, qanchor, odds = probe_keys(f)
        q256 = probe_turns(qdir)
        # Read only the direction sectors a hit within MAX_ROTATION can lie
        # in (a run of the key's rows, two where the window wraps past a
        # whole turn): about half the bucket, and the costs are per hit read.
        s0 = ((q256.astype(np.int64) - MAX_ROTATION) % 256) // _SECTOR
        s1 = ((q256.astype(np.int64) + MAX_ROTATION) % 256) // _SECTOR
        wrap = s0 > s1
        row0 = q.astype(np.int64) * DIR_SECTORS
        src = np.concatenate([np.arange(len(q)), np.flatnonzero(wrap)])
        lo = self._start[np.concatenate([row0 + s0, row0[wrap]])]
        hi = self._start[np.concatenate([row0 + np.where(wrap, DIR_SECTORS - 1, s1), (row0 + s1)[wrap]]) + 1]
        n = hi - lo
        # A probe's work is bounded: past HITS_PER_TEMPLATE hits a template
        # on average, its least likely lookups are left out (module docstring).
        budget = HITS_PER_TEMPLATE * n_templates + HITS_ANYWAY
        if int(n.sum()) > budget:
            order = np.argsort(-odds[src], kind="stable")
            order = order[: max(1, int(np.searchsorted(np.cumsum(n[order]), budget, side="right")))]
            src, lo, n = src[order], lo[order], n[order]
        if int(n.sum()) == 0:
            return np.zeros(n_templates)
        q256, qdir, qanchor = q256[src], qdir[src], qanchor[src]
        # Translation t = g - e^(i rho) p, and e^(i rho) p = e^(i g_dir)
        # (e^(-i q_dir) p): the bracket once per lookup, not per hit.
        pc = f.xy[qanchor].astype(np.float32).view(np.complex64)[:, 0] * np.exp(-1j * qdir).astype(
            np.complex64
        )
        # One 4-byte read per hit: the int16 pair viewed as an int32.
        packed = np.ascontiguousarray(xy, dtype=np.int16).view(np.int32)[:, 0]
        # Hits in passes of runs of lookups: a probe in a large gallery has
        # millions, and whole-probe temporaries of tens of MB each come
        # from the allocator as fresh pages, whose faults cost more than
        # the arithmetic (p95 doubled at 30,000 templates, bench/README.md).
        ends = np.cumsum(n)
        cut = np.searchsorted(ends, np.arange(HITS_PER_PASS, int(ends[-1]), HITS_PER_PASS), side="right")
        passes = [self._hits(lo[a:b], n[a:b], q256[a:b], pc[a:b], first, packed)
                  for a, b in itertools.pairwise([0, *np.unique(cut).tolist(), len(n)]) if b > a]  # fmt: skip
        hits = [h for h in passes if len(h[0])]
        if not hits:
            return np.zeros(n_templates)
        bound = self._bounds(hits, n_templates)
        size = np.ones(n_templates)
        m = min(n_templates, len(self._pairs))
        size[:m] = np.maximum(self._pairs[:m], 1)
        k = min(n_templates, max(PRESELECT, int(PRESELECT_SHARE * n_templates)))
        keep = np.zeros(n_templates, bool)
        keep[np.argpartition(-(bound / np.sqrt(size)), k - 1)[:k]] = True
        # Exact counts for those.
        per = 2 * _GRID
        keys = []
        for tid, h0, h1 in hits:
            h = np.flatnonzero(keep.take(tid))
            t = tid.take(h)
            th = t.astype(np.int64) * per
            keys += [th + _cell(t, h0.take(h)), th + _cell(t, h1.take(h))]
        best, counts = np.unique(np.concatenate(keys), return_counts=True)
        v = np.zeros(n_templates)
        np.maximum.at(v, best // per, counts.astype(np.float64))
        return v / np.sqrt(size)

    @staticmethod
    def _bounds(hits: list[tuple[np.ndarray, np.ndarray, np.ndarray]], n_templates: int) -> np.ndarray:
        """Per template, an upper bound of its best cell's count: counts in
        a hash table of about twice the votes' number, a hit's slot the top
        bits of its hash (_hash: collisions can only add).

        The table is read and written at random, once per hit and grid, so
        its size is what it costs: its counts are uint16, half the bytes
        of uint32 for the same slots and the same bounds. A (template,
        cell) gets at most its template's hits, so while every template
        has under NARROW_HITS a slot wraps only if more than four whole
        templates' votes hash into it; with a heavier template (a
        degenerate record) the counts are uint32."""
        near = sum(len(tid) for tid, _h0, _h1 in hits)
        per_template = np.zeros(n_templates, np.int64)  # summed pass by pass: no passes x templates array
        for tid, _h0, _h1 in hits:
            per_template += np.bincount(tid, minlength=n_templates)
        heaviest = per_template.max()
        bits = int(min(25, max(12, np.ceil(np.log2(4 * near)))))
        shift = np.uint32(32 - bits)  # a hash's top bits are its slot
        table = np.zeros(1 << bits, np.uint16 if heaviest < NARROW_HITS else np.uint32)
        for _tid, h0, h1 in hits:
            np.add.at(table, h0 >> shift, table.dtype.type(1))
            np.add.at(table, h1 >> shift, table.dtype.type(1))
        bound = np.zeros(n_templates, table.dtype)
        for tid, h0, h1 in hits:
            np.maximum.at(bound, tid, np.maximum(table.take(h0 >> shift), table.take(h1 >> shift)))
        return bound

    def _hits(
        self,
        lo: np.ndarray,
        n: np.ndarray,
        q256: np.ndarray,
        pc: np.ndarray,
        first: np.ndarray,
        packed: np.ndarray,
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """The hits of some of a probe's lookups (bucket starts `lo`, sizes
        `n`, the lookups' directions and bracketed anchors) within
        MAX_ROTATION: (template, _hash of its cell in the first grid, in
        the second)."""
        total = int(n.sum())
        idx = np.repeat(lo - np.concatenate([[0], np.cumsum(n)[:-1]]), n) + np.arange(total)
        look = np.repeat(np.arange(len(n)), n)
        dirs = self._dirs.take(idx)
        rho = dirs - q256.take(look)
        near = np.flatnonzero(_NEAR[rho])
        # take() with one index array: boolean and 2-D fancy indexing cost
        # twice as much on millions of hits.
        idx, dirs, look, rot = idx.take(near), dirs.take(near), look.take(near), rho.take(near)
        tid = self._tids.take(idx)
        row = first.take(tid.astype(np.int64)) + self._anchor.take(idx)
        g = packed.take(row).view(np.int16).reshape(-1, 2).astype(np.float32).view(np.complex64)[:, 0]
        t = g - _EXP[dirs] * pc.take(look)
        # Every hit votes in both grids (module docstring).
        return tid, _hash(tid, _cells(rot, t, 0)), _hash(tid, _cells(rot, t, 1))

    def candidates(
        self, f: mcc.Features, n_templates: int, count: int, first: np.ndarray, xy: np.ndarray
    ) -> np.ndarray:
        v = self.votes(f, n_templates, first, xy)
        count = min(count, n_templates)
        if count <= 0:
            return np.zeros(0, np.int64)
        top = np.argpartition(-v, count - 1)[:count]
        return top[np.argsort(-v[top], kind="stable")]
