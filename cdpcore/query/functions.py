"""FUNCTIONS represents the functions a query may call: name → signature, doc and lowering.

The parser classifies each argument into an `Arg` (a field, a literal, a timestamp…) and
hands it to the function's `lower`, so this module never sees sqlglot. One table drives
the "unknown function" error (with close names), arity checks, and the function list in
the docs. Adding a function (the event functions `event_count`, `event_sum`, `last_seen`,
`in_segment` come next) means writing its lowering and adding one `FunctionSpec` row.

Also here: the sqlglot-free typing rules that the parser and the lowerings share, so
the parse package keeps only the walk over sqlglot's tree: `Arg` and `Context` (field lookup with
"did you mean"), coercion of a literal into a field's storage domain, folding of
literal-only comparisons and time arithmetic, and the aggregates' rules (argument types,
what GROUP BY and ORDER BY accept).
"""
from __future__ import annotations

import difflib
import math
import operator
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Callable, Collection, NoReturn, Union

from .. import timestamps
from ..errors import QueryError
from ..schema import ID_FIELD, Field, FieldType, Schema
from .ir import (EVENT_FUNCS, Agg, EventValue, Expr, FieldRef, Has, InSegment, OutputColumn,
                 Predicate, Span)
from .windows import parse_window

if TYPE_CHECKING:
    from ..tracking import EventSchema

# Arg.kind values the parser produces. EVENT: an event function's per-profile value
# (value: EventValue); CONDITION: an event condition (value: a normalised Predicate).
FIELD, STRING, NUMBER, BOOL, NULL, TIMESTAMP, INTERVAL, EVENT, CONDITION = (
    "field", "string", "number", "bool", "null", "timestamp", "interval", "event", "condition")
TERMS = (FIELD, EVENT)  # operands a predicate tests (the others are literals)


@dataclass(frozen=True)
class Arg:
    """A function argument or comparison operand, classified by the parser.

    `value` is the field name (FIELD), the literal's Python value, or microseconds
    (TIMESTAMP, INTERVAL); `sql` is its source text, for messages.
    """
    kind: str
    value: Any
    span: Span
    sql: str

    def describe(self) -> str:
        return f"{self.kind} {self.sql}"


@dataclass(frozen=True)
class Context:
    """What checking a query needs besides the syntax tree: the text, schema and clock.

    Inside an event function's condition the "fields" are the event's properties:
    `for_event_condition` gives that context (no profile key, `ts` a timestamp).
    """
    text: str
    schema: Schema
    now_us: int
    events: "EventSchema | None" = None
    key: str | None = ID_FIELD        # the profile key's name; None inside event conditions
    noun: str = "field"
    segments: "Collection[str]" = ()  # saved segments `in_segment` may name
    used_segments: set[str] | None = None  # filled with every segment the text names

    def fail(self, message: str, span: Span) -> NoReturn:
        raise QueryError(message, self.text, span.start, span.end)

    def field_type(self, name: str, span: Span) -> FieldType | None:
        """The type of field `name`; None for the `profile_id` key; unknown → QueryError."""
        if name == self.key:
            return None
        field = self.schema.get(name)
        if field is None:
            self.fail(f"unknown {self.noun} {name!r}{did_you_mean(name, self.known_names())}",
                      span)
        return field.type

    def known_names(self) -> list[str]:
        return [*([self.key] if self.key else []), *self.schema.names()]

    @property
    def in_event_condition(self) -> bool:
        return self.key is None

    def for_event_condition(self) -> "Context":
        known = self.events.properties.fields() if self.events is not None else []
        props = Schema.of([*known, Field("ts", FieldType.TIMESTAMP)])
        return Context(self.text, props, self.now_us, self.events, None, "event property",
                       self.segments, self.used_segments)


def did_you_mean(name: str, candidates: list[str]) -> str:
    """' (did you mean 'x'?)' for the closest candidate, or ''."""
    lowered = {c.lower(): c for c in candidates}
    close = difflib.get_close_matches(name.lower(), list(lowered), n=1, cutoff=0.6)
    return f" (did you mean {lowered[close[0]]!r}?)" if close else ""


