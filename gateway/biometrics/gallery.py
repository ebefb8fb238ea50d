"""The gate's gallery: enrolled templates in memory, 1:N identification.

Templates arrive as ISO/IEC 19794-2 records (from imported bundles); only
their features are kept (gateway/biometrics/mcc.py), in compact unpadded
rows (_Store: about 2.7 KB for a template of 50 minutiae), plus the pair
index (index.py, about 1 KB). A record may carry several presses of one
finger (views): each is a template, and the finger is decided on all of
them together. Identification: the index proposes CANDIDATES templates
(at least, or CANDIDATE_SHARE of the gallery), the full matcher scores the
press against every view of each proposed finger, the scores are fused
per finger (their mean), and the finger that clears its threshold by most
is accepted.

The threshold is set for identification, not verification: from a target
false-positive identification rate per attempt (FPIR: the chance that a
never-enrolled finger is accepted as someone), for the gallery's size at
the time of the attempt, so it rises as the gallery grows. A stranger is
compared with some of the enrolled fingers, and the index picks the
likeliest, so the chance that any clears its threshold is bounded by a
union over every enrolled finger: FPIR <= N x FMR(t). A finger's threshold
is the fused score whose impostor FMR is FPIR / N on the impostor tail
measured by bench/matcher_bench.py for its number of views: TAIL lists
the score reached by FMR 1e-2, 1e-3 and 1e-4 (the highest over the
generator's tiers; a decade counts when at least ten impostor scores lie
above it), read between them in decades, and past the last continued at
its steepest step (docs/matcher.md says how far that reaches and what
checks it). THRESHOLD_FMR_1E4
is the one-view tail's 1:1 threshold at FMR 1e-4 (the lock module's
emulation uses it: a lock's library is a household, not a site).

Nothing here logs or returns template data; a result names the enrolled
reference (a pseudonymous person id and finger) and the score.
"""

from __future__ import annotations

import itertools
import math
import threading
from dataclasses import dataclass

import numpy as np

from gateway.biometrics import iso19794, mcc
from gateway.biometrics.index import Index

CANDIDATES = 50
CANDIDATE_SHARE = 0.002
# The impostor score tails, measured (bench/matcher_bench.py "impostor
# tail", seed 10, the bench's SEED + 3, 489,300 comparisons per tier; the
# highest of the four tiers, easy's throughout; for one view also the higher
# of this and the round before's measurement on other impressions;
# docs/matcher.md), one per number of views a finger has enrolled: its
# score is fused over them (fused), and a mean of several chance scores has
# a lighter tail than one.
Tail = tuple[tuple[int, float], ...]  # (decades: FMR 10^-e, score)
TAIL: dict[int, Tail] = {
    1: ((2, 0.0140), (3, 0.0192), (4, 0.0256)),
    2: ((2, 0.0122), (3, 0.0160), (4, 0.0198)),
    3: ((2, 0.0116), (3, 0.0150), (4, 0.0185)),
    4: ((2, 0.0113), (3, 0.0145), (4, 0.0177)),
}
FPIR = 1e-4  # default target per attempt; [biometrics] fpir in gateway.toml


def fused(view_scores: np.ndarray) -> float:
    """A finger's score from the scores of a press against each of its
    enrolled views: their mean. A mate pressed like one view scores well on
    the others too; a stranger's chance match with one view is diluted by
    the rest (the max would keep the best chance of K)."""
    return float(np.mean(view_scores))


def tail_score(fmr: float, views: int = 1) -> float:
    """The fused impostor score reached by a share `fmr` of comparisons
    with a finger of `views` views: its TAIL read linearly in decades,
    past its end at its steepest step."""
    tail = TAIL[min(max(views, 1), len(TAIL))]
    e = max(-math.log10(fmr), tail[0][0])
    for (e0, s0), (e1, s1) in itertools.pairwise(tail):
        if e <= e1:
            return s0 + (s1 - s0) * (e - e0) / (e1 - e0)
    step = max((s1 - s0) / (e1 - e0) for (e0, s0), (e1, s1) in itertools.pairwise(tail))
    return tail[-1][1] + step * (e - tail[-1][0])


def threshold_for(enrolled: int, fpir: float = FPIR, views: int = 1) -> float:
    """The fused score a finger of `views` views must reach so that a
    stranger is accepted with probability at most `fpir` per attempt
    against `enrolled` fingers (union bound over the fingers, extrapolated
    tail)."""
    return tail_score(fpir / max(enrolled, 1), views)


