"""RowEvents represents the events of a few rows of one shard (a write batch's candidate
rows), taken from each type's log once, so that every event condition re-checked on
those rows filters a small array instead of rescanning the log's window slices once
per condition (one scan per type per batch, not one per segment).

Per type, the rows' events inside one window (the widest any saved segment reads, given
up front; else the first one asked) are gathered chunk by chunk in the log's order: the
order the log scan visits them, so per-row sums come out bit for bit the same. A
request the gather cannot answer exactly (a window it does not cover; a property whose
chunks disagree on its representation) gets None, and the caller scans the log.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Callable, Iterator, Mapping

import numpy as np
from pyroaring import BitMap

from ..events import Chunk, EventLog
from .event_values import Window, condition_mask, scanned_windows, slots_of
from .ir import And, EventValue, Or, Predicate
from .scratch import Scratch

if TYPE_CHECKING:
    from ..shard import Shard

_NO_ROWS = np.zeros(0, dtype=np.uint32)
_NO_TS = np.zeros(0, dtype=np.int64)


class _Mixed(Exception):
    """A property stored as floats in some chunks and as codes in others."""


@dataclass
class _Gathered:
    """The candidate rows' events of one type within `window`, in log order; `parts`
    holds, per chunk, the positions gathered (for properties, gathered on demand)."""
    log: EventLog | None
    window: Window
    parts: list[tuple[Chunk, np.ndarray]]
    rows: np.ndarray
    ts: np.ndarray
    _props: dict[str, np.ndarray | None] = field(default_factory=dict)

    def prop(self, name: str) -> np.ndarray | None:
        """A property's values for the gathered events (None: no event has it)."""
        if name not in self._props:
            self._props[name] = self._gather_prop(name)
        return self._props[name]

    def _gather_prop(self, name: str) -> np.ndarray | None:
        stored = [c.props.get(name) for c, _ in self.parts]
        kinds = {s.dtype.kind == "f" for s in stored if s is not None}
        if not kinds:
            return None
        if len(kinds) > 1:
            raise _Mixed(name)
        floats = kinds.pop()
        return np.concatenate([s[pos] if s is not None else _absent(floats, len(pos))
                               for s, (_, pos) in zip(stored, self.parts)])

    def restricted(self, keep: np.ndarray) -> "_Gathered":
        """The gathered events where `keep` (order kept): those of a subset of the rows."""
        if not self.parts:
            return self
        cuts = np.cumsum([len(pos) for _, pos in self.parts])[:-1]
        parts = [(c, pos[k]) for (c, pos), k in zip(self.parts, np.split(keep, cuts))]
        return _Gathered(self.log, self.window, [(c, pos) for c, pos in parts if len(pos)],
                         self.rows[keep], self.ts[keep])


def _absent(floats: bool, n: int) -> np.ndarray:
    """What a chunk without the property holds for it (events.py's `_absent`)."""
    return np.full(n, np.nan) if floats else np.full(n, -1, dtype=np.int8)