def type_name(ftype: FieldType | None) -> str:
    """How messages name a field's type (None is the profile_id key)."""
    return ftype.value if ftype is not None else "the profile key"


# ---- coercion of literals into a field's storage domain (see ir.py's table) ----

def _coerce_int(arg: Arg) -> int | float:
    value = arg.value
    if isinstance(value, float) and math.isfinite(value) and value.is_integer():
        return int(value)
    return value  # non-integral: compared numerically (`age > 30.5` is `age >= 31`)


def _coerce_float(ctx: Context, arg: Arg) -> float:
    try:
        return float(arg.value)
    except OverflowError:
        ctx.fail(f"number out of range: {arg.sql}", arg.span)


def _coerce_timestamp(ctx: Context, arg: Arg) -> int:
    if arg.kind == TIMESTAMP:
        return arg.value
    try:
        return timestamps.to_micros(arg.value)
    except (TypeError, ValueError, OverflowError) as e:
        reason = ("expected ISO-8601 such as '2026-01-01' or '2026-01-01T10:00:00Z'"
                  if arg.kind == STRING else str(e))
        ctx.fail(f"bad timestamp literal {arg.sql}: {reason}", arg.span)


# field type (None: the profile_id key) → (Arg kinds accepted, converter)
_COERCIONS: dict[FieldType | None, tuple[tuple[str, ...], Callable[[Context, Arg], Any]]] = {
    FieldType.INT: ((NUMBER,), lambda ctx, a: _coerce_int(a)),
    FieldType.FLOAT: ((NUMBER,), _coerce_float),
    FieldType.BOOL: ((BOOL,), lambda ctx, a: bool(a.value)),
    FieldType.STRING: ((STRING,), lambda ctx, a: a.value),
    FieldType.TIMESTAMP: ((STRING, NUMBER, TIMESTAMP), _coerce_timestamp),
    None: ((STRING,), lambda ctx, a: a.value),
}


def coerce(ctx: Context, field: str, ftype: FieldType | None, arg: Arg) -> Any:
    """`arg` as a value of `field`'s storage domain, or a type-mismatch QueryError.

    `ftype` None is the `profile_id` key, which takes strings. string_set fields have
    no scalar domain; the parser refuses them before calling this.
    """
    kinds, convert = _COERCIONS[ftype]
    if arg.kind == NULL:
        ctx.fail(f"comparing {field} with NULL is never true; use {field} IS [NOT] NULL", arg.span)
    if arg.kind not in kinds:
        ctx.fail(f"type mismatch: {field} is {type_name(ftype)}, got {arg.describe()}", arg.span)
    return convert(ctx, arg)


# ---- folding of literal-only expressions ----

_PY_OPS: dict[str, Callable[[Any, Any], bool]] = {
    "=": operator.eq, "!=": operator.ne, "<": operator.lt, "<=": operator.le,
    ">": operator.gt, ">=": operator.ge,
}


def fold_compare(ctx: Context, op: str, left: Arg, right: Arg, span: Span) -> bool:
    """`literal op literal` (generated SQL is full of `1 = 1`) → its truth value."""
    for arg in (left, right):
        if arg.kind == NULL:
            ctx.fail("comparing with NULL is never true; use IS [NOT] NULL", arg.span)
    if left.kind != right.kind or left.kind == FIELD:
        ctx.fail(f"type mismatch: comparing {left.describe()} with {right.describe()}", span)
    return _PY_OPS[op](left.value, right.value)


