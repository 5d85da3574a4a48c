"""The segment query language: parse SQL into IR, normalise it, execute per shard, reduce.

`compile_where` / `compile_select` are the front door: text → normalised IR, with `now()`
folded to the caller's clock. The router compiles once and ships the IR to the shards
(cdpcore.wire.encode_plan), so shard processes never parse SQL; the parser (and with it
sqlglot) is imported only when something compiles.
"""
from __future__ import annotations

from dataclasses import replace
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from ..schema import Schema
    from .ir import Predicate, Select


def compile_where(text: str, schema: "Schema", now_us: int) -> "Predicate | None":
    from .parse import parse_where
    from .rules import normalize
    return normalize(parse_where(text, schema, now_us))


def compile_select(text: str, schema: "Schema", now_us: int) -> "Select":
    from .parse import parse_select
    from .rules import normalize
    select = parse_select(text, schema, now_us)
    return replace(select, where=normalize(select.where))
