"""Property tests for re-checking many saved segments together (issue 5): a write batch
evaluates each leaf, sub-expression and event gather once for all the segments it
re-checks (cdpcore.query.candidates, cdpcore.query.row_events), so the tests make the
segments share as much as a real workload does.

1. Engine level, differential: a RowEvents gather answers `matching` exactly as the log
   scan (`event_values._matching_rows`) does on the same rows, for windows on and next to
   event times and gathers of any window (or says it cannot, only when the window asked
   is not covered). On random worlds and random candidate rows, a family of
   conditions drawn from one small pool of leaves is evaluated on one `CandidateRows`
   (each later condition reuses what the earlier ones computed) and must equal the
   executor's own `filter_rows` on the same rows, whatever windows the event gather was
   told to cover: exactly the conditions', none (it gathers the first window asked),
   too narrow (the log scan must answer instead) or unbounded.
2. Store level, against the oracle: many segments built from one pool of leaves
   (duplicates, shared sub-expressions, in_segment of earlier ones), then a stream of
   writes; after each write every segment equals the oracle and a fresh evaluation of
   its condition, and every watcher's initial set with the changes applied equals it,
   sequence numbers rising by exactly 1 per (segment, shard).
"""
from __future__ import annotations

import contextlib
from typing import Any, Mapping

import numpy as np
import pytest
from hypothesis import given, settings, strategies as st

from cdpcore import Store
from cdpcore.query.candidates import CandidateRows
from cdpcore.query import executor
from cdpcore.query.executor import Evaluator
from cdpcore.bitmap_index import bitmap_of
from cdpcore.query.event_values import _matching_rows
from cdpcore.query.ir import And, EventValue, Or
from cdpcore.query.row_events import RowEvents, _covers, widest, windows_read
from event_strategies import (PROPERTIES, event_deletes, event_leaf, event_scenarios, late_arrivals,
                              recreations, replay_events, track_columns, track_records, world_of)
from oracle import Oracle, and3, or3
from segment_strategies import SegmentOracle
from strategies import (NOW_US, Cond, _and_or, _not, clock, column_batches, leaves, record_batches, sql_string,
                        value_pools)

SHARDS = (1, 3)
# Event leaves on candidate rows read the rows' events (RowEvents) only when the rows are
# few against the shard (executor.RESTRICTED_EVENT_FRACTION), else whole-shard arrays; the
# worlds here are small, so the tests pick the path: 0 forces the rows' events.
PATHS = {"rows' events": 0, "whole-shard arrays": 10**9}


@contextlib.contextmanager
def event_path(fraction: int):
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(executor, "RESTRICTED_EVENT_FRACTION", fraction)
        yield


def leaf_pool(data, oracle: Oracle, types) -> list[Cond]:
    """A few attribute and event leaves: what the segments of one workload have in common."""
    world = world_of(oracle, types)
    pools = value_pools(oracle.rows.values(), oracle.schema)
    leaf = st.one_of(leaves(dict(oracle.schema), pools), event_leaf(world), event_leaf(world))
    return data.draw(st.lists(leaf, min_size=2, max_size=5), label="leaf pool")


def family(pool: list[Cond]) -> st.SearchStrategy[Cond]:
    """Conditions over the pool's leaves under AND / OR / NOT: leaves repeat across them."""
    return st.recursive(st.sampled_from(pool), lambda c: st.one_of(_and_or(c, True), _and_or(c, False), _not(c)),
                        max_leaves=4)


@contextlib.contextmanager
def built(shards: int, scenario):
    store = Store(shards=shards, clock=clock, segment_refresh_s=None)
    try:
        oracle = Oracle(now_us=NOW_US)
        replay_events(store, oracle, scenario)
        yield store, oracle
    finally:
        store.close()


# ----------------------------------------------------------------------------------
# 1. RowEvents against the log scan; CandidateRows against the executor's filter_rows.

def _event_values(plan) -> list[EventValue]:
    if isinstance(plan, (And, Or)):
        return [ev for kid in plan.children for ev in _event_values(kid)]
    field = getattr(plan, "field", None)
    return [field] if isinstance(field, EventValue) else []


def _edge(times: list[int]) -> st.SearchStrategy:
    """A window end: unbounded, or on or next to an event time."""
    return st.none() | st.tuples(st.sampled_from(times or [NOW_US]), st.sampled_from([-1, 0, 1])).map(sum)


