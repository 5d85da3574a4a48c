"""Property tests for behavioural events: the engine answers as the brute-force oracle does.

Each example draws an attribute schema, a few event types and properties, and a stream of
writes (track batches by dict and by column, late arrivals, a larger seeded batch,
attribute upserts, deletes and re-creation), applies it to a Store on a fixed clock and to
the Oracle, then asks event-function conditions mixed with attribute predicates, event
listings and aggregates, and `events_of` (docs/query-language.md, "Event functions";
issue 4).

The first section checks the oracle itself on hand-worked cases: if the reference is
wrong, every property test lies.
"""
from __future__ import annotations

import contextlib

import pytest
import sqlglot
from hypothesis import given, settings, strategies as st

from event_strategies import (EVENT_IDS, Probe, Sequenced, TrackBulk, TrackColumns, TrackRecords, event_aggregates, event_fns, event_ill_typed,
                              event_leaf, event_listings, event_scenarios, mixed_conditions, replay_events, world_of)
from oracle import (Col, EventFn, Oracle, OrderBy, Output, SelectSpec, assert_same,
                    assert_same_events, compare3, not3, to_datetime)
from strategies import DAY_US, NOW_US, Delete, clock, value_pools

SHARDS = (1, 3)


# ----------------------------------------------------------------------------------
# The oracle on hand-worked cases.

def _oracle(*events) -> Oracle:
    o = Oracle(now_us=NOW_US)
    o.track(events)
    return o


def _value(o: Oracle, pid: str, fn: EventFn):
    return o.event_value(pid, fn)


def test_windows_are_inclusive_at_both_ends_and_exclude_the_future():
    o = _oracle(("p", "buy", NOW_US - 30 * DAY_US, {}), ("p", "buy", NOW_US - 30 * DAY_US - 1, {}),
                ("p", "buy", NOW_US, {}), ("p", "buy", NOW_US + 1, {}), ("p", "view", NOW_US, {}))
    assert _value(o, "p", EventFn("count", "buy", window_us=30 * DAY_US)) == 2
    assert _value(o, "p", EventFn("count", "buy")) == 4          # no window: every event, future too
    assert _value(o, "p", EventFn("last_seen", "buy", window_us=DAY_US)) == NOW_US
    assert _value(o, "p", EventFn("first_seen", "buy", window_us=30 * DAY_US)) == NOW_US - 30 * DAY_US
    assert _value(o, "p", EventFn("last_seen", "buy")) == NOW_US + 1


def test_value_functions_skip_absent_properties_and_are_null_over_nothing():
    o = _oracle(("p", "buy", NOW_US, {"amount": 2.5}), ("p", "buy", NOW_US, {"amount": None}),
                ("p", "buy", NOW_US, {"category": "shoes"}), ("p", "buy", NOW_US, {"amount": -0.5}),
                ("q", "buy", NOW_US, {"category": "books"}))
    fn = lambda f: EventFn(f, "buy", "amount")
    assert [_value(o, "p", fn(f)) for f in ("sum", "avg", "min", "max")] == [2.0, 1.0, -0.5, 2.5]
    assert [_value(o, "q", fn(f)) for f in ("sum", "avg", "min", "max")] == [None] * 4
    assert _value(o, "q", EventFn("count", "buy")) == 1
    assert o.events["p"][1][2] == {}                             # None: the property is absent


def test_event_conditions_are_three_valued():
    o = _oracle(("p", "buy", NOW_US, {"amount": 10.0}), ("p", "buy", NOW_US, {}),
                ("p", "buy", NOW_US, {"amount": 1.0}))
    gt5 = lambda e: compare3(e.get("amount"), ">", 5)
    assert _value(o, "p", EventFn("count", "buy", where=gt5)) == 1
    assert _value(o, "p", EventFn("count", "buy", where=lambda e: not3(gt5(e)))) == 1   # null: neither
    assert _value(o, "p", EventFn("count", "buy", where=lambda e: e.get("amount") is None)) == 1
    assert _value(o, "p", EventFn("count", "buy", where=lambda e: compare3(e["ts"], "=", NOW_US))) == 3


