"""Event ingest and storage through the public API, plus white-box checks of the
per-shard event logs (sealing, merging, purging of deleted profiles' events)."""
from __future__ import annotations

import datetime as dt

import numpy as np
import pytest

from cdpcore import BatchError, Categorical, QueryError, Store
from cdpcore import events as ev_mod
from cdpcore.events import Chunk
from cdpcore.ingest import Rejections, prepare
from cdpcore.query import compile_where
from cdpcore.schema import Schema
from cdpcore.wire import decode_plan, encode_plan

UTC = dt.timezone.utc
NOW = 1_793_491_200.0  # 2026-11-01T00:00:00Z
NOW_US = int(NOW * 1_000_000)
DAY_US = 86_400 * 1_000_000


@pytest.fixture(params=[1, 3], ids=["1shard", "3shards"])
def store(request):
    s = Store(shards=request.param, clock=lambda: NOW)
    yield s
    s.close()


def _iso(days_ago: float) -> str:
    return dt.datetime.fromtimestamp(NOW - days_ago * 86400, UTC).isoformat()


# ---- ingest -------------------------------------------------------------------------

def test_track_creates_profiles_and_defaults_ts_to_now(store):
    r = store.track([{"profile_id": "a", "type": "open"}, {"profile_id": "b", "type": "open", "ts": None}])
    assert (r.accepted, r.errors) == (2, [])
    assert store.count("") == 2 and store.get_profile("a") == {"profile_id": "a"}
    assert [e["ts"] for e in store.events_of("a")] == [dt.datetime.fromtimestamp(NOW, UTC)]


def test_bad_events_are_rejected_alone(store):
    r = store.track([
        {"profile_id": "a", "type": "buy", "amount": 5},
        {"profile_id": "b"},                                   # no type
        {"profile_id": "c", "type": ""},                       # empty type
        {"profile_id": "d", "type": "buy", "amount": "five"},  # amount is a number property
        {"profile_id": "e", "type": "buy", "ts": "yesterday"},
        {"profile_id": "f", "type": "buy", "flag": True},      # bools are not properties
        {"type": "buy"},                                       # no id
        "not a mapping",
        {"profile_id": "g", "type": "buy", "amount": float("nan")},
    ])
    assert r.accepted == 1
    assert [(e.index, e.field) for e in r.errors] == [
        (1, "type"), (2, "type"), (3, "amount"), (4, "ts"), (5, "flag"), (6, "profile_id"),
        (7, None), (8, "amount")]
    assert store.count("") == 1  # rejected events create no profile
    assert "flag" not in store.event_schema.properties  # nor a property


def test_property_types_are_fixed_at_first_sight(store):
    store.track([{"profile_id": "a", "type": "t", "n": 1, "s": "x"}])
    assert store.event_schema.properties.to_dict() == {"n": "float", "s": "string"}
    r = store.track([{"profile_id": "a", "type": "t", "n": "1"}, {"profile_id": "a", "type": "t", "s": 2}])
    assert [(e.index, e.field) for e in r.errors] == [(0, "n"), (1, "s")]


def test_reserved_names_are_refused_as_properties(store):
    with pytest.raises(BatchError):
        store.track_columns(["a"], ["t"], properties={"ts": [1]})
    with pytest.raises(Exception):
        store.event_schema.declare({"type": "string"})
    with pytest.raises(Exception):
        store.event_schema.declare({"flag": "bool"})


def test_track_columns_fast_path_matches_dicts(store):
    ids = Categorical(np.array([0, 1, 0, -1, 2]), ["a", "b", "", "unused"])
    types = Categorical(np.array([0, 0, 1, 0, 0], dtype=np.int8), ["buy", "view"])
    ts = np.array([NOW_US - DAY_US] * 5).astype("datetime64[us]")
    amount = np.ma.MaskedArray([1.5, 2.0, 3.0, 4.0, 5.0], mask=[False, False, True, False, False])
    r = store.track_columns(ids, types, ts, {"amount": amount})
    assert r.accepted == 3 and [(e.index, e.field) for e in r.errors] == [(3, "profile_id"), (4, "profile_id")]
    assert store.count("") == 2  # 'unused' and '' never became profiles
    assert store.count("event_sum('buy', 'amount') = 1.5") == 1
    assert store.count("event_count('view') = 1 AND event_sum('view', 'amount') IS NULL") == 1


def test_shape_errors_reject_the_whole_batch(store):
    with pytest.raises(BatchError):
        store.track_columns(["a", "b"], ["t"])
    with pytest.raises(BatchError):
        store.track_columns("a", ["t"])


def test_events_of_most_recent_first_with_limit(store):
    store.track([{"profile_id": "a", "type": "t", "ts": _iso(d), "k": d} for d in (5, 1, 9, 3)])
    got = store.events_of("a", limit=3)
    assert [e["k"] for e in got] == [1.0, 3.0, 5.0]
    assert got[0]["type"] == "t" and got[0]["ts"].tzinfo is not None
    assert store.events_of("nobody") is None and store.events_of("") is None


