"""Parse represents the boundary between SQL text and the query IR.

This is the only module that imports sqlglot (STYLE practice 7): it tokenizes and parses
with sqlglot's DuckDB dialect, walks the tree once, type-checks it against the schema and
emits the frozen dataclasses of `ir.py`, each with the span of text it came from. Every
problem is a QueryError pointing at the offending text. The IR is raw: `rules.normalize`
is the next step.

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

The module runs past our ~600-line budget because everything that touches sqlglot's
tree lives here by design (the sqlglot-free typing rules are in functions.py). If it
grows, split along its sections: `_Spans`, the WHERE walk, the SELECT walk.
"""
from __future__ import annotations

import bisect
import re
from dataclasses import replace
from typing import Any, Callable, NoReturn

from sqlglot import exp
from sqlglot.dialects.duckdb import DuckDB
from sqlglot.errors import ErrorLevel, ParseError, TokenError
from sqlglot.tokens import Token, TokenType

from ..errors import QueryError
from ..schema import ID_FIELD, FieldType, Schema
from . import functions as fn
from .functions import BOOL, FIELD, INTERVAL, NULL, NUMBER, STRING, TIMESTAMP, Arg, Context
from .ir import (MIRRORED_OP, Agg, And, Compare, Const, Expr, FieldRef, InSet, IsNull, Like,
                 Not, Or, OrderKey, OutputColumn, Predicate, Select, Span)
from .windows import parse_interval

_DIALECT = DuckDB()
TABLE = "profiles"


def parse_where(text: str, schema: Schema, now_us: int) -> Predicate | None:
    """A bare WHERE condition (a segment, `Store.count`) → raw, un-normalised Predicate IR.

    Empty text gives None: an empty condition matches every profile. `now_us` is the
    query's clock; `now()` is folded with it, so the IR depends only on text and clock.
    """
    if not text.strip():
        return None
    lowerer = _Lowerer(Context(text, schema, now_us))
    node = lowerer.parse()
    if isinstance(node, exp.Query):
        lowerer.fail("expected a condition (what follows WHERE), not a query", node)
    return lowerer.predicate(node)


def parse_select(text: str, schema: Schema, now_us: int) -> Select:
    """`SELECT ... FROM profiles ...` → Select IR, checked against `schema`.

    Everything outside the documented subset (docs/query-language.md) is refused here,
    with its position, so the planner and executor never meet a query they cannot run.
    """
    ctx = Context(text, schema, now_us)
    if not text.strip():
        ctx.fail("empty query: expected SELECT ... FROM profiles", Span(0, len(text)))
    lowerer = _Lowerer(ctx)
    node = lowerer.parse()
    if isinstance(node, exp.SetOperation):
        lowerer.fail(f"unsupported: {node.key.upper()}", node)
    if not isinstance(node, exp.Select):
        ctx.fail(f"expected SELECT ... FROM {TABLE}", Span(0, len(text)))
    return _SelectLowerer(lowerer).select(node)


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


# ---- source spans ----

_TYPES = frozenset(DuckDB.Parser.TYPE_TOKENS)
# node type → (a token that may precede it, possibly across '(' ; tokens that may follow it)
_AFFIXES: dict[type, tuple[frozenset[TokenType], frozenset[TokenType]]] = {
    cls: (frozenset(before), frozenset(after)) for cls, before, after in (
        (exp.Not, {TokenType.NOT}, ()), (exp.Neg, {TokenType.DASH}, ()),
        (exp.Paren, {TokenType.L_PAREN}, ()), (exp.Having, {TokenType.HAVING}, ()),
        (exp.Join, {TokenType.JOIN, TokenType.COMMA}, ()), (exp.With, {TokenType.WITH}, ()),
        (exp.Qualify, {TokenType.QUALIFY}, ()), (exp.Select, {TokenType.SELECT}, ()),
        (exp.Distinct, {TokenType.DISTINCT}, ()), (exp.Exists, {TokenType.EXISTS}, ()),
        (exp.Case, {TokenType.CASE}, {TokenType.END}), (exp.If, {TokenType.WHEN}, ()),
        (exp.Cast, _TYPES, _TYPES | {TokenType.DCOLON}),  # TIMESTAMP '…', '…'::TIMESTAMP
    )
}
_CLAUSE_KEYWORDS: dict[type, TokenType] = {exp.Limit: TokenType.LIMIT,
                                           exp.Offset: TokenType.OFFSET}
