"""CandidateRows represents one write batch's candidate rows on a shard and the tests
made on them while many saved segments are re-checked: each column is gathered once,
each distinct leaf or sub-expression is evaluated once (segments of one workload share
many, e.g. `country = 'JP'`), and each event type's events of the rows are gathered
once (`RowEvents`), however many segments read them.

Results are bool arrays over the rows: TRUE of the normalised predicate (NOT is pushed
into the leaves, so AND/OR of the leaves' TRUE masks is the three-valued answer), the
same as `Evaluator.filter_rows` on the same rows. Tests reading segment membership
(`in_segment`) are remembered only until a membership changes (`segments_changed`),
since segments are re-checked one after the other in dependency order.
"""
from __future__ import annotations

from typing import TYPE_CHECKING, Mapping

import numpy as np
from pyroaring import BitMap

from ..bitmap_index import bitmap_of, rows_of
from ..column import NumericColumn, StringColumn, TagSetColumn
from ..schema import ID_FIELD
from .event_values import Window
from .executor import Evaluator
from .ir import And, Compare, Const, EventValue, Has, InSegment, InSet, Like, Or, Predicate
from .row_events import RowEvents
from .scratch import Scratch
from .vectors import codes_equal, compare_values, inset_values

if TYPE_CHECKING:
    from ..shard import Shard


