"""Small numpy helpers shared by the storage modules (growth, segment gathers)."""
from __future__ import annotations

import numpy as np


def grown(arr: np.ndarray, needed: int, fill: int | bool = 0) -> np.ndarray:
    """`arr` with room for at least `needed` items, doubling capacity.

    New arrays come from np.zeros/np.full so untouched tail pages stay unmapped and
    cost no resident memory until rows reach them.
    """
    cap = len(arr)
    if needed <= cap:
        return arr
    new_cap = max(needed, cap * 2, 16)
    out = np.zeros(new_cap, dtype=arr.dtype) if fill == 0 else np.full(new_cap, fill, dtype=arr.dtype)
    out[:cap] = arr
    return out


INT_WIDTHS = (np.int8, np.int16, np.int32, np.int64)


def widened(arr: np.ndarray, lo: int, hi: int) -> np.ndarray:
    """`arr` as the narrowest int dtype holding [lo, hi] and its current values
    (never narrower than it is)."""
    info = np.iinfo(arr.dtype)
    if info.min <= lo and hi <= info.max:
        return arr
    width = next(w for w in INT_WIDTHS if np.iinfo(w).min <= lo and hi <= np.iinfo(w).max)
    return arr.astype(width)


def segment_positions(starts: np.ndarray, lengths: np.ndarray) -> np.ndarray:
    """Flat positions of the segments [starts[i], starts[i] + lengths[i]) in order."""
    lengths = lengths.astype(np.int64, copy=False)
    total = int(lengths.sum())
    if total == 0:
        return np.zeros(0, dtype=np.int64)
    ends = np.cumsum(lengths)
    within = np.arange(total, dtype=np.int64) - np.repeat(ends - lengths, lengths)
    return np.repeat(starts.astype(np.int64, copy=False), lengths) + within


def distinct(a: np.ndarray) -> np.ndarray:
    """Sorted distinct values. np.unique is avoided on purpose: numpy 2.4 answers it with
    a hash table that is ~100x slower than sorting for 1M uint64 values."""
    if len(a) < 2:
        return np.array(a, copy=True)
    s = np.sort(a)
    keep = np.empty(len(s), dtype=bool)
    keep[0] = True
    np.not_equal(s[1:], s[:-1], out=keep[1:])
    return s[keep]


def used_codes(codes: np.ndarray, n_codes: int) -> np.ndarray:
    """Distinct non-negative codes below n_codes, sorted (a bincount, no sort)."""
    codes = codes[codes >= 0]
    return np.flatnonzero(np.bincount(codes, minlength=n_codes))


def last_occurrence(keys: np.ndarray) -> np.ndarray:
    """Indices of the last occurrence of each distinct key, in ascending index order."""
    order = np.argsort(keys, kind="stable")
    s = keys[order]
    last = np.ones(len(s), dtype=bool)
    if len(s) > 1:
        np.not_equal(s[1:], s[:-1], out=last[:-1])
    return np.sort(order[last])
