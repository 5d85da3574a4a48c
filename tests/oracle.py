"""Oracle represents the naive reference the engine is tested against: a dict of dicts.

It follows docs/query-language.md by brute force and shares no code with the engine's
query path: conditions arrive as Python predicates (record -> True/False/None, Kleene
three-valued logic) and SELECTs as small spec objects, never as SQL text.

Values are held normalised, as the engine stores them: int, float, bool, str,
timestamp as int microseconds (UTC), string_set as frozenset. `output_value` turns
them into what the engine hands back (datetime, sorted list).

Behavioural events (issue 4) are kept per profile as a plain list of
`(type, ts_us, {property: float | str})` in the order they were tracked; event functions
(`EventFn`) are evaluated by looping over that list, relative to the oracle's `now_us`.
"""
from __future__ import annotations

import datetime as _dt
import itertools
import math
import re
from dataclasses import dataclass, field
from typing import Any, Callable, Iterable, Mapping, Sequence

import xxhash

EPOCH = _dt.datetime(1970, 1, 1, tzinfo=_dt.timezone.utc)
Record = Mapping[str, Any]
Predicate = Callable[[Record], "bool | None"]


# ----------------------------------------------------------------------------------
# Kleene three-valued logic: True, False, None (unknown). A row matches iff True.

def not3(a: bool | None) -> bool | None:
    return None if a is None else not a


def and3(values: Iterable[bool | None]) -> bool | None:
    values = list(values)
    if any(v is False for v in values):
        return False
    return None if any(v is None for v in values) else True


def or3(values: Iterable[bool | None]) -> bool | None:
    values = list(values)
    if any(v is True for v in values):
        return True
    return None if any(v is None for v in values) else False


_COMPARE = {
    "=": lambda a, b: a == b, "!=": lambda a, b: a != b,
    "<": lambda a, b: a < b, "<=": lambda a, b: a <= b,
    ">": lambda a, b: a > b, ">=": lambda a, b: a >= b,
}


def compare3(value: Any, op: str, literal: Any) -> bool | None:
    """`value op literal`; Python compares int and float exactly, as the spec asks."""
    return None if value is None else _COMPARE[op](value, literal)


def between3(value: Any, low: Any, high: Any) -> bool | None:
    return None if value is None else low <= value <= high


def in3(value: Any, literals: Sequence[Any]) -> bool | None:
    return None if value is None else any(value == lit for lit in literals)


def like_regex(pattern: str, case_insensitive: bool = False) -> re.Pattern:
    """SQL LIKE: `%` any run, `_` exactly one character, everything else literal."""
    if case_insensitive:
        pattern = pattern.lower()
    body = "".join(".*" if c == "%" else "." if c == "_" else re.escape(c) for c in pattern)
    return re.compile(body, re.DOTALL)


def like3(value: str | None, pattern: str, case_insensitive: bool = False) -> bool | None:
    if value is None:
        return None
    text = value.lower() if case_insensitive else value
    return like_regex(pattern, case_insensitive).fullmatch(text) is not None


def has3(tags: frozenset | None, wanted: Sequence[str], mode: str = "any") -> bool | None:
    """has/has_any (mode any) and has_all; unknown on a null set, False on an empty one."""
    if tags is None:
        return None
    hits = (t in tags for t in wanted)
    return any(hits) if mode == "any" else all(hits)


def bool3(value: bool | None) -> bool | None:
    """A bare bool field used as a condition."""
    return value


# ----------------------------------------------------------------------------------
# Behavioural events: the event functions, evaluated by brute force.

Event = tuple  # (type: str, ts_us: int, props: dict[str, float | str]); absent props are missing keys
EVENT_FUNCS = ("count", "sum", "avg", "min", "max", "first_seen", "last_seen")
VALUE_FUNCS = ("sum", "avg", "min", "max")          # over a float property; NULL over no values


