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

from typing import TYPE_CHECKING, Callable, Iterator, Optional, Tuple

import numpy as np

from ..bitmap_index import bitmap_of, rows_of
from ..events import Chunk, EventLog
from .ir import And, Compare, Const, EventValue, InSet, IsNull, Or, Predicate
from .vectors import codes_equal, compare_values, inset_values, leaf_codes

if TYPE_CHECKING:
    from ..shard import Shard
    from .row_events import RowEvents

Window = Tuple[Optional[int], Optional[int]]   # (since, until) µs, inclusive; None unbounded
PropValues = Callable[[str], Optional[np.ndarray]]  # a property's values for the events at hand

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


def values_for_rows(shard: "Shard", ev: EventValue, rows: np.ndarray,
                    pre: "RowEvents | None" = None) -> tuple[np.ndarray, np.ndarray]:
    """`value_arrays` for the sorted distinct `rows` only: each window slice is filtered
    to those rows before reducing (how a write batch's rows are re-checked cheaply).
    `pre`: the events of exactly these rows, gathered once for many conditions."""
    hit, vals = _matching_rows(shard, ev, ev.since, ev.until, want_values=ev.func != "count",
                               only=rows, pre=pre)
    slots = pre.slots(hit) if pre is not None else slots_of(rows, hit)
    values, has = _per_slot(ev.func, slots, vals, len(rows))
    alive = shard.index.alive[rows]
    return values, alive if has is None else alive & has


def slots_of(rows: np.ndarray, some: np.ndarray) -> np.ndarray:
    """Indices in the sorted `rows` of `some` of them. The dtypes must agree: numpy's
    searchsorted falls back to a generic comparison several times slower otherwise."""
    return np.searchsorted(rows, some.astype(rows.dtype, copy=False))


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


def sum_mask(shard: "Shard", p: Compare, rows: np.ndarray | None = None,
             pre: "RowEvents | None" = None) -> np.ndarray | None:
    """`event_sum(...) > c` (c >= 0) or `>= c` (c > 0): a profile without events has
    sum 0 there, which fails the test anyway, so presence need not be computed."""
    ev, op, value = p.field, p.op, p.value
    if ev.func != "sum" or isinstance(value, bool) or not (
            (op == ">" and value >= 0) or (op == ">=" and value > 0)):
        return None
    if rows is not None:
        sums, present = values_for_rows(shard, ev, rows, pre)
        return compare_values(op, value, sums, present)
    hit, vals = _matching_rows(shard, ev, ev.since, ev.until, want_values=True)
    sums = np.bincount(hit, weights=vals, minlength=shard.n_rows)
    return compare_values(op, value, sums, shard.index.alive[:shard.n_rows])


def shortcut_mask(shard: "Shard", p: Compare, rows: np.ndarray | None = None,
                  pre: "RowEvents | None" = None) -> np.ndarray | None:
    """Which rows (all, or the sorted distinct `rows`) satisfy `p`, without the general
    (values, presence) arrays, when it is an existence test in disguise or a sum test
    that needs no presence; else None."""
    found = existence_mask(shard, p, rows, pre)
    return found if found is not None else sum_mask(shard, p, rows, pre)


def existence_plan(p: Compare) -> tuple[Window, Window | None, bool] | None:
    """How `p` reads as an existence test (see the module doc), or None when it is not one:
    (narrow, within, positive). Positive: p holds where an event exists in `narrow`.
    Otherwise p holds where none does, on live rows (`within` None) or on rows with an
    event in `within`."""
    ev, op, value = p.field, p.op, p.value
    if isinstance(value, bool) or not isinstance(value, int):
        return None
    full = (ev.since, ev.until)
    if ev.func == "count":
        if (op, value) in ((">=", 1), (">", 0), ("!=", 0)):
            return full, None, True
        if (op, value) in (("=", 0), ("<", 1), ("<=", 0)):
            return full, None, False
        return None
    if ev.func not in ("first_seen", "last_seen") or op not in ("<", "<=", ">", ">="):
        return None
    # last_seen >= T: some event at/after T. last_seen < T: some event, none at/after T.
    # first_seen <= T: some event at/before T. first_seen > T: some event, none at/before T.
    if ev.func == "last_seen":
        bound = value if op in (">=", "<") else value + 1
        narrow, positive = (max(bound, ev.since if ev.since is not None else bound), ev.until), op in (">", ">=")
    else:
        bound = value if op in ("<=", ">") else value - 1
        narrow, positive = (ev.since, min(bound, ev.until if ev.until is not None else bound)), op in ("<", "<=")
    return narrow, (None if positive else full), positive


