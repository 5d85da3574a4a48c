"""Saved segments through the embedded API: membership upkeep on every kind of write,
change logs and watchers, refresh of time-dependent segments, export, and errors."""
from __future__ import annotations

import datetime as dt

import pytest

from cdpcore import QueryError, Store
from cdpcore.errors import AlreadyExists, ChangesLost, FailedPrecondition, SegmentNotFound

NOW = 1_793_491_200.0  # 2026-11-01T00:00:00Z
DAY = 86_400


@pytest.fixture
def clock():
    return [NOW]


@pytest.fixture(params=[1, 3], ids=["1shard", "3shards"])
def store(request, clock):
    s = Store(shards=request.param, clock=lambda: clock[0], segment_refresh_s=None)
    s.upsert([{"profile_id": f"u{i}", "age": 20 + i, "country": "JP" if i % 2 else "US"}
              for i in range(10)])
    yield s
    s.close()


def members(store: Store, name: str) -> set[str]:
    return {pid for batch in store.export_segment(name) for pid in batch.ids}


def matching(store: Store, where: str) -> set[str]:
    rows = store.query(f"SELECT profile_id FROM profiles WHERE {where}").rows
    return {r[0] for r in rows}


def apply(initial: set[str], changes) -> set[str]:
    out = set(initial)
    for c in changes:
        (out.add if c.entered else out.discard)(c.profile_id)
    return out


def test_membership_follows_upserts_tracks_and_deletes(store):
    specs = {"jp": "country = 'JP'", "old_jp": "in_segment('jp') AND age >= 25",
             "not_jp": "NOT in_segment('jp')", "buyer": "event_count('buy') >= 1",
             "no_age": "age IS NULL"}
    for name, where in specs.items():
        store.create_segment(name, where)
    watches = {name: store.watch_segment(name) for name in specs}
    seen = {name: [] for name in specs}
    store.upsert([{"profile_id": "u2", "country": "JP"}, {"profile_id": "u3", "country": "US"},
                  {"profile_id": "new", "country": "JP", "age": 50}, {"profile_id": "bare"}])
    store.track([{"profile_id": "u4", "type": "buy"}, {"profile_id": "ghost", "type": "buy"}])
    store.delete(["u5", "u4"])
    store.upsert([{"profile_id": "u5", "age": 99, "country": "JP"}])
    for name, where in specs.items():
        seen[name] = watches[name].poll(0)
        assert members(store, name) == matching(store, where), name
        assert store.get_segment(name).size == len(matching(store, where))
        initial = {c.profile_id for c in seen[name] if c.initial}
        assert apply(initial, [c for c in seen[name] if not c.initial]) == members(store, name)
    assert "ghost" in members(store, "buyer") and "ghost" in members(store, "no_age")
    assert store.count("in_segment('old_jp')") == len(members(store, "old_jp"))


def test_sequences_are_per_segment_and_shard_without_gaps(store):
    store.create_segment("jp", "country = 'JP'")
    w = store.watch_segment("jp", initial=False)
    for i in range(10):
        store.upsert([{"profile_id": f"u{i}", "country": "JP" if i % 3 else "US"}])
    changes = w.poll(0)
    by_shard: dict[int, list[int]] = {}
    for c in changes:
        by_shard.setdefault(c.shard, []).append(c.seq)
    for seqs in by_shard.values():
        assert seqs == list(range(1, len(seqs) + 1))


def test_resume_from_positions_and_lost_changes():
    s = Store(shards=2, clock=lambda: NOW, segment_refresh_s=None, retained_changes=3)
    s.define_fields({"age": "int"})
    s.create_segment("adult", "age >= 18")
    w = s.watch_segment("adult")
    s.upsert([{"profile_id": "a", "age": 20}])
    first = w.poll(0)
    positions = dict(w.positions)
    s.upsert([{"profile_id": "b", "age": 30}])
    resumed = s.watch_segment("adult", after=positions, initial=False)
    assert [c.profile_id for c in resumed.poll(0)] == ["b"]
    assert [c.profile_id for c in first] == ["a"]
    s.upsert([{"profile_id": f"p{i}", "age": 40} for i in range(20)])
    with pytest.raises(ChangesLost):
        s.watch_segment("adult", after=positions, initial=False)
    s.close()


def test_time_dependent_segments_move_with_the_clock(store, clock):
    store.track([{"profile_id": "u1", "type": "open", "ts": NOW - DAY}])
    info = store.create_segment("active", "event_count('open', '7d') >= 1")
    lapsed = store.create_segment("lapsed", "last_seen('open') < now() - INTERVAL '3 days'")
    assert info.time_dependent and lapsed.time_dependent and info.size == 1
    assert not store.create_segment("static", "age > 3").time_dependent
    w = store.watch_segment("active", initial=False)
    clock[0] += 10 * DAY
    assert set(store.refresh_segments()) == {"active", "lapsed"}
    assert members(store, "active") == set() and members(store, "lapsed") == {"u1"}
    assert [(c.profile_id, c.entered) for c in w.poll(0)] == [("u1", False)]
    assert store.get_segment("active").refreshed_at == dt.datetime.fromtimestamp(clock[0], dt.timezone.utc)


def test_segments_reading_time_dependent_segments_are_time_dependent(store):
    store.create_segment("recent", "event_count('open', '1d') >= 1")
    assert store.create_segment("recent_jp", "in_segment('recent') AND country = 'JP'").time_dependent


def test_export_with_fields_skips_deleted_profiles(store):
    store.create_segment("jp", "country = 'JP'")
    batches = list(store.export_segment("jp", fields=["age"], batch_size=2))
    got = {pid: age for b in batches for pid, age in zip(b.ids, b.columns["age"])}
    assert got == {"u1": 21, "u3": 23, "u5": 25, "u7": 27, "u9": 29}
    assert all(len(b.ids) <= 2 for b in batches)
    with pytest.raises(QueryError):
        list(store.export_segment("jp", fields=["nope"]))


def test_segment_errors(store):
    store.create_segment("jp", "country = 'JP'")
    store.create_segment("jp2", "in_segment('jp')")
    with pytest.raises(AlreadyExists):
        store.create_segment("jp", "age > 1")
    with pytest.raises(QueryError, match="invalid segment name"):
        store.create_segment("bad name", "age > 1")
    with pytest.raises(QueryError, match="unknown segment 'jpp'"):
        store.create_segment("x", "in_segment('jpp')")
    with pytest.raises(QueryError, match="refer to itself"):
        store.create_segment("me", "in_segment('me')")
    with pytest.raises(QueryError):
        store.create_segment("x", "age = 'old'")
    with pytest.raises(FailedPrecondition, match="jp2"):
        store.delete_segment("jp")
    with pytest.raises(SegmentNotFound):
        store.get_segment("nope")
    with pytest.raises(QueryError, match="unknown segment"):
        store.count("in_segment('nope')")
    store.delete_segment("jp2")
    store.delete_segment("jp")
    assert store.list_segments() == []