@dataclass(frozen=True)
class EventFn:
    """`event_count(type [, window] [, condition])` and its siblings, as the oracle sees them.

    `where` is a Kleene predicate over one event as a dict (its properties plus `ts`);
    `window_us` None means every event of the type, future ones included. `sql` is only
    carried so strategies can render listings; the oracle never reads it.
    """
    func: str
    type: str
    prop: str | None = None
    window_us: int | None = None
    where: Callable[[Mapping], "bool | None"] | None = field(default=None, compare=False)
    sql: str = field(default="", compare=False)


def event_matches(fn: EventFn, event: Event, now_us: int) -> bool:
    etype, ts, props = event
    if etype != fn.type:
        return False
    if fn.window_us is not None and not (now_us - fn.window_us <= ts <= now_us):
        return False   # both ends inclusive; future events are outside every window
    return fn.where is None or fn.where({**props, "ts": ts}) is True


def event_value(fn: EventFn, events: Sequence[Event], now_us: int) -> Any:
    """The function's value over one profile's events (normalised: µs for first/last_seen)."""
    hits = [e for e in events if event_matches(fn, e, now_us)]
    if fn.func == "count":
        return len(hits)
    if fn.func in ("first_seen", "last_seen"):
        times = [ts for _, ts, _ in hits]
        if not times:
            return None
        return min(times) if fn.func == "first_seen" else max(times)
    values = [props[fn.prop] for _, _, props in hits if props.get(fn.prop) is not None]
    if not values:
        return None
    if fn.func == "min":
        return min(values)
    if fn.func == "max":
        return max(values)
    total = math.fsum(values)          # exact for the dyadic values the strategies generate
    return total if fn.func == "sum" else total / len(values)


def event_output(fn: EventFn, value: Any) -> Any:
    """A normalised event-function value as the engine returns it."""
    if value is None or fn.func == "count":
        return value
    if fn.func in ("first_seen", "last_seen"):
        return to_datetime(value)
    return float(value)


class Profile(dict):
    """A profile as predicates see it: its attributes (a dict) plus its events and the query's now."""
    __slots__ = ("events", "now_us")

    def __init__(self, row: Mapping[str, Any], events: Sequence[Event] = (), now_us: int | None = None):
        super().__init__(row)
        self.events = events
        self.now_us = now_us

    def event_value(self, fn: EventFn) -> Any:
        assert self.now_us is not None, "event functions need Oracle(now_us=...)"
        return event_value(fn, self.events, self.now_us)


# ----------------------------------------------------------------------------------
# Result values and ordering.

def to_datetime(us: int) -> _dt.datetime:
    return EPOCH + _dt.timedelta(microseconds=us)


def output_value(ftype: str, value: Any) -> Any:
    """A normalised value as the engine returns it."""
    if value is None:
        return None
    if ftype == "timestamp":
        return to_datetime(value)
    if ftype == "string_set":
        return sorted(value)
    if ftype == "float":
        return float(value)
    return value


def hash_order_key(profile_id: str) -> tuple[int, str]:
    """Listings without ORDER BY (and full ties) come in this order, whatever the shards."""
    return (xxhash.xxh64_intdigest(profile_id.encode()), profile_id)


def group_order_key(key: tuple) -> tuple:
    """Groups tie-break ascending by key, None first in every component."""
    return tuple((0,) if v is None else (1, v) for v in key)


def sort_by_keys(items: list, keys: Sequence[tuple[Callable[[Any], Any], bool, bool]]) -> list:
    """Stable multi-key sort; keys are (value_of, desc, nulls_first), most significant first.

    `items` must already be in tie-break order. Sorting from the least significant key
    keeps every earlier order among ties (Python's sort is stable, also with reverse).
    """
    for value_of, desc, nulls_first in reversed(keys):
        present = [x for x in items if value_of(x) is not None]
        nulls = [x for x in items if value_of(x) is None]
        present.sort(key=value_of, reverse=desc)
        items = nulls + present if nulls_first else present + nulls
    return items