def fold_time(ctx: Context, sign: int, left: Arg, right: Arg, span: Span, sql: str) -> Arg:
    """`timestamp ± interval`, `interval ± interval`, `interval + timestamp` → one Arg."""
    kinds = (left.kind, right.kind)
    if FIELD in kinds:
        ctx.fail("unsupported: arithmetic on fields", span)
    if kinds in ((TIMESTAMP, INTERVAL), (INTERVAL, INTERVAL)):
        return Arg(left.kind, left.value + sign * right.value, span, sql)
    if kinds == (INTERVAL, TIMESTAMP) and sign == 1:
        return Arg(TIMESTAMP, left.value + right.value, span, sql)
    ctx.fail("unsupported: arithmetic (only timestamp ± INTERVAL is folded)", span)


# ---- the function table ----

@dataclass(frozen=True)
class Call:
    """One call site: the lowered arguments plus the context to check them in."""
    name: str
    args: tuple[Arg, ...]
    span: Span
    ctx: Context

    def fail(self, message: str, span: Span | None = None) -> NoReturn:
        self.ctx.fail(message, span or self.span)


# What a lowering returns: a Predicate ("predicate" functions) or an Arg ("value" ones).
Lowered = Union[Predicate, Arg]


@dataclass(frozen=True)
class FunctionSpec:
    name: str
    min_args: int
    max_args: int | None  # None: any number
    returns: str          # "predicate" (usable as a condition) or "value" (an operand)
    doc: str
    lower: Callable[[Call], Lowered]
    conditions: bool = False  # its arguments may be conditions on event properties

    def signature_hint(self) -> str:
        if self.max_args is None:
            return f"at least {self.min_args}"
        if self.min_args == self.max_args:
            return str(self.min_args)
        return f"{self.min_args} to {self.max_args}"


def _string_set_field(call: Call, arg: Arg) -> str:
    if arg.kind != FIELD:
        call.fail(f"{call.name}() needs a string_set field first, got {arg.describe()}", arg.span)
    ftype = call.ctx.field_type(arg.value, arg.span)
    if ftype is not FieldType.STRING_SET:
        call.fail(f"{call.name}() needs a string_set field; {arg.value} is {type_name(ftype)}",
                  arg.span)
    return arg.value


def _tag(call: Call, arg: Arg) -> str:
    if arg.kind != STRING:
        call.fail(f"{call.name}() tags must be string literals, got {arg.describe()}", arg.span)
    return arg.value


def _has_lowering(mode: str) -> Callable[[Call], Predicate]:
    def lower(call: Call) -> Predicate:
        field = _string_set_field(call, call.args[0])
        tags = tuple(dict.fromkeys(_tag(call, a) for a in call.args[1:]))
        return Has(field, tags, mode, span=call.span)
    return lower


def _lower_now(call: Call) -> Arg:
    return Arg(TIMESTAMP, call.ctx.now_us, call.span, "now()")


def _lower_in_segment(call: Call) -> Predicate:
    if call.ctx.in_event_condition:
        call.fail("in_segment() cannot be used inside an event condition")
    arg = call.args[0]
    name = _literal_string(call, arg, "a segment name")
    if name not in call.ctx.segments:
        call.fail(f"unknown segment {name!r}{did_you_mean(name, sorted(call.ctx.segments))}",
                  arg.span)
    if call.ctx.used_segments is not None:  # even if the rules later fold the test away
        call.ctx.used_segments.add(name)
    return InSegment(name, span=call.span)


def _event_lowering(func: str) -> Callable[[Call], Arg]:
    """event_count(type [, window] [, condition]); event_sum/avg/min/max(type, 'prop',
    [, window] [, condition]); first_seen/last_seen(type [, window] [, condition])."""
    def lower(call: Call) -> Arg:
        if call.ctx.in_event_condition:
            call.fail(f"{call.name}() cannot be used inside an event condition")
        args = list(call.args)
        etype = _literal_string(call, args.pop(0), "an event type")
        prop = _numeric_property(call, args.pop(0)) if EVENT_FUNCS[func] == "float" else None
        since = until = where = None
        for arg in args:
            if arg.kind in (STRING, INTERVAL) and since is None and where is None:
                since, until = call.ctx.now_us - _window(call, arg), call.ctx.now_us
            elif arg.kind == CONDITION and where is None:
                where = arg.value
            else:
                call.fail(f"{call.name}(): expected a window such as '30d' or a condition on "
                          f"event properties, got {arg.describe()}", arg.span)
        value = EventValue(func, etype, prop, since, until, where, span=call.span)
        return Arg(EVENT, value, call.span, call.ctx.text[call.span.start:call.span.end])
    return lower