# ---- semantics the oracle tests also cover, pinned by hand ------------------------

def test_late_events_count_after_sealing(store):
    """Events sealed into a chunk, then older ones arriving late, are all counted."""
    store.track([{"profile_id": f"p{i}", "type": "t", "ts": _iso(1)} for i in range(100)])
    assert store.count("event_count('t', '2d') = 1") == 100
    store.track([{"profile_id": f"p{i}", "type": "t", "ts": _iso(40)} for i in range(50)])
    assert store.count("event_count('t', '2d') = 1") == 100
    assert store.count("event_count('t') = 2") == 50
    assert store.count("first_seen('t') < now() - INTERVAL '30 days'") == 50


def test_windows_are_inclusive_and_exclude_the_future(store):
    store.track([{"profile_id": "edge", "type": "t", "ts": _iso(30)},
                 {"profile_id": "future", "type": "t", "ts": _iso(-1)}])
    assert store.count("event_count('t', '30d') = 1") == 1
    assert store.count("event_count('t', '30d') = 0") == 1
    assert store.count("event_count('t') = 1") == 2
    assert store.count("last_seen('t') > now()") == 1


def test_delete_removes_events_and_recreation_starts_empty(store):
    store.track([{"profile_id": "a", "type": "t", "amount": 1}, {"profile_id": "b", "type": "t"}])
    store.delete(["a"])
    assert store.count("event_count('t') >= 1") == 1
    assert store.count("event_count('t') = 0") == 0
    store.upsert([{"profile_id": "a", "age": 3}])
    assert store.events_of("a") == []
    assert store.count("event_count('t') = 0") == 1
    assert store.count("event_sum('t', 'amount') IS NULL") == 2


def test_three_valued_logic_of_null_event_values(store):
    store.track([{"profile_id": "buyer", "type": "buy", "amount": 10},
                 {"profile_id": "idle", "type": "open"}])
    assert store.count("event_sum('buy', 'amount') > 5") == 1
    assert store.count("NOT (event_sum('buy', 'amount') > 5)") == 0
    assert store.count("event_sum('buy', 'amount') IS NULL") == 1
    assert store.count("NOT (event_count('buy') >= 1)") == 1  # counts are never null


def test_unknown_types_match_nothing_with_a_warning(store):
    store.track([{"profile_id": "a", "type": "buy"}])
    assert store.count("event_count('byu') = 0") == 1
    res = store.query("SELECT count(*) FROM profiles WHERE event_count('byu') >= 1")
    assert res.rows == [(0,)] and "'byu'" in res.warnings[0]
    assert store.query("SELECT count(*) FROM profiles WHERE event_count('buy') >= 1").warnings == []


@pytest.mark.parametrize("text, fragment", [
    ("event_count('t', '30x') >= 1", "'30x'"),
    ("event_count('t', '0d') >= 1", "'0d'"),
    ("event_sum('t', 's') > 1", "'s'"),
    ("event_sum('t', 'nope') > 1", "'nope'"),
    ("event_count('t', nope = 1) > 1", "nope"),
    ("event_count('t', s > 5) > 1", "5"),
    ("event_count(t) > 1", "t"),
    ("event_count('t') = 'x'", "'x'"),
    ("event_count('t', event_count('u') > 1) > 1", "event_count('u')"),
    ("event_count('t', '1d', '2d') > 1", "'2d'"),
    ("event_count('t')", "event_count('t')"),
    ("last_seen('t') > 'soon'", "'soon'"),
])
def test_event_query_errors_point_at_the_problem(store, text, fragment):
    store.track([{"profile_id": "a", "type": "t", "n": 1, "s": "x"}])
    with pytest.raises(QueryError) as info:
        store.count(text)
    e = info.value
    assert text[e.start:e.end] == fragment, (e.message, text[e.start:e.end])


def test_plans_with_event_values_survive_the_wire(store):
    store.track([{"profile_id": "a", "type": "t", "n": 1, "s": "x"}])
    pred = compile_where("event_sum('t', 'n', '7d', s IN ('x', 'y') AND NOT (n < 0)) > 0 "
                         "OR last_seen('t') IS NULL", store.schema, NOW_US, store.event_schema)
    assert decode_plan(encode_plan(pred)) == pred


# ---- storage internals --------------------------------------------------------------

def test_chunk_window_is_a_contiguous_slice():
    c = Chunk(np.arange(5, dtype=np.uint32), np.array([10, 20, 20, 30, 40], dtype=np.int64))
    assert c.window(20, 30) == slice(1, 4)
    assert c.window(None, 19) == slice(0, 1)
    assert c.window(41, None) == slice(5, 5)
    assert not c.overlaps(41, 50) and c.overlaps(None, 10)