_ANCHOR_TOKENS: dict[type, tuple[TokenType, ...]] = {
    exp.Boolean: (TokenType.TRUE, TokenType.FALSE), exp.Null: (TokenType.NULL,),
    exp.Distinct: (TokenType.DISTINCT,), exp.Literal: (TokenType.NUMBER, TokenType.STRING),
    exp.CurrentTimestamp: (TokenType.CURRENT_TIMESTAMP,),
}


class _Spans:
    """Source spans of sqlglot nodes.

    sqlglot records positions only on identifiers, literals and function names. Other
    nodes cover their children, plus the tokens sqlglot drops: a prefix NOT or '-', the
    parentheses of calls and lists; keyword leaves (TRUE, NULL, INTERVAL ...) are found in
    the token list after their previous sibling.
    """

    def __init__(self, tokens: list[Token]) -> None:
        self.tokens = tokens
        self.starts = [t.start for t in tokens]
        self._memo: dict[int, Span] = {}

    def prime(self, root: exp.Expression) -> None:
        """Compute every span children first, so no lookup recurses deeply (long AND chains)."""
        for node in reversed(list(root.bfs())):
            self.of(node)

    def of(self, node: exp.Expression) -> Span:
        key = id(node)
        if key not in self._memo:
            self._memo[key] = self._compute(node)
        return self._memo[key]

    def _compute(self, node: exp.Expression) -> Span:
        if isinstance(node, exp.Interval):  # sqlglot re-splits its literal, losing positions
            return self._interval(node)
        if type(node) in _CLAUSE_KEYWORDS:  # a SELECT's args are not in text order
            return self._clause(node, _CLAUSE_KEYWORDS[type(node)])
        children = (c for c in node.iter_expressions() if not isinstance(c, exp.DataType))
        parts = [s for s in (_own(node), *map(self.of, children))
                 if s is not None and s.end > s.start]
        if not parts:
            return self._orphan(node)
        span = Span(min(s.start for s in parts), max(s.end for s in parts))
        return self._close(node, self._affix(node, span))

    def _index(self, offset: int) -> int:
        """Index of the first token starting at or after `offset`."""
        return bisect.bisect_left(self.starts, offset)

    def _token_span(self, first: int, last: int) -> Span:
        return Span(self.tokens[first].start, self.tokens[last].end + 1)

    def _affix(self, node: exp.Expression, span: Span) -> Span:
        """Take in the keywords sqlglot drops around a node: `NOT x`, `CASE … END`."""
        before, after = _AFFIXES.get(type(node), ((), ()))
        i, start = self._index(span.start) - 1, span.start
        while i >= 0 and self.tokens[i].token_type == TokenType.L_PAREN \
                and TokenType.L_PAREN not in before:
            i -= 1
        if i >= 0 and self.tokens[i].token_type in before:
            start = self.tokens[i].start
        j = self._index(span.end)
        while j < len(self.tokens) and self.tokens[j].token_type in after:
            j += 1
        return Span(start, max(span.end, self.tokens[j - 1].end + 1 if j else 0))

    def _close(self, node: exp.Expression, span: Span) -> Span:
        """Extend over the ')' that balance the '(' inside (and a call's empty '()')."""
        first, after = self._index(span.start), self._index(span.end)
        depth = sum(_paren_delta(t) for t in self.tokens[first:after])
        if _is_call(node):
            first, depth, after = self._call_parens(node, first, depth, after)
        while depth > 0 and after < len(self.tokens) \
                and self.tokens[after].token_type == TokenType.R_PAREN:
            depth, after = depth - 1, after + 1
        start = min(span.start, self.tokens[first].start) if self.tokens else span.start
        return Span(start, max(span.end, self.tokens[after - 1].end + 1))

    def _call_parens(self, node: exp.Func, first: int, depth: int,
                     after: int) -> tuple[int, int, int]:
        """Take in a call's `name(` when sqlglot kept no name position, and an empty `()`."""
        tokens = self.tokens
        if _own(node) is None and first >= 2 and tokens[first - 1].token_type == TokenType.L_PAREN:
            first, depth = first - 2, depth + 1
        if after < len(tokens) and tokens[after].token_type == TokenType.L_PAREN:
            depth, after = depth + 1, after + 1
        return first, depth, after

    def _orphan(self, node: exp.Expression) -> Span:
        lower = self._lower_bound(node)
        types = _ANCHOR_TOKENS.get(type(node))
        for i in range(self._index(lower), len(self.tokens)):
            if types is None or self.tokens[i].token_type in types:
                return self._token_span(i, i)
        return Span(lower, lower)

    def _interval(self, node: exp.Interval) -> Span:
        i = self._index(self._lower_bound(node))
        while i < len(self.tokens) and self.tokens[i].token_type != TokenType.INTERVAL:
            i += 1
        if i + 1 >= len(self.tokens):
            return self._orphan(node)
        last = i + 1
        # `INTERVAL 3 DAY`: a value without letters takes its unit from the next token
        if node.args.get("unit") and last + 1 < len(self.tokens) \
                and not re.search("[A-Za-z]", self.tokens[last].text):
            last += 1
        return self._token_span(i, last)

    def _clause(self, node: exp.Expression, keyword: TokenType) -> Span:
        """`LIMIT <value>`: the keyword and the value after it (with its sign)."""
        found = [i for i, t in enumerate(self.tokens) if t.token_type == keyword]
        if not found or found[0] + 1 >= len(self.tokens):
            return self.of(node.expression) if node.expression else Span(0, 0)
        last = found[0] + 1
        if self.tokens[last].token_type == TokenType.DASH and last + 1 < len(self.tokens):
            last += 1
        return self._token_span(found[0], last)

    def _lower_bound(self, node: exp.Expression) -> int:
        """Where `node`'s text can start at the earliest: after its previous sibling."""
        while node.parent is not None:
            parent, previous = node.parent, None
            for sibling in parent.iter_expressions():
                if sibling is node:
                    break
                previous = sibling
            if previous is not None:
                return self.of(previous).end
            own = _own(parent)
            if own is not None:
                return own.end
            node = parent
        return 0


