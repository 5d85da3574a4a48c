"""parse.py: SQL text → raw IR, and every error with its message and span."""
from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from cdpcore.errors import QueryError
from cdpcore.query.functions import FUNCTIONS
from cdpcore.query.ir import (Agg, And, Compare, Const, FieldRef, Has, InSet, IsNull, Like,
                              Not, Or, OrderKey, OutputColumn, Select, Span)
from cdpcore.query.parse import parse_select, parse_where
from cdpcore.query.windows import parse_interval, parse_window
from cdpcore.schema import Schema
from cdpcore.timestamps import from_iso

NOW = from_iso("2026-06-01T12:00:00Z")
DAY = 86_400_000_000


@pytest.fixture(scope="module")
def schema() -> Schema:
    s = Schema()
    s.declare({
        "age": "int", "country": "string", "city": "string", "plan": "string",
        "is_subscriber": "bool", "interests": "string_set", "signup_ts": "timestamp",
        "lifetime_value": "float", "orders_count": "int",
    })
    return s


def where(text: str, schema: Schema):
    return parse_where(text, schema, NOW)


def select(text: str, schema: Schema) -> Select:
    return parse_select(text, schema, NOW)


def error_of(call, text: str, schema: Schema) -> QueryError:
    with pytest.raises(QueryError) as info:
        call(text, schema)
    return info.value


def assert_error(call, text: str, schema: Schema, message: str, fragment: str) -> None:
    """The error names the problem and its span covers exactly `fragment`."""
    e = error_of(call, text, schema)
    assert message in e.message, e.message
    assert text[e.start:e.end] == fragment, (text[e.start:e.end], e.message)


# ---- DESIGN.md examples ----

def test_design_example_between_in_not(schema):
    text = "age BETWEEN 25 AND 34 AND country IN ('JP', 'US') AND NOT is_subscriber"
    assert where(text, schema) == And((
        And((Compare("age", ">=", 25), Compare("age", "<=", 34))),
        InSet("country", ("JP", "US")),
        Not(Compare("is_subscriber", "=", True)),
    ))


def test_design_example_like_or_null(schema):
    assert where("city LIKE 'San%' OR plan IS NULL", schema) == Or((
        Like("city", "San%"), IsNull("plan")))


def test_design_example_has(schema):
    text = "has(interests, 'golf') AND has_any(interests, 'tennis', 'ski')"
    assert where(text, schema) == And((
        Has("interests", ("golf",), "any"), Has("interests", ("tennis", "ski"), "any")))


def test_design_example_timestamp_and_now(schema):
    assert where("signup_ts >= '2026-01-01'", schema) == Compare(
        "signup_ts", ">=", from_iso("2026-01-01"))
    assert where("signup_ts < now() - INTERVAL '14 days'", schema) == Compare(
        "signup_ts", "<", NOW - 14 * DAY)


def test_design_example_selects(schema):
    assert select("SELECT count(*) FROM profiles WHERE age > 30", schema) == Select(
        columns=(OutputColumn("COUNT(*)", Agg("count", None)),),
        where=Compare("age", ">", 30))
    text = ("SELECT country, count(*) FROM profiles WHERE age > 30 GROUP BY country "
            "ORDER BY count(*) DESC LIMIT 10")
    assert select(text, schema) == Select(
        columns=(OutputColumn("country", FieldRef("country")),
                 OutputColumn("COUNT(*)", Agg("count", None))),
        where=Compare("age", ">", 30), group_by=(FieldRef("country"),),
        order_by=(OrderKey(Agg("count", None), desc=True),), limit=10)
    text = ("SELECT avg(lifetime_value), sum(orders_count), min(age), max(age) FROM profiles "
            "WHERE is_subscriber")
    q = select(text, schema)
    assert q.kind == "aggregate"
    assert [c.name for c in q.columns] == [
        "AVG(lifetime_value)", "SUM(orders_count)", "MIN(age)", "MAX(age)"]
    assert [c.expr for c in q.columns] == [
        Agg("avg", "lifetime_value"), Agg("sum", "orders_count"), Agg("min", "age"),
        Agg("max", "age")]
    q = select("SELECT profile_id, age, city FROM profiles WHERE age > 1 LIMIT 100", schema)
    assert q.kind == "list" and q.limit == 100
    assert [c.expr for c in q.columns] == [
        FieldRef("profile_id"), FieldRef("age"), FieldRef("city")]


