"""rules.py: fixture pairs per rule, and properties under three-valued logic.

The properties evaluate random predicate trees over random rows (nulls included) with a
tiny Kleene evaluator written here, independent of the engine, and check that every rule
and `normalize` keep each row's truth value (true, false or unknown) unchanged.
"""
from __future__ import annotations

import operator
import re
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from cdpcore.query import rules
from cdpcore.query.ir import (And, Compare, Const, Has, InSet, IsNull, Like, Not, Or,
                              Predicate)
from cdpcore.query.parse import parse_where
from cdpcore.schema import Schema

FIXTURES = Path(__file__).resolve().parent.parent / "fixtures" / "rules"
NOW = 1_780_000_000_000_000


def _schema(spec: dict[str, str]) -> Schema:
    s = Schema()
    s.declare(spec)
    return s


FIXTURE_SCHEMA = _schema({
    "age": "int", "city": "string", "country": "string", "plan": "string",
    "is_subscriber": "bool", "tags": "string_set", "signup_ts": "timestamp"})


# ---- a canonical printer: the "expected" side of the fixtures ----

def lit(value) -> str:
    if isinstance(value, bool):
        return "TRUE" if value else "FALSE"
    if isinstance(value, str):
        return "'" + value.replace("'", "''") + "'"
    return repr(value)


def show(p: Predicate) -> str:
    """SQL-like text of a predicate; connectives always in parentheses."""
    if isinstance(p, Compare):
        return f"{p.field} {p.op} {lit(p.value)}"
    if isinstance(p, InSet):
        return f"{p.field} {'NOT ' * p.negated}IN ({', '.join(map(lit, p.values))})"
    if isinstance(p, Like):
        word = "ILIKE" if p.case_insensitive else "LIKE"
        return f"{p.field} {'NOT ' * p.negated}{word} {lit(p.pattern)}"
    if isinstance(p, IsNull):
        return f"{p.field} IS {'NOT ' * p.negated}NULL"
    if isinstance(p, Has):
        return f"{'NOT ' * p.negated}has_{p.mode}({p.field}, {', '.join(map(lit, p.tags))})"
    if isinstance(p, Const):
        return lit(p.value)
    if isinstance(p, Not):
        return f"NOT ({show(p.child)})"
    word = " AND " if isinstance(p, And) else " OR "
    return "(" + word.join(show(c) for c in p.children) + ")"


# ---- fixtures ----

def load_fixtures(name: str) -> list[tuple[str, str, str]]:
    """(title, input, expected) triples from tests/fixtures/rules/<name>.sql."""
    cases = []
    for block in (FIXTURES / f"{name}.sql").read_text().split("\n\n"):
        lines = [ln for ln in block.strip().splitlines() if ln.strip()]
        titles = [ln.split(":", 1)[1].strip() for ln in lines if ln.startswith("# title:")]
        body = [ln for ln in lines if not ln.startswith("#")]
        if body:
            assert len(body) == 2 and len(titles) == 1, block
            cases.append((titles[0], body[0], body[1]))
    return cases


RULE_FIXTURES = [
    pytest.param(rule, text, expected, id=f"{name}: {title}")
    for name, rule in [("push_not_down", rules.push_not_down), ("flatten", rules.flatten),
                       ("fold_constants", rules.fold_constants),
                       ("drop_duplicates", rules.drop_duplicates),
                       ("normalize", rules.normalize)]
    for title, text, expected in load_fixtures(name)
]


@pytest.mark.parametrize("rule, text, expected", RULE_FIXTURES)
def test_rule_fixtures(rule, text, expected):
    assert show(rule(parse_where(text, FIXTURE_SCHEMA, NOW))) == expected


def test_every_rule_has_a_fixture_file():
    assert {f.stem for f in FIXTURES.glob("*.sql")} >= {r.__name__ for r in rules.RULES}


def test_normalize_passes_the_empty_condition_through():
    assert rules.normalize(parse_where("  ", FIXTURE_SCHEMA, NOW)) is None


def test_normalize_keeps_the_span_of_a_negated_text():
    text = "age > 1 AND NOT (city = 'a')"
    result = rules.normalize(parse_where(text, FIXTURE_SCHEMA, NOW))
    negated = result.children[1]
    assert show(negated) == "city != 'a'"
    assert text[negated.span.start:negated.span.end] == "NOT (city = 'a')"


def test_normalize_handles_wide_connectives():
    text = " OR ".join(f"age = {i}" for i in range(3000))
    result = rules.normalize(parse_where(f"NOT ({text})", FIXTURE_SCHEMA, NOW))
    assert isinstance(result, And) and len(result.children) == 3000


# ---- a Kleene evaluator, the oracle for the properties ----