@dataclass(frozen=True)
class Approx:
    """A float result the engine may compute in another order (e.g. per shard).

    `scale` bounds the magnitude of the summed terms, so cancellation (1e15 - 1e15 + 0.5)
    gets an absolute tolerance it deserves instead of a meaningless relative one.
    """
    value: float
    scale: float

    def matches(self, got: Any) -> bool:
        if not isinstance(got, float) or isinstance(got, bool):
            return False
        return abs(got - self.value) <= 1e-9 * self.scale + 1e-300

    def __repr__(self) -> str:
        return f"≈{self.value!r}"


# ----------------------------------------------------------------------------------
# SELECT specs: what the strategies render to SQL and the oracle evaluates directly.

@dataclass(frozen=True)
class Col:
    """A stored field, or `profile_id`."""
    name: str


@dataclass(frozen=True)
class Agg:
    """count/sum/avg/min/max; `field` None is count(*); an EventFn aggregates its per-profile values."""
    func: str
    field: "str | EventFn | None" = None


@dataclass(frozen=True)
class Output:
    expr: Col | Agg | EventFn
    alias: str | None = None


@dataclass(frozen=True)
class OrderBy:
    expr: Col | Agg | EventFn
    desc: bool = False
    nulls_first: bool | None = None   # None: the default, nulls last in both directions
    by_alias: bool = False            # render the output's alias instead of the expression


@dataclass(frozen=True)
class SelectSpec:
    outputs: tuple[Output, ...] | None   # None means SELECT *
    where: Predicate | None = None
    group_by: tuple[str, ...] = ()
    order_by: tuple[OrderBy, ...] = ()
    limit: int | None = None
    offset: int | None = None

    @property
    def is_aggregate(self) -> bool:
        return bool(self.group_by) or any(isinstance(o.expr, Agg) for o in self.outputs or ())


@dataclass
class Result:
    columns: list[str]
    rows: list[tuple]


# ----------------------------------------------------------------------------------
# The model.

