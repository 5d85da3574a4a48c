"""Migrations interrupted by crashes (issue 7): kill -9 of the router or of the target
shard in the middle of an add-shard, then restart: the migration resumes (the router on
its own from its state file; after a shard crash, the operator re-runs add-shard), no
half-copied batch is ever visible, and every answer equals what was written."""
from __future__ import annotations

import os
import signal
import time
from pathlib import Path

import grpc
import pytest

from server import codec
from server.pb.cdp.v1 import admin_pb2
from server.pb.cdp.v1 import profile_store_pb2 as pb
from tests.e2e.conftest import Running, start, stop

N = 12_000


def count(r: Running, where: str) -> int:
    return r.store.Query(pb.QueryRequest(sql=where)).rows[0].values[0].int_value


def load(r: Running) -> None:
    for lo in range(0, N, 4000):
        ids = [f"p{i}" for i in range(lo, lo + 4000)]
        r.store.Upsert(pb.UpsertRequest(profiles=codec.profiles_from_records(
            [{"profile_id": p, "age": i % 90} for i, p in enumerate(ids, lo)])))
        r.store.Track(pb.TrackRequest(events=codec.events_from_records(
            [{"profile_id": p, "type": "buy", "ts": 1_700_000_000, "amount": 2.0} for p in ids[::2]])))


def expected() -> dict:
    return {"age >= 45": sum(1 for i in range(N) if i % 90 >= 45), "age >= 0": N,
            "event_count('buy') >= 1": N // 2, "event_sum('buy', 'amount') = 2": N // 2}


def answers(r: Running) -> dict:
    return {w: count(r, w) for w in expected()}


def status(r: Running) -> admin_pb2.ClusterStatusResponse:
    return r.admin.ClusterStatus(admin_pb2.ClusterStatusRequest())


def wait_for(predicate, what: str, timeout: float = 120.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        found = predicate()
        if found:
            return found
        time.sleep(0.02)
    raise AssertionError(f"timed out waiting for {what}")


def shard(host: str, data: Path, port: str = "0"):
    return start("shard", "--host", host, "--port", port, "--data", str(data), "--fsync", "never")


@pytest.fixture
def procs():
    started: list = []
    yield started
    for p in started:
        stop(p)


def kill(proc) -> None:
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()


def test_router_killed_mid_migration_resumes_from_its_state_file(tmp_path, procs):
    shards = []
    for i, host in enumerate(["127.0.0.2", "127.0.0.3", "127.0.0.4"]):
        proc, address = shard(host, tmp_path / f"s{i}")
        procs.append(proc)
        shards.append(address)
    state = tmp_path / "router.json"
    router, address = start("router", "--shard", shards[0], "--shard", shards[1], "--state", str(state),
                            "--move-batch", "16", "--port", "0")
    procs.append(router)
    r = Running(router, address)
    load(r)
    r.admin.AddShard(admin_pb2.AddShardRequest(address=shards[2]))
    wait_for(lambda: status(r).migration.slots_moved >= 64, "some slots to move")
    kill(router)
    r.channel.close()

    router, address = start("router", "--state", str(state), "--move-batch", "16", "--port", "0")
    procs.append(router)
    r = Running(router, address)
    assert answers(r) == expected()      # right away: the half-copied batch is invisible
    done = wait_for(lambda: (m := status(r).migration).state != "running" and m.kind and m, "the resumed add")
    assert done.state == "done", done.error
    s = status(r)
    assert sorted(x.slots_owned for x in s.shards) == [5461, 5461, 5462]
    assert sum(x.profiles for x in s.shards) == N
    assert answers(r) == expected()
    r.channel.close()


def test_target_killed_mid_migration_rolls_back_and_resumes(tmp_path, procs):
    shards, dirs = [], []
    for i, host in enumerate(["127.0.0.2", "127.0.0.3", "127.0.0.4"]):
        dirs.append(tmp_path / f"s{i}")
        proc, address = shard(host, dirs[-1])
        procs.append(proc)
        shards.append(address)
    router, address = start("router", "--shard", shards[0], "--shard", shards[1], "--state",
                            str(tmp_path / "router.json"), "--move-batch", "16", "--port", "0")
    procs.append(router)
    r = Running(router, address)
    load(r)
    r.admin.AddShard(admin_pb2.AddShardRequest(address=shards[2]))
    wait_for(lambda: status(r).migration.slots_moved >= 64, "some slots to move")
    kill(procs[2])
    failed = wait_for(lambda: (m := status(r).migration).state != "running" and m, "the add to fail")
    assert failed.state == "failed" and shards[2] in failed.error
    with pytest.raises(grpc.RpcError) as down:
        answers(r)                        # a shard is down: UNAVAILABLE, never a partial answer
    assert down.value.code() == grpc.StatusCode.UNAVAILABLE

    host, port = shards[2].rsplit(":", 1)
    proc, again = shard(host, dirs[2], port)
    procs.append(proc)
    assert again == shards[2]
    # the router's channel reconnects within its backoff (≤ 1 s); then the shard serves
    # what it recovered (the slots it owned; its half-copied batch stays invisible)
    assert wait_for(lambda: _answers_when_up(r), "the shard to be back") == expected()
    r.cdp("cluster", "add-shard", shards[2])   # resumes
    s = status(r)
    assert s.migration.state == "done"
    assert sorted(x.slots_owned for x in s.shards) == [5461, 5461, 5462]
    assert sum(x.profiles for x in s.shards) == N
    assert answers(r) == expected()
    r.channel.close()


def _answers_when_up(r: Running) -> dict | None:
    try:
        return answers(r)
    except grpc.RpcError as e:
        if e.code() != grpc.StatusCode.UNAVAILABLE:
            raise
        return None
