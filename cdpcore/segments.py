"""Segments represent saved conditions: their definitions and the catalog that checks them.

A `SegmentDef` is the user's WHERE text plus its plan compiled at `bound_us` and what the
plan reads (fields, event types, other segments), so a write only re-checks the segments
it can affect. A plan depends on the clock when the text uses `now()` or event windows:
the catalog finds out by compiling the text at two instants and comparing the plans, so no
part of the parser has to track it. Such segments are re-bound to the current clock
and re-evaluated in full on a timer (`Store.refresh_segments`, the server's refresh
loop); between refreshes writes are checked against the last bound plan.

The catalog lives wherever queries are compiled (the embedded Store, the router);
shards only receive compiled definitions (`cdpcore.membership`).
"""
from __future__ import annotations

import datetime as _dt
import re
import threading
from dataclasses import dataclass, fields, is_dataclass
from typing import Any, Callable, Collection, Iterator

import msgpack

from . import wire
from .errors import AlreadyExists, BatchError, FailedPrecondition, QueryError, SegmentNotFound
from .query.ir import EventValue, Predicate
from .schema import ID_FIELD
from .timestamps import to_datetime

_NAME_RE = re.compile(r"[A-Za-z_][A-Za-z0-9_.-]{0,127}")
DEFAULT_REFRESH_S = 60.0   # how often time-dependent segments are re-evaluated
_REBIND_PROBE_US = 1_000_000

# (where text, now µs, the segment names in_segment may use, a set receiving the names the
# text uses) → normalised plan
Compile = Callable[[str, int, Collection[str], set], "Predicate | None"]
_SETS = ("fields", "event_types", "segments")


@dataclass(frozen=True)
class SegmentDef:
    name: str
    where: str
    plan: Predicate | None
    bound_us: int                      # the clock the plan was compiled at
    time_dependent: bool               # its plan (or a segment it reads) changes with the clock
    fields: frozenset[str] = frozenset()
    event_types: frozenset[str] = frozenset()
    segments: frozenset[str] = frozenset()
    created_us: int = 0

    def to_bytes(self) -> bytes:
        """msgpack of the fields, the plan as `wire.encode_plan` (shipped router → shard,
        and kept in snapshots)."""
        doc = {"name": self.name, "where": self.where, "plan": wire.encode_plan(self.plan),
               "bound_us": self.bound_us, "time_dependent": self.time_dependent,
               "created_us": self.created_us, **{k: sorted(getattr(self, k)) for k in _SETS}}
        return wire.pack(doc)

    @classmethod
    def from_bytes(cls, data: bytes) -> "SegmentDef":
        try:
            doc = wire.unpack(data)
            return cls(doc["name"], doc["where"], wire.decode_plan(doc["plan"]), doc["bound_us"],
                       doc["time_dependent"], created_us=doc["created_us"],
                       **{k: frozenset(doc[k]) for k in _SETS})
        except (KeyError, TypeError, ValueError, msgpack.ExtraData, msgpack.FormatError) as e:
            raise BatchError(f"malformed segment definition: {e}") from None



def check_segment_name(name: Any) -> str:
    if not isinstance(name, str) or not _NAME_RE.fullmatch(name):
        raise QueryError(f"invalid segment name {name!r}: use letters, digits, _, - and ., "
                         "starting with a letter or _ (at most 128 characters)")
    return name


def dependencies(plan: Any) -> tuple[frozenset[str], frozenset[str]]:
    """(fields, event types) a normalised plan reads (segments come from the text:
    see `SegmentCatalog._compiled`)."""
    found_fields: set[str] = set()
    found_types: set[str] = set()
    for node in _walk(plan):
        if isinstance(node, EventValue):
            found_types.add(node.type)
        elif isinstance(getattr(node, "field", None), str) and node.field != ID_FIELD:
            found_fields.add(node.field)
    return frozenset(found_fields), frozenset(found_types)


def _walk(node: Any) -> Iterator[Any]:
    yield node
    if is_dataclass(node):
        for f in fields(node):
            if f.name == "where" and isinstance(node, EventValue):
                continue  # an event condition reads event properties, not profile fields
            yield from _walk(getattr(node, f.name))
    elif isinstance(node, tuple):
        for item in node:
            yield from _walk(item)