THRESHOLD_FMR_1E4 = tail_score(1e-4)
CHUNK = 64  # templates per matcher call: keeps the arrays in cache


@dataclass(frozen=True)
class Match:
    ref: str
    score: float
    candidates: int


def features_of(record: bytes) -> mcc.Features:
    """Parse an ISO record and extract the features of its first view (a
    probe: the press being decided)."""
    rec = iso19794.parse(record)
    v = rec.views[0]
    return mcc.extract(v.minutiae, rec.width, rec.height)


def views_of(record: bytes) -> list[mcc.Features]:
    """Parse an ISO record and extract the features of every view of its
    first view's finger (an enrolment: ISO/IEC 19794-2 carries several
    impressions of one finger as views of one record, up to four here).
    Each is enrolled as a template of its own and the finger is decided on
    all of them (identify, fused); a view of another finger position is
    not this finger's and is left out."""
    rec = iso19794.parse(record)
    pos = rec.views[0].finger_position
    return [mcc.extract(v.minutiae, rec.width, rec.height) for v in rec.views if v.finger_position == pos]


class _Store:
    """Enrolled features, compact: one row per minutia, unpadded.

    A row is the minutia's position (int16 pixels, as ISO records carry
    them), its direction (a byte, 256ths of a turn, as ISO records carry
    it) and its cylinder: six section words and the validity mask, each in
    7 bytes (mcc puts the 52 usable cells in the low bits). Per template:
    its first row, its minutiae count and its image size. take() rebuilds
    the matcher's padded float arrays for the few templates being scored.
    """

    WORDS = mcc.ND + 1  # the sections, then the mask

    @staticmethod
    def _pixels(xy: np.ndarray) -> np.ndarray:
        """Positions as int16 pixels (as ISO records carry them)."""
        return np.clip(np.rint(xy), -32768, 32767).astype(np.int16)

    @staticmethod
    def _turns(theta: np.ndarray) -> np.ndarray:
        """Directions in 256ths of a turn (as ISO records carry them)."""
        return (np.rint(theta * (256 / (2 * np.pi))).astype(np.int64) % 256).astype(np.uint8)

    @staticmethod
    def quantised(f: mcc.Features) -> mcc.Features:
        """The features as the store keeps them (whole pixels, 256ths of a
        turn): enrolling these again stores the same rows, so a gallery
        rebuilt from its saved features (featurecache.py) is the gallery
        built from the records, index included."""
        xy = _Store._pixels(f.xy).astype(np.float32)
        theta = _Store._turns(f.theta) * np.float32(2 * np.pi / 256)  # float32, exactly as take() rebuilds it
        return mcc.Features(xy, theta, f.bits, f.mask, f.width, f.height)

    def __init__(self) -> None:
        self.words = np.zeros((0, self.WORDS, 7), np.uint8)
        self.xy = np.zeros((0, 2), np.int16)
        self.theta = np.zeros(0, np.uint8)
        self.first = np.zeros(0, np.int64)
        self.count = np.zeros(0, np.uint8)
        self.size = np.zeros((0, 2), np.uint16)
        self.rows = 0
        self.templates = 0

    @staticmethod
    def _grown(a: np.ndarray, need: int) -> np.ndarray:
        if need <= len(a):
            return a
        z = np.zeros((max(need, 64, 2 * len(a)), *a.shape[1:]), a.dtype)
        z[: len(a)] = a
        return z

    def add(self, f: mcc.Features) -> int:
        r, t, n = self.rows, self.templates, f.n
        self.words = self._grown(self.words, r + n)
        self.xy = self._grown(self.xy, r + n)
        self.theta = self._grown(self.theta, r + n)
        for name in ("first", "count", "size"):
            setattr(self, name, self._grown(getattr(self, name), t + 1))
        w = np.concatenate([f.bits, f.mask[:, None]], axis=1).astype("<u8")
        self.words[r : r + n] = w.view(np.uint8).reshape(n, self.WORDS, 8)[:, :, :7]
        self.xy[r : r + n] = self._pixels(f.xy)
        self.theta[r : r + n] = self._turns(f.theta)
        self.first[t], self.count[t] = r, n
        self.size[t] = (min(f.width, 65535), min(f.height, 65535))
        self.rows, self.templates = r + n, t + 1
        return t

    def forget(self, tids: list[int]) -> None:
        """Drop the templates' rows (zeroed first: a moved-out resident's
        cylinders do not linger in freed memory) and close the gap."""
        gone = np.zeros(self.rows, bool)
        for t in tids:
            a, n = int(self.first[t]), int(self.count[t])
            gone[a : a + n] = True
            self.count[t] = 0
        for arr in (self.words, self.xy, self.theta):
            arr[: self.rows][gone] = 0
        keep = np.flatnonzero(~gone)
        shift = np.concatenate([[0], np.cumsum(gone)])
        self.first[: self.templates] -= shift[np.minimum(self.first[: self.templates], self.rows)]
        self.words = self.words[keep].copy()
        self.xy = self.xy[keep].copy()
        self.theta = self.theta[keep].copy()
        self.rows = len(keep)

    def nbytes(self) -> int:
        per_row = self.words[:1].nbytes + self.xy[:1].nbytes + self.theta[:1].nbytes
        per_tpl = self.first[:1].nbytes + self.count[:1].nbytes + self.size[:1].nbytes
        return self.rows * per_row + self.templates * per_tpl

    def take(self, idx: np.ndarray) -> mcc.Batch:
        t, m = len(idx), mcc.MAX_MINUTIAE
        cnt = self.count[idx].astype(np.int64)
        total = int(cnt.sum())
        before = np.concatenate([[0], np.cumsum(cnt)[:-1]])
        row = np.repeat(self.first[idx] - before, cnt) + np.arange(total)
        ti = np.repeat(np.arange(t), cnt)
        mi = np.arange(total) - np.repeat(before, cnt)
        raw = np.zeros((total, self.WORDS, 8), np.uint8)
        raw[:, :, :7] = self.words[row]
        w = raw.view("<u8")[..., 0].astype(np.uint64)
        b = mcc.Batch(
            np.zeros((t, m, 2), np.float32),
            np.zeros((t, m), np.float32),
            np.zeros((t, m, mcc.ND), np.uint64),
            np.zeros((t, m), np.uint64),
            cnt,
            self.size[idx].astype(np.float32),
        )
        b.xy[ti, mi] = self.xy[row]
        b.theta[ti, mi] = self.theta[row] * np.float32(2 * np.pi / 256)
        b.bits[ti, mi] = w[:, : mcc.ND]
        b.mask[ti, mi] = w[:, mcc.ND]
        return b


