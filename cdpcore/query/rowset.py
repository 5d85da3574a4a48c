"""RowSet represents the rows of one shard that satisfy a predicate, in whichever of
three forms was cheapest to produce: a Roaring bitmap, a sorted row array, or a dense
bool mask. Conversions happen lazily and only when an operation needs another form.

Measured on this machine: bitmap → rows is ~2 ms for 5M members; mask → rows
(`flatnonzero`) is ~10–20 ms at high density; rows → bitmap via array('I') ~10 ms/5M.
So AND prefers filtering the smaller side by the larger side's membership, and the
result of combining with a mask stays a mask unless it is small.
"""
from __future__ import annotations

import numpy as np
from pyroaring import BitMap

from ..bitmap_index import bitmap_of, rows_of

SMALL_FRACTION = 1 / 32  # below this density a row array beats a mask


class RowSet:
    __slots__ = ("n", "_bm", "_rows", "_mask", "_count")

    def __init__(self, n: int, bm: BitMap | None = None, rows: np.ndarray | None = None,
                 mask: np.ndarray | None = None) -> None:
        self.n = n
        self._bm, self._rows, self._mask = bm, rows, mask
        self._count: int | None = None

    @classmethod
    def empty(cls, n: int) -> "RowSet":
        return cls(n, rows=np.zeros(0, dtype=np.int64))

    def count(self) -> int:
        if self._count is None:
            if self._bm is not None:
                self._count = len(self._bm)
            elif self._rows is not None:
                self._count = len(self._rows)
            else:
                self._count = int(np.count_nonzero(self._mask))
        return self._count

    def is_small(self) -> bool:
        return self.count() <= self.n * SMALL_FRACTION

    @property
    def has_mask(self) -> bool:
        return self._mask is not None

    @property
    def has_bitmap(self) -> bool:
        return self._bm is not None

    def rows(self) -> np.ndarray:
        """Sorted row numbers (int64)."""
        if self._rows is None:
            if self._bm is not None:
                self._rows = rows_of(self._bm).astype(np.int64)
            else:
                self._rows = np.flatnonzero(self._mask)
        return self._rows

    def mask(self) -> np.ndarray:
        if self._mask is None:
            m = np.zeros(self.n, dtype=bool)
            m[self.rows()] = True
            self._mask = m
        return self._mask

    def bitmap(self) -> BitMap:
        if self._bm is None:
            self._bm = bitmap_of(self.rows())
        return self._bm

    def contains(self, rows: np.ndarray) -> np.ndarray:
        """Membership of each of `rows` (sorted), as a bool array."""
        if self._mask is not None:
            return self._mask[rows]
        if self._bm is not None and self._rows is None:
            # intersect first: the cost follows len(rows), not the bitmap's size
            mine = rows_of(self._bm & bitmap_of(rows))
            return np.isin(rows, mine, assume_unique=True) if len(mine) else np.zeros(len(rows), dtype=bool)
        mine = self.rows()
        pos = np.searchsorted(mine, rows)
        pos[pos >= len(mine)] = 0
        return (mine[pos] == rows) if len(mine) else np.zeros(len(rows), dtype=bool)


def intersect(a: RowSet, b: RowSet) -> RowSet:
    if a.has_bitmap and b.has_bitmap:
        return RowSet(a.n, bm=a.bitmap() & b.bitmap())
    small, big = (a, b) if a.count() <= b.count() else (b, a)
    if not small.is_small() and (small.has_mask or big.has_mask):
        return RowSet(a.n, mask=small.mask() & big.mask())
    # Filter the smaller side's rows by the other's membership: a gather of k items
    # (~4 ns each) beats building and AND-ing n-row masks only while k is small.
    rows = small.rows()
    return RowSet(a.n, rows=rows[big.contains(rows)])


def union(a: RowSet, b: RowSet) -> RowSet:
    if a.has_bitmap and b.has_bitmap:
        return RowSet(a.n, bm=a.bitmap() | b.bitmap())
    if not a.has_mask and not b.has_mask and a.is_small() and b.is_small():
        return RowSet(a.n, rows=np.union1d(a.rows(), b.rows()))
    return RowSet(a.n, mask=a.mask() | b.mask())


def without(a: RowSet, gone: BitMap) -> RowSet:
    """`a` minus the rows of `gone` (a shard's foreign rows: usually empty)."""
    if not gone:
        return a
    if a.has_bitmap:
        return RowSet(a.n, bm=a.bitmap() - gone)
    if a.has_mask:
        mask = a.mask().copy()   # the mask may be the shard's own live-row array
        mask[rows_of(gone)] = False
        return RowSet(a.n, mask=mask)
    rows = a.rows()
    return RowSet(a.n, rows=rows[~RowSet(a.n, bm=gone).contains(rows)])