def _own(node: exp.Expression) -> Span | None:
    start, end = node.meta_get("start"), node.meta_get("end")
    return Span(start, end + 1) if start is not None and end is not None else None


def _is_call(node: exp.Expression) -> bool:
    """A call written `name(...)`; sqlglot also files AND, OR, CASE, EXISTS under Func."""
    return isinstance(node, exp.Func) and not isinstance(node, exp.Binary) \
        and type(node) not in _CONSTRUCTS


_PAREN_DELTA = {TokenType.L_PAREN: 1, TokenType.R_PAREN: -1}


def _paren_delta(token: Token) -> int:
    return _PAREN_DELTA.get(token.token_type, 0)


# ---- WHERE: sqlglot expressions → Predicate ----

_COMPARE_OPS: dict[type, str] = {
    exp.EQ: "=", exp.NEQ: "!=", exp.LT: "<", exp.LTE: "<=", exp.GT: ">", exp.GTE: ">=",
}
_CONSTRUCTS: dict[type, str] = {
    exp.Subquery: "subquery", exp.Select: "subquery", exp.Exists: "subquery",
    exp.Window: "window function", exp.Distinct: "DISTINCT", exp.Escape: "LIKE ... ESCAPE",
    exp.Case: "CASE", exp.If: "IF", exp.Cast: "CAST", exp.Alias: "alias",
    exp.Tuple: "tuple", exp.Star: "*", exp.Placeholder: "placeholder",
    exp.Mul: "arithmetic", exp.Div: "arithmetic", exp.Mod: "arithmetic",
    exp.DPipe: "string concatenation",
}
_TIMESTAMP_TYPES = exp.DataType.TEMPORAL_TYPES - {exp.DataType.Type.TIME,
                                                  exp.DataType.Type.TIMETZ}