_OPS = {"=": operator.eq, "!=": operator.ne, "<": operator.lt, "<=": operator.le,
        ">": operator.gt, ">=": operator.ge}


def like_regex(pattern: str) -> str:
    return "".join(".*" if ch == "%" else "." if ch == "_" else re.escape(ch) for ch in pattern)


def _leaf(p: Predicate, value) -> bool:
    if isinstance(p, Compare):
        return _OPS[p.op](value, p.value)
    if isinstance(p, InSet):
        return (value in p.values) != p.negated
    if isinstance(p, Like):
        flags = re.IGNORECASE if p.case_insensitive else 0
        return (re.fullmatch(like_regex(p.pattern), value, flags | re.S) is not None) != p.negated
    test = all if p.mode == "all" else any
    return test(tag in value for tag in p.tags) != p.negated


def kleene(p: Predicate, row: dict):
    """True, False or None (unknown) for one row, as SQL defines it."""
    if isinstance(p, Const):
        return p.value
    if isinstance(p, IsNull):
        return (row[p.field] is None) != p.negated
    if isinstance(p, Not):
        value = kleene(p.child, row)
        return None if value is None else not value
    if isinstance(p, (And, Or)):
        values = [kleene(c, row) for c in p.children]
        decisive = isinstance(p, Or)  # Or is decided by a True, And by a False
        if decisive in values:
            return decisive
        return None if None in values else not decisive
    value = row[p.field]
    return None if value is None else _leaf(p, value)


# ---- strategies: predicate trees and rows over a small schema ----

PROP_SCHEMA = _schema({"n": "int", "s": "string", "b": "bool", "t": "string_set"})
INTS = st.integers(-2, 2)
STRS = st.sampled_from(["", "a", "ab", "b", "B", "ba"])
TAGS = st.sampled_from(["a", "b", "c"])
OPS = st.sampled_from(sorted(_OPS))

LEAVES = st.one_of(
    st.builds(Compare, st.just("n"), OPS, INTS),
    st.builds(Compare, st.just("s"), OPS, STRS),
    st.builds(Compare, st.just("b"), OPS, st.booleans()),
    st.builds(InSet, st.just("n"), st.lists(INTS, min_size=1, max_size=3, unique=True)
              .map(tuple), st.booleans()),
    st.builds(InSet, st.just("s"), st.lists(STRS, min_size=1, max_size=3, unique=True)
              .map(tuple), st.booleans()),
    st.builds(Like, st.just("s"), st.sampled_from(["a%", "%b", "_", "a_", "%", "A%"]),
              st.booleans(), st.booleans()),
    st.builds(IsNull, st.sampled_from(["n", "s", "b", "t"]), st.booleans()),
    st.builds(Has, st.just("t"), st.lists(TAGS, min_size=1, max_size=3, unique=True)
              .map(tuple), st.sampled_from(["any", "all"]), st.booleans()),
    st.builds(Const, st.booleans()),
)


def _connectives(children):
    several = st.lists(children, min_size=1, max_size=4).map(tuple)
    return st.one_of(st.builds(Not, children), st.builds(And, several),
                     st.builds(Or, several))


PREDICATES = st.recursive(LEAVES, _connectives, max_leaves=14)
ROWS = st.lists(st.fixed_dictionaries({
    "n": st.none() | INTS, "s": st.none() | STRS, "b": st.none() | st.booleans(),
    "t": st.none() | st.frozensets(TAGS),
}), min_size=1, max_size=8)


def walk(p: Predicate):
    yield p
    if isinstance(p, Not):
        yield from walk(p.child)
    elif isinstance(p, (And, Or)):
        for child in p.children:
            yield from walk(child)


@settings(max_examples=300)
@given(PREDICATES, ROWS)
def test_normalize_preserves_three_valued_truth(pred, rows):
    result = rules.normalize(pred)
    for row in rows:
        assert kleene(result, row) == kleene(pred, row), (show(pred), show(result), row)
    assert not any(isinstance(node, Not) for node in walk(result))
    assert rules.is_normal(result), show(result)
    assert rules.normalize(result) == result


@settings(max_examples=150)
@given(st.sampled_from(rules.RULES), PREDICATES, ROWS)
def test_each_rule_alone_preserves_truth(rule, pred, rows):
    result = rule(pred)
    for row in rows:
        assert kleene(result, row) == kleene(pred, row), (rule.__name__, show(pred))


@settings(max_examples=150)
@given(PREDICATES, ROWS)
def test_printed_predicates_parse_back_to_the_same_truth(pred, rows):
    """show() prints SQL the parser reads; the round trip keeps every row's truth."""
    parsed = parse_where(show(pred), PROP_SCHEMA, NOW)
    for row in rows:
        assert kleene(parsed, row) == kleene(pred, row), (show(pred), show(parsed), row)