class SegmentCatalog:
    """The saved segments of a store or cluster, in creation order (which is also an
    order where every segment comes after the segments it reads). Thread-safe."""

    def __init__(self) -> None:
        self._defs: dict[str, SegmentDef] = {}
        self._lock = threading.Lock()

    def names(self) -> list[str]:
        return list(self._defs)

    def all(self) -> list[SegmentDef]:
        return list(self._defs.values())

    def get(self, name: str) -> SegmentDef:
        found = self._defs.get(name)
        if found is None:
            raise SegmentNotFound(f"segment {name!r} not found")
        return found

    def define(self, name: str, where: str, compile: Compile, now_us: int) -> SegmentDef:
        """A checked definition for a new segment (not yet added: see `add`)."""
        check_segment_name(name)
        if name in self._defs:
            raise AlreadyExists(f"segment {name!r} already exists")
        defn = self._compiled(name, where, compile, now_us, created_us=now_us)
        # Only existing segments can be named, so a new one can only close a cycle by
        # naming itself; the walk keeps that true if definitions ever become replaceable.
        if name in self._reachable(defn.segments):
            raise QueryError(f"segment {name!r} cannot refer to itself (cycles are not allowed)")
        return defn

    def add(self, defn: SegmentDef) -> None:
        with self._lock:
            if defn.name in self._defs:
                raise AlreadyExists(f"segment {defn.name!r} already exists")
            self._defs[defn.name] = defn

    def restore(self, defn: SegmentDef) -> None:
        """Add or replace a definition learned from elsewhere (a router learning shards')."""
        with self._lock:
            self._defs[defn.name] = defn

    def remove(self, name: str) -> SegmentDef:
        """Forget a segment; refused while other segments read it."""
        with self._lock:
            defn = self.get(name)
            users = sorted(d.name for d in self._defs.values() if name in d.segments)
            if users:
                raise FailedPrecondition(f"segment {name!r} is used by {', '.join(users)}; "
                                         "delete those first")
            del self._defs[name]
            return defn

    def rebound(self, compile: Compile, now_us: int) -> list[SegmentDef]:
        """The time-dependent segments recompiled at `now_us` (and recorded), in order."""
        out = []
        for defn in self.all():
            if defn.time_dependent:
                fresh = self._compiled(defn.name, defn.where, compile, now_us, defn.created_us)
                with self._lock:
                    if defn.name in self._defs:
                        self._defs[defn.name] = fresh
                        out.append(fresh)
        return out

    def _compiled(self, name: str, where: str, compile: Compile, now_us: int,
                  created_us: int) -> SegmentDef:
        names = [*self._defs, name]  # itself included, so a self-reference reads as a cycle
        named: set[str] = set()
        plan = compile(where, now_us, names, named)
        moves = plan != compile(where, now_us + _REBIND_PROBE_US, names, set())
        flds, types = dependencies(plan)
        segs = frozenset(named)  # from the text: a folded-away reference still pins its target
        moves = moves or any(self._defs[s].time_dependent for s in segs if s in self._defs)
        return SegmentDef(name, where, plan, now_us, moves, flds, types, segs, created_us)

    def _reachable(self, start: frozenset[str]) -> set[str]:
        seen: set[str] = set()
        todo = list(start)
        while todo:
            name = todo.pop()
            if name not in seen:
                seen.add(name)
                if name in self._defs:
                    todo.extend(self._defs[name].segments)
        return seen


@dataclass(frozen=True)
class SegmentInfo:
    """What `get_segment` / `list_segments` report."""
    name: str
    where: str
    size: int
    time_dependent: bool
    depends_on: tuple[str, ...]      # segments it reads
    created_at: _dt.datetime
    refreshed_at: _dt.datetime        # when its plan was last bound to the clock

    @classmethod
    def of(cls, defn: SegmentDef, size: int) -> "SegmentInfo":
        return cls(defn.name, defn.where, size, defn.time_dependent, tuple(sorted(defn.segments)),
                   to_datetime(defn.created_us), to_datetime(defn.bound_us))