def _literal_string(call: Call, arg: Arg, what: str) -> str:
    if arg.kind != STRING or not arg.value:
        call.fail(f"{call.name}() needs {what} as a string literal, got {arg.describe()}", arg.span)
    return arg.value


def _numeric_property(call: Call, arg: Arg) -> str:
    name = _literal_string(call, arg, "a property name")
    ftype = call.ctx.for_event_condition().field_type(name, arg.span)
    if ftype is not FieldType.FLOAT:
        call.fail(f"{call.name}() needs a numeric event property; {name} is {ftype.value}",
                  arg.span)
    return name


def _window(call: Call, arg: Arg) -> int:
    if arg.kind == INTERVAL:
        if arg.value <= 0:
            call.fail(f"bad window {arg.sql}: must be longer than zero", arg.span)
        return arg.value
    try:
        return parse_window(arg.value)
    except ValueError as e:
        call.fail(str(e), arg.span)


FUNCTIONS: dict[str, FunctionSpec] = {spec.name: spec for spec in (
    FunctionSpec("has", 2, 2, "predicate",
                 "has(tags, 'a'): the string_set field contains the tag",
                 _has_lowering("any")),
    FunctionSpec("has_any", 2, None, "predicate",
                 "has_any(tags, 'a', 'b', ...): the set contains at least one of the tags",
                 _has_lowering("any")),
    FunctionSpec("has_all", 2, None, "predicate",
                 "has_all(tags, 'a', 'b', ...): the set contains every one of the tags",
                 _has_lowering("all")),
    FunctionSpec("now", 0, 0, "value",
                 "now(): the query's clock, a timestamp; `now() - INTERVAL '14 days'` works",
                 _lower_now),
    FunctionSpec("in_segment", 1, 1, "predicate",
                 "in_segment('name'): the profile is a member of the saved segment",
                 _lower_in_segment),
    FunctionSpec("event_count", 1, 3, "value",
                 "event_count('type' [, '30d'] [, condition]): the profile's matching events "
                 "of that type (0 when none)", _event_lowering("count"), conditions=True),
    *(FunctionSpec(f"event_{f}", 2, 4, "value",
                   f"event_{f}('type', 'prop' [, '30d'] [, condition]): {f} of a numeric "
                   "property over the matching events (NULL when none)",
                   _event_lowering(f), conditions=True) for f in ("sum", "avg", "min", "max")),
    FunctionSpec("first_seen", 1, 3, "value",
                 "first_seen('type' [, '30d'] [, condition]): time of the earliest matching "
                 "event (NULL when none)", _event_lowering("first_seen"), conditions=True),
    FunctionSpec("last_seen", 1, 3, "value",
                 "last_seen('type' [, '30d'] [, condition]): time of the latest matching "
                 "event (NULL when none)", _event_lowering("last_seen"), conditions=True),
)}

# ---- aggregates: their argument types, and the rules of grouping ----

# Aggregates allowed in SELECT / ORDER BY, and the field types each accepts.
_ORDERED = frozenset({FieldType.INT, FieldType.FLOAT, FieldType.TIMESTAMP,
                      FieldType.BOOL, FieldType.STRING})
AGGREGATES: dict[str, frozenset[FieldType]] = {
    "count": frozenset(FieldType),
    "sum": frozenset({FieldType.INT, FieldType.FLOAT}),
    "avg": frozenset({FieldType.INT, FieldType.FLOAT}),
    "min": _ORDERED,
    "max": _ORDERED,
}


