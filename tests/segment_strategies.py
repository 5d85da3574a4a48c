"""Segment strategies represent saved segments in the random worlds: conditions that read
fields, events, the clock and other segments, and the oracle's reading of them.

A saved segment's membership, as issue 5 and docs/query-language.md ("Saved segments") state it:
its condition evaluated over the current data with `now()` at the instant the segment was
last bound to the clock (its creation, then every `refresh_segments()`), where
`in_segment('t')` reads t's membership. Between refreshes a write is checked against the
plan bound at the last refresh, so a profile's membership is always that evaluation; the
oracle rebinds every segment at a refresh (rebinding one whose condition ignores the
clock changes nothing), so it never needs to know which segments depend on time.

Conditions come as `Cond` (SQL text + Kleene predicate) like every other condition in
the tests. The predicates get a `SegProfile`: the oracle's `Profile` (attributes, events,
`now_us`) plus its id and the memberships computed so far, which `in_segment` reads.
Conditions of strategies.py / event_strategies.py with a literal `now()` are left out:
their predicates fix now() at the tests' FIXED_NOW, and here the clock moves; the
clock-relative leaves below take now() from the profile instead.
"""
from __future__ import annotations

import dataclasses
import re
from dataclasses import dataclass
from typing import Any, Mapping, Sequence

from hypothesis import strategies as st

from event_strategies import NEVER_TYPE, Sequenced, TrackColumns, TrackRecords, event_leaf
from oracle import EventFn, Oracle, Profile, between3, compare3
from strategies import DAY_US, HOUR_US, ID_POOL, NOT_PREC, Cond, _and_or, _not, leaves, sql_string

# Valid names, some with the odd characters a name may hold (`.`, `-`, a leading `_`).
SEGMENT_NAMES = ["s0", "s1", "vip", "a.b-c", "_x9", "Lapsed-2"]
# Names the engine must refuse, each with a reason to.
BAD_NAMES = ["", " ", "a b", "1abc", "-a", ".a", "a'b", 'a"b', "é", "a/b", "a;b", "a(b)", "x" * 129,
             "vip\n", "vip\r", "\nvip", "a\x00", "in_segment('x')"]
GOOD_NAMES = ["a", "_", "A", "Z9", "a.b", "a-b", "a_b", "a..--__", "x" * 128]

_IN_SEGMENT_RE = re.compile(r"in_segment\('([^']*)'\)")
_CLOCK_TEXT_RE = re.compile(r"now\(\)|event_|first_seen|last_seen")


def segments_read(sql: str) -> frozenset[str]:
    """The segments a condition names (names never hold a quote)."""
    return frozenset(_IN_SEGMENT_RE.findall(sql))


def reads_no_clock(sql: str) -> bool:
    """No now() and no event function in the text: its plan cannot depend on the clock."""
    return _CLOCK_TEXT_RE.search(sql) is None


class SegProfile(Profile):
    """A profile as a segment predicate sees it: also its id and the memberships so far."""
    __slots__ = ("pid", "members")

    def __init__(self, row: Mapping[str, Any], events: Sequence, now_us: int, pid: str,
                 members: Mapping[str, set[str]]) -> None:
        super().__init__(row, events, now_us)
        self.pid = pid
        self.members = members

    def in_segment(self, name: str) -> bool:
        return self.pid in self.members[name]


@dataclass
class SavedSegment:
    name: str
    cond: Cond
    bound_us: int
    reads: frozenset[str]
    static: bool          # surely not clock-dependent (text and everything it reads)
    timed: bool           # surely clock-dependent: a bare clock leaf, or reads such a segment


class SegmentOracle:
    """The saved segments over an `Oracle`, in creation order."""

    def __init__(self, oracle: Oracle) -> None:
        self.oracle = oracle
        self.segs: dict[str, SavedSegment] = {}

    def create(self, name: str, cond: Cond, now_us: int, timed_leaf: bool = False) -> SavedSegment:
        reads = segments_read(cond.sql)
        static = reads_no_clock(cond.sql) and all(self.segs[s].static for s in reads)
        timed = timed_leaf or any(self.segs[s].timed for s in reads)
        self.segs[name] = SavedSegment(name, cond, now_us, reads, static, timed)
        return self.segs[name]

    def users(self, name: str) -> list[str]:
        return sorted(s.name for s in self.segs.values() if name in s.reads)

    def delete(self, name: str) -> None:
        del self.segs[name]

    def refresh(self, now_us: int) -> None:
        for seg in self.segs.values():
            seg.bound_us = now_us

    def memberships(self) -> dict[str, set[str]]:
        """name → member ids; a segment only reads older ones, so one pass in order."""
        out: dict[str, set[str]] = {}
        for seg in self.segs.values():
            out[seg.name] = self.evaluate(seg.cond, seg.bound_us, out)
        return out

    def evaluate(self, cond: Cond, now_us: int, members: Mapping[str, set[str]]) -> set[str]:
        """The live ids for which `cond` is TRUE at `now_us` (in_segment reads `members`)."""
        o = self.oracle
        return {pid for pid, row in o.rows.items()
                if cond.pred(SegProfile(row, o.events.get(pid, ()), now_us, pid, members)) is True}


# ----------------------------------------------------------------------------------
# Conditions.

def in_segment_leaf(names: Sequence[str]) -> st.SearchStrategy[Cond]:
    """`in_segment('t')` or `NOT in_segment('t')` over existing segments (never unknown)."""
    def leaf(name: str, negated: bool) -> Cond:
        text = f"in_segment({sql_string(name)})"
        if negated:
            return Cond(f"NOT {text}", lambda r: not r.in_segment(name), NOT_PREC)
        return Cond(text, lambda r: r.in_segment(name))
    return st.builds(leaf, st.sampled_from(list(names)), st.booleans())