@pytest.mark.parametrize("shards", SHARDS)
@given(scenario=event_scenarios(max_ops=6), data=st.data())
def test_row_events_answer_as_the_log_scan(shards, scenario, data):
    with built(shards, scenario) as (store, oracle):
        world = world_of(oracle, scenario.types)
        conds = data.draw(st.lists(event_leaf(world), min_size=1, max_size=4), label="event leaves")
        for i, cond in enumerate(conds):
            store.create_segment(f"e{i}", cond.sql)
        evs = [ev for i in range(len(conds)) for ev in _event_values(store.segment_catalog.get(f"e{i}").plan)]
        times = sorted(world.pools.get("ts", []))
        hints = {ev.type: data.draw(st.tuples(_edge(times), _edge(times)), label="gathered") for ev in evs}
        asked = [(ev, data.draw(st.tuples(_edge(times), _edge(times)), label="asked"), want)
                 for ev in evs for want in (False, True)]
        for shard in store.shards:
            n = shard.read(lambda sh: sh.n_rows)
            if n:
                rows = _draw_rows(data, n)
                shard.read(lambda sh: _check_gather(sh, rows, hints, asked))


def _draw_rows(data, n: int) -> np.ndarray:
    picked = data.draw(st.one_of(st.just(list(range(n))), st.lists(st.integers(0, n - 1), min_size=1, unique=True)),
                       label="rows")
    return np.array(sorted(picked), dtype=np.int64)


def _check_gather(shard, rows: np.ndarray, hints: dict, asked: list) -> None:
    pre = RowEvents(shard, rows, bitmap_of(rows), hints)
    for ev, (since, until), want in asked:
        scan_rows, scan_vals = _matching_rows(shard, ev, since, until, want, only=rows)
        got = pre.matching(ev, since, until, want)
        g = pre._types.get(ev.type)
        empty = since is not None and until is not None and since > until   # answered without a gather
        covered = empty or (g is not None and _covers(g.window, since, until))
        assert (got is not None) == covered or (got is None and want), (ev, since, until, g and g.window)
        if got is not None:
            assert np.array_equal(got[0], scan_rows), (ev, since, until, got[0], scan_rows)
            if want:
                assert np.array_equal(got[1], scan_vals, equal_nan=True), (ev, since, until, got[1], scan_vals)


def _hints(kind: str, plans: list) -> dict:
    exact: dict = {}
    for plan in plans:
        for t, w in windows_read(plan).items():
            exact[t] = widest(exact.get(t), w)
    if kind == "exact":
        return exact
    if kind == "unbounded":
        return {t: (None, None) for t in exact}
    if kind == "narrow":   # too narrow at both ends: requests fall back to the log scan
        return {t: (None if s is None else s + 1, None if u is None else u - 1) for t, (s, u) in exact.items()}
    return {}


@pytest.mark.parametrize("path", PATHS)
@pytest.mark.parametrize("shards", SHARDS)
@given(scenario=event_scenarios(max_ops=6), data=st.data())
def test_shared_evaluation_equals_filter_rows(shards, path, scenario, data):
    with built(shards, scenario) as (store, oracle), event_path(PATHS[path]):
        pool = leaf_pool(data, oracle, scenario.types)
        conds = data.draw(st.lists(family(pool), min_size=2, max_size=8), label="family")
        for i, cond in enumerate(conds):
            store.create_segment(f"f{i}", cond.sql)
        plans = [store.segment_catalog.get(f"f{i}").plan for i in range(len(conds))]
        hints = _hints(data.draw(st.sampled_from(["exact", "none", "narrow", "unbounded"]), label="hints"), plans)
        for shard in store.shards:
            n = shard.read(lambda sh: sh.n_rows)
            if not n:
                continue
            rows = _draw_rows(data, n)
            shard.read(lambda sh: _check_family(sh, rows, hints, plans, conds))


def _check_family(shard, rows: np.ndarray, hints: dict, plans: list, conds: list[Cond]) -> None:
    cands = CandidateRows(shard, rows, hints)
    for plan, cond in zip(plans, conds):
        fresh = shard.index.alive[rows] if plan is None else Evaluator(shard).filter_rows(plan, rows)
        got = cands.test(plan)
        assert np.array_equal(got, fresh), (
            f"{cond.sql!r} on rows {rows.tolist()}: shared {np.flatnonzero(got).tolist()}, "
            f"fresh {np.flatnonzero(fresh).tolist()} (hints {hints})")


# ----------------------------------------------------------------------------------
# 2. Many segments sharing leaves, kept current through writes, against the oracle.

