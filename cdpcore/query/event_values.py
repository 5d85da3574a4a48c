"""Event values on one shard: `EventValue` → a per-row array, from window slices only.

A window is one binary search per time-sorted chunk (`Chunk.window`); the condition is
evaluated on the slice's property arrays; what survives is reduced per profile row with
`np.bincount` (count, sum, avg) or `ufunc.at` (min, max, first/last seen). Tests that only
ask whether an event exists — `event_count(...) >= 1`, `= 0`, and comparisons of
first/last_seen with a time, which are existence tests over a narrower window — skip the
per-row reduction: `last_seen('app_open') < T` is "has an app_open" minus "has one at or
after T", and the first part is the log's member bitmap, so only the events after T are
touched.
"""
from __future__ import annotations

from typing import TYPE_CHECKING, Callable, Iterator

import numpy as np

from ..bitmap_index import bitmap_of, rows_of
from ..events import Chunk, EventLog
from .ir import And, Compare, Const, EventValue, InSet, IsNull, Or, Predicate
from .vectors import codes_equal, compare_values, inset_values, leaf_codes

if TYPE_CHECKING:
    from ..shard import Shard

INT64_MIN, INT64_MAX = int(np.iinfo(np.int64).min), int(np.iinfo(np.int64).max)
_EXTREME: dict[str, tuple[Callable, bool]] = {  # func → (ufunc, reads ts instead of prop)
    "min": (np.minimum, False), "max": (np.maximum, False),
    "first_seen": (np.minimum, True), "last_seen": (np.maximum, True),
}


def value_arrays(shard: "Shard", ev: EventValue) -> tuple[np.ndarray, np.ndarray]:
    """(values, present) over the shard's rows; present ⊆ live rows. Counts are int64,
    sums/avg/min/max float64, first/last seen int64 µs."""
    n = shard.n_rows
    rows, vals = _matching_rows(shard, ev, ev.since, ev.until, want_values=ev.func != "count")
    values, has = _per_slot(ev.func, rows, vals, n)
    alive = shard.index.alive[:n]
    return values, alive if has is None else alive & has