def aggregate_field(ctx: Context, func: str, name: str, span: Span) -> str | None:
    """The field an aggregate reads, checked against AGGREGATES; None for count(profile_id)."""
    ftype = ctx.field_type(name, span)
    if ftype is None:
        if func != "count":
            ctx.fail(f"{func}({ID_FIELD}) is not supported", span)
        return None  # ids are never null: count(profile_id) is count(*)
    allowed = AGGREGATES[func]
    if ftype not in allowed:
        names = ", ".join(t.value for t in FieldType if t in allowed)
        ctx.fail(f"{func}() takes {names} fields; {name} is {ftype.value}", span)
    return name


def aggregate_event(ctx: Context, func: str, value: EventValue) -> EventValue:
    """An event value as an aggregate's argument: sums and averages need numbers."""
    if func in ("sum", "avg") and value.value_type == "timestamp":
        ctx.fail(f"{func}() takes numbers; {ctx.text[value.span.start:value.span.end]} is a "
                 "timestamp", value.span)
    return value


_GROUPABLE = (FieldType.STRING, FieldType.BOOL, FieldType.STRING_SET)


def check_group_key(ctx: Context, name: str, span: Span) -> None:
    """Groups come from categorical fields: string, bool, or string_set (one group per tag)."""
    ftype = ctx.field_type(name, span)
    if ftype not in _GROUPABLE:
        ctx.fail(f"GROUP BY needs string, bool or string_set fields; {name} is "
                 f"{type_name(ftype)}", span)


def check_grouping(ctx: Context, columns: tuple[OutputColumn, ...],
                   group_by: tuple[FieldRef, ...]) -> None:
    """With GROUP BY or aggregates, every selected field must be a group key."""
    if not group_by and not any(isinstance(c.expr, Agg) for c in columns):
        return
    grouped = {g.name for g in group_by}
    for column in columns:
        if isinstance(column.expr, EventValue):
            ctx.fail("an event function must be inside an aggregate here (GROUP BY or "
                     "aggregates are present)", column.expr.span)
        if isinstance(column.expr, FieldRef) and column.expr.name not in grouped:
            ctx.fail(f"{column.expr.name} must be in GROUP BY or inside an aggregate",
                     column.expr.span)


def check_order_key(ctx: Context, expr: Expr, span: Span, group_by: tuple[FieldRef, ...],
                    kind: str) -> None:
    """Listings order by fields; group and aggregate queries by group keys or aggregates."""
    if isinstance(expr, EventValue):
        if kind != "list":
            ctx.fail("unsupported: ORDER BY an event function with GROUP BY or aggregates", span)
        return
    if kind == "list":
        if isinstance(expr, Agg):
            ctx.fail("aggregate in ORDER BY needs GROUP BY or aggregates in SELECT", span)
        if ctx.field_type(expr.name, expr.span) is FieldType.STRING_SET:
            ctx.fail(f"cannot ORDER BY string_set field {expr.name}", span)
    elif isinstance(expr, FieldRef) and expr.name not in {g.name for g in group_by}:
        ctx.fail(f"ORDER BY {expr.name}: not a GROUP BY field or an aggregate", span)


def lookup(name: str, ctx: Context, span: Span) -> FunctionSpec:
    """The spec for `name` (case-insensitive), or an "unknown function" QueryError."""
    spec = FUNCTIONS.get(name.lower())
    if spec is None:
        if name.lower() in AGGREGATES:
            ctx.fail(f"aggregate {name}() is only allowed in SELECT and ORDER BY", span)
        ctx.fail(f"unknown function {name}(){did_you_mean(name, sorted(FUNCTIONS))}", span)
    return spec


def call(spec: FunctionSpec, args: tuple[Arg, ...], span: Span, ctx: Context) -> Lowered:
    """Check arity, then lower one call of `spec`."""
    too_many = spec.max_args is not None and len(args) > spec.max_args
    if len(args) < spec.min_args or too_many:
        ctx.fail(f"wrong number of arguments: {spec.name}() takes {spec.signature_hint()}, "
                 f"got {len(args)}", span)
    return spec.lower(Call(spec.name, args, span, ctx))
