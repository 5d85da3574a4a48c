"""Behavioural events end to end: Track / TrackStream over the real router and shard
processes, GetProfile's events, query warnings, and event queries whose answers must
equal the embedded engine's on the same data, whatever the number of shards.

Event times are placed half a day (± 6 h) off whole days before the moment the data are
made, so the router's now() and the embedded Store's (a few seconds apart) put every
event on the same side of every '7d' / '30d' / INTERVAL window edge.
"""
from __future__ import annotations

import datetime as dt
import json
import time

import grpc
import numpy as np
import pytest

from cdpcore import Categorical, Store
from cdpcore.sample import SCHEMA, generate_columns, make_ids
from server import codec
from server.pb.cdp.v1 import admin_pb2
from server.pb.cdp.v1 import profile_store_pb2 as pb

from .conftest import Running, start, stop

pytestmark = pytest.mark.e2e

TYPES = ["view", "app_open", "add_to_cart", "purchase"]
CATEGORIES = ["shoes", "books", "toys"]
DAY_US = 86_400_000_000

EVENT_QUERIES = [
    "event_count('purchase', '30d') >= 2",
    "SELECT count(*) FROM profiles WHERE event_count('purchase', '30d') >= 2",
    "SELECT count(*) FROM profiles WHERE event_sum('purchase', 'amount', '90d', category = 'shoes') > 100",
    "SELECT count(*) FROM profiles WHERE last_seen('app_open') < now() - INTERVAL '14 days'",
    "SELECT count(*) FROM profiles WHERE NOT (event_sum('purchase', 'amount', '30d') > 50)",
    "SELECT count(*) FROM profiles WHERE event_sum('purchase', 'amount', '30d') IS NULL",
    "SELECT count(*) FROM profiles WHERE event_count('add_to_cart', '7d') >= 1 "
    "AND event_count('purchase', '7d') = 0 AND age >= 30 AND country IN ('US', 'JP') AND NOT is_subscriber",
    "SELECT country, count(*) AS n FROM profiles WHERE event_count('view', '30d', category IS NULL) >= 1 "
    "GROUP BY country ORDER BY n DESC, country LIMIT 5",
    "SELECT avg(lifetime_value), count(*) FROM profiles "
    "WHERE first_seen('view') >= now() - INTERVAL '60 days' OR event_max('purchase', 'amount') > 200",
    "SELECT profile_id, event_sum('purchase', 'amount') AS spent, event_count('purchase') AS n, "
    "event_avg('purchase', 'amount', '90d') AS avg90, event_min('purchase', 'amount') AS least, "
    "last_seen('purchase') AS last FROM profiles WHERE event_count('purchase', '90d', "
    "category IN ('shoes', 'toys') AND amount > 20) >= 1 ORDER BY spent DESC, profile_id LIMIT 10",
]