def test_logs_seal_and_merge_into_few_sorted_chunks(monkeypatch):
    monkeypatch.setattr(ev_mod, "SEAL_EVENTS", 100)
    s = Store(shards=1, clock=lambda: NOW)
    rng = np.random.default_rng(1)
    for _ in range(40):
        ts = (NOW_US - rng.integers(0, 365 * DAY_US, 50)).astype("datetime64[us]")
        s.track_columns([f"p{i}" for i in rng.integers(0, 30, 50)], ["t"] * 50, ts)
    log = s.shards[0].events.log("t")
    chunks = log.sealed()
    assert sum(map(len, chunks)) == 2000 and len(chunks) <= 6
    assert all(np.all(np.diff(c.ts) >= 0) for c in chunks)
    assert s.count("event_count('t') >= 1") == 30


def test_merges_drop_deleted_profiles_events(monkeypatch):
    monkeypatch.setattr(ev_mod, "SEAL_EVENTS", 10)
    s = Store(shards=1, clock=lambda: NOW)
    s.track_columns([f"p{i % 5}" for i in range(40)], ["t"] * 40)
    s.delete(["p0"])
    s.track_columns([f"p{i % 4 + 1}" for i in range(40)], ["t"] * 40)
    shard = s.shards[0]
    chunks = shard.events.log("t").sealed(shard.alive_or_none())
    assert s.count("event_count('t') >= 1") == 4
    assert sum(map(len, chunks)) == 72  # p0's 8 events were purged by the merges


def test_string_codes_stay_narrow():
    s = Store(shards=1, clock=lambda: NOW)
    s.track([{"profile_id": "a", "type": "t", "c": f"v{i}"} for i in range(300)])
    chunk = s.shards[0].events.log("t").sealed()[0]
    assert chunk.props["c"].dtype == np.int16
    assert s.count("event_count('t', c LIKE 'v29%') = 11") == 1


def test_prepare_with_categorical_ids_drops_ids_of_rejected_records():
    ids = Categorical(np.array([0, 1]), ["good", "other"])
    rej = Rejections(2)
    rej.reject(1, "x", "bad")
    prepared = prepare(Schema(), ids, {}, rej)
    uid, distinct = prepared.distinct
    assert distinct.decode() == ["good"] and uid.tolist() == [0]


def test_event_values_in_select_listings_and_aggregates(store):
    store.upsert([{"profile_id": p, "country": c} for p, c in (("a", "JP"), ("b", "JP"), ("c", "US"))])
    store.track([{"profile_id": "a", "type": "buy", "amount": 10, "ts": _iso(2)},
                 {"profile_id": "a", "type": "buy", "amount": 5, "ts": _iso(40)},
                 {"profile_id": "c", "type": "buy", "amount": 7, "ts": _iso(1)}])
    res = store.query("SELECT profile_id, event_count('buy', '30d') AS n, event_sum('buy', 'amount') "
                      "AS spend FROM profiles ORDER BY spend DESC, profile_id")
    assert res.columns == ["profile_id", "n", "spend"]
    assert res.rows == [("a", 1, 15.0), ("c", 1, 7.0), ("b", 0, None)]
    res = store.query("SELECT country, avg(event_count('buy')), sum(event_sum('buy', 'amount')), "
                      "max(last_seen('buy')) FROM profiles GROUP BY country ORDER BY country")
    assert res.rows == [("JP", 1.0, 15.0, dt.datetime.fromtimestamp(NOW - 2 * 86400, UTC)),
                        ("US", 1.0, 7.0, dt.datetime.fromtimestamp(NOW - 86400, UTC))]
    res = store.query("SELECT count(event_sum('buy', 'amount')), min(first_seen('buy')) FROM profiles")
    assert res.rows == [(2, dt.datetime.fromtimestamp(NOW - 40 * 86400, UTC))]
    with pytest.raises(QueryError):
        store.query("SELECT sum(last_seen('buy')) FROM profiles")
    with pytest.raises(QueryError):
        store.query("SELECT country, event_count('buy') FROM profiles GROUP BY country")


def test_a_column_of_the_wrong_kind_rejects_only_events_that_give_it_a_value(store):
    store.track([{"profile_id": "a", "type": "t", "amount": 1.0}])
    r = store.track_columns(["a", "b", "c"], ["t", "t", "t"],
                            properties={"amount": Categorical(np.array([-1, 0, -1]), ["x"])})
    assert r.accepted == 2 and [(e.index, e.field) for e in r.errors] == [(1, "amount")]
    r = store.track_columns(["d", "e"], ["t", "t"],
                            properties={"amount": np.ma.MaskedArray([True, False], mask=[True, False])})
    assert r.accepted == 1 and [(e.index, e.field) for e in r.errors] == [(1, "amount")]