def existence_mask(shard: "Shard", p: Compare, rows: np.ndarray | None = None,
                   pre: "RowEvents | None" = None) -> np.ndarray | None:
    """The rows satisfying `p` when it is an existence test in disguise (see the module
    doc), computed without a per-row reduction; None when it is not one."""
    plan = existence_plan(p)
    if plan is None:
        return None
    (since, until), within, positive = plan
    narrow = _exists(shard, p.field, since, until, rows, pre)
    if positive:
        return narrow
    if within is None:
        live = shard.index.alive[:shard.n_rows] if rows is None else shard.index.alive[rows]
        return live & ~narrow
    return _exists(shard, p.field, within[0], within[1], rows, pre) & ~narrow


def scanned_windows(p: Compare | InSet | IsNull) -> list[Window]:
    """The windows of its type's events that evaluating the event leaf `p` on some rows
    reads (an unconditional all-time existence test reads only the log's member bitmap;
    an empty window reads nothing)."""
    ev = p.field
    plan = existence_plan(p) if isinstance(p, Compare) else None
    wanted = [(ev.since, ev.until)] if plan is None else [w for w in plan[:2] if w is not None]
    return [w for w in wanted if not (w == (None, None) and ev.where is None)
            and not (w[0] is not None and w[1] is not None and w[0] > w[1])]


def _exists(shard: "Shard", ev: EventValue, since: int | None, until: int | None,
            rows: np.ndarray | None, pre: "RowEvents | None" = None) -> np.ndarray:
    """Which live rows (all, or `rows`) have at least one matching event in [since, until]."""
    n = shard.n_rows
    log = shard.events.log(ev.type)
    if rows is not None:
        rows_bm = pre.bitmap if pre is not None else bitmap_of(rows)
        if log is None or not log.members.intersect(rows_bm):
            return np.zeros(len(rows), dtype=bool)
        if since is None and until is None and ev.where is None:
            hit = rows_of(log.members & rows_bm)
        else:
            hit, _ = _matching_rows(shard, ev, since, until, want_values=False, only=rows, pre=pre)
        found = np.zeros(len(rows), dtype=bool)
        found[pre.slots(hit) if pre is not None else slots_of(rows, hit)] = True  # hits ⊆ rows
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
                   want_values: bool, only: np.ndarray | None = None, pre: "RowEvents | None" = None
                   ) -> tuple[np.ndarray, np.ndarray | None]:
    """Rows (and the reduced-over values) of the events matching `ev` in [since, until],
    only of the sorted distinct rows `only` when given (each window slice is filtered
    to them; nothing is scanned when none of them has an event of the type, e.g. brand-
    new profiles). `pre` (the events of exactly `only`, gathered once) answers instead
    of the log when it covers the window."""
    if pre is not None:
        found = pre.matching(ev, since, until, want_values)
        if found is not None:
            return found
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
        yield chunk, sl, None if where is None else condition_mask(log, where, chunk.ts[sl],
                                                                   _sliced_props(chunk, sl))


def _sliced_props(chunk: Chunk, sl: slice) -> PropValues:
    def values(name: str) -> np.ndarray | None:
        stored = chunk.props.get(name)
        return None if stored is None else stored[sl]
    return values


def condition_mask(log: EventLog | None, p: Predicate, ts: np.ndarray, props: PropValues) -> np.ndarray:
    """Which events (their `ts`, and `props(name)`: a property's values, None when no
    event has it) satisfy a normalised property condition (TRUE only). Properties are
    float64 (NaN absent) or codes of `log`'s dictionaries (-1 absent)."""
    n = len(ts)
    if isinstance(p, Const):
        return np.full(n, p.value, dtype=bool)
    if isinstance(p, And):
        out = condition_mask(log, p.children[0], ts, props)
        for kid in p.children[1:]:
            out &= condition_mask(log, kid, ts, props)
        return out
    if isinstance(p, Or):
        out = condition_mask(log, p.children[0], ts, props)
        for kid in p.children[1:]:
            out |= condition_mask(log, kid, ts, props)
        return out
    if p.field == "ts":
        return _leaf_on_values(p, ts, np.ones(n, dtype=bool))
    values = props(p.field)
    if values is None:  # absent on every event: only IS NULL holds
        return np.full(n, isinstance(p, IsNull) and not p.negated, dtype=bool)
    if values.dtype.kind == "f":
        return _leaf_on_values(p, values, ~np.isnan(values))
    present = values >= 0
    if isinstance(p, IsNull):
        return present if p.negated else ~present
    assert log is not None  # codes come from a log's dictionary
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