# ---- data --------------------------------------------------------------------------------------
def make_events(n_ids: int, n: int, seed: int, now_us: int) -> dict:
    """`n` events over `n_ids` profile ids: times up to 200 days back (a few in the future),
    amounts on purchases, categories on carts and purchases."""
    rng = np.random.default_rng(seed)
    kind = rng.choice(4, n, p=[0.5, 0.2, 0.2, 0.1]).astype(np.int32)
    days = rng.integers(-3, 200, n)
    jitter = rng.integers(-6 * 3600, 6 * 3600, n) * 1_000_000
    ts = (now_us - days * DAY_US - DAY_US // 2 + jitter).astype("datetime64[us]")
    shopping = kind >= 2
    category = np.where(shopping, rng.integers(0, 3, n), -1).astype(np.int32)
    amount = np.ma.MaskedArray(np.round(rng.lognormal(3.5, 1.0, n), 2), mask=kind != 3)
    ids = np.array(make_ids(n_ids), dtype=object)[rng.integers(0, n_ids, n)].tolist()
    return {"ids": ids,
            "types": Categorical(kind, TYPES), "ts": ts,
            "properties": {"amount": amount, "category": Categorical(category, CATEGORIES)}}


def as_records(ev: dict) -> list[dict]:
    """The same events as dicts (the row form)."""
    cats = ev["properties"]["category"]
    amounts = ev["properties"]["amount"]
    out = []
    for i, pid in enumerate(ev["ids"]):
        record = {"profile_id": pid, "type": TYPES[ev["types"].codes[i]],
                  "ts": ev["ts"][i].item().isoformat() + "Z"}
        if not amounts.mask[i]:
            record["amount"] = float(amounts[i])
        if cats.codes[i] >= 0:
            record["category"] = CATEGORIES[cats.codes[i]]
        out.append(record)
    return out


def load_both(running: Running, n_profiles: int = 1500, n_events: int = 15_000) -> Store:
    """Profiles and events (columnar, then rows) into the cluster and an embedded Store."""
    now_us = int(time.time() * 1_000_000)
    ids, cols = generate_columns(n_profiles, seed=7)
    running.store.DefineFields(pb.DefineFieldsRequest(fields=[pb.FieldSpec(name=k, type=v) for k, v in SCHEMA.items()]))
    assert running.store.Upsert(pb.UpsertRequest(columns=codec.batch_from_columns(ids, cols))).accepted == n_profiles
    ev = make_events(n_profiles + n_profiles // 10, n_events, seed=11, now_us=now_us)   # some ids beyond the profiles
    rows = as_records(make_events(n_profiles, 400, seed=12, now_us=now_us))
    batch = codec.event_batch_from_columns(ev["ids"], ev["types"], ev["ts"], ev["properties"])
    reply = running.store.Track(pb.TrackRequest(columns=batch))
    assert (reply.accepted, list(reply.errors)) == (n_events, [])
    reply = running.store.Track(pb.TrackRequest(events=codec.events_from_records(rows)))
    assert (reply.accepted, list(reply.errors)) == (len(rows), [])
    store = Store(shards=1)
    store.define_fields(SCHEMA)
    store.upsert_columns(ids, cols)
    store.track_columns(ev["ids"], ev["types"], ev["ts"], ev["properties"])
    store.track(rows)
    return store


def query(running: Running, sql: str) -> tuple[list[str], list[tuple], list[str]]:
    result = codec.query_result(running.store.Query(pb.QueryRequest(sql=sql)))
    return result.columns, result.rows, result.warnings


def same_rows(got: list[tuple], want: list[tuple]) -> bool:
    """Equal, floats to 1e-9 relative (sums depend on how events split over shards)."""
    return len(got) == len(want) and all(
        len(g) == len(w) and all(a == pytest.approx(b, rel=1e-9) if isinstance(b, float) else a == b
                                 for a, b in zip(g, w))
        for g, w in zip(got, want))


def events_of(running: Running, pid: str, limit: int = 0) -> list[dict]:
    reply = running.store.GetProfile(pb.GetProfileRequest(profile_id=pid, events_limit=limit))
    return [codec.event_of_message(e) for e in reply.events]


# ---- tests -------------------------------------------------------------------------------------
def test_event_queries_through_the_router_equal_the_embedded_engine(sharded_cluster):
    store = load_both(sharded_cluster)
    for sql in EVENT_QUERIES:
        if sql.startswith("SELECT"):
            expected = store.query(sql)
            want_columns, want_rows = expected.columns, expected.rows
        else:
            want_columns, want_rows = ["count"], [(store.count(sql),)]
        columns, rows, warnings = query(sharded_cluster, sql)
        assert columns == want_columns, sql
        assert same_rows(rows, want_rows), (sql, rows, want_rows)
        assert warnings == [], sql
    assert query(sharded_cluster, "SELECT count(*) FROM profiles")[1] == [(len(store),)]
    for pid in ["u00000003", "u00001520", "u00000777"]:
        assert events_of(sharded_cluster, pid, 1000) == store.events_of(pid, 1000), pid


def test_get_profile_returns_events_most_recent_first_with_a_limit(local_cluster):
    base = int(time.time() * 1_000_000) - 500 * DAY_US
    stamps = (base + np.arange(120) * DAY_US).astype("datetime64[us]")
    order = np.random.default_rng(1).permutation(120)                    # late arrivals everywhere
    batch = codec.event_batch_from_columns(["u1"] * 120, ["view"] * 120, stamps[order],
                                           {"n": np.arange(120.0)[order]})
    assert local_cluster.store.Track(pb.TrackRequest(columns=batch)).accepted == 120
    newest = [{"type": "view", "ts": stamps[i].item().replace(tzinfo=dt.timezone.utc), "n": float(i)}
              for i in range(119, -1, -1)]
    assert events_of(local_cluster, "u1", 3) == newest[:3]
    assert events_of(local_cluster, "u1") == newest[:100]                # 0 means 100
    assert events_of(local_cluster, "u1", 500) == newest
    assert len(events_of(local_cluster, "u1", 1)) == 1


def test_bad_events_are_reported_by_index_and_field_and_good_ones_applied(local_cluster):
    stub = local_cluster.store
    assert stub.Track(pb.TrackRequest(events=codec.events_from_records(
        [{"profile_id": "seed", "type": "purchase", "amount": 5.0, "category": "shoes"}]))).accepted == 1
    rows = codec.events_from_records([
        {"profile_id": "a1", "type": "purchase", "amount": 12.5},               # 0 ok
        {"profile_id": "a2", "type": "", "amount": 1.0},                        # 1 no type
        {"profile_id": "a3", "type": "purchase", "ts": "2026-13-45"},           # 2 bad time
        {"profile_id": "a4", "type": "purchase", "amount": "lots"},             # 3 amount is a float
        {"profile_id": "a5", "type": "purchase", "category": 7},                # 4 category is a string
        {"profile_id": "a6", "type": "view", "flag": True},                     # 5 bool property
        {"profile_id": "", "type": "view"},                                     # 6 no id
        {"profile_id": "a7", "type": "view", "ts": 1_700_000_000},              # 7 ok
    ])
    batch = codec.event_batch_from_columns(["c1", "", "c3"], ["view", "view", None])
    reply = stub.Track(pb.TrackRequest(events=rows, columns=batch))
    assert reply.accepted == 3
    assert [(e.index, e.field) for e in reply.errors] == [
        (1, "type"), (2, "ts"), (3, "amount"), (4, "category"), (5, "flag"), (6, "profile_id"),
        (9, "profile_id"), (10, "type")]
    assert "ISO-8601" in reply.errors[1].reason
    counts = {pid: len(events_of(local_cluster, pid)) for pid in ["a1", "a7", "c1"]}
    assert counts == {"a1": 1, "a7": 1, "c1": 1}
    for pid in ["a2", "a3", "a4", "c3"]:
        with pytest.raises(grpc.RpcError) as e:
            stub.GetProfile(pb.GetProfileRequest(profile_id=pid))
        assert e.value.code() == grpc.StatusCode.NOT_FOUND
    schema = stub.GetSchema(pb.GetSchemaRequest())
    assert {f.name: f.type for f in schema.event_properties} == {"amount": "float", "category": "string"}
    assert list(schema.event_types) == ["purchase", "view"]


def test_malformed_track_batches_are_invalid_argument(local_cluster):
    bad = pb.EventBatch(profile_ids=["a", "b"], types=pb.DictColumn(dictionary=["t"], codes=[0]))
    with pytest.raises(grpc.RpcError) as e:
        local_cluster.store.Track(pb.TrackRequest(columns=bad))
    assert e.value.code() == grpc.StatusCode.INVALID_ARGUMENT and "types has 1 codes for 2 ids" in e.value.details()
    reserved = pb.Event(profile_id="a", type="t", properties={"type": pb.Value(string_value="x")})
    with pytest.raises(grpc.RpcError) as e:
        local_cluster.store.Track(pb.TrackRequest(events=[reserved]))
    assert e.value.code() == grpc.StatusCode.INVALID_ARGUMENT and "'type'" in e.value.details()


def test_an_event_for_an_unknown_profile_creates_it(local_cluster):
    stub = local_cluster.store
    assert query(local_cluster, "SELECT count(*) FROM profiles")[1] == [(0,)]
    before = int(time.time() * 1_000_000)
    reply = stub.Track(pb.TrackRequest(events=[pb.Event(profile_id="new-1", type="signup")]))
    assert reply.accepted == 1
    got = stub.GetProfile(pb.GetProfileRequest(profile_id="new-1"))
    assert got.profile.profile_id == "new-1" and not got.profile.fields
    assert [e.type for e in got.events] == ["signup"] and before <= got.events[0].ts_us   # stamped now
    assert query(local_cluster, "SELECT count(*) FROM profiles")[1] == [(1,)]
    assert query(local_cluster, "event_count('signup', '1d') = 1")[1] == [(1,)]
    stub.Upsert(pb.UpsertRequest(profiles=codec.profiles_from_records([{"profile_id": "new-1", "age": 30}])))
    assert len(stub.GetProfile(pb.GetProfileRequest(profile_id="new-1")).events) == 1   # upsert keeps events


def test_an_unknown_event_type_gives_a_warning_not_an_error(local_cluster):
    local_cluster.store.Track(pb.TrackRequest(events=codec.events_from_records(
        [{"profile_id": "u1", "type": "purchase", "amount": 3.0}])))
    columns, rows, warnings = query(local_cluster, "SELECT count(*) FROM profiles WHERE event_count('purchse') >= 1")
    assert rows == [(0,)] and len(warnings) == 1 and "'purchse'" in warnings[0]
    assert query(local_cluster, "event_count('purchase') >= 1")[1:] == ([(1,)], [])
    assert query(local_cluster, "last_seen('signin') IS NULL")[2] == [
        "event type 'signin' has never been tracked: it matches nothing"]
    with pytest.raises(grpc.RpcError) as e:
        query(local_cluster, "event_count('purchase', '30x') >= 1")
    assert e.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    out = local_cluster.cdp("query", "event_count('purchse') >= 1")
    assert "warning: event type 'purchse'" in out.stderr
    doc = json.loads(local_cluster.cdp("query", "--json", "event_count('purchse') >= 1").stdout)
    assert doc["rows"] == [[0]] and len(doc["warnings"]) == 1


def test_track_stream_indexes_errors_across_the_stream(local_cluster):
    first = pb.TrackRequest(events=codec.events_from_records(
        [{"profile_id": "s1", "type": "view"}, {"profile_id": "s2", "type": ""}]))
    second = pb.TrackRequest(
        events=codec.events_from_records([{"profile_id": "s3", "type": "view", "ts": "nope"}]),
        columns=codec.event_batch_from_columns(["s4", "s5"], [None, "view"]))
    reply = local_cluster.store.TrackStream(iter([first, second]))
    assert reply.accepted == 2
    assert [(e.index, e.field) for e in reply.errors] == [(1, "type"), (2, "ts"), (3, "type")]


def test_a_new_router_learns_event_properties_and_types_from_the_shards(three_shards):
    running, procs = three_shards
    running.store.Track(pb.TrackRequest(events=codec.events_from_records(
        [{"profile_id": f"p{i}", "type": "purchase", "amount": float(i)} for i in range(30)])))
    addresses = [s.address for s in running.admin.ClusterStatus(admin_pb2.ClusterStatusRequest()).shards]
    stop(procs[-1])
    router, address = start("router", *[a for addr in addresses for a in ("--shard", addr)], "--port", "0")
    procs.append(router)
    fresh = Running(router, address)
    try:
        schema = fresh.store.GetSchema(pb.GetSchemaRequest())
        assert {f.name: f.type for f in schema.event_properties} == {"amount": "float"}
        assert list(schema.event_types) == ["purchase"]
        assert query(fresh, "event_sum('purchase', 'amount') >= 10") == (["count"], [(20,)], [])
        reply = fresh.store.Track(pb.TrackRequest(events=codec.events_from_records(
            [{"profile_id": "p1", "type": "purchase", "amount": "x"}])))
        assert reply.accepted == 0 and reply.errors[0].field == "amount"
    finally:
        fresh.channel.close()


def test_cli_profile_get_shows_events(local_cluster):
    local_cluster.store.Track(pb.TrackRequest(events=codec.events_from_records([
        {"profile_id": "u1", "type": "purchase", "ts": "2026-03-01T10:00:00Z", "amount": 12.5, "category": "shoes"},
        {"profile_id": "u1", "type": "app_open", "ts": "2026-03-02T08:00:00Z"}])))
    out = local_cluster.cdp("profile", "get", "u1").stdout
    lines = out.splitlines()
    assert lines[0] == "profile_id: u1" and "events: 2 (most recent first)" in lines
    assert lines.index("  2026-03-02T08:00:00Z  app_open") < lines.index(
        "  2026-03-01T10:00:00Z  purchase  amount=12.5 category=shoes")
    doc = json.loads(local_cluster.cdp("profile", "get", "u1", "--json", "--events", "1").stdout)
    assert doc == {"profile_id": "u1", "events": [{"type": "app_open", "ts": "2026-03-02T08:00:00Z"}]}