class Oracle:
    """profile_id -> {field: normalised value}; absent and None both mean null.

    Events: profile_id -> [(type, ts_us, props)] in tracking order; `now_us` is the
    query's now() that event windows are measured from.
    """

    def __init__(self, now_us: int | None = None) -> None:
        self.schema: dict[str, str] = {}
        self.rows: dict[str, dict[str, Any]] = {}
        self.events: dict[str, list[Event]] = {}
        self.event_props: dict[str, str] = {}    # property -> "float" | "string", fixed when first seen
        self.event_types: set[str] = set()       # types of every accepted event
        self.now_us = now_us

    # -- writes ---------------------------------------------------------------------
    def define(self, spec: Mapping[str, str]) -> None:
        for name, ftype in spec.items():
            assert self.schema.setdefault(name, ftype) == ftype, (name, ftype)

    def upsert(self, records: Iterable[Record]) -> int:
        """Apply already-valid, normalised records in order; returns how many."""
        n = 0
        for rec in records:
            row = self.rows.setdefault(rec["profile_id"], {})
            for name, value in rec.items():
                if name == "profile_id":
                    continue
                assert name in self.schema, name
                if value is None:
                    row.pop(name, None)
                else:
                    row[name] = float(value) if self.schema[name] == "float" else value
            n += 1
        return n

    def delete(self, ids: Iterable[str]) -> tuple[int, list[str]]:
        """Deleting a profile deletes its events: a later profile with the id starts empty."""
        deleted, not_found = 0, []
        for pid in ids:
            self.events.pop(pid, None)
            if self.rows.pop(pid, None) is None:
                not_found.append(pid)
            else:
                deleted += 1
        return deleted, not_found

    def track(self, events: Iterable[tuple[str, str, int, Mapping[str, Any]]]) -> int:
        """Append already-valid, normalised events (profile_id, type, ts_us, props); returns how many.

        An event creates its profile (no attributes) if needed; a None property is absent;
        numbers become floats.
        """
        n = 0
        for pid, etype, ts, props in events:
            clean = {}
            for name, value in props.items():
                if value is None:
                    continue
                kind = "string" if isinstance(value, str) else "float"
                assert self.event_props.setdefault(name, kind) == kind, (name, value)
                clean[name] = value if kind == "string" else float(value)
            self.rows.setdefault(pid, {})
            self.events.setdefault(pid, []).append((etype, ts, clean))
            self.event_types.add(etype)
            n += 1
        return n

    # -- reads ----------------------------------------------------------------------
    def get_profile(self, profile_id: str) -> dict | None:
        row = self.rows.get(profile_id)
        if row is None:
            return None
        out = {"profile_id": profile_id}
        for name, ftype in self.schema.items():
            if row.get(name) is not None:
                out[name] = output_value(ftype, row[name])
        return out

    def profile(self, pid: str) -> Profile:
        """The record predicates get: attributes, events and now."""
        return Profile(self.rows[pid], self.events.get(pid, ()), self.now_us)

    def matching(self, where: Predicate | None) -> list[str]:
        """Ids whose record makes `where` True, in hash order."""
        ids = [pid for pid in self.rows if where is None or where(self.profile(pid)) is True]
        return sorted(ids, key=hash_order_key)

    def event_value(self, pid: str, fn: EventFn) -> Any:
        """One event function's normalised value for a live profile."""
        return self.profile(pid).event_value(fn)

    def events_of(self, pid: str, limit: int | None = None) -> list[dict] | None:
        """The profile's events as the engine lists them, most recent first; None if no profile.

        Events with equal timestamps come in no specified order here (latest tracked
        first); compare with `assert_same_events`, which lets ties come in any order.
        """
        if pid not in self.rows:
            return None
        ordered = sorted(reversed(self.events.get(pid, [])), key=lambda e: -e[1])
        out = [{"type": etype, "ts": to_datetime(ts), **props} for etype, ts, props in ordered]
        return out if limit is None else out[:limit]

    def count(self, where: Predicate | None) -> int:
        return len(self.matching(where))

    def select(self, spec: SelectSpec) -> Result:
        ids = self.matching(spec.where)
        if spec.is_aggregate:
            columns, rows = self._aggregate(spec, ids)
        else:
            columns, rows = self._listing(spec, ids)
        start = spec.offset or 0
        stop = None if spec.limit is None else start + spec.limit
        return Result(columns, rows[start:stop])

    # -- listings -------------------------------------------------------------------
    def _outputs(self, spec: SelectSpec) -> tuple[Output, ...]:
        if spec.outputs is not None:
            return spec.outputs
        return (Output(Col("profile_id")),) + tuple(Output(Col(n)) for n in self.schema)

    def _field_value(self, pid: str, name: str) -> Any:
        return pid if name == "profile_id" else self.rows[pid].get(name)

    def _row_value(self, pid: str, expr: Col | EventFn) -> Any:
        """A listing expression's normalised (sortable) value: a field or an event function."""
        if isinstance(expr, EventFn):
            return self.event_value(pid, expr)
        return self._field_value(pid, expr.name)

    def _listing(self, spec: SelectSpec, ids: list[str]) -> tuple[list[str], list[tuple]]:
        outputs = self._outputs(spec)
        keys = [(lambda pid, e=o.expr: self._row_value(pid, e), o.desc, bool(o.nulls_first))
                for o in spec.order_by]
        ids = sort_by_keys(ids, keys)
        rows = [tuple(self._out(o.expr, self._row_value(pid, o.expr)) for o in outputs) for pid in ids]
        return [column_name(o) for o in outputs], rows

    def _out(self, expr: Col | EventFn, value: Any) -> Any:
        if isinstance(expr, EventFn):
            return event_output(expr, value)
        return value if expr.name == "profile_id" else output_value(self.schema[expr.name], value)

    # -- aggregates -----------------------------------------------------------------
    def _groups(self, spec: SelectSpec, ids: list[str]) -> dict[tuple, list[dict]]:
        if not spec.group_by:
            return {(): [self.profile(pid) for pid in ids]}
        groups: dict[tuple, list[dict]] = {}
        for pid in ids:
            row = self.profile(pid)
            for key in itertools.product(*(self._group_values(row, f) for f in spec.group_by)):
                groups.setdefault(key, []).append(row)
        return groups

    def _group_values(self, row: dict, name: str) -> list:
        value = row.get(name)
        if self.schema[name] == "string_set":
            return sorted(value) if value else [None]   # null and empty set: the None group
        return [value]

    def _aggregate(self, spec: SelectSpec, ids: list[str]) -> tuple[list[str], list[tuple]]:
        groups = self._groups(spec, ids)
        keys = sorted(groups, key=group_order_key)
        order = [(lambda k, e=o.expr: self._group_expr(spec, k, groups[k], e), o.desc,
                  bool(o.nulls_first)) for o in spec.order_by]
        keys = sort_by_keys(keys, order)
        rows = [tuple(self._output_of(spec, k, groups[k], o.expr) for o in spec.outputs) for k in keys]
        return [column_name(o) for o in spec.outputs], rows

    def _group_expr(self, spec: SelectSpec, key: tuple, rows: list[dict], expr: Col | Agg) -> Any:
        """The sortable (normalised) value of a group's key field or aggregate."""
        if isinstance(expr, Col):
            return key[spec.group_by.index(expr.name)]
        value = self.aggregate(expr, rows)
        return value.value if isinstance(value, Approx) else value

    def _output_of(self, spec: SelectSpec, key: tuple, rows: list[dict], expr: Col | Agg) -> Any:
        if isinstance(expr, Col):
            value = key[spec.group_by.index(expr.name)]
            return value   # group keys are str, bool or None: already output values
        value = self.aggregate(expr, rows)
        if expr.func in ("min", "max"):
            if isinstance(expr.field, EventFn):
                return event_output(expr.field, value)
            return output_value(self.schema[expr.field], value)
        return value

    def aggregate(self, agg: Agg, rows: list[dict]) -> Any:
        """One aggregate over records; min/max come back normalised (µs for timestamps).

        `agg.field` may be an EventFn: the aggregate then runs over its per-profile values
        (`rows` are Profiles).
        """
        if agg.field is None:
            return len(rows)
        if isinstance(agg.field, EventFn):
            values = [v for v in (r.event_value(agg.field) for r in rows) if v is not None]
            integral = agg.field.func == "count"
        else:
            values = [r[agg.field] for r in rows if r.get(agg.field) is not None]
            integral = self.schema[agg.field] == "int"
        if agg.func == "count":
            return len(values)
        if not values:
            return None
        if agg.func in ("min", "max"):
            return min(values) if agg.func == "min" else max(values)
        scale = math.fsum(abs(v) for v in values)
        total = sum(values) if integral else math.fsum(values)
        if agg.func == "sum":
            return total if integral else Approx(total, scale)
        return Approx(total / len(values), scale / len(values))


