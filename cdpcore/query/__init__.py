"""The segment query language: parse SQL into IR, normalise it, execute per shard, reduce.

`compile_where` / `compile_select` are the front door: text → normalised IR, with `now()`
and event windows folded to the caller's clock. The router compiles once and ships the IR
to the shards (cdpcore.wire.encode_plan), so shard processes never parse SQL; the parser
(and with it sqlglot) is imported only when something compiles.
"""
from __future__ import annotations

from dataclasses import fields, is_dataclass, replace
from typing import TYPE_CHECKING, Any, Collection, Iterator

if TYPE_CHECKING:
    from ..schema import Schema
    from ..tracking import EventSchema
    from .ir import EventValue, Predicate, Select


def compile_where(text: str, schema: "Schema", now_us: int, events: "EventSchema | None" = None,
                  segments: Collection[str] = (), used: "set[str] | None" = None
                  ) -> "Predicate | None":
    """`segments`: the saved segments `in_segment()` may name; `used` (if given) receives
    the ones the text names, including those the rules fold away."""
    from .parse import parse_where
    from .rules import normalize
    return normalize(parse_where(text, schema, now_us, events, segments, used))


def compile_select(text: str, schema: "Schema", now_us: int, events: "EventSchema | None" = None,
                   segments: Collection[str] = ()) -> "Select":
    from .parse import parse_select
    from .rules import normalize
    select = parse_select(text, schema, now_us, events, segments)
    return replace(select, where=normalize(select.where))


def event_warnings(plan: Any, events: "EventSchema") -> list[str]:
    """Warnings for a compiled plan: event types never tracked match nothing, which is
    legal (types appear over time) but usually a typo, so the caller is told."""
    unknown = dict.fromkeys(v.type for v in _event_values(plan) if not events.knows_type(v.type))
    return [f"event type {t!r} has never been tracked: it matches nothing" for t in unknown]


def _event_values(node: Any) -> Iterator["EventValue"]:
    from .ir import EventValue
    if isinstance(node, EventValue):
        yield node
    elif is_dataclass(node):
        for f in fields(node):
            yield from _event_values(getattr(node, f.name))
    elif isinstance(node, tuple):
        for item in node:
            yield from _event_values(item)