def values_for_rows(shard: "Shard", ev: EventValue, rows: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """`value_arrays` for the sorted distinct `rows` only: each window slice is filtered
    to those rows before reducing (how a write batch's rows are re-checked cheaply)."""
    hit, vals = _matching_rows(shard, ev, ev.since, ev.until, want_values=ev.func != "count",
                               only=rows)
    values, has = _per_slot(ev.func, np.searchsorted(rows, hit), vals, len(rows))
    alive = shard.index.alive[rows]
    return values, alive if has is None else alive & has


def _per_slot(func: str, slots: np.ndarray, vals: np.ndarray | None, k: int
              ) -> tuple[np.ndarray, np.ndarray | None]:
    """Reduce the matching events into k slots: (values, slot has events or None when
    the value is never null)."""
    if func == "count":
        return np.bincount(slots, minlength=k), None
    if func == "avg":
        counts = np.bincount(slots, minlength=k)
        sums = np.bincount(slots, weights=vals, minlength=k)
        return sums / np.maximum(counts, 1), counts > 0
    if func == "sum":
        seen = np.zeros(k, dtype=bool)
        seen[slots] = True  # a bool scatter: 3x cheaper than counting
        return np.bincount(slots, weights=vals, minlength=k), seen
    ufunc, reads_ts = _EXTREME[func]
    if reads_ts:  # no real ts is INT64_MIN/MAX, no real property ±inf: the fill marks "none"
        fill = INT64_MAX if ufunc is np.minimum else INT64_MIN
        out = np.full(k, fill, dtype=np.int64)
    else:
        fill = np.inf if ufunc is np.minimum else -np.inf
        out = np.full(k, fill)
    ufunc.at(out, slots, vals)
    return out, out != fill


def sum_mask(shard: "Shard", p: Compare, rows: np.ndarray | None = None) -> np.ndarray | None:
    """`event_sum(...) > c` (c >= 0) or `>= c` (c > 0): a profile without events has
    sum 0 there, which fails the test anyway, so presence need not be computed."""
    ev, op, value = p.field, p.op, p.value
    if ev.func != "sum" or isinstance(value, bool) or not (
            (op == ">" and value >= 0) or (op == ">=" and value > 0)):
        return None
    if rows is not None:
        sums, present = values_for_rows(shard, ev, rows)
        return compare_values(op, value, sums, present)
    hit, vals = _matching_rows(shard, ev, ev.since, ev.until, want_values=True)
    sums = np.bincount(hit, weights=vals, minlength=shard.n_rows)
    return compare_values(op, value, sums, shard.index.alive[:shard.n_rows])


def shortcut_mask(shard: "Shard", p: Compare, rows: np.ndarray | None = None) -> np.ndarray | None:
    """Which rows (all, or the sorted distinct `rows`) satisfy `p`, without the general
    (values, presence) arrays, when it is an existence test in disguise or a sum test
    that needs no presence; else None."""
    found = existence_mask(shard, p, rows)
    return found if found is not None else sum_mask(shard, p, rows)


def existence_mask(shard: "Shard", p: Compare, rows: np.ndarray | None = None) -> np.ndarray | None:
    """The rows satisfying `p` when it is an existence test in disguise (see the module
    doc), computed without a per-row reduction; None when it is not one."""
    ev, op, value = p.field, p.op, p.value
    if isinstance(value, bool) or not isinstance(value, int):
        return None
    live = shard.index.alive[:shard.n_rows] if rows is None else shard.index.alive[rows]
    if ev.func == "count":
        if (op, value) in ((">=", 1), (">", 0), ("!=", 0)):
            return _exists(shard, ev, ev.since, ev.until, rows)
        if (op, value) in (("=", 0), ("<", 1), ("<=", 0)):
            return live & ~_exists(shard, ev, ev.since, ev.until, rows)
        return None
    if ev.func not in ("first_seen", "last_seen") or op not in ("<", "<=", ">", ">="):
        return None
    # last_seen >= T: some event at/after T. last_seen < T: some event, none at/after T.
    # first_seen <= T: some event at/before T. first_seen > T: some event, none at/before T.
    if ev.func == "last_seen":
        bound = value if op in (">=", "<") else value + 1
        since, until, positive = max(bound, ev.since if ev.since is not None else bound), ev.until, op in (">", ">=")
    else:
        bound = value if op in ("<=", ">") else value - 1
        since, until, positive = ev.since, min(bound, ev.until if ev.until is not None else bound), op in ("<", "<=")
    narrow = _exists(shard, ev, since, until, rows)
    if positive:
        return narrow
    return _exists(shard, ev, ev.since, ev.until, rows) & ~narrow


def _exists(shard: "Shard", ev: EventValue, since: int | None, until: int | None,
            rows: np.ndarray | None) -> np.ndarray:
    """Which live rows (all, or `rows`) have at least one matching event in [since, until]."""
    n = shard.n_rows
    log = shard.events.log(ev.type)
    if rows is not None:
        if log is None or not log.members.intersect(bitmap_of(rows)):
            return np.zeros(len(rows), dtype=bool)
        if since is None and until is None and ev.where is None:
            hit = rows_of(log.members & bitmap_of(rows))
        else:
            hit, _ = _matching_rows(shard, ev, since, until, want_values=False, only=rows)
        found = np.zeros(len(rows), dtype=bool)
        found[np.searchsorted(rows, hit)] = True  # every hit is one of the sorted rows
        return shard.index.alive[rows] & found
    mask = np.zeros(n, dtype=bool)
    if log is None:
        return mask
    if since is None and until is None and ev.where is None:
        mask[rows_of(log.members)] = True
    else:
        hit, _ = _matching_rows(shard, ev, since, until, want_values=False)
        mask[hit] = True
    return mask & shard.index.alive[:n]


def _matching_rows(shard: "Shard", ev: EventValue, since: int | None, until: int | None,
                   want_values: bool, only: np.ndarray | None = None
                   ) -> tuple[np.ndarray, np.ndarray | None]:
    """Rows (and the reduced-over values) of the events matching `ev` in [since, until],
    only of the sorted distinct rows `only` when given (each window slice is filtered
    to them; nothing is scanned when none of them has an event of the type, e.g. brand-
    new profiles)."""
    log = shard.events.log(ev.type)
    rows_parts: list[np.ndarray] = []
    value_parts: list[np.ndarray] = []
    restrict = None
    if log is not None and only is not None:
        if log.members.intersect(bitmap_of(only)):
            restrict = np.zeros(shard.n_rows, dtype=bool)
            restrict[only] = True
        else:
            log = None
    if log is not None and (since is None or until is None or since <= until):
        for chunk, sl, keep in _slices(log, shard.alive_or_none(), since, until, ev.where):
            vals = None
            if want_values:
                if ev.func in ("first_seen", "last_seen"):
                    vals = chunk.ts[sl]
                else:
                    stored = chunk.props.get(ev.prop)
                    if stored is None:
                        continue  # no event in this chunk has the property
                    vals = stored[sl]
                    if ev.prop not in chunk.complete:
                        known = ~np.isnan(vals)
                        keep = known if keep is None else keep & known
            rows = chunk.rows[sl]
            if restrict is not None:
                wanted = restrict[rows]
                keep = wanted if keep is None else keep & wanted
            if keep is not None:
                rows = rows[keep]
                vals = vals[keep] if vals is not None else None
            rows_parts.append(rows)
            if vals is not None:
                value_parts.append(vals)
    rows = np.concatenate(rows_parts) if rows_parts else np.zeros(0, dtype=np.uint32)
    if not want_values:
        return rows, None
    dtype = np.int64 if ev.func in ("first_seen", "last_seen") else np.float64
    return rows, np.concatenate(value_parts) if value_parts else np.zeros(0, dtype=dtype)


def _slices(log: EventLog, alive: np.ndarray | None, since: int | None, until: int | None,
            where: Predicate | None) -> Iterator[tuple[Chunk, slice, np.ndarray | None]]:
    """(chunk, window slice, condition mask over the slice or None) per overlapping chunk."""
    for chunk in log.sealed(alive):
        if not chunk.overlaps(since, until):
            continue
        sl = chunk.window(since, until)
        if sl.start == sl.stop:
            continue
        yield chunk, sl, None if where is None else condition_mask(log, chunk, sl, where)


def condition_mask(log: EventLog, chunk: Chunk, sl: slice, p: Predicate) -> np.ndarray:
    """Which events of chunk[sl] satisfy a normalised property condition (TRUE only)."""
    n = sl.stop - sl.start
    if isinstance(p, Const):
        return np.full(n, p.value, dtype=bool)
    if isinstance(p, And):
        out = condition_mask(log, chunk, sl, p.children[0])
        for kid in p.children[1:]:
            out &= condition_mask(log, chunk, sl, kid)
        return out
    if isinstance(p, Or):
        out = condition_mask(log, chunk, sl, p.children[0])
        for kid in p.children[1:]:
            out |= condition_mask(log, chunk, sl, kid)
        return out
    if p.field == "ts":
        return _leaf_on_values(p, chunk.ts[sl], np.ones(n, dtype=bool))
    stored = chunk.props.get(p.field)
    if stored is None:  # absent on every event of the chunk: only IS NULL holds
        return np.full(n, isinstance(p, IsNull) and not p.negated, dtype=bool)
    values = stored[sl]
    if stored.dtype.kind == "f":
        return _leaf_on_values(p, values, ~np.isnan(values))
    present = values >= 0
    if isinstance(p, IsNull):
        return present if p.negated else ~present
    target, negated = leaf_codes(log.dictionaries[p.field], p)
    hit = codes_equal(values, target)
    return present & ~hit if negated else hit


def _leaf_on_values(p: Predicate, values: np.ndarray, present: np.ndarray) -> np.ndarray:
    if isinstance(p, IsNull):
        return present if p.negated else ~present
    if isinstance(p, Compare):
        return compare_values(p.op, p.value, values, present)
    if isinstance(p, InSet):
        return inset_values(p, values, present)
    raise TypeError(f"unsupported event condition {p!r}")  # the parser refuses the rest

