"""Unit tests of the oracle itself: if the reference is wrong, every property test lies."""
from __future__ import annotations

import datetime as _dt

import pytest
import xxhash
from hypothesis import given, strategies as st

from oracle import (Agg, Approx, Col, Oracle, OrderBy, Output, Result, SelectSpec, and3,
                    assert_same, between3, compare3, has3, in3, like3, not3, or3, same_value)
from strategies import (Cond, conditions, record_batches, render_select, schemas, selects,
                        sql_string, timestamp_literal, MINUTE_US, NOW_US)

UTC = _dt.timezone.utc


def make(schema, *records):
    o = Oracle()
    o.define(schema)
    o.upsert(records)
    return o


# -- three-valued logic --------------------------------------------------------------

@pytest.mark.parametrize("a,b,and_,or_", [
    (True, True, True, True), (True, False, False, True), (True, None, None, True),
    (False, None, False, None), (None, None, None, None), (False, False, False, False)])
def test_kleene_tables(a, b, and_, or_):
    assert and3([a, b]) is and_ and and3([b, a]) is and_
    assert or3([a, b]) is or_ and or3([b, a]) is or_


def test_not_unknown_is_unknown():
    assert not3(None) is None and not3(True) is False and not3(False) is True


def test_null_field_matches_neither_condition_nor_its_negation():
    o = make({"age": "int"}, {"profile_id": "a", "age": 40}, {"profile_id": "b"},
             {"profile_id": "c", "age": 20})
    gt = lambda r: compare3(r.get("age"), ">", 30)
    assert o.matching(gt) == ["a"]
    assert o.matching(lambda r: not3(gt(r))) == ["c"]
    assert o.count(lambda r: compare3(r.get("age"), "!=", 99)) == 2     # null != x is not true


def test_has_on_null_and_empty_sets():
    o = make({"tags": "string_set"}, {"profile_id": "null"},
             {"profile_id": "empty", "tags": frozenset()},
             {"profile_id": "golf", "tags": frozenset({"golf"})})
    has = lambda r: has3(r.get("tags"), ["golf"])
    assert o.matching(has) == ["golf"]
    assert o.matching(lambda r: not3(has(r))) == ["empty"]
    assert o.count(lambda r: r.get("tags") is None) == 1


def test_has_all_and_any():
    assert has3(frozenset({"a", "b"}), ["a", "c"], "any") is True
    assert has3(frozenset({"a", "b"}), ["a", "c"], "all") is False
    assert has3(frozenset(), ["a"], "all") is False
    assert has3(None, ["a"], "all") is None


def test_like_wildcards_and_literals():
    assert like3("San Jose", "San%") and like3("ab", "a_") and not like3("abc", "a_")
    assert like3("a.b", "a.b") and not like3("axb", "a.b")    # regex metacharacters are literal
    assert like3("a\nb", "a_b") and like3("", "%") and not like3("", "_")
    assert like3("ÉCOLE", "%cole", case_insensitive=True) and not like3("ÉCOLE", "%cole")
    assert like3(None, "%") is None


def test_in_and_between_with_ints_and_floats():
    assert in3(3, [1, 3.0]) is True and in3(None, [1]) is None
    assert between3(5, 5, 5) is True and between3(5, 6, 4) is False and between3(None, 1, 2) is None
    assert compare3(31, ">", 30.5) and not compare3(30, ">", 30.5)
    assert compare3(2**63 - 1, ">", 9.2e18)      # exact, not via float


# -- listings and ordering -----------------------------------------------------------

def hash_sorted(ids):
    return sorted(ids, key=lambda i: (xxhash.xxh64_intdigest(i.encode()), i))


def test_listing_without_order_is_hash_order():
    ids = [f"p{i}" for i in range(20)]
    o = make({"x": "int"}, *({"profile_id": i, "x": 1} for i in ids))
    res = o.select(SelectSpec((Output(Col("profile_id")),)))
    assert [r[0] for r in res.rows] == hash_sorted(ids)
    assert res.columns == ["profile_id"]


def test_order_by_nulls_last_both_directions_then_hash_order():
    o = make({"x": "int"}, {"profile_id": "a", "x": 2}, {"profile_id": "b"}, {"profile_id": "c", "x": 1},
             {"profile_id": "d", "x": 2}, {"profile_id": "e"})
    out = (Output(Col("profile_id")), Output(Col("x")))
    nulls = hash_sorted(["b", "e"])
    asc = o.select(SelectSpec(out, order_by=(OrderBy(Col("x")),)))
    assert [r[0] for r in asc.rows] == ["c"] + hash_sorted(["a", "d"]) + nulls
    desc = o.select(SelectSpec(out, order_by=(OrderBy(Col("x"), desc=True),)))
    assert [r[0] for r in desc.rows] == hash_sorted(["a", "d"]) + ["c"] + nulls
    first = o.select(SelectSpec(out, order_by=(OrderBy(Col("x"), desc=True, nulls_first=True),),
                                limit=3, offset=1))
    assert [r[0] for r in first.rows] == (nulls + hash_sorted(["a", "d"]) + ["c"])[1:4]


def test_select_star_is_profile_id_then_schema_order():
    o = make({"b1": "string", "a1": "timestamp", "t1": "string_set"},
             {"profile_id": "p", "a1": 0, "t1": frozenset({"z", "a"})})
    res = o.select(SelectSpec(None))
    assert res.columns == ["profile_id", "b1", "a1", "t1"]
    assert res.rows == [("p", None, _dt.datetime(1970, 1, 1, tzinfo=UTC), ["a", "z"])]


# -- aggregates and grouping ---------------------------------------------------------