class _Lowerer:
    """Walks one sqlglot tree, emitting IR; holds the context and the span finder."""

    def __init__(self, ctx: Context) -> None:
        self.ctx = ctx
        self.spans = _Spans([])

    def parse(self) -> exp.Expression:
        """Tokenize and parse the whole text as exactly one statement."""
        text = self.ctx.text
        try:
            tokens = _DIALECT.tokenize(text)
            trees = _DIALECT.parser(error_level=ErrorLevel.IMMEDIATE).parse(tokens, text)
        except TokenError as e:
            raise _token_error(self.ctx, e) from None
        except ParseError as e:
            raise _syntax_error(self.ctx, e, tokens) from None
        self.spans = _Spans(tokens)
        trees = [t for t in trees if t is not None]
        for tree in trees:
            self.spans.prime(tree)
        if not trees:
            self.ctx.fail("empty query", Span(0, len(text)))
        if len(trees) > 1:
            self.fail("one statement only: remove the ';' and what follows", trees[1])
        return trees[0]

    def span(self, node: exp.Expression) -> Span:
        return self.spans.of(node)

    def fail(self, message: str, node: exp.Expression) -> NoReturn:
        self.ctx.fail(message, self.span(node))

    def unsupported(self, node: exp.Expression) -> NoReturn:
        name = _CONSTRUCTS.get(type(node)) or f"'{node.sql(dialect='duckdb')}'"
        self.fail(f"unsupported: {name}", node)

    def predicate(self, node: exp.Expression) -> Predicate:
        handler = _PREDICATES.get(type(node))
        if handler is None and _is_call(node):
            handler = _Lowerer._call_predicate
        if handler is None:
            if isinstance(node, (exp.Literal, exp.Neg, exp.Null)):
                self.fail(f"{node.sql(dialect='duckdb')} is not a condition", node)
            self.unsupported(node)
        return handler(self, node)

    def _connective(self, node: exp.And | exp.Or) -> Predicate:
        # flatten() walks `a AND b AND c` without recursion; parenthesised groups stay nested
        children = tuple(self.predicate(c) for c in node.flatten(unnest=False))
        return (And if isinstance(node, exp.And) else Or)(children, span=self.span(node))

    def _not(self, node: exp.Not) -> Predicate:
        inner = self.predicate(node.this)
        # `x NOT IN (...)` / `x IS NOT NULL` arrive as Not(In) / Not(Is): one negated leaf
        if isinstance(node.this, (exp.In, exp.Is)) and isinstance(inner, (InSet, IsNull)):
            return replace(inner, negated=not inner.negated, span=self.span(node))
        if isinstance(node.this, exp.Is) and isinstance(inner, Const):
            return Const(not inner.value, span=self.span(node))
        return Not(inner, span=self.span(node))

    def _paren(self, node: exp.Paren) -> Predicate:
        return self.predicate(node.this)

    def _const(self, node: exp.Boolean) -> Predicate:
        return Const(bool(node.this), span=self.span(node))

    def _bare_field(self, node: exp.Column) -> Predicate:
        arg = self.operand(node)
        ftype = self.ctx.field_type(arg.value, arg.span)
        if ftype is not FieldType.BOOL:
            self.fail(f"{arg.value} is {fn.type_name(ftype)}, not a condition: compare it "
                      "with a value", node)
        return Compare(arg.value, "=", True, span=arg.span)

    def _compare(self, node: exp.Binary) -> Predicate:
        left, right = self.operand(node.this), self.operand(node.expression)
        return self.compare(_COMPARE_OPS[type(node)], left, right, self.span(node))

    def compare(self, op: str, left: Arg, right: Arg, span: Span) -> Predicate:
        """`left op right` with the field on the left and the literal coerced to it."""
        if left.kind == FIELD and right.kind == FIELD:
            self.ctx.fail(f"unsupported: comparing two fields ({left.sql}, {right.sql})", span)
        if right.kind == FIELD:
            left, right, op = right, left, MIRRORED_OP[op]
        if left.kind != FIELD:
            return Const(fn.fold_compare(self.ctx, op, left, right, span), span=span)
        ftype = self._scalar_field(left, span, "compare it")
        if ftype is None and op not in ("=", "!="):
            self.ctx.fail(f"{ID_FIELD} can only be tested with =, != or IN", span)
        return Compare(left.value, op, fn.coerce(self.ctx, left.value, ftype, right), span=span)

    def _scalar_field(self, arg: Arg, span: Span, verb: str) -> FieldType | None:
        ftype = self.ctx.field_type(arg.value, arg.span)
        if ftype is FieldType.STRING_SET:
            self.ctx.fail(f"{arg.value} is a string_set: use has(), has_any() or has_all() "
                          f"to {verb}", span)
        return ftype

    def _between(self, node: exp.Between) -> Predicate:
        this, span = self.operand(node.this), self.span(node)
        low, high = self.operand(node.args["low"]), self.operand(node.args["high"])
        return And((self.compare(">=", this, low, span), self.compare("<=", this, high, span)),
                   span=span)

    def _in(self, node: exp.In) -> Predicate:
        if not node.expressions:
            if any(node.args.get(k) for k in ("query", "unnest", "field")):
                self.fail("unsupported: subquery", node)
            self.fail("IN needs at least one value", node)
        field, span = self.operand(node.this), self.span(node)
        if field.kind != FIELD:
            self.fail("unsupported: IN needs a field on its left", node.this)
        ftype = self._scalar_field(field, span, "test tags")
        values = [self.operand(v) for v in node.expressions]
        if ftype is FieldType.BOOL:
            return Or(tuple(self.compare("=", field, v, span) for v in values), span=span)
        coerced = (fn.coerce(self.ctx, field.value, ftype, v) for v in values)
        return InSet(field.value, tuple(dict.fromkeys(coerced)), span=span)

    def _like(self, node: exp.Like | exp.ILike) -> Predicate:
        field, pattern = self.operand(node.this), self.operand(node.expression)
        if field.kind != FIELD:
            self.fail("unsupported: LIKE needs a field on its left", node.this)
        ftype = self.ctx.field_type(field.value, field.span)
        if ftype is not FieldType.STRING:
            self.fail(f"LIKE needs a string field; {field.value} is {fn.type_name(ftype)}",
                      node.this)
        if pattern.kind != STRING:
            self.ctx.fail(f"type mismatch: LIKE needs a string pattern, got "
                          f"{pattern.describe()}", pattern.span)
        return Like(field.value, pattern.value, negated=bool(node.args.get("negate")),
                    case_insensitive=isinstance(node, exp.ILike), span=self.span(node))

    def _is(self, node: exp.Is) -> Predicate:
        if not isinstance(node.expression, exp.Null):
            self.fail("unsupported: IS TRUE / IS FALSE; use = TRUE or = FALSE", node)
        field = self.operand(node.this)
        if field.kind != FIELD:
            self.fail("unsupported: IS NULL needs a field on its left", node.this)
        if self.ctx.field_type(field.value, field.span) is None:
            return Const(False, span=self.span(node))  # profile ids are never null
        return IsNull(field.value, span=self.span(node))

    def _call_predicate(self, node: exp.Func) -> Predicate:
        spec, args = self._call_parts(node)
        if spec.returns != "predicate":
            self.fail(f"{spec.name}() is a value, not a condition: compare it", node)
        return fn.call(spec, args, self.span(node), self.ctx)

    def _call_parts(self, node: exp.Func) -> tuple[fn.FunctionSpec, tuple[Arg, ...]]:
        own = _own(node)
        name = self.ctx.text[own.start:own.end] if own else node.sql_name()
        spec = fn.lookup(name, self.ctx, own or self.span(node))
        if isinstance(node, exp.Anonymous):
            raw = list(node.expressions)
        else:
            raw = [v for v in node.iter_expressions()]
        return spec, tuple(self.operand(a) for a in raw)

    # ---- operands: field references and (folded) literals ----

    def operand(self, node: exp.Expression) -> Arg:
        handler = _OPERANDS.get(type(node))
        if handler is None and _is_call(node):
            handler = _Lowerer._call_value
        if handler is None:
            self.unsupported(node)
        return handler(self, node)

    def _arg(self, kind: str, value: Any, node: exp.Expression) -> Arg:
        span = self.span(node)
        return Arg(kind, value, span, self.ctx.text[span.start:span.end])

    def _field_arg(self, node: exp.Column) -> Arg:
        if not isinstance(node.this, exp.Identifier):
            self.unsupported(node)
        if node.table and node.table.lower() != TABLE:
            self.fail(f"unknown table {node.table!r}: only {TABLE} can be queried", node)
        return self._arg(FIELD, node.name, node)

    def _literal_arg(self, node: exp.Literal) -> Arg:
        if node.is_string:
            return self._arg(STRING, node.this, node)
        try:
            return self._arg(NUMBER, _number(node.this), node)
        except ValueError:
            self.fail(f"unsupported: number {node.this}", node)

    def _neg_arg(self, node: exp.Neg) -> Arg:
        inner = self.operand(node.this)
        if inner.kind not in (NUMBER, INTERVAL):
            self.fail(f"unsupported: negating {inner.describe()}", node)
        return self._arg(inner.kind, -inner.value, node)

    def _keyword_arg(self, node: exp.Boolean | exp.Null) -> Arg:
        if isinstance(node, exp.Null):
            return self._arg(NULL, None, node)
        return self._arg(BOOL, bool(node.this), node)

    def _cast_arg(self, node: exp.Cast) -> Arg:
        """`TIMESTAMP '...'`, `DATE '...'`, `'...'::timestamp`: a timestamp literal."""
        literal, to = node.this, node.args.get("to")
        if not (to is not None and to.this in _TIMESTAMP_TYPES
                and isinstance(literal, exp.Literal) and literal.is_string):
            self.unsupported(node)
        arg = self._arg(STRING, literal.this, node)
        return self._arg(TIMESTAMP, fn.coerce(self.ctx, "timestamp", FieldType.TIMESTAMP, arg),
                         node)

    def _interval_arg(self, node: exp.Interval) -> Arg:
        value, unit = node.this, node.args.get("unit")
        if not isinstance(value, exp.Literal):
            self.fail("bad INTERVAL: use a literal such as INTERVAL '14 days'", node)
        try:
            micros = parse_interval(str(value.this), unit.name if unit is not None else None)
        except ValueError as e:
            self.fail(str(e), node)
        return self._arg(INTERVAL, micros, node)

    def _arith_arg(self, node: exp.Add | exp.Sub) -> Arg:
        """Only time arithmetic folds: `now() - INTERVAL '14 days'` and the like."""
        left, right = self.operand(node.this), self.operand(node.expression)
        sign = -1 if isinstance(node, exp.Sub) else 1
        span = self.span(node)
        return fn.fold_time(self.ctx, sign, left, right, span, self.ctx.text[span.start:span.end])

    def _paren_arg(self, node: exp.Paren) -> Arg:
        return self.operand(node.this)

    def _call_value(self, node: exp.Func) -> Arg:
        spec, args = self._call_parts(node)
        if spec.returns != "value":
            self.fail(f"{spec.name}() is a condition, not a value", node)
        return fn.call(spec, args, self.span(node), self.ctx)