# ---- WHERE lowering ----

@pytest.mark.parametrize("text, expected", [
    ("30 < age", Compare("age", ">", 30)),
    ("30 = age", Compare("age", "=", 30)),
    ("age > -5", Compare("age", ">", -5)),
    ("age > 30.5", Compare("age", ">", 30.5)),
    ("age > 30.0", Compare("age", ">", 30)),
    ("lifetime_value >= 10", Compare("lifetime_value", ">=", 10.0)),
    ("age <> 3", Compare("age", "!=", 3)),
    ("age != 3", Compare("age", "!=", 3)),
    ("city < 'm'", Compare("city", "<", "m")),
    ("is_subscriber", Compare("is_subscriber", "=", True)),
    ("is_subscriber = FALSE", Compare("is_subscriber", "=", False)),
    ("signup_ts > 1767225600", Compare("signup_ts", ">", from_iso("2026-01-01"))),
    ("signup_ts > TIMESTAMP '2026-01-01 10:00:00'",
     Compare("signup_ts", ">", from_iso("2026-01-01T10:00:00"))),
    ("signup_ts > DATE '2026-01-01'", Compare("signup_ts", ">", from_iso("2026-01-01"))),
    ("signup_ts > '2026-01-01T10:00:00+02:00'",
     Compare("signup_ts", ">", from_iso("2026-01-01T08:00:00Z"))),
    ("signup_ts > now()", Compare("signup_ts", ">", NOW)),
    ("signup_ts > now() + INTERVAL 3 DAY", Compare("signup_ts", ">", NOW + 3 * DAY)),
    ("signup_ts > now() - INTERVAL '1 day 2 hours'",
     Compare("signup_ts", ">", NOW - DAY - 2 * 3_600_000_000)),
    ("signup_ts > TIMESTAMP '2026-01-01' + INTERVAL '2 weeks'",
     Compare("signup_ts", ">", from_iso("2026-01-15"))),
    ("age IN (1, 2.0, 1)", InSet("age", (1, 2))),
    ("country NOT IN ('JP')", InSet("country", ("JP",), negated=True)),
    ("NOT country IN ('JP')", InSet("country", ("JP",), negated=True)),
    ("is_subscriber IN (TRUE)", Or((Compare("is_subscriber", "=", True),))),
    ("city NOT LIKE 'a%'", Like("city", "a%", negated=True)),
    ("city ILIKE 'a%'", Like("city", "a%", case_insensitive=True)),
    ("city NOT ILIKE 'a%'", Like("city", "a%", negated=True, case_insensitive=True)),
    ("NOT city LIKE 'a%'", Not(Like("city", "a%"))),
    ("plan IS NOT NULL", IsNull("plan", negated=True)),
    ("interests IS NULL", IsNull("interests")),
    ("has_all(interests, 'a', 'b', 'a')", Has("interests", ("a", "b"), "all")),
    ("NOT has(interests, 'a')", Not(Has("interests", ("a",)))),
    ("HAS(interests, 'a')", Has("interests", ("a",))),
    ("age NOT BETWEEN 1 AND 3",
     Not(And((Compare("age", ">=", 1), Compare("age", "<=", 3))))),
    ("TRUE", Const(True)),
    ("NOT FALSE", Not(Const(False))),
    ("1 = 1", Const(True)),
    ("'a' > 'b'", Const(False)),
    ("(age > 1 AND city = 'x') AND plan = 'p'",
     And((And((Compare("age", ">", 1), Compare("city", "=", "x"))), Compare("plan", "=", "p")))),
    ("age > 1 OR age < 0 OR age = 5",
     Or((Compare("age", ">", 1), Compare("age", "<", 0), Compare("age", "=", 5)))),
    ("profile_id = 'u1'", Compare("profile_id", "=", "u1")),
    ("profile_id != 'u1'", Compare("profile_id", "!=", "u1")),
    ("profile_id IN ('u1', 'u2')", InSet("profile_id", ("u1", "u2"))),
    ("profile_id IS NOT NULL", Const(True)),
    ("profiles.age = 3", Compare("age", "=", 3)),
    ('"age" = 3', Compare("age", "=", 3)),
])
def test_where_lowering(schema, text, expected):
    assert where(text, schema) == expected