def test_aggregates_skip_nulls_and_are_null_over_nothing():
    o = make({"n": "int", "f": "float"}, {"profile_id": "a", "n": 2**63 - 1, "f": 1.5},
             {"profile_id": "b", "n": 2**63 - 1}, {"profile_id": "c"})
    aggs = [Agg("count"), Agg("count", "n"), Agg("sum", "n"), Agg("avg", "n"), Agg("min", "f"),
            Agg("sum", "f")]
    res = o.select(SelectSpec(tuple(Output(a) for a in aggs)))
    assert res.columns == ["COUNT(*)", "COUNT(n)", "SUM(n)", "AVG(n)", "MIN(f)", "SUM(f)"]
    (row,) = res.rows
    assert row[:3] == (3, 2, 2 * (2**63 - 1)) and type(row[2]) is int
    assert row[3].matches(float(2**63 - 1)) and row[4] == 1.5 and row[5].matches(1.5)
    empty = o.select(SelectSpec(tuple(Output(a) for a in aggs), where=lambda r: False))
    assert empty.rows == [(0, 0, None, None, None, None)]


def test_group_by_string_set_counts_each_tag_and_none_group_first():
    o = make({"tags": "string_set", "c": "string"},
             {"profile_id": "a", "tags": frozenset({"x", "y"}), "c": "k"},
             {"profile_id": "b", "tags": frozenset({"y"})},
             {"profile_id": "c", "tags": frozenset()},
             {"profile_id": "d"})
    spec = SelectSpec((Output(Col("tags")), Output(Agg("count"), "n")), group_by=("tags",))
    assert o.select(spec).rows == [(None, 2), ("x", 1), ("y", 2)]
    by_count = SelectSpec(spec.outputs, group_by=("tags",), order_by=(OrderBy(Agg("count"), desc=True),))
    assert o.select(by_count).rows == [(None, 2), ("y", 2), ("x", 1)]   # tie: key order, None first
    two = SelectSpec((Output(Col("c")), Output(Col("tags")), Output(Agg("count"))), group_by=("c", "tags"))
    assert o.select(two).rows == [(None, None, 2), (None, "y", 1), ("k", "x", 1), ("k", "y", 1)]


def test_group_order_by_key_puts_none_last_unless_nulls_first():
    o = make({"b": "bool"}, {"profile_id": "1", "b": True}, {"profile_id": "2", "b": False},
             {"profile_id": "3"})
    out = (Output(Col("b")), Output(Agg("count")))
    rows = lambda *order: o.select(SelectSpec(out, group_by=("b",), order_by=order)).rows
    assert rows() == [(None, 1), (False, 1), (True, 1)]
    assert rows(OrderBy(Col("b"))) == [(False, 1), (True, 1), (None, 1)]
    assert rows(OrderBy(Col("b"), desc=True)) == [(True, 1), (False, 1), (None, 1)]
    assert rows(OrderBy(Col("b"), nulls_first=True)) == [(None, 1), (False, 1), (True, 1)]


# -- writes and profiles -------------------------------------------------------------

def test_upsert_changes_named_fields_only_and_none_clears():
    o = make({"a": "int", "f": "float", "s": "string_set"}, {"profile_id": "p", "a": 1, "s": frozenset()})
    o.upsert([{"profile_id": "p", "f": 2}, {"profile_id": "p", "a": None}])
    assert o.get_profile("p") == {"profile_id": "p", "f": 2.0, "s": []}
    assert type(o.get_profile("p")["f"]) is float
    assert o.delete(["p", "q"]) == (1, ["q"]) and o.get_profile("p") is None


def test_same_value_is_strict_about_types():
    assert not same_value(1, True) and not same_value(1, 1.0) and not same_value(True, 1)
    assert same_value(Approx(0.3, 1.0), 0.1 + 0.2) and not same_value(Approx(0.3, 1.0), 0.31)
    naive = _dt.datetime(2020, 1, 1)
    assert not same_value(naive.replace(tzinfo=UTC), naive)
    with pytest.raises(AssertionError, match="first difference"):
        assert_same("q", Result(["x"], [(1,), (2,)]), Result(["x"], [(1,), (3,)]))


# -- strategies ----------------------------------------------------------------------

def test_sql_string_quoting():
    assert sql_string("O'Brien") == "'O''Brien'"


@given(st.data())
def test_conditions_are_total_over_records(data):
    schema = data.draw(schemas())
    batch = data.draw(record_batches(schema))
    cond = data.draw(conditions(schema))
    assert isinstance(cond, Cond) and cond.sql
    for rec in batch.valid:
        if rec is not None:
            assert cond.pred(rec) in (True, False, None)


@given(st.data())
def test_selects_render_and_evaluate(data):
    schema = data.draw(schemas())
    o = Oracle()
    o.define(schema)
    o.upsert(v for v in data.draw(record_batches(schema)).valid if v is not None)
    q = data.draw(selects(schema))
    assert q.sql.startswith("SELECT ") and " FROM profiles" in q.sql
    res = o.select(q.spec)
    assert all(len(r) == len(res.columns) for r in res.rows)


@given(timestamp_literal())
def test_timestamp_literals_stay_in_range(lit):
    text, us = lit
    assert -62135596800 * 10**6 <= us <= 253402300799 * 10**6 + 999_999 or text.startswith("now()")
    if text.startswith("now()"):
        assert (us - NOW_US) % MINUTE_US == 0


def test_render_select_example():
    spec = SelectSpec((Output(Col("c")), Output(Agg("count"), "n")), group_by=("c",),
                      order_by=(OrderBy(Agg("count"), desc=True, by_alias=True),), limit=10)
    assert render_select(spec, Cond("x > 1", lambda r: True)) == (
        "SELECT c, count(*) AS n FROM profiles WHERE x > 1 GROUP BY c ORDER BY n DESC LIMIT 10")
