"""A set of sequence numbers kept as sorted, disjoint, inclusive intervals.

The outbox keeps, per device, every sequence it ever stored durably (acked
or not). A producer's record is a duplicate exactly when its sequence is in
that set, so out-of-order arrival, gaps of any size and resends all get the
same answer from one rule. A device that sends in order costs one interval,
whatever its history; each gap costs one more.

Pure data, no I/O.
"""

from __future__ import annotations

from bisect import bisect_right
from collections.abc import Iterable


class SeqSet:
    __slots__ = ("_hi", "_lo")

    def __init__(self, flat: Iterable[int] = ()) -> None:
        """`flat` is [lo1, hi1, lo2, hi2, ...] as `flat()` returns it; any
        order and overlap is accepted (the union is taken)."""
        self._lo: list[int] = []
        self._hi: list[int] = []
        it = iter(flat)
        for lo in it:
            hi = next(it)
            self.add_range(lo, hi)

    def __contains__(self, seq: int) -> bool:
        i = bisect_right(self._lo, seq) - 1
        return i >= 0 and seq <= self._hi[i]

    def __len__(self) -> int:
        return sum(h - lo + 1 for lo, h in zip(self._lo, self._hi, strict=True))

    def __eq__(self, other: object) -> bool:
        return isinstance(other, SeqSet) and self._lo == other._lo and self._hi == other._hi

    def __repr__(self) -> str:
        return "SeqSet(%s)" % ", ".join(f"{lo}-{h}" for lo, h in zip(self._lo, self._hi, strict=True))

    @property
    def high(self) -> int:
        """The largest member, 0 when empty."""
        return self._hi[-1] if self._hi else 0

    def add(self, seq: int) -> bool:
        """Add one sequence; False if it was already present."""
        hi = self._hi
        if hi and seq == hi[-1] + 1:  # the common case: in order
            hi[-1] = seq
            return True
        if seq in self:
            return False
        self.add_range(seq, seq)
        return True

    def add_range(self, lo: int, hi: int) -> None:
        if hi < lo:
            raise ValueError("empty interval")
        los, his = self._lo, self._hi
        # First interval that could touch [lo, hi] (adjacent counts as touching).
        i = bisect_right(his, lo - 2)
        j = i
        while j < len(los) and los[j] <= hi + 1:
            lo = min(lo, los[j])
            hi = max(hi, his[j])
            j += 1
        los[i:j] = [lo]
        his[i:j] = [hi]

    def update(self, other: SeqSet) -> None:
        for lo, hi in zip(other._lo, other._hi, strict=True):
            self.add_range(lo, hi)

    def flat(self) -> list[int]:
        out: list[int] = []
        for lo, hi in zip(self._lo, self._hi, strict=True):
            out += (lo, hi)
        return out

    def missing_below_high(self) -> int:
        """How many sequences below the highest were never stored (gaps)."""
        return self.high - len(self)