@pytest.mark.parametrize("text", ["", "   ", "\n\t"])
def test_empty_where_matches_everything(schema, text):
    assert where(text, schema) is None


def test_long_chains_do_not_recurse(schema):
    text = " OR ".join(f"age = {i}" for i in range(3000))
    assert len(where(text, schema).children) == 3000


@pytest.mark.parametrize("text, fragment", [
    ("age BETWEEN 25 AND 34", "age BETWEEN 25 AND 34"),
    ("NOT is_subscriber", "NOT is_subscriber"),
    ("  city  IN ('a', 'b')  ", "city  IN ('a', 'b')"),
    ("has_any(interests, 'a')", "has_any(interests, 'a')"),
    ("(age > 1)", "age > 1"),
    ("plan IS NOT NULL", "plan IS NOT NULL"),
    ("signup_ts < now() - INTERVAL '14 days'", "signup_ts < now() - INTERVAL '14 days'"),
])
def test_spans(schema, text, fragment):
    span = where(text, schema).span
    assert text[span.start:span.end] == fragment


def test_child_spans(schema):
    text = "age > 3 AND (city = 'x' OR NOT has(interests, 'a'))"
    pred = where(text, schema)
    left, right = pred.children
    assert text[left.span.start:left.span.end] == "age > 3"
    # a parenthesised group's span is its content; the parentheses add nothing
    assert text[right.span.start:right.span.end] == "city = 'x' OR NOT has(interests, 'a')"
    negated = right.children[1]
    assert text[negated.span.start:negated.span.end] == "NOT has(interests, 'a')"
    assert negated.child.span == Span(text.index("has("), len(text) - 1)


# ---- WHERE errors: message and span ----

W = where


