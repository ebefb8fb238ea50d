"""The gate's gallery: enrolled templates in memory, 1:N identification.

Templates arrive as ISO/IEC 19794-2 records (from imported bundles); only
their features are kept (gateway/biometrics/mcc.py), in arrays the matcher
reads in bulk, plus the pair index (index.py). Identification: the index
proposes CANDIDATES templates (at least, or CANDIDATE_SHARE of the
gallery), the full matcher scores them, and the best is accepted if its
score reaches the threshold. The threshold is set from a target false-match
rate on the synthetic benchmark (docs/matcher.md): THRESHOLD_FMR_1E4 is the
score that 1 in 10,000 impostor comparisons reached there.

Nothing here logs or returns template data; a result names the enrolled
reference (a pseudonymous person id and finger) and the score.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass

import numpy as np

from gateway.biometrics import iso19794, mcc
from gateway.biometrics.index import Index

CANDIDATES = 50
CANDIDATE_SHARE = 0.002
# Scores reached by 1 in 10,000 impostor comparisons on the 500-finger
# synthetic benchmark (bench/matcher_bench.py; see docs/matcher.md).
THRESHOLD_FMR_1E4 = 0.0237
CHUNK = 64  # templates per matcher call: keeps the arrays in cache


@dataclass(frozen=True)
class Match:
    ref: str
    score: float
    candidates: int


def features_of(record: bytes) -> mcc.Features:
    """Parse an ISO record and extract the features of its first view."""
    rec = iso19794.parse(record)
    v = rec.views[0]
    return mcc.extract(v.minutiae, rec.width, rec.height)


class Gallery:
    def __init__(self, threshold: float = THRESHOLD_FMR_1E4) -> None:
        self.threshold = threshold
        self._b = mcc.Batch.of([])
        self._n = 0  # rows used in self._b
        self._refs: list[str | None] = []
        self._by_ref: dict[str, list[int]] = {}
        self._index = Index()
        self._lock = threading.Lock()

    def __len__(self) -> int:
        return len(self._refs) - self._refs.count(None)

    def _grow(self) -> None:
        cap = max(64, 2 * len(self._b.count))
        old = self._b
        new = mcc.Batch.of([])
        for name in ("xy", "theta", "bits", "mask", "count", "size"):
            a = getattr(old, name)
            z = np.zeros((cap, *a.shape[1:]), a.dtype)
            z[: len(a)] = a
            setattr(new, name, z)
        self._b = new

    def enrol(self, ref: str, template: bytes | mcc.Features) -> int:
        f = features_of(template) if isinstance(template, (bytes, bytearray)) else template
        with self._lock:
            if self._n == len(self._b.count):
                self._grow()
            tid = self._n
            one = mcc.Batch.of([f])
            for name in ("xy", "theta", "bits", "mask", "count", "size"):
                getattr(self._b, name)[tid] = getattr(one, name)[0]
            self._n += 1
            self._refs.append(ref)
            self._by_ref.setdefault(ref, []).append(tid)
            self._index.add(tid, f)
        return tid

    def remove(self, ref: str) -> int:
        """Forget every template enrolled under `ref`; returns how many."""
        with self._lock:
            tids = self._by_ref.pop(ref, [])
            for t in tids:
                self._refs[t] = None
                self._b.count[t] = 0
                self._b.mask[t] = 0
                self._b.bits[t] = 0
                self._b.xy[t] = 0
            if tids:
                self._index.remove(set(tids))
        return len(tids)

    def refs_of(self, person: str) -> list[str]:
        """The references enrolled for a person ("person/finger")."""
        return [r for r in self._by_ref if r == person or r.startswith(person + "/")]

    def remove_person(self, person: str) -> int:
        """Refs are "person/finger": every finger of the person goes."""
        return sum(self.remove(r) for r in self.refs_of(person))

    def nbytes_per_template(self) -> float:
        """The matcher's arrays (padded rows) and the index, per template."""
        rows = self._b.take(np.arange(self._n))
        arrays = sum(getattr(rows, k).nbytes for k in ("xy", "theta", "bits", "mask", "count", "size"))
        return (arrays + self._index.nbytes()) / max(self._n, 1)

    def scores(self, probe: mcc.Features, tids: np.ndarray) -> np.ndarray:
        out = np.zeros(len(tids))
        for a in range(0, len(tids), CHUNK):
            part = tids[a : a + CHUNK]
            out[a : a + CHUNK] = mcc.scores(probe, self._b.take(part))
        return out

    def candidates(self, probe: mcc.Features) -> np.ndarray:
        """Template numbers the index proposes for a probe (enrolled ones)."""
        count = max(CANDIDATES, int(CANDIDATE_SHARE * self._n))
        cand = self._index.candidates(probe, self._n, count, self._b.xy)
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
            s = self.scores(p, cand)
            best = int(np.argmax(s))
            ref = self._refs[int(cand[best])]
            if s[best] < self.threshold or ref is None:
                return None
            return Match(ref, float(s[best]), len(cand))
