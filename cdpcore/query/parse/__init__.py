"""Parse is the boundary between SQL text and the query IR.

This package is the only place that imports sqlglot (STYLE practice 7): it tokenizes and
parses with sqlglot's DuckDB dialect, walks the tree once, type-checks it against the schema
and emits the frozen dataclasses of `ir.py`, each with the span of text it came from. Every
problem is a QueryError pointing at the offending text. The IR is raw: `rules.normalize` is
the next step.

Decisions worth knowing:
- `profile_id` is a pseudo-field: WHERE may test it with `=`, `!=`, `[NOT] IN` (strings)
  and `IS [NOT] NULL` (a constant: ids are never null); SELECT may list it, order by it
  and count it (`count(profile_id)` is `count(*)`). The executor resolves it through the
  id index, so it appears in the IR as an ordinary field name.
- `now()` never reaches the IR: it is folded, with `now() ± INTERVAL ...`, into an integer
  timestamp using the caller's clock `now_us`.
- A comparison between two literals (`1 = 1`, common in generated SQL) folds to Const.
- `x NOT IN (...)`, `x IS NOT NULL`, `x NOT LIKE ...` become negated leaves directly;
  `NOT BETWEEN` and other NOTs stay `Not` nodes for the rules to push down.
- A bool field in `IN (...)` becomes an Or of `=` comparisons (InSet has no bool form).
- Output column names: the alias, else the field's name for a field, else the
  expression's SQL as sqlglot renders it in the DuckDB dialect (`COUNT(*)`, `AVG(x)`).

The package, by concept (the sqlglot-free typing rules are in `functions.py`):
- `__init__`: the entry points, reading the text into one sqlglot tree, syntax errors.
- `spans`: `_Spans`, the source span of every node, from the token list.
- `where`: `_Lowerer`, conditions and their operands → Predicate IR.
- `select`: `_SelectLowerer`, the SELECT subset → Select IR.
"""
from __future__ import annotations

import re

from sqlglot import exp
from sqlglot.dialects.duckdb import DuckDB
from sqlglot.errors import ErrorLevel, ParseError, TokenError
from sqlglot.tokens import Token

from typing import Collection

from ...errors import QueryError
from ...schema import Schema
from ...tracking import EventSchema
from ..functions import Context
from ..ir import Predicate, Select, Span
from .select import _SelectLowerer
from .spans import _Spans
from .where import TABLE, _Lowerer

__all__ = ["TABLE", "parse_select", "parse_where"]

_DIALECT = DuckDB()


def parse_where(text: str, schema: Schema, now_us: int, events: "EventSchema | None" = None,
                segments: Collection[str] = (), used: set[str] | None = None) -> Predicate | None:
    """A bare WHERE condition (a segment, `Store.count`) → raw, un-normalised Predicate IR.

    Empty text gives None: an empty condition matches every profile. `now_us` is the
    query's clock; `now()` is folded with it, so the IR depends only on text and clock.
    """
    if not text.strip():
        return None
    lowerer, node = _read(Context(text, schema, now_us, events, segments=segments, used_segments=used))
    if isinstance(node, exp.Query):
        lowerer.fail("expected a condition (what follows WHERE), not a query", node)
    return lowerer.predicate(node)


def parse_select(text: str, schema: Schema, now_us: int, events: "EventSchema | None" = None,
                 segments: Collection[str] = ()) -> Select:
    """`SELECT ... FROM profiles ...` → Select IR, checked against `schema`.

    Everything outside the documented subset (docs/query-language.md) is refused here,
    with its position, so the planner and executor never meet a query they cannot run.
    """
    ctx = Context(text, schema, now_us, events, segments=segments)
    if not text.strip():
        ctx.fail("empty query: expected SELECT ... FROM profiles", Span(0, len(text)))
    lowerer, node = _read(ctx)
    if isinstance(node, exp.SetOperation):
        lowerer.fail(f"unsupported: {node.key.upper()}", node)
    if not isinstance(node, exp.Select):
        ctx.fail(f"expected SELECT ... FROM {TABLE}", Span(0, len(text)))
    return _SelectLowerer(lowerer).select(node)


def _read(ctx: Context) -> tuple[_Lowerer, exp.Expression]:
    """Tokenize and parse the whole text as exactly one statement, spans computed."""
    text = ctx.text
    try:
        tokens = _DIALECT.tokenize(text)
        trees = _DIALECT.parser(error_level=ErrorLevel.IMMEDIATE).parse(tokens, text)
    except TokenError as e:
        raise _token_error(ctx, e) from None
    except ParseError as e:
        raise _syntax_error(ctx, e, tokens) from None
    lowerer = _Lowerer(ctx, _Spans(tokens))
    trees = [t for t in trees if t is not None]
    for tree in trees:
        lowerer.spans.prime(tree)
    if not trees:
        ctx.fail("empty query", Span(0, len(text)))
    if len(trees) > 1:
        lowerer.fail("one statement only: remove the ';' and what follows", trees[1])
    return lowerer, trees[0]


# ---- syntax errors ----

def _syntax_error(ctx: Context, error: ParseError, tokens: list[Token]) -> QueryError:
    """sqlglot reports the offending token by line and col; find it in our token list."""
    info = error.errors[0] if error.errors else {}
    message = "syntax error: " + re.sub(r"<class '(?:[\w.]+\.)?(\w+)'>", r"\1",
                                        info.get("description") or str(error))
    where = (info.get("line"), info.get("col"))
    for token in tokens:
        if (token.line, token.col) == where:
            return QueryError(message, ctx.text, token.start, token.end + 1)
    end = len(ctx.text)
    return QueryError(message, ctx.text, max(0, end - 1), end)


def _token_error(ctx: Context, error: TokenError) -> QueryError:
    match = re.search(r"Missing (\S+) from \d+:(\d+)", str(error.__cause__ or ""))
    if match:
        start = int(match.group(2))
        return QueryError(f"syntax error: unterminated text, missing {match.group(1)}",
                          ctx.text, start, len(ctx.text))
    end = len(ctx.text)
    return QueryError("syntax error: cannot read the text (an unterminated quote or comment?)",
                      ctx.text, max(0, end - 1), end)