@pytest.mark.parametrize("text, message, fragment", [
    ("agee > 3", "unknown field 'agee' (did you mean 'age'?)", "agee"),
    ("zzz > 3", "unknown field 'zzz'", "zzz"),
    ("age > 3 AND Country = 'JP'", "did you mean 'country'?", "Country"),
    ("age = 'x'", "type mismatch: age is int, got string 'x'", "'x'"),
    ("city = 3", "type mismatch: city is string, got number 3", "3"),
    ("is_subscriber = 1", "type mismatch: is_subscriber is bool, got number 1", "1"),
    ("age = TRUE", "type mismatch: age is int, got bool TRUE", "TRUE"),
    ("age > now()", "type mismatch: age is int, got timestamp now()", "now()"),
    ("age IN (1, 'x')", "type mismatch: age is int, got string 'x'", "'x'"),
    ("age BETWEEN 1 AND 'z'", "type mismatch", "'z'"),
    ("1 = 'a'", "type mismatch: comparing number 1 with string 'a'", "1 = 'a'"),
    ("age = NULL", "use age IS [NOT] NULL", "NULL"),
    ("foo(age) > 1", "unknown function foo()", "foo"),
    ("has_al(interests, 'a')", "unknown function has_al() (did you mean 'has_all'?)",
     "has_al"),
    ("upper(city) = 'X'", "unknown function upper()", "upper"),
    ("count(*) > 1", "aggregate count() is only allowed in SELECT", "count"),
    ("has(interests)", "wrong number of arguments: has() takes 2, got 1", "has(interests)"),
    ("has(interests, 'a', 'b')", "has() takes 2, got 3", "has(interests, 'a', 'b')"),
    ("has_any(interests)", "has_any() takes at least 2, got 1", "has_any(interests)"),
    ("signup_ts > now(1)", "now() takes 0, got 1", "now(1)"),
    ("has(age, 'x')", "has() needs a string_set field; age is int", "age"),
    ("has('x', 'y')", "has() needs a string_set field first, got string 'x'", "'x'"),
    ("has(interests, 3)", "has() tags must be string literals, got number 3", "3"),
    ("has(nope, 'x')", "unknown field 'nope'", "nope"),
    ("now()", "now() is a value, not a condition", "now()"),
    ("has(interests, 'a') = TRUE", "has() is a condition, not a value",
     "has(interests, 'a')"),
    ("age LIKE 'a%'", "LIKE needs a string field; age is int", "age"),
    ("city LIKE 3", "LIKE needs a string pattern, got number 3", "3"),
    ("interests = 'a'", "interests is a string_set: use has()", "interests = 'a'"),
    ("interests IN ('a')", "interests is a string_set: use has()", "interests IN ('a')"),
    ("interests > 'a'", "use has(), has_any() or has_all()", "interests > 'a'"),
    ("signup_ts > 'yesterday'", "bad timestamp literal 'yesterday'", "'yesterday'"),
    ("signup_ts > TIMESTAMP '2026-13-01'", "bad timestamp literal", "TIMESTAMP '2026-13-01'"),
    ("signup_ts > 1e20", "bad timestamp literal 1e20: timestamp out of range", "1e20"),
    ("signup_ts > now() - INTERVAL 'soon'", "bad INTERVAL 'soon'", "INTERVAL 'soon'"),
    ("signup_ts > now() - INTERVAL '2 months'", "has no fixed length", "INTERVAL '2 months'"),
    ("signup_ts > now() - INTERVAL 3 fortnights", "unknown unit", "INTERVAL 3 fortnights"),
    ("age = city", "unsupported: comparing two fields (age, city)", "age = city"),
    ("age + 1 > 3", "unsupported: arithmetic on fields", "age + 1"),
    ("age * 2 > 3", "unsupported: arithmetic", "age * 2"),
    ("age > 1 + 2", "unsupported: arithmetic (only timestamp ± INTERVAL", "1 + 2"),
    ("signup_ts > now() - 3", "unsupported: arithmetic", "now() - 3"),
    ("age IN (SELECT 1)", "unsupported: subquery", "age IN (SELECT 1)"),
    ("EXISTS (SELECT 1)", "unsupported: subquery", "EXISTS (SELECT 1)"),
    ("city LIKE 'a!%' ESCAPE '!'", "unsupported: LIKE ... ESCAPE", "city LIKE 'a!%' ESCAPE '!'"),
    ("CASE WHEN age > 1 THEN TRUE END", "unsupported: CASE", "CASE WHEN age > 1 THEN TRUE END"),
    ("is_subscriber IS TRUE", "unsupported: IS TRUE", "is_subscriber IS TRUE"),
    ("age", "age is int, not a condition", "age"),
    ("5", "5 is not a condition", "5"),
    ("NULL", "NULL is not a condition", "NULL"),
    ("profile_id > 'a'", "profile_id can only be tested with =, != or IN", "profile_id > 'a'"),
    ("profile_id = 3", "type mismatch: profile_id is the profile key, got number 3", "3"),
    ("other.age = 3", "unknown table 'other'", "other.age"),
    ("SELECT 1", "expected a condition", "SELECT 1"),
    ("age > 1; city = 'x'", "one statement only", "city = 'x'"),
])
def test_where_errors(schema, text, message, fragment):
    assert_error(W, text, schema, message, fragment)


@pytest.mark.parametrize("text, message, fragment", [
    ("age >", "syntax error", ">"),
    ("age > 3 AND", "syntax error", "AND"),
    ("a b c", "syntax error: Invalid expression / Unexpected token", "c"),
    ("(age = 1", "syntax error: Expecting )", "1"),
    ("age = 'abc", "syntax error: unterminated text, missing '", "'abc"),
    ("age = 1 /* open", "syntax error: cannot read the text", "n"),
])
def test_syntax_errors(schema, text, message, fragment):
    assert_error(W, text, schema, message, fragment)


def test_syntax_error_on_a_later_line_has_line_and_col(schema):
    text = "age > 3 AND\n  city ==== 'x'"
    e = error_of(W, text, schema)
    assert e.message.startswith("syntax error")
    assert text[e.start:e.end] == "=="
    assert (e.line, e.col) == (2, e.start - text.index("\n"))
    assert "city ====" in e.highlight()