class Watched:
    """A watcher's view of one segment: initial members, then changes in seq order."""

    def __init__(self, store: Store, name: str) -> None:
        self.name = name
        self.watch = store.watch_segment(name, initial=True)
        self.last = dict(self.watch.positions)
        self.members: set[str] = set()

    def drain(self) -> set[str]:
        for c in self.watch.poll(timeout=0):
            if c.initial:
                assert c.entered and c.profile_id not in self.members, c
                self.members.add(c.profile_id)
                continue
            assert c.seq == self.last[c.shard] + 1, f"{c}: expected seq {self.last[c.shard] + 1}"
            self.last[c.shard] = c.seq
            if c.entered:
                assert c.profile_id not in self.members, f"entered twice: {c}"
                self.members.add(c.profile_id)
            else:
                assert c.profile_id in self.members, f"left without being a member: {c}"
                self.members.remove(c.profile_id)
        return self.members


def _segment_conds(data, pool: list[Cond]) -> list[Cond]:
    """Family members, an exact duplicate, and conditions over earlier segments."""
    out: list[Cond] = []
    for i in range(data.draw(st.integers(4, 10), label="segments")):
        kind = data.draw(st.sampled_from(["family", "family", "duplicate", "derived"]) if out
                         else st.just("family"), label="kind")
        if kind == "family":
            out.append(data.draw(family(pool), label="cond"))
        elif kind == "duplicate":
            out.append(data.draw(st.sampled_from(out), label="same as"))
        else:
            j = data.draw(st.integers(0, len(out) - 1), label="reads")
            other = data.draw(st.sampled_from(pool), label="with")
            neg = data.draw(st.booleans(), label="negated")
            text = f"{'NOT ' if neg else ''}in_segment({sql_string(f'g{j}')})"
            joiner = data.draw(st.sampled_from([" AND ", " OR "]), label="joiner")
            out.append(Cond(f"{text}{joiner}({other.sql})", _derived_pred(f"g{j}", neg, other, joiner)))
    return out


def _derived_pred(name: str, neg: bool, other: Cond, joiner: str):
    def pred(r: Any):
        inside = r.in_segment(name) != neg
        combine = and3 if joiner == " AND " else or3
        return combine([inside, other.pred(r)])
    return pred


def _writes(oracle: Oracle, types) -> st.SearchStrategy:
    known = dict(oracle.event_props)
    return st.one_of(record_batches(oracle.schema), column_batches(oracle.schema),
                     track_records(types, PROPERTIES, known), track_columns(types, PROPERTIES, known),
                     late_arrivals(types, PROPERTIES, known), recreations(types, PROPERTIES, known), event_deletes)


def _listed(store: Store, where: str) -> set[str]:
    rows = store.query(f"SELECT profile_id FROM profiles WHERE {where}").rows
    ids = [r[0] for r in rows]
    assert len(ids) == len(set(ids)), f"{where}: duplicate ids"
    return set(ids)


def _check_segments(store: Store, segs: SegmentOracle, conds: Mapping[str, Cond],
                    watchers: list[Watched]) -> None:
    expected = segs.memberships()
    for w in watchers:
        name = w.name
        members = _listed(store, f"in_segment({sql_string(name)})")
        assert members == expected[name], (f"{name} ({conds[name].sql!r}):\n  missing "
                                           f"{sorted(expected[name] - members)}\n  extra {sorted(members - expected[name])}")
        assert _listed(store, conds[name].sql) == members, f"{name}: fresh evaluation differs"
        assert w.drain() == members, f"{name}: watcher's view differs"


@settings(max_examples=40)
@pytest.mark.parametrize("shards", SHARDS)
@given(scenario=event_scenarios(max_ops=4, bulk=False), data=st.data())
def test_many_segments_sharing_leaves_stay_current(shards, scenario, data):
    with built(shards, scenario) as (store, oracle), event_path(PATHS["rows' events"]):
        segs = SegmentOracle(oracle)
        pool = leaf_pool(data, oracle, scenario.types)
        conds: dict[str, Cond] = {}
        watchers = []
        for i, cond in enumerate(_segment_conds(data, pool)):
            name = f"g{i}"
            store.create_segment(name, cond.sql)
            segs.create(name, cond, NOW_US)
            conds[name] = cond
            watchers.append(Watched(store, name))
        _check_segments(store, segs, conds, watchers)
        for _ in range(data.draw(st.integers(1, 4), label="writes")):
            data.draw(_writes(oracle, scenario.types), label="write").apply(store, oracle)
            _check_segments(store, segs, conds, watchers)