def test_null_event_values_match_neither_comparison_nor_negation():
    o = _oracle(("p", "buy", NOW_US, {"amount": 3.0}), ("q", "view", NOW_US, {}))
    s = EventFn("sum", "buy", "amount")
    gt = lambda r: compare3(r.event_value(s), ">", 0)
    assert o.matching(gt) == ["p"]
    assert o.matching(lambda r: not3(gt(r))) == []
    assert o.matching(lambda r: r.event_value(s) is None) == ["q"]
    assert o.matching(lambda r: compare3(r.event_value(EventFn("count", "zz")), "=", 0)) == o.matching(None)


def test_track_creates_profiles_and_delete_forgets_events():
    o = Oracle(now_us=NOW_US)
    o.define({"age1": "int"})
    o.track([("p", "buy", NOW_US, {"amount": 1})])
    assert o.get_profile("p") == {"profile_id": "p"} and o.events["p"][0][2] == {"amount": 1.0}
    o.upsert([{"profile_id": "p", "age1": 3}])
    assert len(o.events["p"]) == 1                                # upserts keep events
    assert o.delete(["p"]) == (1, []) and o.events_of("p") is None
    o.upsert([{"profile_id": "p"}])
    assert o.events_of("p") == [] and _value(o, "p", EventFn("count", "buy")) == 0


def test_events_of_is_most_recent_first_and_ties_compare_in_any_order():
    o = _oracle(("p", "a", NOW_US - DAY_US, {}), ("p", "b", NOW_US, {"amount": 1.0}),
                ("p", "c", NOW_US - DAY_US, {}), ("p", "d", NOW_US - 2 * DAY_US, {}))
    full = o.events_of("p")
    assert [e["type"] for e in full] == ["b", "c", "a", "d"] and full[0]["ts"] == to_datetime(NOW_US)
    swapped = [full[0], full[2], full[1], full[3]]
    assert_same_events("ties", full, swapped, 4)
    assert_same_events("cut tie", full, [full[0], full[2]], 2)     # 'a' instead of 'c': same ts
    with pytest.raises(AssertionError):
        assert_same_events("wrong", full, [full[0], full[3]], 2)
    with pytest.raises(AssertionError):
        assert_same_events("short", full, full[:2], 3)


def test_event_listing_orders_by_value_then_hash_order():
    o = _oracle(("a", "buy", NOW_US, {}), ("b", "buy", NOW_US, {}), ("b", "buy", NOW_US, {}), ("c", "x", NOW_US, {}))
    fn = EventFn("count", "buy")
    last = EventFn("last_seen", "buy")
    spec = SelectSpec((Output(Col("profile_id")), Output(fn, "n"), Output(last, "l")),
                      order_by=(OrderBy(fn, desc=True), OrderBy(Col("profile_id"))))
    res = o.select(spec)
    assert res.columns == ["profile_id", "n", "l"]
    assert res.rows == [("b", 2, to_datetime(NOW_US)), ("a", 1, to_datetime(NOW_US)), ("c", 0, None)]
    by_last = o.select(SelectSpec(spec.outputs, order_by=(OrderBy(last),)))
    assert by_last.rows[-1][0] == "c"                             # nulls last


def oracle_only(op, oracle: Oracle) -> None:
    """Apply a scenario's write to the oracle alone (what a correct engine would accept)."""
    if isinstance(op, Sequenced):
        for part in op.ops:
            oracle_only(part, oracle)
    elif isinstance(op, (TrackRecords, TrackColumns)):
        oracle.track(v for v in op.valid if v is not None)
    elif isinstance(op, TrackBulk):
        oracle.track(op.materialize()[-1])
    elif isinstance(op, Delete):
        oracle.delete(op.ids)
    elif isinstance(op, Probe):
        pass
    else:
        oracle.upsert(v for v in op.valid if v is not None)


