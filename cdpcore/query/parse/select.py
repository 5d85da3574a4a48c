"""SELECT: one sqlglot Select → Select IR, refusing whatever is outside the subset.

`_SelectLowerer` checks clauses and the table, builds the output columns, GROUP BY,
ORDER BY and LIMIT/OFFSET, and hands the WHERE condition to `_Lowerer`.
"""
from __future__ import annotations

from sqlglot import exp

from ...schema import ID_FIELD
from .. import functions as fn
from ..ir import Agg, EventValue, Expr, FieldRef, OrderKey, OutputColumn, Select, Span
from .spans import _is_call
from .where import TABLE, _Lowerer, _number

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
                if isinstance(expr, EventValue):  # the user's own spelling of the call
                    name = self.ctx.text[expr.span.start:expr.span.end]
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
        if _is_call(node):
            spec = fn.FUNCTIONS.get(self.lw.call_name(node).lower())
            if spec is not None and spec.conditions:  # the event functions
                return self.lw.operand(node).value
            self.lw.fail("unsupported: a function call here; use fields, aggregates or "
                         "event functions", node)
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
        if _is_call(arg):
            value = self._expr(arg)
            if isinstance(value, EventValue):
                return Agg(func, fn.aggregate_event(self.ctx, func, value), span=span)
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
