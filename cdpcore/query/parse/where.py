"""WHERE: sqlglot expressions → Predicate IR, with operands folded and type-checked.

`_Lowerer` walks one tree through two dispatch tables: `_PREDICATES` for conditions and
`_OPERANDS` for the values inside them (fields, literals, folded time arithmetic).
"""
from __future__ import annotations

from dataclasses import replace
from typing import Any, Callable, NoReturn

from sqlglot import exp

from ...schema import ID_FIELD, FieldType
from .. import functions as fn
from ..functions import (BOOL, CONDITION, EVENT, FIELD, INTERVAL, NULL, NUMBER, STRING, TERMS,
                         TIMESTAMP, Arg, Context)
from ..ir import MIRRORED_OP, And, Compare, Const, InSet, IsNull, Like, Not, Or, Predicate, Span
from ..rules import normalize
from ..windows import parse_interval
from .spans import _CONSTRUCTS, _is_call, _own, _Spans

TABLE = "profiles"  # the one table a query may name

_COMPARE_OPS: dict[type, str] = {
    exp.EQ: "=", exp.NEQ: "!=", exp.LT: "<", exp.LTE: "<=", exp.GT: ">", exp.GTE: ">=",
}
_TIMESTAMP_TYPES = exp.DataType.TEMPORAL_TYPES - {exp.DataType.Type.TIME,
                                                  exp.DataType.Type.TIMETZ}


class _Lowerer:
    """Walks one sqlglot tree, emitting IR; holds the context and the span finder."""

    def __init__(self, ctx: Context, spans: _Spans) -> None:
        self.ctx = ctx
        self.spans = spans

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
        if left.kind in TERMS and right.kind in TERMS:
            self.ctx.fail(f"unsupported: comparing two fields ({left.sql}, {right.sql})", span)
        if right.kind in TERMS:
            left, right, op = right, left, MIRRORED_OP[op]
        if left.kind not in TERMS:
            return Const(fn.fold_compare(self.ctx, op, left, right, span), span=span)
        if left.kind == EVENT:
            return Compare(left.value, op, self._event_literal(left, right), span=span)
        ftype = self._scalar_field(left, span, "compare it")
        if ftype is None and op not in ("=", "!="):
            self.ctx.fail(f"{ID_FIELD} can only be tested with =, != or IN", span)
        return Compare(left.value, op, fn.coerce(self.ctx, left.value, ftype, right), span=span)

    def _event_literal(self, value: Arg, literal: Arg) -> object:
        """A literal coerced to an event value's type (count int, sums float, seen ts)."""
        return fn.coerce(self.ctx, value.sql, FieldType(value.value.value_type), literal)

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
        if field.kind == EVENT:
            values = (self._event_literal(field, self.operand(v)) for v in node.expressions)
            return InSet(field.value, tuple(dict.fromkeys(values)), span=span)
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
        if field.kind == EVENT:
            return IsNull(field.value, span=self.span(node))
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

    def call_name(self, node: exp.Func) -> str:
        own = _own(node)
        return self.ctx.text[own.start:own.end] if own else node.sql_name()

    def _call_parts(self, node: exp.Func) -> tuple[fn.FunctionSpec, tuple[Arg, ...]]:
        own = _own(node)
        spec = fn.lookup(self.call_name(node), self.ctx, own or self.span(node))
        if isinstance(node, exp.Anonymous):
            raw = list(node.expressions)
        else:
            raw = [v for v in node.iter_expressions()]
        if spec.conditions:
            return spec, tuple(self._condition(a) if _is_condition(a) else self.operand(a)
                               for a in raw)
        return spec, tuple(self.operand(a) for a in raw)

    def _condition(self, node: exp.Expression) -> Arg:
        """An event function's condition, checked against the event properties."""
        inner = _Lowerer(self.ctx.for_event_condition(), self.spans)
        return self._arg(CONDITION, normalize(inner.predicate(node)), node)

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


def _is_condition(node: exp.Expression) -> bool:
    """Whether an argument is shaped like a condition (vs a value such as '30d')."""
    while isinstance(node, exp.Paren):
        node = node.this
    return type(node) in _PREDICATES and not isinstance(node, (exp.Column, exp.Paren))


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