def test_unknown_function_error_lists_only_known_names(schema):
    e = error_of(W, "hass(interests, 'a')", schema)
    assert "did you mean 'has'?" in e.message
    assert set(FUNCTIONS) >= {"has", "has_any", "has_all", "now"}


# ---- SELECT ----

S = select


def test_select_star_expands_profile_id_then_schema_order(schema):
    q = select("SELECT * FROM profiles LIMIT 10", schema)
    assert [c.name for c in q.columns] == ["profile_id", *schema.names()]
    assert all(isinstance(c.expr, FieldRef) and c.expr.name == c.name for c in q.columns)
    assert q.limit == 10 and q.kind == "list"


def test_select_listing_with_order_limit_offset(schema):
    text = ("SELECT profile_id, age FROM profiles WHERE age > 1 "
            "ORDER BY age DESC, city NULLS FIRST, profile_id LIMIT 100 OFFSET 200")
    q = select(text, schema)
    assert q.order_by == (OrderKey(FieldRef("age"), desc=True),
                          OrderKey(FieldRef("city"), nulls_first=True),
                          OrderKey(FieldRef("profile_id")))
    assert (q.limit, q.offset) == (100, 200)


@pytest.mark.parametrize("clause, desc, nulls_first", [
    ("age", False, False), ("age ASC", False, False), ("age DESC", True, False),
    ("age ASC NULLS FIRST", False, True), ("age DESC NULLS FIRST", True, True),
    ("age DESC NULLS LAST", True, False), ("age NULLS LAST", False, False),
])
def test_nulls_sort_last_by_default_in_both_directions(schema, clause, desc, nulls_first):
    q = select(f"SELECT age FROM profiles ORDER BY {clause}", schema)
    assert q.order_by == (OrderKey(FieldRef("age"), desc=desc, nulls_first=nulls_first),)


def test_select_aliases_and_positions(schema):
    text = ("SELECT country AS c, count(*) AS n, avg(age) FROM profiles "
            "GROUP BY 1 ORDER BY n DESC, c, 3")
    q = select(text, schema)
    assert [c.name for c in q.columns] == ["c", "n", "AVG(age)"]
    assert q.group_by == (FieldRef("country"),)
    assert [k.expr for k in q.order_by] == [Agg("count", None), FieldRef("country"),
                                            Agg("avg", "age")]
    assert select("SELECT country AS c, count(*) FROM profiles GROUP BY c",
                  schema).group_by == (FieldRef("country"),)


def test_select_group_by_shapes(schema):
    q = select("SELECT interests, is_subscriber, count(*) FROM profiles "
               "GROUP BY interests, is_subscriber ORDER BY max(age) DESC", schema)
    assert q.kind == "group"
    assert q.group_by == (FieldRef("interests"), FieldRef("is_subscriber"))
    assert q.order_by == (OrderKey(Agg("max", "age"), desc=True),)
    assert select("SELECT country FROM profiles GROUP BY country", schema).kind == "group"


def test_select_aggregates(schema):
    q = select("SELECT count(age), count(profile_id), min(city), max(signup_ts), "
               "min(is_subscriber), count(interests) FROM profiles", schema)
    assert [c.expr for c in q.columns] == [
        Agg("count", "age"), Agg("count", None), Agg("min", "city"), Agg("max", "signup_ts"),
        Agg("min", "is_subscriber"), Agg("count", "interests")]
    assert q.columns[0].name == "COUNT(age)"


def test_select_spans(schema):
    text = "SELECT country, count(*) FROM profiles GROUP BY country"
    q = select(text, schema)
    assert [text[c.expr.span.start:c.expr.span.end] for c in q.columns] == [
        "country", "count(*)"]