class Gallery:
    def __init__(self, fpir: float = FPIR, threshold: float | None = None) -> None:
        """`fpir`: the target false-positive identification rate per attempt
        (the threshold follows the gallery's size); `threshold`: a fixed
        score instead (tests and benchmarks that sweep it)."""
        if not 0 < fpir < 1:
            raise ValueError("fpir must be between 0 and 1")
        self.fpir = fpir
        self._fixed = threshold
        self._store = _Store()
        self._refs: list[str | None] = []
        self._by_ref: dict[str, list[int]] = {}
        self._index = Index()
        self._lock = threading.Lock()

    def __len__(self) -> int:
        return len(self._refs) - self._refs.count(None)

    @property
    def fingers(self) -> int:
        """Enrolled fingers (references), each of one or more views."""
        return len(self._by_ref)

    def threshold(self, views: int = 1) -> float:
        """The fused score a finger of `views` views must reach now."""
        if self._fixed is not None:
            return self._fixed
        return threshold_for(self.fingers, self.fpir, views)

    def enrol(self, ref: str, template: bytes | mcc.Features,
              keys: tuple[np.ndarray, np.ndarray, np.ndarray] | None = None) -> int:  # fmt: skip
        """Enrol an ISO record (every view of its finger: views_of) or one
        view's features under `ref`; returns how many templates that added.
        `keys`: the index's keys of these (quantised) features, when saved
        with them (featurecache.py); computed otherwise."""
        views = views_of(template) if isinstance(template, (bytes, bytearray)) else [template]
        views = [_Store.quantised(f) for f in views]
        with self._lock:  # a ref's views go in together
            for f in views:
                tid = self._store.add(f)
                self._refs.append(ref)
                self._by_ref.setdefault(ref, []).append(tid)
                self._index.add(tid, f, keys)
        return len(views)

    def enrol_saved(
        self, ref: str, saved: list[tuple[mcc.Features, tuple[np.ndarray, np.ndarray, np.ndarray]]]
    ) -> int:
        """Enrol `ref`'s templates as saved_form() gave them (one per view)."""
        for f, keys in saved:
            self.enrol(ref, f, keys)
        return len(saved)

    def remove(self, ref: str) -> int:
        """Forget every template enrolled under `ref`; returns how many."""
        with self._lock:
            tids = self._by_ref.pop(ref, [])
            for t in tids:
                self._refs[t] = None
            if tids:
                self._store.forget(tids)
                self._index.remove(set(tids))
        return len(tids)

    def stored(self, ref: str) -> list[mcc.Features]:
        """The features kept for `ref`, as enrolled (quantised)."""
        with self._lock:
            return [self._stored(t) for t in self._by_ref.get(ref, [])]

    def _stored(self, t: int) -> mcc.Features:
        b = self._store.take(np.array([t]))
        n = int(b.count[0])
        w, h = (int(v) for v in b.size[0])
        return mcc.Features(b.xy[0, :n].copy(), b.theta[0, :n].copy(), b.bits[0, :n].copy(),
                            b.mask[0, :n].copy(), w, h)  # fmt: skip

    def saved_form(self) -> dict[str, list[tuple[mcc.Features, tuple[np.ndarray, np.ndarray, np.ndarray]]]]:
        """Per reference, every template's stored features and index keys,
        in enrolment order, as the feature cache keeps them (featurecache.py)."""
        none = (
            np.zeros(0, np.int64),
            np.zeros(0, np.uint8),
            np.zeros(0, np.uint8),
        )  # a template with no pairs
        with self._lock:
            keys = self._index.keys_by_template()
            return {
                ref: [(self._stored(t), keys.get(t, none)) for t in tids]
                for ref, tids in self._by_ref.items()
                if tids
            }

    def refs(self) -> list[str]:
        with self._lock:
            return list(self._by_ref)

    def refs_of(self, person: str) -> list[str]:
        """The references enrolled for a person ("person/finger")."""
        return [r for r in self._by_ref if r == person or r.startswith(person + "/")]

    def remove_person(self, person: str) -> int:
        """Refs are "person/finger": every finger of the person goes."""
        return sum(self.remove(r) for r in self.refs_of(person))

    def nbytes_per_template(self) -> float:
        """The stored features and the index, per enrolled template."""
        n = self._store.templates
        return (self._store.nbytes() + self._index.nbytes()) / max(n, 1)

    def scores(self, probe: mcc.Features, tids: np.ndarray) -> np.ndarray:
        out = np.zeros(len(tids))
        for a in range(0, len(tids), CHUNK):
            part = tids[a : a + CHUNK]
            out[a : a + CHUNK] = mcc.scores(probe, self._store.take(part))
        return out

    def candidates(self, probe: mcc.Features) -> np.ndarray:
        """Template numbers the index proposes for a probe (enrolled ones)."""
        n = self._store.templates
        count = max(CANDIDATES, int(CANDIDATE_SHARE * n))
        cand = self._index.candidates(probe, n, count, self._store.first, self._store.xy)
        return np.array([t for t in cand if self._refs[t] is not None], dtype=np.int64)

    def identify(self, probe: bytes | mcc.Features) -> Match | None:
        """The enrolled reference the probe matches, or None."""
        p = features_of(probe) if isinstance(probe, (bytes, bytearray)) else probe
        with self._lock:
            if len(self) == 0 or p.n == 0:
                return None
            cand = self.candidates(p)
            if not len(cand):
                return None
            # A proposed finger is decided on every view enrolled for it,
            # fused, against the threshold for its number of views.
            refs = [r for r in dict.fromkeys(self._refs[int(t)] for t in cand) if r is not None]
            tids = [self._by_ref[r] for r in refs]
            s = self.scores(p, np.array([t for ts in tids for t in ts], dtype=np.int64))
            need = {k: self.threshold(k) for k in {len(ts) for ts in tids}}  # for today's size
            best, margin, at = None, -math.inf, 0
            for r, ts in zip(refs, tids, strict=True):
                f = fused(s[at : at + len(ts)])
                at += len(ts)
                over = f - need[len(ts)]
                if over >= 0 and over > margin:
                    best, margin = Match(r, f, len(cand)), over
            return best
