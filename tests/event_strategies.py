"""Event strategies represent the behavioural side of the random worlds: event streams and event queries.

Shaped for the event store's boundaries (STYLE practice 17): a few types (some needing
quotes), times spread over a year around the fixed now() with many on window edges
(`ts == now - 30d`, one microsecond either side, future events), late arrivals (batches
tracked newest first), missing `ts` (the store's clock), duplicate ids, missing and null
properties, and float properties that are multiples of 0.25 so sums are exact in any
summation order (the oracle can demand equality, not a tolerance).

As in strategies.py, every event condition is one tree rendered twice: SQL text for the
engine and a Kleene predicate for the oracle (`Cond`, `EventFn`).
"""
from __future__ import annotations

import functools
from dataclasses import dataclass, field
from typing import Any, Mapping, Sequence

import numpy as np
from hypothesis import strategies as st

from oracle import (EVENT_FUNCS, VALUE_FUNCS, Agg, Col, EventFn, Oracle, OrderBy, Output, SelectSpec,
                    assert_same, between3, compare3, in3, not3)
from strategies import (DAY_US, GROUPABLE, HOUR_US, ID_POOL, MAX_US, MIN_US, MINUTE_US, NOW_US, SECOND_US, Cond, Delete, Query,
                        _and_or, _not, between_leaf, compare_leaf, expr_sql, in_leaf, interval_sql,
                        is_null_leaf, leaves, like_leaf, limits, record_batches, schemas, sql_string,
                        timestamp_input, timestamp_literal)

YEAR_US = 365 * DAY_US
# overlap with strategies.ID_POOL (upserts hit the same profiles); first and last slot included
EVENT_IDS = ID_POOL[:6] + ["ü", "O'Neil", ID_POOL[-2], ID_POOL[-1]]
event_ids = st.sampled_from(EVENT_IDS)
TYPE_POOL = ["purchase", "page_view", "app_open", "add_to_cart", "O'Neil", "日本", "a b", "x%_"]
NEVER_TYPE = "never_tracked"            # never generated for tracking: the unknown type of queries
PROPERTIES = {"amount": "float", "price": "float", "category": "string", "channel": "string"}
VOCAB = ["shoes", "books", "Shoes", "", "O'Brien", "日本", "a%", "a b", "x_y"]

event_types = st.lists(st.sampled_from(TYPE_POOL) | st.text("abé'", min_size=1, max_size=3),
                       min_size=1, max_size=4, unique=True).map(tuple)
# always one float property (the value functions need one), the others by chance
event_props = st.dictionaries(st.sampled_from(list(PROPERTIES)), st.none(), max_size=4).map(
    lambda d: {name: PROPERTIES[name] for name in ["amount", *d]})