class RowEvents:
    """The events of the sorted distinct `rows` (`bitmap`: the same rows), per type,
    gathered on first use (caller holds the shard lock). `slots` maps some of the rows
    to their indices in `rows` (default: a binary search). With `parent` (a RowEvents
    of more rows, and which of its rows these are), events are taken from the parent's
    gather instead of the log: subsets of a batch's rows scan the log once between them."""

    def __init__(self, shard: "Shard", rows: np.ndarray, bitmap: BitMap,
                 windows: Mapping[str, Window],
                 slots: Callable[[np.ndarray], np.ndarray] | None = None,
                 parent: "tuple[RowEvents, np.ndarray] | None" = None,
                 scratch: Scratch | None = None) -> None:
        self.shard, self.rows, self.bitmap = shard, rows, bitmap
        self.slots = slots or (lambda some: slots_of(rows, some))
        self._windows = windows
        self._parent = parent
        self._scratch = scratch or Scratch()
        self._types: dict[str, _Gathered] = {}

    def matching(self, ev: EventValue, since: int | None, until: int | None,
                 want_values: bool) -> tuple[np.ndarray, np.ndarray | None] | None:
        """What `event_values._matching_rows` finds for `ev` in [since, until] among the
        rows: (rows of the matching events, their values or None); None when the gather
        cannot say (the caller scans the log)."""
        if since is not None and until is not None and since > until:
            return _NO_ROWS, (_empty_values(ev) if want_values else None)
        g = self._gathered(ev.type, (since, until))
        if not _covers(g.window, since, until):
            return None
        try:
            keep = _in_window(g.ts, since, until, g.window)
            if ev.where is not None:
                cond = condition_mask(g.log, ev.where, g.ts, g.prop)
                keep = cond if keep is None else keep & cond
            vals = _values(g, ev) if want_values else None
        except _Mixed:
            return None
        if want_values and vals is None:
            return None
        if vals is not None and vals.dtype.kind == "f":
            known = ~np.isnan(vals)
            keep = known if keep is None else keep & known
        if keep is None:
            return g.rows, vals
        return g.rows[keep], (vals[keep] if vals is not None else None)

    def _gathered(self, type_: str, asked: Window) -> _Gathered:
        found = self._types.get(type_)
        if found is None:
            found = self._types[type_] = self._gather(type_, self._windows.get(type_, asked))
        return found

    def _gather(self, type_: str, window: Window) -> _Gathered:
        if self._parent is not None:
            parent, mine = self._parent
            g = parent._gathered(type_, window)
            return g.restricted(mine[parent.slots(g.rows)]) if len(g.rows) else g
        log = self.shard.events.log(type_)
        if log is None or not log.members.intersect(self.bitmap):
            # none of the rows has an event of the type: every window is answered (empty)
            return _Gathered(log, (None, None), [], _NO_ROWS, _NO_TS)
        wanted = self._scratch.marked(self.rows, self.shard.n_rows)
        try:
            parts = list(self._positions(log, window, wanted))
        finally:
            self._scratch.unmark(self.rows)
        if not parts:
            return _Gathered(log, window, [], _NO_ROWS, _NO_TS)
        return _Gathered(log, window, parts, np.concatenate([c.rows[p] for c, p in parts]),
                         np.concatenate([c.ts[p] for c, p in parts]))

    def _positions(self, log: EventLog, window: Window, wanted: np.ndarray) -> Iterator[tuple[Chunk, np.ndarray]]:
        """Per chunk overlapping `window`, the positions of the events of the rows
        (`wanted`: a mask over all rows) in it."""
        since, until = window
        if since is not None and until is not None and since > until:
            return
        for chunk in log.sealed(self.shard.alive_or_none()):
            if not chunk.overlaps(since, until):
                continue
            sl = chunk.window(since, until)
            if sl.start == sl.stop:
                continue
            pos = np.flatnonzero(wanted.take(chunk.rows[sl]))  # take: no index conversion
            if len(pos):
                yield chunk, pos + sl.start


def _values(g: _Gathered, ev: EventValue) -> np.ndarray | None:
    """The values reduced over (ts, or a float property with NaN where absent); None for
    a property stored as codes (the log scan's treatment of those is kept by scanning)."""
    if ev.func in ("first_seen", "last_seen"):
        return g.ts
    vals = g.prop(ev.prop) if ev.prop is not None else None
    if vals is None:
        return np.full(len(g.ts), np.nan)
    return vals if vals.dtype.kind == "f" else None


def _empty_values(ev: EventValue) -> np.ndarray:
    return _NO_TS if ev.func in ("first_seen", "last_seen") else np.zeros(0, dtype=np.float64)


def _covers(window: Window, since: int | None, until: int | None) -> bool:
    lo, hi = window
    return ((lo is None or (since is not None and since >= lo))
            and (hi is None or (until is not None and until <= hi)))


def _in_window(ts: np.ndarray, since: int | None, until: int | None, gathered: Window) -> np.ndarray | None:
    """Which gathered events fall in [since, until]; None when all do."""
    keep = None
    if since is not None and since != gathered[0]:
        keep = ts >= since
    if until is not None and until != gathered[1]:
        keep = (ts <= until) if keep is None else keep & (ts <= until)
    return keep


def windows_read(plan: Predicate | None) -> dict[str, Window]:
    """Per event type, one window covering every window of its events that evaluating
    `plan` on a few rows reads (what a RowEvents should gather)."""
    out: dict[str, Window] = {}
    for leaf in _event_leaves(plan):
        for w in scanned_windows(leaf):
            out[leaf.field.type] = widest(out.get(leaf.field.type), w)
    return out


def widest(a: Window | None, b: Window) -> Window:
    """The smallest window covering both."""
    if a is None:
        return b
    since = None if a[0] is None or b[0] is None else min(a[0], b[0])
    until = None if a[1] is None or b[1] is None else max(a[1], b[1])
    return since, until


def _event_leaves(p: Predicate | None) -> Iterator:
    if isinstance(p, (And, Or)):
        for kid in p.children:
            yield from _event_leaves(kid)
    elif isinstance(getattr(p, "field", None), EventValue):
        yield p
