"""Predicate evaluation on one shard: IR (normalised, no Not) → RowSet.

Each leaf picks its natural form: string and tag tests OR/AND dictionary bitmaps,
numeric tests scan the column into a mask. `And` evaluates its children most-selective
first and, once the candidate set is small, evaluates the rest only on the candidates'
gathered values (`filter_rows`) instead of scanning whole columns.
"""
from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

from ..arrays import distinct
from ..bitmap_index import rows_of
from ..column import NumericColumn, StringColumn, TagSetColumn
from ..ids import EncodedIds
from ..schema import ID_FIELD
from .ir import And, Compare, Const, EventValue, Has, InSegment, InSet, IsNull, Like, Or, Predicate
from . import event_values
from .rowset import RowSet, intersect, union, without
from .vectors import SCAN_CODES, codes_equal, compare_values, inset_values, leaf_codes

if TYPE_CHECKING:
    from ..shard import Shard
    from .row_events import RowEvents

# And switches from full scans to filtering gathered candidates below these densities.
# Measured here: a fancy-index gather costs ~4 ns per element, a column scan ~0.25 ns;
# a mask must be listed (flatnonzero, a full pass) before it can be gathered from.
FILTER_FRACTION = 1 / 32
MASK_FILTER_FRACTION = 1 / 256
# Event leaves are ordered after attribute tests: their cost is a pass over a window's
# events whatever their selectivity, so cheap attribute tests go first.
_EVENT_ESTIMATE = 0.9
# Candidates fewer than n / this are checked against window slices filtered to them
# (a gather per event in the window) instead of per-row arrays over the whole shard.
RESTRICTED_EVENT_FRACTION = 8
_SAMPLE = 512       # rows sampled to estimate a numeric predicate's selectivity