def _number(text: str) -> int | float:
    try:
        return int(text)
    except ValueError:
        return float(text)


_PREDICATES: dict[type, Callable[[_Lowerer, Any], Predicate]] = {
    exp.And: _Lowerer._connective, exp.Or: _Lowerer._connective, exp.Not: _Lowerer._not,
    exp.Paren: _Lowerer._paren, exp.Boolean: _Lowerer._const, exp.Column: _Lowerer._bare_field,
    exp.Between: _Lowerer._between, exp.In: _Lowerer._in, exp.Like: _Lowerer._like,
    exp.ILike: _Lowerer._like, exp.Is: _Lowerer._is,
    **{cls: _Lowerer._compare for cls in _COMPARE_OPS},
}
_OPERANDS: dict[type, Callable[[_Lowerer, Any], Arg]] = {
    exp.Column: _Lowerer._field_arg, exp.Literal: _Lowerer._literal_arg,
    exp.Neg: _Lowerer._neg_arg, exp.Boolean: _Lowerer._keyword_arg,
    exp.Null: _Lowerer._keyword_arg,
    exp.Cast: _Lowerer._cast_arg, exp.Interval: _Lowerer._interval_arg,
    exp.Add: _Lowerer._arith_arg, exp.Sub: _Lowerer._arith_arg, exp.Paren: _Lowerer._paren_arg,
}


