"""The query IR: small frozen dataclasses the planner and executor work on.

The `parse` package is the only place that sees sqlglot; it emits these nodes with literal
values already coerced to the field's storage domain:

| field type  | literal value in the IR                         |
| ----------- | ----------------------------------------------- |
| int         | int, or float when the literal is not integral  |
| float       | float                                           |
| bool        | bool                                            |
| string      | str                                             |
| timestamp   | int, microseconds since the Unix epoch (UTC)    |

Every node carries `span`: the half-open character range [start, end) of the source
text it came from, so later stages can still point at the text in their errors.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Union

Scalar = Union[int, float, bool, str]

COMPARE_OPS = ("=", "!=", "<", "<=", ">", ">=")
NEGATED_OP = {"=": "!=", "!=": "=", "<": ">=", "<=": ">", ">": "<=", ">=": "<"}
MIRRORED_OP = {"=": "=", "!=": "!=", "<": ">", "<=": ">=", ">": "<", ">=": "<="}


@dataclass(frozen=True)
class Span:
    start: int
    end: int


NO_SPAN = Span(0, 0)


@dataclass(frozen=True)
class EventValue:
    """A per-profile value computed from the profile's events of one type.

    func: count (never null), sum/avg/min/max of `prop`, first_seen/last_seen (min/max
    ts, a timestamp); all but count are null for a profile without matching events.
    The window is resolved against the query's clock at compile time: events with
    since <= ts <= until (µs, inclusive; None unbounded). `where` is a normalised
    predicate over the event's properties (and `ts`).
    """
    func: str
    type: str
    prop: str | None = None
    since: int | None = None
    until: int | None = None
    where: "Predicate | None" = None
    span: Span = field(default=NO_SPAN, compare=False)

    @property
    def value_type(self) -> str:
        """The FieldType value of its result: int, float or timestamp."""
        return EVENT_FUNCS[self.func]


# event function → the type of the per-profile value it computes
EVENT_FUNCS = {"count": "int", "sum": "float", "avg": "float", "min": "float", "max": "float",
               "first_seen": "timestamp", "last_seen": "timestamp"}
Term = Union[str, EventValue]  # what a leaf tests: a stored field's name, or an event value


@dataclass(frozen=True)
class Compare:
    """`field op value`; false (not unknown-true) where the field is null."""
    field: Term
    op: str
    value: Scalar
    span: Span = field(default=NO_SPAN, compare=False)


@dataclass(frozen=True)
class InSet:
    """`field [NOT] IN (values...)` on int, float, string or timestamp fields."""
    field: Term
    values: tuple[Scalar, ...]
    negated: bool = False
    span: Span = field(default=NO_SPAN, compare=False)


@dataclass(frozen=True)
class Like:
    """`field [NOT] [I]LIKE pattern` on a string field (SQL % and _ wildcards)."""
    field: str
    pattern: str
    negated: bool = False
    case_insensitive: bool = False
    span: Span = field(default=NO_SPAN, compare=False)


@dataclass(frozen=True)
class IsNull:
    """`field IS [NOT] NULL`; for string_set, null means no set was ever given."""
    field: Term
    negated: bool = False
    span: Span = field(default=NO_SPAN, compare=False)


@dataclass(frozen=True)
class Has:
    """`has`/`has_any`/`has_all` on a string_set field; negated is true where the set
    exists (not null) and the test fails."""
    field: str
    tags: tuple[str, ...]
    mode: str = "any"  # "any" | "all"
    negated: bool = False
    span: Span = field(default=NO_SPAN, compare=False)


@dataclass(frozen=True)
class InSegment:
    """`in_segment('name')`: membership of a saved segment (never unknown)."""
    name: str
    negated: bool = False
    span: Span = field(default=NO_SPAN, compare=False)


@dataclass(frozen=True)
class Const:
    """A predicate known true or false for every live profile (e.g. `1 = 1`)."""
    value: bool
    span: Span = field(default=NO_SPAN, compare=False)


@dataclass(frozen=True)
class And:
    children: tuple["Predicate", ...]
    span: Span = field(default=NO_SPAN, compare=False)


@dataclass(frozen=True)
class Or:
    children: tuple["Predicate", ...]
    span: Span = field(default=NO_SPAN, compare=False)


@dataclass(frozen=True)
class Not:
    child: "Predicate"
    span: Span = field(default=NO_SPAN, compare=False)


Predicate = Union[Compare, InSet, Like, IsNull, Has, InSegment, Const, And, Or, Not]
LEAVES = (Compare, InSet, Like, IsNull, Has, InSegment)

AGG_FUNCS = ("count", "sum", "avg", "min", "max")


@dataclass(frozen=True)
class FieldRef:
    """A stored field, or `profile_id`."""
    name: str
    span: Span = field(default=NO_SPAN, compare=False)


@dataclass(frozen=True)
class Agg:
    """An aggregate; `field` is None for count(*)."""
    func: str
    field: str | None
    span: Span = field(default=NO_SPAN, compare=False)


Expr = Union[FieldRef, Agg, EventValue]


@dataclass(frozen=True)
class OutputColumn:
    name: str   # the label shown to the user: the alias, or the SQL text of the expression
    expr: Expr


@dataclass(frozen=True)
class OrderKey:
    """One ORDER BY term; nulls sort last unless `nulls_first`."""
    expr: Expr
    desc: bool = False
    nulls_first: bool = False


@dataclass(frozen=True)
class Select:
    """`SELECT ... FROM profiles [WHERE] [GROUP BY] [ORDER BY] [LIMIT] [OFFSET]`.

    kind is "aggregate" (only aggregates, one row), "group" (GROUP BY present) or
    "list" (only fields: one row per matching profile).
    """
    columns: tuple[OutputColumn, ...]
    where: Predicate | None = None
    group_by: tuple[FieldRef, ...] = ()
    order_by: tuple[OrderKey, ...] = ()
    limit: int | None = None
    offset: int = 0

    @property
    def kind(self) -> str:
        if self.group_by:
            return "group"
        if any(isinstance(c.expr, Agg) for c in self.columns):
            return "aggregate"
        return "list"
