"""Slot migration in the engine (cdpcore.migration): export + capture + replay + flip + drop.

An embedded Store of 2 shards plays the cluster; a third Shard is the target, and the
test drives the steps the router drives over gRPC (server/migration.py): export the
moving slots from shard 0 with a capture, import the parts into the target, apply
random writes (profiles, events, deletes) through the store meanwhile, replay what the
capture recorded, flip ownership, drop the source's copy. After every phase the answers
(counts of attribute, event and in_segment conditions, listings, segment sizes) equal a
dict oracle, foreign rows are invisible, and the change logs of all shards, applied to
the initial members, reproduce every segment's final membership (the moves are silent).
"""
from __future__ import annotations

from hypothesis import example, given, settings, strategies as st

import numpy as np

from cdpcore import Store
from cdpcore.membership import ChangeLog
from cdpcore.slots import slot_mask
from cdpcore.shard import Shard
from cdpcore.slots import slot_of

NOW = 1_800_000_000.0
NOW_US = int(NOW * 1e6)
DAY_US = 86_400_000_000
IDS = [f"u{i}" for i in range(40)]
CITIES = ["tokyo", "paris", "lima"]
TAGS = ["golf", "ski", "chess"]
SEGMENTS = {
    "older": ("age >= 30", lambda p, ev: p.get("age") is not None and p["age"] >= 30),
    "buyers": ("city = 'tokyo' AND event_count('buy', '30d') >= 1",
               lambda p, ev: p.get("city") == "tokyo" and _count(ev, "buy", 30) >= 1),
    "nested": ("in_segment('older') OR has_any(tags, 'golf')",
               lambda p, ev: (p.get("age") is not None and p["age"] >= 30) or "golf" in (p.get("tags") or ())),
}
CONDITIONS = {
    "score > 0.5": lambda p, ev: p.get("score") is not None and p["score"] > 0.5,
    "event_sum('buy', 'amount') > 10": lambda p, ev: sum(a for t, _, a, _ in ev if t == "buy" and a is not None) > 10,
    "event_count('view') = 0": lambda p, ev: _count(ev, "view", None) == 0,
    "NOT vip": lambda p, ev: p.get("vip") is False,
    "event_count('buy', sku = 'b') >= 1": lambda p, ev: any(t == "buy" and s == "b" for t, _, _, s in ev),
    "event_count('view', sku = 'vb') >= 1": lambda p, ev: any(t == "view" and s == "vb" for t, _, _, s in ev),
}


def _count(events, etype, days):
    return sum(1 for t, ts, _, _ in events if t == etype and (days is None or NOW_US - days * DAY_US <= ts <= NOW_US))


records = st.fixed_dictionaries(
    {"profile_id": st.sampled_from(IDS)},
    optional={"age": st.none() | st.integers(0, 90), "city": st.none() | st.sampled_from(CITIES),
              "tags": st.none() | st.lists(st.sampled_from(TAGS), unique=True, max_size=2),
              "score": st.none() | st.floats(0, 1), "vip": st.none() | st.booleans()})
events = st.tuples(st.sampled_from(IDS), st.sampled_from(["buy", "view"]),
                   st.integers(NOW_US - 60 * DAY_US, NOW_US),
                   st.none() | st.floats(0, 20), st.none() | st.sampled_from(["a", "b", "c"])
                   ).map(lambda e: e if e[1] == "buy" or e[4] is None else (*e[:4], "v" + e[4]))
ops = st.lists(st.one_of(
    st.tuples(st.just("upsert"), st.lists(records, min_size=1, max_size=8)),
    st.tuples(st.just("track"), st.lists(events, min_size=1, max_size=8)),
    st.tuples(st.just("delete"), st.lists(st.sampled_from(IDS), min_size=1, max_size=3))), max_size=6)


class Oracle:
    def __init__(self) -> None:
        self.rows: dict[str, dict] = {}
        self.events: dict[str, list] = {}

    def apply(self, op) -> None:
        kind, items = op
        if kind == "upsert":
            for rec in items:
                row = self.rows.setdefault(rec["profile_id"], {})
                for k, v in rec.items():
                    if k != "profile_id":
                        row.pop(k, None) if v is None else row.__setitem__(k, frozenset(v) if k == "tags" else v)
        elif kind == "track":
            for pid, etype, ts, amount, sku in items:
                self.rows.setdefault(pid, {})
                self.events.setdefault(pid, []).append((etype, ts, amount, sku))
        else:
            for pid in items:
                self.rows.pop(pid, None)
                self.events.pop(pid, None)

    def ids(self, pred) -> set[str]:
        return {pid for pid, row in self.rows.items() if pred(row, self.events.get(pid, []))}


def write(store: Store, op) -> None:
    kind, items = op
    if kind == "upsert":
        r = store.upsert(items)
    elif kind == "track":
        r = store.track([{"profile_id": p, "type": t, "ts": ts / 1e6,
                          **({"amount": a} if a is not None else {}), **({"sku": s} if s is not None else {})}
                         for p, t, ts, a, s in items])
    else:
        store.delete(items)
        return
    assert not r.errors, r.errors