# Times: anywhere in a year before now (µs), a month of future, and the grids windows cut on.
event_times = st.one_of(
    st.integers(NOW_US - YEAR_US, NOW_US + 30 * DAY_US),
    st.integers(NOW_US - YEAR_US, NOW_US).map(lambda us: us - us % SECOND_US),
    st.integers(-400, 30).map(lambda d: NOW_US + d * DAY_US),
    st.tuples(st.integers(-100, 0), st.sampled_from([-1, 1])).map(lambda t: NOW_US + t[0] * DAY_US + t[1]),
    st.integers(-24 * 20, 0).map(lambda h: NOW_US + h * HOUR_US),
    st.sampled_from([NOW_US, NOW_US + 1, NOW_US - 1]),
    st.sampled_from([MIN_US, MAX_US, 0, -1, NOW_US - 1_000_000 * DAY_US // 1000]),   # the ends of time
)
# multiples of 0.25 below 2**20: any sum of a few thousand is exact in float64
dyadics = st.one_of(st.integers(-40, 40).map(lambda i: i / 4), st.integers(-2**22, 2**22).map(lambda i: i / 4),
                    st.sampled_from([0.0, -0.0, 100.0, 99.75, 0.5]))
PROP_VALUES = {"float": dyadics, "string": st.sampled_from(VOCAB)}
PROP_OR_NULL = {kind: st.one_of(st.none(), values, values) for kind, values in PROP_VALUES.items()}
# values no property accepts, and values of the other kind (a property's kind is fixed once seen)
BAD_PROP_VALUES = [True, False, [1.0], {"k": 1}]
WRONG_KIND = {"float": "shoes", "string": 1.5}


# Strategies are built once and reused: hypothesis validates each new strategy object, which
# dominated the run time when every draw built its own.
@functools.lru_cache(maxsize=None)
def choice(items: tuple) -> st.SearchStrategy:
    return st.sampled_from(items)


@functools.lru_cache(maxsize=None)
def subsets(items: tuple) -> st.SearchStrategy:
    return st.lists(st.sampled_from(items), unique=True)


def rarely(draw, n: int) -> bool:
    """True about once in `n` draws; shrinks to False (hypothesis favours the first choice)."""
    return draw(choice((False,) * (n - 1) + (True,)))


@st.composite
def prop_input(draw, value: Any) -> Any:
    """A normalised property value as a caller may pass it (ints into float properties)."""
    if isinstance(value, float) and value.is_integer() and draw(st.booleans()):
        return int(value)
    return value


# ----------------------------------------------------------------------------------
# Write operations: each applies itself to a store and the oracle and checks the answer.

def _check_track(result, valid: list, bad: list, oracle: Oracle) -> None:
    """Exactly the records marked invalid are rejected, each naming its field where that is defined."""
    expected = {i for i, v in enumerate(valid) if v is None}
    got = {e.index: e for e in result.errors}
    assert set(got) == expected, f"rejected events {sorted(got)}, expected {sorted(expected)}: {result.errors}"
    for i in expected:
        assert bad[i] is None or got[i].field == bad[i], f"event {i}: {got[i]}, expected field {bad[i]!r}"
    assert result.accepted == len(valid) - len(expected), (result.accepted, len(valid), expected)
    oracle.track(v for v in valid if v is not None)


@dataclass
class TrackRecords:
    """`Store.track` (dict path); valid[i] is (profile_id, type, ts_us, props) or None if rejected."""
    records: list[dict]
    valid: list = field(repr=False)
    bad: list = field(repr=False)       # the field the rejection names (None: not checked)

    def apply(self, store, oracle: Oracle) -> None:
        _check_track(store.track([dict(r) for r in self.records]), self.valid, self.bad, oracle)


@dataclass
class TrackColumns:
    """`Store.track_columns`: ids, types, ts (None = now for all) and property columns."""
    ids: Any
    types: Any
    ts: Any
    properties: dict
    valid: list = field(repr=False)
    bad: list = field(repr=False)

    def apply(self, store, oracle: Oracle) -> None:
        r = store.track_columns(self.ids, self.types, ts=self.ts, properties=self.properties)
        _check_track(r, self.valid, self.bad, oracle)


@dataclass
class Sequenced:
    """Several writes in a row (late arrivals: batches tracked newest first)."""
    ops: list

    def apply(self, store, oracle: Oracle) -> None:
        for op in self.ops:
            op.apply(store, oracle)


@dataclass
class Probe:
    """An event query between writes: reads seal the logs' tails, so later writes form new
    chunks that merge with these (and merges drop deleted profiles' events)."""
    types: tuple

    def apply(self, store, oracle: Oracle) -> None:
        sql = " OR ".join(f"event_count({sql_string(t)}) > 0" for t in self.types)
        fns = [EventFn("count", t) for t in self.types]
        expected = oracle.count(lambda r: any(r.event_value(fn) > 0 for fn in fns))
        assert_same(f"count({sql!r})", expected, store.count(sql))


@dataclass
class TrackBulk:
    """A larger columnar event batch from a seeded RNG, in two calls: the older half comes second.

    String properties draw from `categories` values: dictionary codes widen past 127.
    """
    n: int
    seed: int
    types: tuple
    props: dict
    categories: int = len(VOCAB)
    profiles: int = 50

    def apply(self, store, oracle: Oracle) -> None:
        ids, types, ts, props, valid = self.materialize()
        for sl in (slice(self.n // 2, None), slice(0, self.n // 2)):
            part = {k: (v[sl] if not hasattr(v, "categories") else _sub_categorical(v, sl))
                    for k, v in props.items()}
            r = store.track_columns(ids[sl], _sub_categorical(types, sl), ts=ts[sl], properties=part)
            assert not r.errors and r.accepted == len(valid[sl]), (r.accepted, r.errors[:3])
            oracle.track(valid[sl])

    def materialize(self):
        from cdpcore.batch import Categorical
        rng = np.random.default_rng(self.seed)
        ids = np.array([f"ev{i}" for i in rng.integers(0, self.profiles, self.n)], dtype=str)
        type_codes = rng.integers(0, len(self.types), self.n)
        ts = np.sort(NOW_US - rng.integers(-10 * DAY_US, YEAR_US, self.n))   # ascending; tracked late half first
        props, norm = {}, [{} for _ in range(self.n)]
        for name, kind in self.props.items():
            absent = rng.random(self.n) < 0.2
            if kind == "float":
                vals = rng.integers(-400, 400, self.n) / 4
                props[name] = np.ma.MaskedArray(vals, mask=absent)
                plain = vals.tolist()
            else:
                vocab = (VOCAB + [f"c{i:03d}" for i in range(self.categories)])[:self.categories]
                codes = np.where(absent, -1, rng.integers(0, len(vocab), self.n))
                props[name] = Categorical(codes, vocab)
                plain = [None if c < 0 else vocab[c] for c in codes.tolist()]
            for rec, a, v in zip(norm, absent.tolist(), plain):
                if not a:
                    rec[name] = v
        valid = [(pid, self.types[t], int(us), rec)
                 for pid, t, us, rec in zip(ids.tolist(), type_codes.tolist(), ts.tolist(), norm)]
        return ids, Categorical(type_codes, list(self.types)), ts.astype("datetime64[us]"), props, valid


def _sub_categorical(cat, sl: slice):
    from cdpcore.batch import Categorical
    return Categorical(cat.codes[sl], cat.categories)


# ----------------------------------------------------------------------------------
# Event batches. `known` is the properties the store knows before the batch: only those may
# appear in a rejected event, so which properties exist never hinges on a rejected record.

@st.composite
def _event(draw, types: Sequence[str], props: Mapping[str, str], ts: int | None = None,
           ids: st.SearchStrategy[str] = event_ids):
    """One valid event: (raw record pieces, normalised (pid, type, ts, props))."""
    pid, etype = draw(ids), draw(choice(tuple(types)))
    if ts is None and not rarely(draw, 8):
        ts = draw(event_times)
    named = draw(subsets(tuple(props))) if props else []
    norm = {name: draw(PROP_OR_NULL[props[name]]) for name in named}
    return pid, etype, ts, norm


@st.composite
def track_records(draw, types: Sequence[str], props: Mapping[str, str], known: Mapping[str, str] = {},
                  min_size: int = 1, max_size: int = 8, poison: bool = True,
                  times: Sequence[int] | None = None, ids: st.SearchStrategy[str] = event_ids) -> TrackRecords:
    """A `track` batch; `times` fixes the events' timestamps (late-arrival sequences)."""
    seen = dict(known)
    records, valid, bad = [], [], []
    n = len(times) if times is not None else draw(st.integers(min_size, max_size))
    for i in range(n):
        pid, etype, ts, norm = draw(_event(types, props, None if times is None else times[i], ids))
        raw = {"profile_id": pid, "type": etype}
        if ts is not None:
            raw["ts"] = draw(timestamp_input(ts))
        elif draw(st.booleans()):
            raw["ts"] = None                          # explicit None: the clock's now, as missing
        for name, value in norm.items():
            raw[name] = draw(prop_input(value)) if value is not None else None
        fault = draw(_fault(raw, seen)) if poison and rarely(draw, 10) else False
        records.append(raw)
        if fault is not False:
            valid.append(None)
            bad.append(fault)
            continue
        valid.append((pid, etype, NOW_US if ts is None else ts, norm))
        bad.append(None)
        seen.update({k: props[k] for k, v in norm.items() if v is not None})
    return TrackRecords(records, valid, bad)


@st.composite
def _fault(draw, raw: dict, seen: Mapping[str, str]) -> str | None:
    """Spoil `raw` in place; returns the field the rejection must name (None: unchecked)."""
    for name in [k for k in raw if k not in ("profile_id", "type", "ts") and k not in seen]:
        del raw[name]                                  # a rejected event declares nothing
    kinds = ["no_type", "bad_ts", "bad_value", "no_id"] + (["wrong_kind"] if seen else [])
    kind = draw(st.sampled_from(kinds))
    if kind == "no_type":
        form = draw(st.sampled_from(["missing", "none", "empty"]))
        if form == "missing":
            del raw["type"]
        else:
            raw["type"] = None if form == "none" else ""
        return "type"
    if kind == "bad_ts":
        raw["ts"] = draw(st.sampled_from(["not a date", "2026-13-01", [1]]))
        return "ts"
    if kind == "no_id":
        raw.pop("profile_id")
        return None
    name = draw(st.sampled_from(sorted(seen) or list(PROPERTIES)))
    raw[name] = WRONG_KIND[seen[name]] if kind == "wrong_kind" else draw(st.sampled_from(BAD_PROP_VALUES))
    return name


@st.composite
def track_columns(draw, types: Sequence[str], props: Mapping[str, str], known: Mapping[str, str] = {},
                  max_size: int = 8, poison: bool = True) -> TrackColumns:
    """A `track_columns` batch in one of the documented shapes per column."""
    events = draw(st.lists(_event(types, props), min_size=1, max_size=max_size))
    n = len(events)
    ids = [e[0] for e in events]
    valid = [(pid, t, NOW_US if ts is None else ts, {}) for pid, t, ts, _ in events]
    bad: list = [None] * n
    named = draw(subsets(tuple(props))) if props else []
    columns = {name: draw(_prop_column(props[name], [e[3].get(name) for e in events], name in known))
               for name in named}
    for name in named:
        for (_, _, _, norm), (_, _, _, props_out) in zip(events, valid):
            if norm.get(name) is not None:
                props_out[name] = norm[name]
    types_col = draw(_types_column([e[1] for e in events]))
    spoilable = [name for name in named if isinstance(columns[name], list) and name in known]
    if poison and rarely(draw, 4):
        i = draw(st.integers(0, n - 1))
        if spoilable and draw(st.booleans()):
            name = draw(st.sampled_from(spoilable))
            columns[name][i], bad[i] = draw(st.sampled_from(BAD_PROP_VALUES[:2])), name
        else:
            types_col = [e[1] for e in events]
            types_col[i], bad[i] = draw(st.sampled_from(["", None])), "type"
        valid[i] = None
    ts = draw(_ts_column([e[2] for e in events]))
    if ts is None:
        valid = [v if v is None else (v[0], v[1], NOW_US, v[3]) for v in valid]
    if draw(st.booleans()):
        ids = np.array(ids, dtype=str)
    return TrackColumns(ids, types_col, ts, columns, valid, bad)


@st.composite
def _types_column(draw, types: list[str]):
    if draw(st.booleans()):
        return list(types)
    from cdpcore.batch import Categorical
    cats = list(dict.fromkeys(draw(st.permutations(sorted(set(types)) + ["unused"]))))
    return Categorical(np.array([cats.index(t) for t in types], dtype=np.int32), cats)


@st.composite
def _ts_column(draw, times: list[int | None]):
    """None (now for every event), a datetime64 array, or a list of mixed input forms."""
    if all(t is None for t in times) and draw(st.booleans()):
        return None
    if None not in times and draw(st.booleans()):
        return np.array(times, dtype="datetime64[us]")
    return [None if t is None else draw(timestamp_input(t)) for t in times]


@st.composite
def _prop_column(draw, kind: str, vals: list, known: bool):
    """A property column: float arrays / MaskedArray / list, or Categorical / list for strings."""
    from cdpcore.batch import Categorical
    forms = ["masked", "list"] if kind == "float" else ["categorical", "list"]
    if kind == "float" and None not in vals:
        forms.append("array")
    if not known and all(v is None for v in vals):
        forms.remove("list")        # an all-null list cannot say which kind a new property is
    form = draw(st.sampled_from(forms))
    if form == "list":
        return [None if v is None else draw(prop_input(v)) for v in vals]
    if form == "array":
        return np.array(vals, dtype=np.float64)
    if form == "masked":
        return np.ma.MaskedArray(np.array([0.0 if v is None else v for v in vals]),
                                 mask=np.array([v is None for v in vals]))
    cats = list(dict.fromkeys(draw(st.permutations(sorted({v for v in vals if v is not None}) + ["zz"]))))
    return Categorical(np.array([-1 if v is None else cats.index(v) for v in vals], dtype=np.int64), cats)


@st.composite
def late_arrivals(draw, types: Sequence[str], props: Mapping[str, str], known: Mapping[str, str] = {}):
    """A time-sorted stream cut into batches and tracked newest batch first."""
    times = sorted(draw(st.lists(event_times, min_size=2, max_size=12)))
    cuts = sorted(draw(st.sets(st.integers(1, len(times) - 1), max_size=3)))
    parts = [times[a:b] for a, b in zip([0, *cuts], [*cuts, len(times)])]
    ops, seen = [], dict(known)
    for part in reversed(parts):
        order = part if draw(st.booleans()) else part[::-1]
        op = draw(track_records(types, props, seen, poison=False, times=order))
        seen.update(_declared(op.valid, props))
        ops.append(op)
    return Sequenced(ops)


@st.composite
def recreations(draw, types: Sequence[str], props: Mapping[str, str], known: Mapping[str, str] = {}):
    """Delete profiles, then track them again: the new profiles start with no events."""
    gone = draw(event_deletes)
    again = draw(track_records(types, props, known, poison=False, ids=st.sampled_from(gone.ids)))
    return Sequenced([gone, again])


def _declared(valid: list, props: Mapping[str, str]) -> dict[str, str]:
    return {k: props[k] for v in valid if v is not None for k, x in v[3].items() if x is not None}


# ----------------------------------------------------------------------------------
# Scenarios: attribute upserts, event batches, deletes and re-creation, interleaved.

@dataclass
class EventScenario:
    schema: dict[str, str]
    types: tuple[str, ...]
    props: dict[str, str]
    ops: list


event_deletes = st.lists(event_ids, unique=True, min_size=1, max_size=4).map(Delete)


@st.composite
def event_scenarios(draw, max_ops: int = 8, bulk: bool = True, kinds: Sequence[str] | None = None) -> EventScenario:
    schema = draw(schemas(max_size=3))
    types, props = draw(event_types), draw(event_props)
    known: dict[str, str] = {}
    ops = []
    if kinds is None:
        kinds = ["track", "track", "columns", "late", "upsert", "delete", "recreate", "probe", "probe"] + (
            ["bulk"] if bulk else [])
    for i in range(draw(st.integers(1, max_ops))):
        kind = "track" if i == 0 else draw(st.sampled_from(kinds))
        op = draw(_operation(kind, schema, types, props, known))
        ops.append(op)
        for part in getattr(op, "ops", [op]):
            if isinstance(part, (TrackRecords, TrackColumns)):
                known.update(_declared(part.valid, props))
            elif isinstance(part, TrackBulk):
                known.update(part.props)
    return EventScenario(schema, types, props, ops)


def _operation(kind: str, schema, types, props, known) -> st.SearchStrategy:
    if kind == "track":
        return track_records(types, props, known)
    if kind == "columns":
        return track_columns(types, props, known)
    if kind == "late":
        return late_arrivals(types, props, known)
    if kind == "upsert":
        return record_batches(schema)
    if kind == "delete":
        return event_deletes
    if kind == "recreate":
        return recreations(types, props, known)
    if kind == "probe":
        return st.just(Probe(types))
    return st.builds(TrackBulk, st.sampled_from([100, 1000, 3000]), st.integers(0, 2**32 - 1),
                     st.just(types), st.just(props), st.sampled_from([len(VOCAB), 127, 128, 129, 300]))


def replay_events(store, oracle: Oracle, scenario: EventScenario) -> None:
    store.define_fields(scenario.schema)
    oracle.define(scenario.schema)
    for op in scenario.ops:
        op.apply(store, oracle)


# ----------------------------------------------------------------------------------
# Event queries: what they may name, then functions, conditions and listings.

@dataclass(frozen=True)
class EventWorld:
    """The types and properties a query may name, and values present in the data.

    `types` were tracked (accepted); `untracked` are other names the scenario used.
    """
    types: tuple[str, ...]
    untracked: tuple[str, ...]
    props: dict[str, str]
    pools: dict[str, list]
    oracle: Oracle = field(repr=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "cache", {})      # strategies built once; not a field (not printed)

    def __repr__(self) -> str:  # short: hypothesis prints strategies (and their arguments) often
        return f"EventWorld(types={self.types!r}, props={self.props!r})"

    def _repr_pretty_(self, p, cycle) -> None:
        p.text(repr(self))

    def values_of(self, fn: EventFn) -> list:
        """The function's non-null values over the live profiles (literals that hit edges)."""
        vals = (self.oracle.event_value(pid, fn) for pid in self.oracle.rows)
        return sorted({v for v in vals if v is not None})


def world_of(oracle: Oracle, types: Sequence[str] = (), limit: int = 32) -> EventWorld:
    pools: dict[str, set] = {name: set() for name in oracle.event_props}
    pools["ts"] = set()
    for events in oracle.events.values():
        for _, ts, props in events:
            if len(pools["ts"]) < limit:
                pools["ts"].add(ts)
            for name, value in props.items():
                if len(pools[name]) < limit:
                    pools[name].add(value)
    tracked = tuple(sorted(oracle.event_types))
    untracked = tuple(sorted(set(types) - oracle.event_types))
    return EventWorld(tracked, untracked, dict(oracle.event_props), {k: sorted(v) for k, v in pools.items()},
                      oracle)


FUNC_SQL = {"count": "event_count", "sum": "event_sum", "avg": "event_avg", "min": "event_min",
            "max": "event_max", "first_seen": "first_seen", "last_seen": "last_seen"}


_UNITS = (("w", 7 * DAY_US), ("d", DAY_US), ("h", HOUR_US), ("m", MINUTE_US), ("s", SECOND_US))


@st.composite
def windows(draw, times: Sequence[int] = ()) -> tuple[str, int]:
    """A window argument: `'Nd'`-style strings in every unit, or an INTERVAL.

    Given event `times`, often a window whose start falls exactly on one of them.
    """
    edges = [NOW_US - t for t in times if t < NOW_US and (NOW_US - t) % SECOND_US == 0]
    if edges and draw(st.booleans()):
        span = draw(st.sampled_from(edges))
        if span % MINUTE_US == 0 and rarely(draw, 4):
            return draw(interval_sql(span)), span
        letter, scale = next((u, k) for u, k in _UNITS if span % k == 0)
        return f"'{span // scale}{letter}'", span
    if rarely(draw, 20):    # wider than all of time: now - window is below year 1 (or int64)
        n = draw(st.sampled_from([1_000_000, 10**8, 99_999_999_999_999]))
        return f"'{n}w'", n * 7 * DAY_US
    unit = draw(st.sampled_from(["d", "d", "h", "w", "m", "s", "interval"]))
    if unit == "interval":
        us = draw(st.sampled_from([DAY_US, 7 * DAY_US, 30 * DAY_US, 36 * HOUR_US])
                  | st.integers(1, 400).map(lambda d: d * DAY_US) | st.integers(1, 2000).map(lambda m: m * MINUTE_US))
        return draw(interval_sql(us)), us
    scale = {"d": DAY_US, "h": HOUR_US, "w": 7 * DAY_US, "m": MINUTE_US, "s": SECOND_US}[unit]
    top = {"d": 400, "h": 24 * 120, "w": 60, "m": 60 * 24 * 30, "s": 86_400 * 30}[unit]
    n = draw(st.sampled_from([1, 7, 14, 30, 90, 365]) if unit == "d" and draw(st.booleans())
             else st.integers(1, top))
    return f"'{n}{unit}'", n * scale


PROP_LEAVES = {"float": (compare_leaf, between_leaf, in_leaf, is_null_leaf),
               "string": (compare_leaf, between_leaf, in_leaf, like_leaf, like_leaf, is_null_leaf),
               "timestamp": (compare_leaf,)}


def event_conditions(world: EventWorld, max_leaves: int = 3) -> st.SearchStrategy[Cond]:
    """Conditions over one event's properties and `ts` (predicates take {**props, "ts": ts})."""
    key = ("conditions", max_leaves)
    if key not in world.cache:
        world.cache[key] = _event_conditions(world, max_leaves)
    return world.cache[key]


def _event_conditions(world: EventWorld, max_leaves: int) -> st.SearchStrategy[Cond]:
    typed = [(name, kind) for name, kind in world.props.items()] + [("ts", "timestamp")]
    base = st.one_of(*(leaf(name, kind, tuple(world.pools.get(name, ())))
                       for name, kind in typed for leaf in PROP_LEAVES[kind]))
    return st.recursive(base, lambda c: st.one_of(_and_or(c, True), _and_or(c, False), _not(c)),
                        max_leaves=max_leaves)


@st.composite
def event_fns(draw, world: EventWorld) -> EventFn:
    """`event_count('t' [, window] [, condition])` and siblings, with the oracle's reading."""
    floats = sorted(p for p, kind in world.props.items() if kind == "float")
    func = draw(st.sampled_from([f for f in EVENT_FUNCS if f not in VALUE_FUNCS or floats]))
    pick = draw(st.sampled_from(["tracked"] * 8 + ["untracked", "never"]))
    if pick == "tracked" and world.types:
        etype = draw(choice(world.types))
    elif pick == "untracked" and world.untracked:
        etype = draw(choice(world.untracked))
    else:
        etype = NEVER_TYPE
    args, prop = [sql_string(etype)], None
    if func in VALUE_FUNCS:
        prop = draw(st.sampled_from(floats))
        args.append(sql_string(prop))
    window = draw(st.none() | windows(world.pools.get("ts", ())))
    if window is not None:
        args.append(window[0])
    cond = draw(event_conditions(world)) if rarely(draw, 3) else None
    if cond is not None:
        args.append(cond.sql)
    return EventFn(func, etype, prop, window and window[1], cond and cond.pred,
                   f"{FUNC_SQL[func]}({', '.join(args)})")


_OPS = ("=", "!=", "<>", "<", "<=", ">", ">=")
_PY_OPS = {"<>": "!="}


@st.composite
def fn_literal(draw, fn: EventFn, present: Sequence[Any]) -> tuple[str, Any]:
    """A literal to compare `fn` with: ints for counts, numbers for values, timestamps for seen."""
    nudge = st.sampled_from([0, 0, -1, 1])           # on a present value, or one step either side
    if fn.func == "count":
        if present and draw(st.booleans()):
            n = draw(st.sampled_from(present)) + draw(nudge)
        else:
            n = draw(st.integers(-1, 5))
        return str(n), n
    if fn.func in VALUE_FUNCS:
        v = draw(st.sampled_from(present)) if present and draw(st.booleans()) else draw(dyadics)
        if float(v).is_integer() and abs(v) < 2**53 and draw(st.booleans()):
            return str(int(v)), int(v)
        return repr(float(v)), float(v)
    if rarely(draw, 5):
        return draw(timestamp_literal())               # any spelling, any time in years 1–9999
    us = draw(st.sampled_from(present)) + draw(nudge) if present else draw(event_times)
    return draw(timestamp_literal(min(max(us, MIN_US), MAX_US)))     # spellable: years 1–9999


@st.composite
def event_leaf(draw, world: EventWorld) -> Cond:
    """An event function compared with a literal (either side), [NOT] IN, [NOT] BETWEEN, IS [NOT] NULL."""
    fn = draw(event_fns(world))
    shape = draw(st.sampled_from(["compare"] * 6 + ["null", "in", "between"]))
    negate = draw(st.booleans())
    no = "NOT " if negate else ""
    if shape == "null":
        return Cond(f"{fn.sql} IS {no}NULL", lambda r: (r.event_value(fn) is None) != negate)
    present = world.values_of(fn)
    if shape != "compare":
        lits = draw(st.lists(fn_literal(fn, present), min_size=2 if shape == "between" else 1,
                             max_size=2 if shape == "between" else 3))
        vals = [v for _, v in lits]
        if shape == "in":
            sql = f"{fn.sql} {no}IN ({', '.join(t for t, _ in lits)})"
            test = lambda r: in3(r.event_value(fn), vals)
        else:
            sql = f"{fn.sql} {no}BETWEEN {lits[0][0]} AND {lits[1][0]}"
            test = lambda r: between3(r.event_value(fn), vals[0], vals[1])
        return Cond(sql, (lambda r: not3(test(r))) if negate else test)
    op = draw(st.sampled_from(_OPS))
    py = _PY_OPS.get(op, op)
    text, lit = draw(fn_literal(fn, present))
    if draw(st.booleans()):
        return Cond(f"{fn.sql} {op} {text}", lambda r: compare3(r.event_value(fn), py, lit))
    flipped = {"<": ">", ">": "<", "<=": ">=", ">=": "<="}.get(py, py)     # lit op v  ==  v flipped lit
    return Cond(f"{text} {op} {fn.sql}", lambda r: compare3(r.event_value(fn), flipped, lit))


def mixed_conditions(schema: dict[str, str], pools: Mapping[str, Sequence[Any]], world: EventWorld,
                     max_leaves: int = 4) -> st.SearchStrategy[Cond]:
    """Event leaves and attribute leaves (strategies.leaves) under AND / OR / NOT."""
    key = ("mixed", id(schema), id(pools), max_leaves)
    if key not in world.cache:          # the objects ride along so their ids stay theirs
        ev = event_leaf(world)
        world.cache[key] = (schema, pools, st.recursive(
            st.one_of(ev, ev, leaves(schema, pools)),
            lambda c: st.one_of(_and_or(c, True), _and_or(c, False), _not(c)), max_leaves=max_leaves))
    return world.cache[key][2]


def _expr_sql(spec: SelectSpec, expr, by_alias: bool = False) -> str:
    if by_alias:
        return next(o.alias for o in spec.outputs if o.expr is expr)
    if isinstance(expr, Agg) and isinstance(expr.field, EventFn):
        return f"{expr.func}({expr.field.sql})"
    return expr.sql if isinstance(expr, EventFn) else expr_sql(expr)


def render_event_select(spec: SelectSpec, where: Cond | None) -> str:
    cols = ", ".join(_expr_sql(spec, o.expr) + (f" AS {o.alias}" if o.alias else "") for o in spec.outputs)
    parts = [f"SELECT {cols} FROM profiles"]
    if where is not None:
        parts.append(f"WHERE {where.sql}")
    if spec.group_by:
        parts.append("GROUP BY " + ", ".join(spec.group_by))
    if spec.order_by:
        keys = []
        for o in spec.order_by:
            text = _expr_sql(spec, o.expr, o.by_alias) + (" DESC" if o.desc else "")
            if o.nulls_first is not None:
                text += " NULLS FIRST" if o.nulls_first else " NULLS LAST"
            keys.append(text)
        parts.append("ORDER BY " + ", ".join(keys))
    if spec.limit is not None:
        parts.append(f"LIMIT {spec.limit}")
    if spec.offset is not None:
        parts.append(f"OFFSET {spec.offset}")
    return " ".join(parts)


def _alias(draw, fn: EventFn, i: int) -> str | None:
    """`v{i}`, or none: an unaliased event column is named by the call as written."""
    return None if rarely(draw, 3) else f"v{i}"


@st.composite
def event_listings(draw, schema: dict[str, str], pools: Mapping, world: EventWorld) -> Query:
    """`SELECT profile_id, event_count(…) AS v0, … FROM profiles [WHERE …] [ORDER BY …] [LIMIT …]`."""
    fns = draw(st.lists(event_fns(world), min_size=1, max_size=3, unique_by=lambda f: f.sql))
    attrs = draw(st.lists(st.sampled_from(list(schema)), unique=True, max_size=2)) if schema else []
    outputs = ((Output(Col("profile_id")),) + tuple(Output(fn, _alias(draw, fn, i)) for i, fn in enumerate(fns))
               + tuple(Output(Col(a)) for a in attrs))
    where = draw(st.none() | mixed_conditions(schema, pools, world, max_leaves=3))
    shape = draw(st.sampled_from(["id", "hash", "value", "value"]))
    order: tuple = ()
    if shape == "id":
        order = (OrderBy(Col("profile_id"), draw(st.booleans())),)
    elif shape == "value":
        fn = draw(st.sampled_from(fns))
        aliased = any(o.expr is fn and o.alias for o in outputs)
        order = (OrderBy(fn, draw(st.booleans()), draw(st.sampled_from([None, True, False])),
                         aliased and draw(st.booleans())),)
        if draw(st.booleans()):
            order += (OrderBy(Col("profile_id")),)
    spec = SelectSpec(outputs, where and where.pred, (), order, draw(limits),
                      draw(st.none() | st.integers(0, 3)))
    return Query(render_event_select(spec, where), spec)


@st.composite
def event_aggregates(draw, schema: dict[str, str], pools: Mapping, world: EventWorld) -> Query:
    """`SELECT [key,] avg(event_count(…)) AS a0, min(last_seen(…)) AS a1 … [GROUP BY key]`."""
    aggs = []
    for fn in draw(st.lists(event_fns(world), min_size=1, max_size=3)):
        seen = fn.func in ("first_seen", "last_seen")
        aggs.append(Agg(draw(st.sampled_from(["count", "min", "max"] + ([] if seen else ["sum", "avg"]))), fn))
    if rarely(draw, 3):
        aggs.append(Agg("count"))
    groupable = [n for n, t in schema.items() if t in GROUPABLE]
    keys = (draw(st.sampled_from(groupable)),) if groupable and draw(st.booleans()) else ()
    outputs = tuple(Output(Col(k)) for k in keys) + tuple(Output(a, f"a{i}") for i, a in enumerate(aggs))
    exact = [a for a in aggs if a.func in ("count", "min", "max") or a.field is None
             or (a.func == "sum" and a.field.func == "count")]          # sort keys without float noise
    order: tuple = ()
    if keys and exact and draw(st.booleans()):
        order = (OrderBy(draw(st.sampled_from(exact)), draw(st.booleans()), by_alias=True),)
    where = draw(st.none() | mixed_conditions(schema, pools, world, max_leaves=3))
    spec = SelectSpec(outputs, where and where.pred, keys, order, draw(limits) if keys else None)
    return Query(render_event_select(spec, where), spec)


# ----------------------------------------------------------------------------------
# Refusals: each text holds exactly one documented error, inside `bad`.

def event_ill_typed(world: EventWorld) -> st.SearchStrategy[str]:
    """Bad window, unknown property, property kind mismatch, non-literal type, wrong arity."""
    t = sql_string(world.types[0] if world.types else "purchase")
    options = [f"event_count({t}, '30x') > 0", f"event_count({t}, '0d') > 0", f"event_count({t}, '5y') >= 1",
               f"event_count({t}, nosuchprop9 = 1) > 0", f"event_sum({t}, 'nosuchprop9') > 0",
               f"event_count({t}) = 'x'", f"last_seen({t}) > TRUE", f"event_sum({t}) > 1",
               "event_count(nosuchprop9) > 0", "event_count(1) > 0",
               f"event_count({t}, INTERVAL '1 month') > 0"]
    for name, kind in world.props.items():
        if kind == "string":
            options += [f"event_sum({t}, '{name}') > 0", f"event_count({t}, {name} > 5) > 0"]
        else:
            options += [f"event_count({t}, {name} = 'x') > 0", f"event_count({t}, {name} LIKE 'a%') > 0"]
    return st.sampled_from(options)