@pytest.mark.parametrize("text, message, fragment", [
    ("SELECT count(*)", "FROM profiles is missing", "SELECT count(*)"),
    ("SELECT age FROM people", "unknown table 'people'", "people"),
    ("SELECT age FROM db.profiles", "unknown table 'db.profiles'", "db.profiles"),
    ("SELECT age FROM profiles p", "unsupported: table alias", "profiles p"),
    ("SELECT age FROM profiles JOIN x ON profiles.age = x.age", "unsupported: JOIN",
     "JOIN x ON profiles.age = x.age"),
    ("SELECT age FROM profiles, x", "unsupported: JOIN", ", x"),
    ("SELECT age FROM (SELECT 1)", "unsupported: subquery", "SELECT 1"),
    ("SELECT age FROM profiles WHERE age IN (SELECT 1)", "unsupported: subquery",
     "age IN (SELECT 1)"),
    ("WITH t AS (SELECT 1) SELECT age FROM profiles", "unsupported: WITH",
     "WITH t AS (SELECT 1)"),
    ("SELECT DISTINCT city FROM profiles", "unsupported: DISTINCT", "DISTINCT"),
    ("SELECT count(DISTINCT city) FROM profiles", "unsupported: DISTINCT", "DISTINCT city"),
    ("SELECT city, count(*) FROM profiles GROUP BY city HAVING count(*) > 1",
     "unsupported: HAVING", "HAVING count(*) > 1"),
    ("SELECT count(*) OVER () FROM profiles", "unsupported: window function", "count(*)"),
    ("SELECT age FROM profiles UNION SELECT age FROM profiles", "unsupported: UNION",
     "SELECT age FROM profiles UNION SELECT age FROM profiles"),
    ("SELECT sum(city) FROM profiles", "sum() takes int, float fields; city is string", "city"),
    ("SELECT avg(is_subscriber) FROM profiles", "avg() takes int, float fields",
     "is_subscriber"),
    ("SELECT min(interests) FROM profiles", "interests is string_set", "interests"),
    ("SELECT max(profile_id) FROM profiles", "max(profile_id) is not supported", "profile_id"),
    ("SELECT sum(*) FROM profiles", "sum(*) is not allowed", "sum(*)"),
    ("SELECT count() FROM profiles", "wrong number of arguments: count() takes 1", "count()"),
    ("SELECT min(age, orders_count) FROM profiles", "min() takes 1",
     "min(age, orders_count)"),
    ("SELECT sum(age + 1) FROM profiles", "sum() of an expression", "age + 1"),
    ("SELECT age + 1 FROM profiles", "unsupported: expressions over fields", "age + 1"),
    ("SELECT upper(city) FROM profiles", "unsupported: a function call here", "upper(city)"),
    ("SELECT 1 FROM profiles", "unsupported: a constant here", "1"),
    ("SELECT nope FROM profiles", "unknown field 'nope'", "nope"),
    ("SELECT age, count(*) FROM profiles GROUP BY age",
     "GROUP BY needs string, bool or string_set fields; age is int", "age"),
    ("SELECT count(*) FROM profiles GROUP BY profile_id",
     "profile_id is the profile key", "profile_id"),
    ("SELECT count(*) AS n FROM profiles GROUP BY n", "GROUP BY takes fields, not aggregates",
     "n"),
    ("SELECT city, count(*) FROM profiles", "city must be in GROUP BY or inside an aggregate",
     "city"),
    ("SELECT city, country, count(*) FROM profiles GROUP BY country",
     "city must be in GROUP BY", "city"),
    ("SELECT *, count(*) FROM profiles", "profile_id must be in GROUP BY", "*"),
    ("SELECT age FROM profiles LIMIT -1", "LIMIT must be a non-negative whole number",
     "LIMIT -1"),
    ("SELECT age FROM profiles LIMIT 2.5", "LIMIT must be a non-negative whole number",
     "LIMIT 2.5"),
    ("SELECT age FROM profiles LIMIT ALL", "LIMIT must be", "LIMIT ALL"),
    ("SELECT age FROM profiles LIMIT 1 OFFSET 'x'", "OFFSET must be a non-negative",
     "OFFSET 'x'"),
    ("SELECT age FROM profiles ORDER BY nope", "unknown field 'nope'", "nope"),
    ("SELECT age FROM profiles ORDER BY 2", "position 2 is not in the select list (1..1)",
     "2"),
    ("SELECT age FROM profiles ORDER BY count(*)",
     "aggregate in ORDER BY needs GROUP BY or aggregates in SELECT", "count(*)"),
    ("SELECT age FROM profiles ORDER BY interests",
     "cannot ORDER BY string_set field interests", "interests"),
    ("SELECT age FROM profiles ORDER BY age + 1", "unsupported: expressions over fields",
     "age + 1"),
    ("SELECT country, count(*) FROM profiles GROUP BY country ORDER BY age",
     "ORDER BY age: not a GROUP BY field or an aggregate", "age"),
    ("SELECT count(*) FROM profiles ORDER BY city",
     "ORDER BY city: not a GROUP BY field or an aggregate", "city"),
    ("SELECT age FROM profiles WHERE agee > 1", "did you mean 'age'?", "agee"),
    ("SELECT count(*) FROM profiles WHERE", "syntax error", "WHERE"),
    ("age > 1", "expected SELECT ... FROM profiles", "age > 1"),
    ("   ", "empty query", "   "),
])
def test_select_errors(schema, text, message, fragment):
    assert_error(S, text, schema, message, fragment)


