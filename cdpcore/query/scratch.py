"""Scratch represents per-shard arrays over all rows that every write batch's segment
re-check reuses: a row → candidate-index table and a candidate mask.

Why keep them: a fresh n-row array per batch is mapped on demand, and a batch's few
thousand rows, spread over the shard, touch nearly every page of it, so allocating one
costs ~0.3 ms per 2 MB in page faults, more than the work it serves. Kept arrays stay
mapped. Only the current candidates' entries of the table are ever read (callers look up
candidate rows only), so it is never cleared; the mask is cleared after each use.
"""
from __future__ import annotations

import numpy as np

from ..arrays import grown


class Scratch:
    """Reusable row-indexed arrays of one shard (caller holds the shard lock)."""

    def __init__(self) -> None:
        self._slots = np.zeros(0, dtype=np.int32)
        self._mask = np.zeros(0, dtype=bool)

    def slot_table(self, rows: np.ndarray, n_rows: int) -> np.ndarray:
        """A table whose entry for each of the sorted `rows` is its index among them
        (other entries: whatever an earlier batch left)."""
        self._slots = grown(self._slots, n_rows)
        self._slots[rows] = np.arange(len(rows), dtype=np.int32)
        return self._slots

    def marked(self, rows: np.ndarray, n_rows: int) -> np.ndarray:
        """An all-rows mask true at `rows`; hand it back with `unmark(rows)`."""
        self._mask = grown(self._mask, n_rows)
        self._mask[rows] = True
        return self._mask

    def unmark(self, rows: np.ndarray) -> None:
        self._mask[rows] = False