# ---- SELECT ----

_SELECT_CLAUSES = frozenset({"expressions", "from", "from_", "where", "group", "order",
                             "limit", "offset"})
_CLAUSE_NAMES = {"joins": "JOIN", "with": "WITH", "with_": "WITH", "distinct": "DISTINCT",
                 "having": "HAVING", "qualify": "QUALIFY", "windows": "WINDOW",
                 "laterals": "LATERAL", "pivots": "PIVOT", "kind": "SELECT AS"}
_AGGREGATES: dict[type, str] = {exp.Count: "count", exp.Sum: "sum", exp.Avg: "avg",
                                exp.Min: "min", exp.Max: "max"}


class _SelectLowerer:
    """Checks one SELECT against the supported subset and builds the Select IR."""

    def __init__(self, lowerer: _Lowerer) -> None:
        self.lw = lowerer
        self.ctx = lowerer.ctx

    def select(self, node: exp.Select) -> Select:
        self._check_clauses(node)
        self._check_from(node)
        where = node.args.get("where")
        columns = self._columns(node.expressions)
        group_by = self._group_by(node.args.get("group"), columns)
        fn.check_grouping(self.ctx, columns, group_by)
        kind = Select(columns, group_by=group_by).kind
        order = node.args.get("order")
        return Select(
            columns=columns,
            where=self.lw.predicate(where.this) if where is not None else None,
            group_by=group_by,
            order_by=self._order_by(order, columns, group_by, kind) if order else (),
            limit=self._count(node.args.get("limit"), "LIMIT"),
            offset=self._count(node.args.get("offset"), "OFFSET") or 0,
        )

    def _check_clauses(self, node: exp.Select) -> None:
        for key, value in node.args.items():
            if value and key not in _SELECT_CLAUSES:
                first = value[0] if isinstance(value, list) else value
                name = _CLAUSE_NAMES.get(key, key.rstrip("_").upper())
                if isinstance(first, exp.Expression):
                    self.lw.fail(f"unsupported: {name}", first)
                self.ctx.fail(f"unsupported: {name}", Span(0, len(self.ctx.text)))

    def _check_from(self, node: exp.Select) -> None:
        source = node.args.get("from_") or node.args.get("from")
        if source is None:
            last = node.expressions[-1] if node.expressions else None
            end = self.lw.span(last).end if last is not None else len(self.ctx.text)
            self.ctx.fail(f"FROM {TABLE} is missing", Span(0, end))
        table = source.this
        if not isinstance(table, exp.Table):
            self.lw.unsupported(table)
        if table.name.lower() != TABLE or table.args.get("db") or table.args.get("catalog"):
            self.lw.fail(f"unknown table {table.sql(dialect='duckdb')!r}: only {TABLE} "
                         "can be queried", table)
        if table.alias:
            self.lw.fail("unsupported: table alias", table)

    # ---- output columns ----

    def _columns(self, expressions: list[exp.Expression]) -> tuple[OutputColumn, ...]:
        columns: list[OutputColumn] = []
        for node in expressions:
            if isinstance(node, exp.Star):
                columns.extend(self._star(node))
            elif isinstance(node, exp.Alias):
                columns.append(OutputColumn(node.alias, self._expr(node.this)))
            else:
                expr = self._expr(node)
                name = expr.name if isinstance(expr, FieldRef) else node.sql(dialect="duckdb")
                columns.append(OutputColumn(name, expr))
        return tuple(columns)

    def _star(self, node: exp.Star) -> list[OutputColumn]:
        if any(node.args.values()):
            self.lw.unsupported(node)
        span = self.lw.span(node)
        names = [ID_FIELD, *self.ctx.schema.names()]
        return [OutputColumn(name, FieldRef(name, span=span)) for name in names]

    def _expr(self, node: exp.Expression) -> Expr:
        if isinstance(node, exp.Column):
            return self._field_ref(node)
        if type(node) in _AGGREGATES:
            return self._agg(node)
        if isinstance(node, exp.Paren):
            return self._expr(node.this)
        if isinstance(node, (exp.Add, exp.Sub, exp.Mul, exp.Div)):
            self.lw.fail("unsupported: expressions over fields", node)
        if isinstance(node, (exp.Literal, exp.Boolean, exp.Null)):
            self.lw.fail("unsupported: a constant here; use fields or aggregates", node)
        if isinstance(node, exp.Func):
            self.lw.fail("unsupported: a function call here; use fields or aggregates", node)
        self.lw.unsupported(node)

    def _field_ref(self, node: exp.Column) -> FieldRef:
        arg = self.lw.operand(node)
        self.ctx.field_type(arg.value, arg.span)
        return FieldRef(arg.value, span=arg.span)

    def _agg(self, node: exp.Expression) -> Agg:
        func, span = _AGGREGATES[type(node)], self.lw.span(node)
        extra = [k for k, v in node.args.items() if k != "this" and isinstance(v, exp.Expression)]
        if extra:
            self.ctx.fail(f"wrong number of arguments: {func}() takes 1", span)
        arg = node.this
        if isinstance(arg, exp.Star):
            if func != "count":
                self.lw.fail(f"{func}(*) is not allowed; name a field", node)
            return Agg("count", None, span=span)
        if arg is None:
            self.ctx.fail(f"wrong number of arguments: {func}() takes 1", span)
        if isinstance(arg, exp.Distinct):
            self.lw.unsupported(arg)
        if not isinstance(arg, exp.Column):
            self.lw.fail(f"unsupported: {func}() of an expression; name a field", arg)
        ref = self._field_ref(arg)
        return Agg(func, fn.aggregate_field(self.ctx, func, ref.name, ref.span), span=span)

    # ---- GROUP BY, ORDER BY, LIMIT/OFFSET ----

    def _group_by(self, group: exp.Group | None,
                  columns: tuple[OutputColumn, ...]) -> tuple[FieldRef, ...]:
        if group is None:
            return ()
        extra = [k for k, v in group.args.items() if v and k != "expressions"]
        if extra:
            self.lw.fail(f"unsupported: GROUP BY {extra[0].upper()}", group)
        refs = tuple(self._group_key(e, columns) for e in group.expressions)
        return tuple(dict.fromkeys(refs))

    def _group_key(self, node: exp.Expression, columns: tuple[OutputColumn, ...]) -> FieldRef:
        expr = self._resolve(node, columns) or self._expr(node)
        if not isinstance(expr, FieldRef):
            self.lw.fail("GROUP BY takes fields, not aggregates", node)
        fn.check_group_key(self.ctx, expr.name, self.lw.span(node))
        return FieldRef(expr.name, span=self.lw.span(node))

    def _resolve(self, node: exp.Expression,
                 columns: tuple[OutputColumn, ...]) -> Expr | None:
        """A 1-based position or an output alias → that column's expression."""
        if isinstance(node, exp.Literal) and not node.is_string:
            position = _number(node.this)
            if not (isinstance(position, int) and 1 <= position <= len(columns)):
                self.lw.fail(f"position {node.this} is not in the select list "
                             f"(1..{len(columns)})", node)
            return columns[position - 1].expr
        if isinstance(node, exp.Column) and not node.table:  # aliases shadow fields
            return {c.name: c.expr for c in columns}.get(node.name)
        return None

    def _order_by(self, order: exp.Order, columns: tuple[OutputColumn, ...],
                  group_by: tuple[FieldRef, ...], kind: str) -> tuple[OrderKey, ...]:
        keys = []
        for ordered in order.expressions:
            expr = self._resolve(ordered.this, columns) or self._expr(ordered.this)
            fn.check_order_key(self.ctx, expr, self.lw.span(ordered.this), group_by, kind)
            keys.append(OrderKey(expr, desc=bool(ordered.args.get("desc")),
                                 nulls_first=bool(ordered.args.get("nulls_first"))))
        return tuple(keys)

    def _count(self, clause: exp.Expression | None, word: str) -> int | None:
        if clause is None:
            return None
        value = clause.expression
        if isinstance(value, exp.Literal) and not value.is_string:
            number = _number(value.this)
            if isinstance(number, int) and number >= 0:
                return number
        self.lw.fail(f"{word} must be a non-negative whole number", clause)
