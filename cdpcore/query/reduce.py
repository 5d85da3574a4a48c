"""Partial results of one shard and their associative merge (map, then reduce).

Every multi-shard answer is `reduce(merge, [shard partials])` then `finalize`; the
embedded Store and (later) the router call the same functions, which is what makes
results independent of the number of shards. Partials hold values in the storage
domain (timestamps as int µs); `finalize` converts them for output.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from functools import reduce
from typing import Any, Callable

from ..schema import FieldType, Schema
from ..timestamps import to_datetime
from .ir import Agg, EventValue, Select

# An aggregate's partial state: count → int; sum/avg → [total, n]; min/max → value|None.
State = Any


def distinct_aggs(select: Select) -> list[Agg]:
    """Aggregates a query needs (output and ORDER BY), each once, in first-use order."""
    seen: dict[Agg, None] = {}
    for expr in [c.expr for c in select.columns] + [k.expr for k in select.order_by]:
        if isinstance(expr, Agg):
            seen.setdefault(expr, None)
    return list(seen)


def empty_state(agg: Agg) -> State:
    if agg.func == "count":
        return 0
    if agg.func in ("sum", "avg"):
        return [0, 0]
    return None


def merge_state(agg: Agg, a: State, b: State) -> State:
    if agg.func == "count":
        return a + b
    if agg.func in ("sum", "avg"):
        return [a[0] + b[0], a[1] + b[1]]
    if a is None or b is None:
        return b if a is None else a
    return min(a, b) if agg.func == "min" else max(a, b)


@dataclass
class Partial:
    """kind: 'aggregate' (states), 'group' (groups: key tuple → states) or 'list'
    (rows: (order values, id hash, profile_id, output tuple), at most offset+limit)."""
    kind: str
    states: list[State] = field(default_factory=list)
    groups: dict[tuple, list[State]] = field(default_factory=dict)
    rows: list[tuple] = field(default_factory=list)


def merge(select: Select, a: Partial, b: Partial) -> Partial:
    aggs = distinct_aggs(select)
    if a.kind == "aggregate":
        return Partial("aggregate", states=[merge_state(g, x, y) for g, x, y in zip(aggs, a.states, b.states)])
    if a.kind == "group":
        groups = dict(a.groups)
        for key, states in b.groups.items():
            mine = groups.get(key)
            groups[key] = states if mine is None else [merge_state(g, x, y) for g, x, y in zip(aggs, mine, states)]
        return Partial("group", groups=groups)
    rows = sort_listing(select, a.rows + b.rows)
    return Partial("list", rows=rows[:_window(select)])


def merge_all(select: Select, partials: list[Partial]) -> Partial:
    return reduce(lambda x, y: merge(select, x, y), partials)


def _window(select: Select) -> int | None:
    return None if select.limit is None else select.offset + select.limit


# ---- finalisation ------------------------------------------------------------------------
def final_value(agg: Agg, state: State, schema: Schema) -> Any:
    if agg.func == "count":
        return int(state)
    if agg.func == "sum":
        return state[0] if state[1] else None
    if agg.func == "avg":
        return state[0] / state[1] if state[1] else None
    if state is not None and _is_timestamp(agg, schema):
        return to_datetime(state)
    return state


def _is_timestamp(agg: Agg, schema: Schema) -> bool:
    if isinstance(agg.field, EventValue):
        return agg.field.value_type == "timestamp"
    return schema[agg.field].type is FieldType.TIMESTAMP


def sort_rows(rows: list, keys: list[tuple[Callable[[Any], Any], bool, bool]]) -> list:
    """Stable multi-key sort; each key is (getter, desc, nulls_first), nulls kept apart
    so they never meet a comparison."""
    for getter, desc, nulls_first in reversed(keys):
        nulls = [r for r in rows if getter(r) is None]
        rest = [r for r in rows if getter(r) is not None]
        rest.sort(key=getter, reverse=desc)
        rows = nulls + rest if nulls_first else rest + nulls
    return rows


def sort_listing(select: Select, rows: list[tuple]) -> list[tuple]:
    """Listing order: ORDER BY keys, then ascending (id hash, profile_id)."""
    rows = sorted(rows, key=lambda r: (r[1], r[2]))
    keys = [((lambda r, i=i: r[0][i]), k.desc, k.nulls_first) for i, k in enumerate(select.order_by)]
    return sort_rows(rows, keys)


def _group_key_order(key: tuple) -> tuple:
    return tuple((v is not None, v) for v in key)


def finalize(select: Select, partial: Partial, schema: Schema) -> list[tuple]:
    """Final rows of a query from the merged partial."""
    if partial.kind == "list":
        rows = [r[3] for r in sort_listing(select, partial.rows)]
        return _page(select, rows)
    aggs = distinct_aggs(select)
    if partial.kind == "aggregate":
        groups = {(): partial.states or [empty_state(g) for g in aggs]}
    else:
        groups = partial.groups
    table = []
    for key in sorted(groups, key=_group_key_order):
        finals = {g: final_value(g, s, schema) for g, s in zip(aggs, groups[key])}
        env = dict(zip((f.name for f in select.group_by), key))
        table.append((key, finals, env))
    getter = lambda expr: (lambda t: t[1][expr] if isinstance(expr, Agg) else t[2][expr.name])
    table = sort_rows(table, [(getter(k.expr), k.desc, k.nulls_first) for k in select.order_by])
    rows = [tuple(getter(c.expr)(t) for c in select.columns) for t in table]
    return _page(select, rows)


def _page(select: Select, rows: list) -> list:
    end = None if select.limit is None else select.offset + select.limit
    return rows[select.offset:end]

