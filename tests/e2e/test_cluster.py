"""End to end: real router and shard processes, the real gRPC client and `cdp` CLI."""
from __future__ import annotations

import json
import os
import signal

import grpc
import pytest

from cdpcore import Store
from cdpcore.sample import SCHEMA, generate_columns, generate_rows
from server import codec
from server.pb.cdp.v1 import admin_pb2
from server.pb.cdp.v1 import profile_store_pb2 as pb

pytestmark = pytest.mark.e2e

QUERIES = [
    "SELECT count(*) FROM profiles WHERE age BETWEEN 25 AND 34 AND country IN ('JP', 'US')",
    "SELECT country, count(*) AS n FROM profiles GROUP BY country ORDER BY n DESC, country LIMIT 5",
    "SELECT avg(lifetime_value), sum(orders_count), min(signup_ts), max(age) FROM profiles WHERE is_subscriber",
    "SELECT profile_id, age, interests FROM profiles WHERE has(interests, 'golf') ORDER BY age DESC LIMIT 7",
    "SELECT plan, count(*) FROM profiles WHERE city LIKE 'San%' OR plan IS NULL GROUP BY plan",
]


def load_both(running, n_cols: int = 3000, n_rows: int = 500) -> Store:
    """The same data into the cluster (columnar + row RPCs) and an embedded Store."""
    ids, cols = generate_columns(n_cols, seed=7)
    rows = generate_rows(n_rows, seed=8, start=n_cols)
    reply = running.store.Upsert(pb.UpsertRequest(columns=codec.batch_from_columns(ids, cols)))
    assert reply.accepted == n_cols and not reply.errors
    reply = running.store.Upsert(pb.UpsertRequest(profiles=codec.profiles_from_records(rows)))
    assert reply.accepted == n_rows and not reply.errors
    store = Store(shards=1)
    store.define_fields(SCHEMA)
    store.upsert_columns(ids, cols)
    store.upsert(rows)
    return store


def same_rows(got: list[tuple], want: list[tuple]) -> bool:
    """Equal, floats to 1e-9 relative (sums depend on how rows split over shards)."""
    return len(got) == len(want) and all(
        len(g) == len(w) and all(a == pytest.approx(b, rel=1e-9) if isinstance(b, float) else a == b
                                 for a, b in zip(g, w))
        for g, w in zip(got, want))


def query(running, sql: str) -> tuple[list[str], list[tuple]]:
    reply = running.store.Query(pb.QueryRequest(sql=sql))
    result = codec.query_result(reply)
    return result.columns, result.rows


def test_router_answers_equal_the_embedded_engine(local_cluster):
    store = load_both(local_cluster)
    for sql in QUERIES:
        expected = store.query(sql)
        columns, rows = query(local_cluster, sql)
        assert columns == expected.columns, sql
        assert same_rows(rows, expected.rows), (sql, rows, expected.rows)
    assert query(local_cluster, "country = 'JP'")[1] == [(store.count("country = 'JP'"),)]


def test_cli_query_profile_and_status(local_cluster):
    store = load_both(local_cluster, 400, 50)
    out = json.loads(local_cluster.cdp("query", "SELECT count(*) FROM profiles", "--json").stdout)
    assert out["columns"] == ["COUNT(*)"] and out["rows"] == [[450]] and out["elapsed_ms"] >= 0
    pid = "u00000003"
    got = json.loads(local_cluster.cdp("profile", "get", pid, "--json").stdout)
    want = store.get_profile(pid)
    assert got["profile_id"] == pid and got["age"] == want.get("age")
    assert "deleted 1" in local_cluster.cdp("profile", "delete", pid, "nobody").stdout
    missing = local_cluster.cdp("profile", "get", pid, check=False)
    assert missing.returncode == 1 and "NOT_FOUND" in missing.stderr
    status = local_cluster.cdp("cluster", "status").stdout
    assert "449 profiles" in status and status.count(" up ") == 2


def test_bad_input_gets_precise_codes_and_the_server_keeps_serving(local_cluster):
    load_both(local_cluster, 100, 10)
    with pytest.raises(grpc.RpcError) as e:
        local_cluster.store.Query(pb.QueryRequest(sql="SELECT count(*) FROM profiles WHERE agee > 3"))
    assert e.value.code() == grpc.StatusCode.INVALID_ARGUMENT and "agee" in e.value.details()
    assert "col" in e.value.details()
    bad = codec.profiles_from_records([{"profile_id": "ok1", "age": 30}, {"profile_id": "", "age": 1},
                                       {"profile_id": "bad2", "age": "x"}])
    reply = local_cluster.store.Upsert(pb.UpsertRequest(profiles=bad))
    assert reply.accepted == 1
    assert [(e.index, e.field) for e in reply.errors] == [(1, "profile_id"), (2, "age")]
    huge = pb.UpsertRequest(profiles=[pb.Profile(profile_id="x" * 1000, fields={"blob": pb.Value(string_value="y" * 60000)})] * 1200)
    with pytest.raises(grpc.RpcError) as e:
        local_cluster.store.Upsert(huge)
    assert e.value.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
    with pytest.raises(grpc.RpcError) as e:
        local_cluster.store.GetProfile(pb.GetProfileRequest(profile_id="nobody"))
    assert e.value.code() == grpc.StatusCode.NOT_FOUND
    assert query(local_cluster, "SELECT count(*) FROM profiles")[1] == [(111,)]


def test_a_dead_shard_gives_unavailable_naming_it(three_shards):
    running, procs = three_shards
    load_both(running, 300, 0)
    victim = procs[1]
    status = running.admin.ClusterStatus(admin_pb2.ClusterStatusRequest())
    victim_address = status.shards[1].address
    os.kill(victim.pid, signal.SIGKILL)
    victim.wait()
    with pytest.raises(grpc.RpcError) as e:
        running.store.Query(pb.QueryRequest(sql="SELECT count(*) FROM profiles"))
    assert e.value.code() == grpc.StatusCode.UNAVAILABLE and victim_address in e.value.details()
    status = running.admin.ClusterStatus(admin_pb2.ClusterStatusRequest())
    assert [s.healthy for s in status.shards] == [True, False, True]


def test_sigterm_stops_the_router_and_its_shards(local_cluster):
    os.killpg(local_cluster.proc.pid, signal.SIGTERM)
    assert local_cluster.proc.wait(timeout=30) == 0


def test_client_deadline_is_honoured_and_the_server_keeps_serving(local_cluster):
    load_both(local_cluster, 200, 0)
    with pytest.raises(grpc.RpcError) as e:
        local_cluster.store.Query(pb.QueryRequest(sql="SELECT country, count(*) FROM profiles GROUP BY country"),
                                  timeout=0.00001)
    assert e.value.code() == grpc.StatusCode.DEADLINE_EXCEEDED
    assert query(local_cluster, "SELECT count(*) FROM profiles")[1] == [(200,)]


def test_query_tells_selects_from_conditions(local_cluster):
    load_both(local_cluster, 50, 0)
    assert query(local_cluster, "-- a comment\n  SELECT count(*) FROM profiles")[1] == [(50,)]
    assert query(local_cluster, "/* c */ age >= 0 OR age IS NULL")[1] == [(50,)]