class Evaluator:
    """Evaluates predicates against one shard's current rows (caller holds the lock)."""

    def __init__(self, shard: "Shard") -> None:
        self.shard = shard
        self.n = shard.n_rows
        self._codes_cache: dict[Predicate, tuple[np.ndarray, bool]] = {}
        self._event_cache: dict[EventValue, tuple[np.ndarray, np.ndarray]] = {}
        self._estimates: dict[Predicate, float] = {}

    # ---- full evaluation ------------------------------------------------------------
    def evaluate(self, p: Predicate | None) -> RowSet:
        if p is None:
            return self.all_rows()
        return _EVAL[type(p)](self, p)

    def visible(self, p: Predicate | None) -> RowSet:
        """The rows a query answers with: matching rows of the slots this shard owns
        (segment upkeep evaluates foreign rows too; queries never see them)."""
        return without(self.evaluate(p), self.shard.foreign)

    def all_rows(self) -> RowSet:
        return RowSet(self.n, mask=self.shard.index.alive[:self.n])

    def _const(self, p: Const) -> RowSet:
        return self.all_rows() if p.value else RowSet.empty(self.n)

    def _and(self, p: And) -> RowSet:
        kids = sorted(p.children, key=self.estimate)
        acc = self.evaluate(kids[0])
        for i, kid in enumerate(kids[1:], start=1):
            if acc.count() == 0:
                return acc
            if self._worth_filtering(acc):
                rows = acc.rows()
                keep = self.filter_rows(And(tuple(kids[i:])), rows)
                return RowSet(self.n, rows=rows[keep])
            acc = intersect(acc, self.evaluate(kid))
        return acc

    def _worth_filtering(self, acc: RowSet) -> bool:
        """Gathering the candidates' values beats scanning whole columns when they are
        few; a mask must first be listed (a full pass), so it has to be much sparser."""
        limit = MASK_FILTER_FRACTION if acc.has_mask else FILTER_FRACTION
        return acc.count() <= self.n * limit

    def _or(self, p: Or) -> RowSet:
        acc = self.evaluate(p.children[0])
        for kid in p.children[1:]:
            acc = union(acc, self.evaluate(kid))
        return acc

    def event_arrays(self, ev: EventValue) -> tuple[np.ndarray, np.ndarray]:
        """(values, present) of an event value over all rows, computed once per query."""
        found = self._event_cache.get(ev)
        if found is None:
            found = self._event_cache[ev] = event_values.value_arrays(self.shard, ev)
        return found

    def _event_leaf(self, p: Compare | InSet | IsNull) -> RowSet:
        if isinstance(p, Compare):
            mask = event_values.shortcut_mask(self.shard, p)
            if mask is not None:
                return RowSet(self.n, mask=mask)
        vals, present = self.event_arrays(p.field)
        return RowSet(self.n, mask=_event_test(p, vals, present, self.shard.index.alive[:self.n]))

    def filter_event_leaf(self, p: Compare | InSet | IsNull, rows: np.ndarray,
                          pre: "RowEvents | None" = None) -> np.ndarray:
        """An event leaf on candidate rows: from the full arrays when this query has them
        (or the candidates are many), else from the window slices filtered to the rows
        (`pre`: those rows' events, gathered once for many leaves)."""
        if p.field in self._event_cache or len(rows) * RESTRICTED_EVENT_FRACTION > self.n:
            vals, present = self.event_arrays(p.field)
            vals, present = vals[rows], present[rows]
        else:
            if isinstance(p, Compare):
                found = event_values.shortcut_mask(self.shard, p, rows, pre)
                if found is not None:
                    return found
            vals, present = event_values.values_for_rows(self.shard, p.field, rows, pre)
        return _event_test(p, vals, present, self.shard.index.alive[rows])

    def _compare(self, p: Compare) -> RowSet:
        if isinstance(p.field, EventValue):
            return self._event_leaf(p)
        if p.field == ID_FIELD:
            return self._ids(p.op == "!=", (p.value,))
        col = self.shard.column_for(p.field)
        if isinstance(col, StringColumn):
            return self._codes_rowset(col, p)
        if col is None:
            return RowSet.empty(self.n)
        return RowSet(self.n, mask=compare_values(p.op, p.value, col.values[:self.n], col.present[:self.n]))

    def _inset(self, p: InSet) -> RowSet:
        if isinstance(p.field, EventValue):
            return self._event_leaf(p)
        if p.field == ID_FIELD:
            return self._ids(p.negated, p.values)
        col = self.shard.column_for(p.field)
        if isinstance(col, StringColumn):
            return self._codes_rowset(col, p)
        if col is None:
            return RowSet.empty(self.n)
        vals, present = col.values[:self.n], col.present[:self.n]
        return RowSet(self.n, mask=inset_values(p, vals, present))

    def _like(self, p: Like) -> RowSet:
        col = self.shard.column_for(p.field)
        if not isinstance(col, StringColumn):
            return RowSet.empty(self.n)
        return self._codes_rowset(col, p)

    def _isnull(self, p: IsNull) -> RowSet:
        if isinstance(p.field, EventValue):
            return self._event_leaf(p)
        col = self.shard.column_for(p.field)
        if col is None:
            return RowSet.empty(self.n) if p.negated else self.all_rows()
        present = col.present_mask(self.n)
        live = self.shard.index.alive[:self.n]
        return RowSet(self.n, mask=present if p.negated else live & ~present)

    def _has(self, p: Has) -> RowSet:
        col = self.shard.column_for(p.field)
        if not isinstance(col, TagSetColumn):
            return RowSet.empty(self.n)
        bm = self._tags_bitmap(col, p)
        if not p.negated:
            return RowSet(self.n, bm=bm)
        return _without(col.present_mask(self.n), rows_of(bm))

    def _in_segment(self, p: InSegment) -> RowSet:
        bm = self.shard.segments.members(p.name)
        if not p.negated:
            return RowSet(self.n, bm=bm)
        return _without(self.shard.index.alive[:self.n], rows_of(bm))

    # ---- helpers for string / tag / id leaves ---------------------------------------
    def string_codes(self, col: StringColumn, p: Predicate) -> tuple[np.ndarray, bool]:
        """(codes of the leaf's positive test, negated), cached per evaluation:
        `city != 'x'` is the negation of `city = 'x'`, not a union of every other city."""
        found = self._codes_cache.get(p)
        if found is None:
            found = self._codes_cache[p] = leaf_codes(col.dictionary, p)
        return found

    def _codes_rowset(self, col: StringColumn, p: Predicate) -> RowSet:
        codes, negated = self.string_codes(col, p)
        if not negated:
            return RowSet(self.n, bm=col.index.union(codes))
        present = col.present_mask(self.n)
        if len(codes) <= SCAN_CODES:  # a scan of 1–2-byte codes beats complementing bitmaps
            return RowSet(self.n, mask=present & ~codes_equal(col.codes[:self.n], codes))
        return _without(present, rows_of(col.index.union(codes)))

    @staticmethod
    def _tags_bitmap(col: TagSetColumn, p: Has):
        codes = [col.dictionary.code(t) for t in p.tags]
        if p.mode == "all":
            return col.index.intersection(np.array(codes, dtype=np.int64))
        return col.index.union(np.array([c for c in codes if c >= 0], dtype=np.int64))

    def _id_rows(self, values: tuple) -> np.ndarray:
        ids = [v for v in values if isinstance(v, str) and v]
        if not ids:
            return np.zeros(0, dtype=np.int64)
        rows = self.shard.index.lookup(EncodedIds.encode(ids))
        return distinct(rows[rows >= 0])

    def _ids(self, negated: bool, values: tuple) -> RowSet:
        rows = self._id_rows(values)
        if not negated:
            return RowSet(self.n, rows=rows)
        return _without(self.shard.index.alive[:self.n], rows)

    # ---- selectivity estimates -------------------------------------------------------
    def estimate(self, p: Predicate) -> float:
        """Rough fraction of rows matching, used only to order And children (memoised:
        segment upkeep orders the same leaves for many segments and batches)."""
        found = self._estimates.get(p)
        if found is None:
            found = self._estimates[p] = self._estimate(p)
        return found

    def _estimate(self, p: Predicate) -> float:
        n = max(self.n, 1)
        if isinstance(getattr(p, "field", None), EventValue):
            return _EVENT_ESTIMATE
        if isinstance(p, (Compare, InSet, Like)):
            if p.field == ID_FIELD:
                return 0.0 if not getattr(p, "negated", False) and getattr(p, "op", "=") == "=" else 1.0
            col = self.shard.column_for(p.field)
            if isinstance(col, StringColumn):
                codes, negated = self.string_codes(col, p)
                frac = col.index.cardinality(codes) / n
                return 1.0 - frac if negated else frac
            return self._sampled(p)
        if isinstance(p, InSegment):
            frac = len(self.shard.segments.members(p.name)) / n
            return 1.0 - frac if p.negated else frac
        if isinstance(p, Has):
            col = self.shard.column_for(p.field)
            if isinstance(col, TagSetColumn) and not p.negated:
                cards = [len(col.index.bitmaps[c]) for c in map(col.dictionary.code, p.tags) if c >= 0]
                return (min(cards, default=0) if p.mode == "all" else sum(cards)) / n
            return 0.7
        if isinstance(p, And):
            return min(map(self.estimate, p.children))
        if isinstance(p, Or):
            return min(1.0, sum(map(self.estimate, p.children)))
        if isinstance(p, Const):
            return 1.0 if p.value else 0.0
        return self._sampled(p)

    def _sampled(self, p: Predicate) -> float:
        """Selectivity measured on an evenly spaced sample of rows (a few µs)."""
        if self.n == 0:
            return 0.0
        sample = np.arange(0, self.n, max(1, self.n // _SAMPLE), dtype=np.int64)
        return float(np.count_nonzero(self._filter_leaf(p, sample))) / len(sample)

    # ---- evaluation restricted to candidate rows -------------------------------------
    def filter_rows(self, p: Predicate, rows: np.ndarray) -> np.ndarray:
        """Bool array: which of the sorted `rows` satisfy `p`."""
        if isinstance(p, And):
            keep = np.ones(len(rows), dtype=bool)
            for kid in sorted(p.children, key=self.estimate):
                idx = np.flatnonzero(keep)
                if not idx.size:
                    break
                keep[idx] = self.filter_rows(kid, rows[idx])
            return keep
        if isinstance(p, Or):
            keep = np.zeros(len(rows), dtype=bool)
            for kid in p.children:
                idx = np.flatnonzero(~keep)
                if not idx.size:
                    break
                keep[idx] = self.filter_rows(kid, rows[idx])
            return keep
        return self._filter_leaf(p, rows)

    def _filter_leaf(self, p: Predicate, rows: np.ndarray) -> np.ndarray:
        if isinstance(p, Const):
            return np.full(len(rows), p.value, dtype=bool)
        if isinstance(getattr(p, "field", None), EventValue):
            return self.filter_event_leaf(p, rows)
        if isinstance(p, InSegment):
            hit = RowSet(self.n, bm=self.shard.segments.members(p.name)).contains(rows)
            return self.shard.index.alive[rows] & ~hit if p.negated else hit
        col = None if p.field == ID_FIELD else self.shard.column_for(p.field)
        if isinstance(col, NumericColumn) and isinstance(p, (Compare, InSet)):
            vals, present = col.values[rows], col.present[rows]
            if isinstance(p, Compare):
                return compare_values(p.op, p.value, vals, present)
            return inset_values(p, vals, present)
        if isinstance(col, StringColumn) and isinstance(p, (Compare, InSet, Like)):
            codes = col.codes[rows]
            target, negated = self.string_codes(col, p)
            hit = codes_equal(codes, target)
            return (codes >= 0) & ~hit if negated else hit
        if isinstance(p, IsNull) and col is not None:
            present = col.present_mask(self.n)[rows]
            return present if p.negated else ~present
        # Bitmap-backed leaves (tags, ids, missing columns): evaluate fully, test membership.
        return self.evaluate(p).contains(rows)


def _event_test(p: Compare | InSet | IsNull, vals: np.ndarray, present: np.ndarray,
                live: np.ndarray) -> np.ndarray:
    """An event leaf on (values, present) arrays; `live` (the same rows' liveness) is
    what `IS NULL` holds for where no value is present."""
    if isinstance(p, IsNull):
        return present if p.negated else live & ~present
    if isinstance(p, Compare):
        return compare_values(p.op, p.value, vals, present)
    return inset_values(p, vals, present)


def _without(mask: np.ndarray, rows: np.ndarray) -> RowSet:
    """The rows of `mask` other than `rows`: how negated bitmap tests become masks."""
    out = mask.copy()
    out[rows] = False
    return RowSet(len(mask), mask=out)


_EVAL = {
    Const: Evaluator._const, And: Evaluator._and, Or: Evaluator._or,
    Compare: Evaluator._compare, InSet: Evaluator._inset, Like: Evaluator._like,
    IsNull: Evaluator._isnull, Has: Evaluator._has, InSegment: Evaluator._in_segment,
}