class CandidateRows:
    """Tests over the sorted distinct `rows` of one shard, remembered for the batch
    (caller holds the shard lock; nothing may be written meanwhile but memberships).
    `subset` gives the same for some of the rows, sharing this one's event gathers."""

    def __init__(self, shard: "Shard", rows: np.ndarray, windows: Mapping[str, Window],
                 scratch: Scratch | None = None,
                 parent: "tuple[CandidateRows, np.ndarray] | None" = None) -> None:
        self.shard = shard
        self.rows = rows
        self.bitmap = bitmap_of(rows)
        self.ev = parent[0].ev if parent is not None else Evaluator(shard)
        self._scratch = scratch or Scratch()
        self.events = RowEvents(shard, rows, self.bitmap, windows, self.slots,
                                None if parent is None else (parent[0].events, parent[1]), self._scratch)
        self._parent = parent
        self._windows = windows
        self._subsets: dict[bytes, CandidateRows] = {}
        self._memo: dict[Predicate, np.ndarray] = {}
        self._segment_memo: dict[Predicate, np.ndarray] = {}  # nodes reading memberships
        self._gathered: dict[str, tuple[np.ndarray, np.ndarray]] = {}
        self._alive: np.ndarray | None = None
        self._table: np.ndarray | None = None   # row → index (see `slots`)

    def __len__(self) -> int:
        return len(self.rows)

    def alive(self) -> np.ndarray:
        if self._alive is None:
            self._alive = self.shard.index.alive[self.rows]
        return self._alive

    def test(self, p: Predicate | None) -> np.ndarray:
        """Which rows satisfy `p` (None: every live row). The array is shared: read only."""
        if p is None:
            return self.alive()
        found = self._memo.get(p)
        if found is None and self._segment_memo:
            found = self._segment_memo.get(p)
        if found is None:
            found, reads_segments = self._compute(p)
            (self._segment_memo if reads_segments else self._memo)[p] = found
        return found

    def in_bitmap(self, bm: BitMap) -> np.ndarray:
        """Which rows are in `bm`: the cost follows the rows, not the bitmap."""
        out = np.zeros(len(self.rows), dtype=bool)
        hit = bm & self.bitmap
        if hit:
            out[self.slots(rows_of(hit))] = True
        return out

    def slots(self, some: np.ndarray) -> np.ndarray:
        """The indices among the rows of `some` of them, from a row → index table (the
        shard's scratch one): a gather is ~10x faster than a binary search per row,
        whose random probes miss the cache. A subset maps its parent's indices."""
        if self._table is None:
            if self._parent is None:
                self._table = self._scratch.slot_table(self.rows, self.shard.n_rows)
            else:
                self._table = np.cumsum(self._parent[1], dtype=np.int32) - 1
        if self._parent is None:
            return self._table[some]
        return self._table[self._parent[0].slots(some)]

    def subset(self, mask: np.ndarray) -> "CandidateRows":
        """The candidates where `mask`, remembered: segments re-checked on the same rows
        share their tests, and a segment to re-check on a few of the rows (say, the new
        profiles of an event batch) costs what those rows cost, not what all do."""
        if mask.all():
            return self
        key = np.packbits(mask).tobytes()
        found = self._subsets.get(key)
        if found is None:
            found = self._subsets[key] = CandidateRows(self.shard, self.rows[mask], self._windows, self._scratch,
                                                       (self, mask))
        return found

    def segments_changed(self) -> None:
        """A membership changed: forget what was computed from memberships."""
        self._segment_memo.clear()
        for sub in self._subsets.values():
            sub.segments_changed()

    # ---- evaluation -------------------------------------------------------------------
    def _compute(self, p: Predicate) -> tuple[np.ndarray, bool]:
        """(result, whether it read a membership)."""
        if isinstance(p, And):
            return self._combine(p, np.logical_and, stop=lambda acc: not np.count_nonzero(acc))
        if isinstance(p, Or):
            return self._combine(p, np.logical_or, stop=lambda acc: np.count_nonzero(acc) == len(acc))
        if isinstance(p, InSegment):
            return self._in_segment(p), True
        return self._leaf(p), False

    def _combine(self, p: And | Or, op, stop) -> tuple[np.ndarray, bool]:
        """AND/OR of the children, cheap ones first; once the answer is settled (nothing
        left for AND, everything for OR) the rest, e.g. event scans, are skipped."""
        acc: np.ndarray | None = None
        reads_segments = False
        for kid in sorted(p.children, key=_cost):
            got = self.test(kid)
            reads_segments = reads_segments or _reads_segments(kid)
            acc = got if acc is None else op(acc, got)
            if stop(acc):
                break
        assert acc is not None  # normalised And/Or have children
        return acc, reads_segments

    def _in_segment(self, p: InSegment) -> np.ndarray:
        hit = self.in_bitmap(self.shard.segments.members(p.name))
        return self.alive() & ~hit if p.negated else hit

    def _leaf(self, p: Predicate) -> np.ndarray:
        if isinstance(p, Const):
            return np.full(len(self.rows), p.value, dtype=bool)
        if isinstance(getattr(p, "field", None), EventValue):
            return self.ev.filter_event_leaf(p, self.rows, self.events)
        col = None if p.field == ID_FIELD else self.shard.column_for(p.field)
        if isinstance(col, NumericColumn) and isinstance(p, (Compare, InSet)):
            vals, present = self._numeric(p.field, col)
            if isinstance(p, Compare):
                return compare_values(p.op, p.value, vals, present)
            return inset_values(p, vals, present)
        if isinstance(col, StringColumn) and isinstance(p, (Compare, InSet, Like)):
            codes = self._codes(p.field, col)
            target, negated = self.ev.string_codes(col, p)
            hit = codes_equal(codes, target)
            return (codes >= 0) & ~hit if negated else hit
        if isinstance(col, TagSetColumn) and isinstance(p, Has):
            return self._has(col, p)
        # the rest (id tests, IS NULL, fields this shard never stored): the executor's way
        return self.ev.filter_rows(p, self.rows)

    def _has(self, col: TagSetColumn, p: Has) -> np.ndarray:
        """Tag tests from the tags' bitmaps cut to the rows (never a union over the shard)."""
        codes = [col.dictionary.code(t) for t in p.tags]
        parts = [col.index.bitmaps[c] & self.bitmap if 0 <= c < len(col.index.bitmaps) else BitMap()
                 for c in codes]
        if p.mode == "all":
            hit = BitMap.intersection(*parts) if parts else BitMap()
        else:
            hit = BitMap.union(*parts) if parts else BitMap()
        found = self.in_bitmap(hit)
        if not p.negated:
            return found
        return self._present(col) & ~found

    def _numeric(self, name: str, col: NumericColumn) -> tuple[np.ndarray, np.ndarray]:
        found = self._gathered.get(name)
        if found is None:
            found = self._gathered[name] = (col.values[self.rows], col.present[self.rows])
        return found

    def _codes(self, name: str, col: StringColumn) -> np.ndarray:
        found = self._gathered.get(name)
        if found is None:
            codes = col.codes[self.rows]
            found = self._gathered[name] = (codes, codes >= 0)
        return found[0]

    def _present(self, col: TagSetColumn) -> np.ndarray:
        return col.present[self.rows]


def _cost(p: Predicate) -> int:
    """Order of evaluation within AND/OR: event conditions scan events, so they go last."""
    if isinstance(p, (And, Or)):
        return max(map(_cost, p.children))
    return 1 if isinstance(getattr(p, "field", None), EventValue) else 0


def _reads_segments(p: Predicate) -> bool:
    if isinstance(p, (And, Or)):
        return any(map(_reads_segments, p.children))
    return isinstance(p, InSegment)