@settings(max_examples=30)
@given(scenario=event_scenarios(), data=st.data())
def test_generated_event_sql_parses_and_predicates_are_total(scenario, data):
    """Before any engine: the strategies' SQL is well-formed and the oracle answers every question."""
    oracle = Oracle(now_us=NOW_US)
    oracle.define(scenario.schema)
    for op in scenario.ops:
        oracle_only(op, oracle)
    world = world_of(oracle, scenario.types)
    cond = data.draw(mixed_conditions(scenario.schema, value_pools(oracle.rows.values(), oracle.schema), world))
    sqlglot.parse_one(cond.sql, read="duckdb")
    assert all(cond.pred(oracle.profile(pid)) in (True, False, None) for pid in oracle.rows)
    for query in (data.draw(event_listings(scenario.schema, {}, world)),
                  data.draw(event_aggregates(scenario.schema, {}, world))):
        sqlglot.parse_one(query.sql, read="duckdb")
        oracle.select(query.spec)


# ----------------------------------------------------------------------------------
# The engine against the oracle.

@contextlib.contextmanager
def built(shards: int, scenario):
    """A store on the fixed clock and an oracle after the scenario's writes (each answer checked)."""
    from cdpcore import Store
    store = Store(shards=shards, clock=clock)
    try:
        oracle = Oracle(now_us=NOW_US)
        replay_events(store, oracle, scenario)
        yield store, oracle
    finally:
        store.close()


def pools_of(oracle: Oracle) -> dict:
    return value_pools(oracle.rows.values(), oracle.schema)


@pytest.mark.parametrize("shards", SHARDS)
@given(scenario=event_scenarios(), data=st.data())
def test_event_conditions_match_oracle(shards, scenario, data):
    """count(where) and the matching ids, for event functions mixed with attribute predicates."""
    with built(shards, scenario) as (store, oracle):
        world, pools = world_of(oracle, scenario.types), pools_of(oracle)
        for i in range(4):
            cond = data.draw(mixed_conditions(scenario.schema, pools, world), label="where")
            expected = oracle.matching(cond.pred)
            assert_same(f"count({cond.sql!r})", len(expected), store.count(cond.sql))
            if i == 0:
                sql = f"SELECT profile_id FROM profiles WHERE {cond.sql}"
                spec = SelectSpec((Output(Col("profile_id")),), where=cond.pred)
                assert_same(sql, oracle.select(spec), store.query(sql))


@pytest.mark.parametrize("shards", SHARDS)
@given(scenario=event_scenarios(), data=st.data())
def test_event_listings_match_oracle(shards, scenario, data):
    """Per-profile event values in SELECT listings, ordered by them or by id, with LIMIT/OFFSET."""
    with built(shards, scenario) as (store, oracle):
        world = world_of(oracle, scenario.types)
        for _ in range(2):
            query = data.draw(event_listings(scenario.schema, pools_of(oracle), world), label="query")
            assert_same(query.sql, oracle.select(query.spec), store.query(query.sql))


@pytest.mark.parametrize("shards", SHARDS)
@given(scenario=event_scenarios(), data=st.data())
def test_event_aggregates_match_oracle(shards, scenario, data):
    """count/sum/avg/min/max over per-profile event values, with or without GROUP BY."""
    with built(shards, scenario) as (store, oracle):
        world = world_of(oracle, scenario.types)
        for _ in range(2):
            query = data.draw(event_aggregates(scenario.schema, pools_of(oracle), world), label="query")
            assert_same(query.sql, oracle.select(query.spec), store.query(query.sql))