def column_name(output: Output) -> str:
    """The alias, else the expression as sqlglot normalises it (`COUNT(*)`, `age`)."""
    if output.alias is not None:
        return output.alias
    expr = output.expr
    if isinstance(expr, EventFn):
        return expr.sql     # the tests leave only plain calls unaliased, so the text is sqlglot's
    if isinstance(expr, Col):
        return expr.name
    return f"{expr.func.upper()}({'*' if expr.field is None else expr.field})"


# ----------------------------------------------------------------------------------
# Differential harness: one comparison with one clear diff message (STYLE practice 16).

def same_value(expected: Any, got: Any) -> bool:
    """Equal value and result type; Approx for floats computed in an unknown order."""
    if isinstance(expected, Approx):
        return expected.matches(got)
    if expected is None or got is None:
        return expected is None and got is None
    if isinstance(expected, bool) or isinstance(got, bool):
        return type(got) is bool and type(expected) is bool and got == expected
    if isinstance(expected, int):
        return type(got) is int and got == expected
    if isinstance(expected, float):
        return isinstance(got, float) and got == expected
    if isinstance(expected, _dt.datetime):
        return (isinstance(got, _dt.datetime) and got.tzinfo is not None
                and got.utcoffset() == _dt.timedelta(0) and got == expected)
    if isinstance(expected, list):
        return isinstance(got, list) and got == expected and all(type(t) is str for t in got)
    if isinstance(expected, dict):
        return (isinstance(got, dict) and got.keys() == expected.keys()
                and all(same_value(expected[k], got[k]) for k in expected))
    return type(got) is type(expected) and got == expected