def check(store: Store, oracle: Oracle) -> None:
    for name, (where, pred) in SEGMENTS.items():
        expected = oracle.ids(pred)
        assert store.count(f"in_segment('{name}')") == len(expected), name
        assert store.get_segment(name).size == len(expected), name
        got = {r[0] for r in store.query(f"SELECT profile_id FROM profiles WHERE {where}").rows}
        assert got == expected, where
    for where, pred in CONDITIONS.items():
        assert store.count(where) == len(oracle.ids(pred)), where
    listed = {r[0]: r[1] for r in store.query("SELECT profile_id, age FROM profiles").rows}
    assert listed == {pid: row.get("age") for pid, row in oracle.rows.items()}


def members(store: Store, name: str) -> set[str]:
    return {r[0] for r in store.query(f"SELECT profile_id FROM profiles WHERE in_segment('{name}')").rows}


def replay_changes(initial: set[str], shards: list[Shard], name: str) -> set[str]:
    """A strict watcher: every enter is of a non-member, every exit of a member."""
    got = set(initial)
    for shard in shards:
        for change in shard.segments.log.since(name, 0):
            assert (change.profile_id in got) != change.entered, change
            (got.add if change.entered else got.discard)(change.profile_id)
    return got


@settings(max_examples=60, deadline=None)
@example(before=[("track", [("u0", "buy", NOW_US - 1000, 1.0, "a"), ("u0", "view", NOW_US - 1000, None, "vb")])],
         during_copy=[], during_catchup=[], after=[], extra_slots=set(), moving={"u0"})   # two types' strings
@given(before=ops, during_copy=ops, during_catchup=ops, after=ops, extra_slots=st.sets(st.integers(0, 8191), max_size=50),
       moving=st.sets(st.sampled_from(IDS), max_size=20))
def test_moving_slots_keeps_every_answer(before, during_copy, during_catchup, after, extra_slots, moving):
    store = Store(shards=2, clock=lambda: NOW, segment_refresh_s=None)
    oracle = Oracle()
    try:
        for i, shard in enumerate(store.shards):
            shard.set_owned(store.slot_map.owners == i)
        store.define_fields({"age": "int", "city": "string", "tags": "string_set", "score": "float", "vip": "bool"})
        store.event_schema.declare({"amount": "float", "sku": "string"})
        for name, (where, _) in SEGMENTS.items():
            store.create_segment(name, where)
        initial = {name: members(store, name) for name in SEGMENTS}
        for op in before:
            write(store, op), oracle.apply(op)
        check(store, oracle)

        source = store.shards[0]
        target = Shard(store.schema, 2, ChangeLog(100_000))
        for state in source.segments.states.values():
            target.define_segment(state.defn, NOW_US)
        target.set_owned(np.zeros(len(store.slot_map.owners), dtype=bool))
        source_slots = set(store.slot_map.slots_of_shard(0).tolist())
        slots = {slot_of(p) for p in moving} | set(extra_slots)
        slots = sorted(slots & source_slots)
        mask = slot_mask(slots)

        capture, copy = source.export_slots(mask)
        for op in during_copy:
            write(store, op), oracle.apply(op)
        for part in copy.parts():   # built after those writes, from what the copy holds
            _apply(target, part.profiles)
            for ev in part.events:
                _apply(target, ev)
        check(store, oracle)               # the copy is invisible: answers unchanged
        assert len(target) == 0
        for op in capture.take():
            _apply(target, op)
        for op in during_catchup:
            write(store, op), oracle.apply(op)
        check(store, oracle)

        # the flip (the router holds writes meanwhile): last replay, new owners, drop
        for op in capture.take():
            _apply(target, op)
        source.end_capture(capture)
        assert all(target.segments.log.last_seq(n) == 0 for n in SEGMENTS), "imports must not log changes"
        store.slot_map.owners[np.asarray(slots, dtype=np.int64)] = 2
        store.shards.append(target)
        source.set_owned(store.slot_map.owners == 0)
        target.set_owned(store.slot_map.owners == 2)
        check(store, oracle)
        logged = {n: source.segments.log.last_seq(n) for n in SEGMENTS}
        source.drop_slots(mask)
        assert logged == {n: source.segments.log.last_seq(n) for n in SEGMENTS}, "drops must not log changes"
        assert len(source.foreign) == 0 and len(target.foreign) == 0
        check(store, oracle)
        for op in after:
            write(store, op), oracle.apply(op)
        check(store, oracle)
        for name in SEGMENTS:
            assert replay_changes(initial[name], store.shards, name) == members(store, name), name
    finally:
        store.close()


def _apply(shard: Shard, op) -> None:
    if op.kind == "upsert":
        shard.upsert(op.ids, op.uid, op.batches)
    elif op.kind == "track":
        shard.track(op.ids, op.uid, op.batches)
    else:
        shard.delete(op.ids)