@st.composite
def id_leaf(draw, ids: Sequence[str]) -> Cond:
    """A condition on the profile key: `profile_id = …`, `!= …`, `[NOT] IN (…)`."""
    picked = draw(st.lists(st.sampled_from(list(ids)), min_size=1, max_size=3, unique=True))
    text = ", ".join(sql_string(i) for i in picked)
    form = draw(st.sampled_from(["=", "!=", "IN", "NOT IN"]))
    if form in ("=", "!="):
        want = form == "="
        return Cond(f"profile_id {form} {sql_string(picked[0])}", lambda r: (r.pid == picked[0]) == want)
    want = form == "IN"
    return Cond(f"profile_id {form} ({text})", lambda r: (r.pid in picked) == want)


_SPANS = [(1, "days", DAY_US), (3, "days", DAY_US), (7, "days", DAY_US), (14, "days", DAY_US),
          (30, "days", DAY_US), (12, "hours", HOUR_US)]
_WINDOWS = [("'1d'", DAY_US), ("'7d'", 7 * DAY_US), ("'30d'", 30 * DAY_US), ("'12h'", 12 * HOUR_US),
            ("'2w'", 14 * DAY_US), ("INTERVAL '10 days'", 10 * DAY_US)]
_CMP = [">=", ">", "<", "<="]


@st.composite
def clock_leaf(draw, schema: Mapping[str, str], types: Sequence[str]) -> Cond:
    """A condition whose answer moves with the clock: a timestamp field or last_seen against
    `now() - INTERVAL …`, or an event count in a window; now() is the profile's `now_us`."""
    ts_fields = [n for n, t in schema.items() if t == "timestamp"]
    kind = draw(st.sampled_from((["field", "field_between"] if ts_fields else []) + ["last_seen", "count"]))
    n, unit, scale = draw(st.sampled_from(_SPANS))
    ago, span = f"now() - INTERVAL '{n} {unit}'", n * scale
    op = draw(st.sampled_from(_CMP))
    etype = draw(st.sampled_from([*types, NEVER_TYPE])) if types else NEVER_TYPE
    if kind == "field":
        f = draw(st.sampled_from(ts_fields))
        return Cond(f"{f} {op} {ago}", lambda r: compare3(r.get(f), op, r.now_us - span))
    if kind == "field_between":
        f = draw(st.sampled_from(ts_fields))
        return Cond(f"{f} BETWEEN {ago} AND now()", lambda r: between3(r.get(f), r.now_us - span, r.now_us))
    if kind == "last_seen":
        fn = EventFn("last_seen", etype)
        return Cond(f"last_seen({sql_string(etype)}) {op} {ago}",
                    lambda r: compare3(r.event_value(fn), op, r.now_us - span))
    window, window_us = draw(st.sampled_from(_WINDOWS))
    k = draw(st.integers(0, 2))
    fn = EventFn("count", etype, window_us=window_us)
    return Cond(f"event_count({sql_string(etype)}, {window}) {op} {k}",
                lambda r: compare3(r.event_value(fn), op, k))


def _no_now(s: st.SearchStrategy[Cond]) -> st.SearchStrategy[Cond]:
    return s.filter(lambda c: "now()" not in c.sql)


def segment_conditions(schema: Mapping[str, str], pools: Mapping[str, Sequence[Any]], world,
                       names: Sequence[str], types: Sequence[str], max_leaves: int = 4) -> st.SearchStrategy[Cond]:
    """Attribute, event, clock and in_segment leaves under AND / OR / NOT."""
    base = [_no_now(leaves(dict(schema), pools)), _no_now(event_leaf(world)), clock_leaf(schema, types),
            id_leaf(ID_POOL)]
    if names:
        base += [in_segment_leaf(names)] * 2
    return st.recursive(st.one_of(*base),
                        lambda c: st.one_of(_and_or(c, True), _and_or(c, False), _not(c)),
                        max_leaves=max_leaves)


def derived_conditions(world, names: Sequence[str], types: Sequence[str]) -> st.SearchStrategy[Cond]:
    """Conditions over other segments (and events), reading no field: such a segment
    changes on an upsert only through the segments it reads."""
    base = st.one_of(in_segment_leaf(names), in_segment_leaf(names), _no_now(event_leaf(world)),
                     clock_leaf({}, types))
    return st.recursive(base, lambda c: st.one_of(_and_or(c, True), _and_or(c, False), _not(c)),
                        max_leaves=3)


# ----------------------------------------------------------------------------------
# Event batches at a moved clock: events without a `ts` get the store's now, not FIXED_NOW.

def at_clock(op: Any, now_us: int) -> Any:
    """`op` (a track batch, or a sequence of writes) with the oracle's reading of a missing
    `ts` set to `now_us` (event_strategies stamps them with the fixed NOW_US)."""
    if isinstance(op, Sequenced):
        return Sequenced([at_clock(o, now_us) for o in op.ops])
    if isinstance(op, TrackRecords):
        stamped = [r.get("ts") is None for r in op.records]
    elif isinstance(op, TrackColumns):
        stamped = [op.ts is None or (isinstance(op.ts, list) and op.ts[i] is None)
                   for i in range(len(op.valid))]
    else:
        return op
    valid = [v if v is None or not now else (v[0], v[1], now_us, v[3]) for v, now in zip(op.valid, stamped)]
    return dataclasses.replace(op, valid=valid)


__all__ = ["BAD_NAMES", "GOOD_NAMES", "SEGMENT_NAMES", "SavedSegment", "SegProfile", "SegmentOracle",
           "at_clock", "clock_leaf", "derived_conditions", "id_leaf", "in_segment_leaf", "reads_no_clock",
           "segment_conditions",
           "segments_read"]