@pytest.mark.parametrize("shards", SHARDS)
@given(scenario=event_scenarios(), data=st.data())
def test_events_of_matches_oracle(shards, scenario, data):
    """Most recent first, at most `limit`, None for unknown profiles, empty after re-creation."""
    with built(shards, scenario) as (store, oracle):
        bulk = sorted(pid for pid in oracle.events if pid.startswith("ev"))[:3]
        for pid in EVENT_IDS + bulk + ["never_seen"]:
            limit = data.draw(st.sampled_from([0, 1, 2, 3, 5, 100]), label=f"limit {pid}")
            assert_same_events(f"events_of({pid!r}, limit={limit})", oracle.events_of(pid),
                               store.events_of(pid, limit=limit), limit)
        assert_same_events("events_of default limit", oracle.events_of(EVENT_IDS[0]),
                           store.events_of(EVENT_IDS[0]), 100)
        for pid in EVENT_IDS[:4]:
            assert_same(f"get_profile({pid!r})", oracle.get_profile(pid), store.get_profile(pid))


@given(scenario=event_scenarios())
def test_event_schema_holds_what_was_tracked(scenario):
    """Every accepted property with its kind, every accepted type, nothing from rejected events' types."""
    with built(2, scenario) as (store, oracle):
        props = store.event_schema.properties.to_dict()
        assert {k: props.get(k) for k in oracle.event_props} == oracle.event_props, props
        assert set(scenario.props) >= set(props), props
        types = store.event_schema.types()
        assert types == sorted(types) and oracle.event_types <= set(types) <= set(scenario.types), types


@pytest.mark.parametrize("shards", SHARDS)
@given(scenario=event_scenarios(), data=st.data())
def test_unknown_types_match_nothing_and_warn(shards, scenario, data):
    """A type never tracked is no error: its values are 0 / null and the result names it in a warning."""
    with built(shards, scenario) as (store, oracle):
        world = world_of(oracle, scenario.types)
        for _ in range(2):
            fn = data.draw(event_fns(world), label="fn")
            sql = f"SELECT count(*) FROM profiles WHERE {fn.sql} IS NULL"
            res = store.query(sql)
            expected = oracle.count(lambda r: r.event_value(fn) is None)
            assert_same(sql, expected, res.rows[0][0])
            if fn.type not in oracle.event_types and fn.type not in store.event_schema.types():
                assert any(fn.type in w for w in res.warnings), (sql, res.warnings)
            elif fn.type in oracle.event_types:
                assert res.warnings == [], (sql, res.warnings)


@pytest.mark.parametrize("shards", SHARDS)
@given(scenario=event_scenarios(max_ops=8, kinds=("late", "late", "bulk", "track", "columns", "probe")),
       data=st.data())
def test_late_arrivals_count_as_if_in_order(shards, scenario, data):
    """Streams tracked newest batch first (and a large batch split late) answer window queries exactly."""
    with built(shards, scenario) as (store, oracle):
        world = world_of(oracle, scenario.types)
        for _ in range(4):
            cond = data.draw(event_leaf(world), label="where")
            assert_same(f"count({cond.sql!r})", oracle.count(cond.pred), store.count(cond.sql))


@given(scenario=event_scenarios(max_ops=3, bulk=False), data=st.data())
def test_ill_typed_event_queries_raise_query_errors_at_the_culprit(scenario, data):
    from cdpcore.errors import QueryError
    with built(2, scenario) as (store, oracle):
        world = world_of(oracle, scenario.types)
        good = data.draw(mixed_conditions(scenario.schema, pools_of(oracle), world, max_leaves=2), label="good")
        bad = data.draw(event_ill_typed(world), label="bad")
        prefix, suffix = data.draw(st.sampled_from([(f"({good.sql}) AND ", ""), ("", f" OR ({good.sql})"),
                                                    ("NOT (", ")")]), label="shape")
        text = prefix + bad + suffix
        for sql, shift in ((text, 0), (f"SELECT count(*) FROM profiles WHERE {text}", 36)):
            with pytest.raises(QueryError) as info:
                store.query(sql) if shift else store.count(sql)
            err, start = info.value, len(prefix) + shift
            assert err.start is not None and start <= err.start < start + len(bad), (
                f"{sql!r}: error {err} spans {err.start}..{err.end}, expected inside "
                f"{start}..{start + len(bad)} ({bad!r})")