def same_rows(expected: Sequence[tuple], got: Sequence[tuple]) -> bool:
    return len(expected) == len(got) and all(
        isinstance(g, tuple) and len(g) == len(e) and all(map(same_value, e, g))
        for e, g in zip(expected, got))


def diff_message(what: str, expected: Any, got: Any) -> str:
    lines = [f"engine disagrees with oracle on: {what}", f"  expected: {expected!r}",
             f"  got:      {got!r}"]
    if isinstance(expected, list) and isinstance(got, list):
        for i, (e, g) in enumerate(zip(expected, got)):
            if not (same_rows([e], [g]) if isinstance(e, tuple) else same_value(e, g)):
                lines.append(f"  first difference at [{i}]: expected {e!r}, got {g!r}")
                break
        if len(expected) != len(got):
            lines.append(f"  lengths: expected {len(expected)}, got {len(got)}")
    return "\n".join(lines)


def assert_same(what: str, expected: Any, got: Any) -> None:
    """Compare an oracle answer with an engine answer (ints exact, floats Approx)."""
    if isinstance(expected, Result):
        assert list(got.columns) == expected.columns, diff_message(
            f"{what} [columns]", expected.columns, list(got.columns))
        rows = list(got.rows)
        assert same_rows(expected.rows, rows), diff_message(what, expected.rows, rows)
        return
    assert same_value(expected, got), diff_message(what, expected, got)


def assert_same_events(what: str, expected_all: list[dict] | None, got: Any, limit: int) -> None:
    """`events_of(pid, limit)` against the oracle's full list for the profile (Oracle.events_of).

    Most recent first; events with equal timestamps may come in any order (the contract
    leaves it open), also where the limit cuts through them.
    """
    if expected_all is None:
        assert got is None, diff_message(what, None, got)
        return
    cut = expected_all[:limit]
    ok = (isinstance(got, list) and all(isinstance(g, dict) for g in got)
          and [g.get("ts") for g in got] == [e["ts"] for e in cut]
          and all(_sub_multiset([g for g in got if g["ts"] == ts], [e for e in expected_all if e["ts"] == ts])
                  for ts in {e["ts"] for e in cut}))
    assert ok, diff_message(what, cut, got)


def _sub_multiset(got: Sequence[Any], pool: Sequence[Any]) -> bool:
    pool = list(pool)
    for g in got:
        hit = next((i for i, e in enumerate(pool) if same_value(e, g)), None)
        if hit is None:
            return False
        pool.pop(hit)
    return True


def approx_like(template: Any, value: Any) -> Any:
    """`value` (an engine answer) as an expectation, loosened where `template` has Approx.

    Lets one engine's answer be the reference for another (Store(1) vs Store(7)) with
    the oracle deciding which floats depend on summation order.
    """
    if isinstance(template, Approx):
        return Approx(value, 2 * template.scale) if isinstance(value, float) else value
    if isinstance(template, Result):
        rows = [tuple(approx_like(t, v) for t, v in zip(trow, vrow))
                for trow, vrow in zip(template.rows, value.rows)]
        return Result(list(value.columns), rows + list(value.rows[len(rows):]))
    return value


__all__ = [
    "Agg", "Approx", "Col", "EVENT_FUNCS", "EventFn", "Oracle", "OrderBy", "Output", "Profile", "Result",
    "SelectSpec", "VALUE_FUNCS", "assert_same_events", "event_value",
    "and3", "approx_like", "assert_same", "between3", "bool3", "column_name", "compare3",
    "has3", "hash_order_key", "in3", "like3", "not3", "or3", "output_value", "same_value",
]