# ---- robustness: any token soup fails only with a QueryError pointing into the text ----

TOKENS = st.sampled_from([
    "age", "city", "is_subscriber", "interests", "signup_ts", "lifetime_value", "profile_id",
    "nope", "(", ")", ",", "AND", "OR", "NOT", "=", "<>", "<", ">=", "IN", "LIKE", "ILIKE",
    "IS", "NULL", "TRUE", "FALSE", "BETWEEN", "'a'", "'2026-01-01'", "3", "-", "+", "*", "2.5",
    "has", "has_any", "now", "()", "INTERVAL", "'14 days'", "DAY", "SELECT", "FROM",
    "profiles", "WHERE", "GROUP BY", "ORDER BY", "LIMIT", "OFFSET", "count(*)", "sum", "avg",
    "min", "AS", "DESC", "NULLS FIRST", "CASE", "WHEN", "THEN", "END", "DISTINCT", "::",
    "TIMESTAMP", "1e400", "''", "'", ";", "/*", "--", "\n",
])


@settings(max_examples=300)
@given(st.lists(TOKENS, max_size=14).map(" ".join), st.booleans())
def test_token_soup_fails_only_with_a_query_error(schema, text, as_select):
    try:
        (select if as_select else where)(text, schema)
    except QueryError as e:
        if text.strip():
            assert 0 <= e.start < e.end <= len(text), (e.message, e.start, e.end)


# ---- windows: event windows and INTERVAL text ----

@pytest.mark.parametrize("text, micros", [
    ("10s", 10_000_000), ("30m", 30 * 60_000_000), ("2h", 2 * 3_600_000_000),
    ("30d", 30 * DAY), ("2w", 14 * DAY), (" 7d ", 7 * DAY),
])
def test_parse_window(text, micros):
    assert parse_window(text) == micros


@pytest.mark.parametrize("text, message", [
    ("30", "expected a whole number and a unit"), ("d", "expected a whole number"),
    ("1.5d", "expected a whole number"), ("30y", "expected a whole number"),
    ("-1d", "expected a whole number"), ("0d", "must be longer than zero"),
])
def test_parse_window_errors(text, message):
    with pytest.raises(ValueError, match=message):
        parse_window(text)


@pytest.mark.parametrize("value, unit, micros", [
    ("14 days", None, 14 * DAY), ("1 hour", None, 3_600_000_000), ("2 weeks", None, 14 * DAY),
    ("30 minutes", None, 30 * 60_000_000), ("10 seconds", None, 10_000_000),
    ("1 day 2 hours", None, DAY + 2 * 3_600_000_000), ("14", "DAYS", 14 * DAY),
    ("1.5", "DAY", DAY * 3 // 2), ("-3", "days", -3 * DAY), ("3", "MILLISECOND", 3_000),
    ("2", "us", 2),
])
def test_parse_interval(value, unit, micros):
    assert parse_interval(value, unit) == micros


@pytest.mark.parametrize("value, unit, message", [
    ("1", "MONTH", "MONTH has no fixed length"), ("2 years", None, "years has no fixed length"),
    ("3", "fortnight", "unknown unit 'fortnight'"), ("soon", None, "expected a number and a unit"),
    ("x", "DAY", "'x' is not a number"), ("1 day, 2 hours", None, "expected a number"),
])
def test_parse_interval_errors(value, unit, message):
    with pytest.raises(ValueError, match=message):
        parse_interval(value, unit)
