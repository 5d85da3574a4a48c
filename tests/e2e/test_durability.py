"""Durability end to end: shard processes with --data keep profiles, events, schema and
segments across a graceful restart and across `kill -9`; `cdp cluster snapshot` and
`cdp cluster status` show what the shards do with their data.

The crash test streams small upsert and track batches through a router while shards
with fsync=always are killed at random moments and restarted on the same directory and
port. A batch the router acknowledged must be there afterwards, exactly; a batch that
failed (its shard was down) may or may not be; nothing the client never wrote may appear.
"""
from __future__ import annotations

import json
import os
import random
import re
import signal
import socket
import subprocess
import sys
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

import grpc
import pytest

from cdpcore.sample import SCHEMA, generate_columns
from server import codec
from server.pb.cdp.v1 import admin_pb2
from server.pb.cdp.v1 import profile_store_pb2 as pb

from .conftest import Running, serving, start, stop
from .test_events import make_events

pytestmark = pytest.mark.e2e

BASE = "n IS NULL AND event_count('visit') = 0"   # the profiles `load` made (not the crash test's)
QUERIES = [
    f"SELECT count(*) FROM profiles WHERE {BASE}",
    f"SELECT country, count(*) AS c, avg(age) FROM profiles WHERE {BASE} GROUP BY country ORDER BY c DESC, country LIMIT 5",
    "SELECT profile_id, age, interests FROM profiles WHERE has(interests, 'golf') ORDER BY age DESC, profile_id LIMIT 7",
    "SELECT count(*), sum(event_count('purchase')) FROM profiles WHERE event_count('view') >= 2",
    "SELECT count(*) FROM profiles WHERE in_segment('adults') AND NOT in_segment('buyers')",
]
SEGMENTS = {"adults": "age >= 30", "buyers": "event_count('purchase') >= 2"}


def query(running: Running, sql: str) -> list[tuple]:
    return codec.query_result(running.store.Query(pb.QueryRequest(sql=sql))).rows


def answers(running: Running, ids: list[str]) -> dict:
    """Everything a client can see: query answers, schema, segments, a few profiles."""
    profiles = [running.store.GetProfile(pb.GetProfileRequest(profile_id=i, events_limit=1000)) for i in ids]
    return {"queries": [query(running, sql) for sql in QUERIES],
            "schema": running.store.GetSchema(pb.GetSchemaRequest()),
            "segments": {s.name: (s.where, s.size) for s in running.store.ListSegments(pb.ListSegmentsRequest()).segments
                         if s.name in SEGMENTS},
            "profiles": [(p.profile, sorted(e.SerializeToString(deterministic=True) for e in p.events))
                         for p in profiles]}


def load(running: Running) -> list[str]:
    ids, cols = generate_columns(1500, seed=3)
    fields = {**SCHEMA, "n": "int", "even": "bool", "tag": "string"}   # the last three: the crash test's
    running.store.DefineFields(pb.DefineFieldsRequest(fields=[pb.FieldSpec(name=k, type=v) for k, v in fields.items()]))
    assert running.store.Upsert(pb.UpsertRequest(columns=codec.batch_from_columns(ids, cols))).accepted == 1500
    ev = make_events(1600, 8000, seed=5, now_us=int(time.time() * 1e6))
    batch = codec.event_batch_from_columns(ev["ids"], ev["types"], ev["ts"], ev["properties"])
    assert running.store.Track(pb.TrackRequest(columns=batch)).accepted == 8000
    for name, where in SEGMENTS.items():
        running.store.CreateSegment(pb.CreateSegmentRequest(name=name, where=where))
    running.store.DeleteProfiles(pb.DeleteProfilesRequest(profile_ids=ids[:10]))
    return ids[10:20] + ids[-5:]


# ---- graceful restart, snapshot and status -----------------------------------------------
def test_serve_with_data_comes_back_after_a_restart(tmp_path):
    data = tmp_path / "data"
    with serving("--shards", "2", "--data", str(data)) as running:
        sample = load(running)
        before = answers(running, sample)
        status = running.cdp("cluster", "status").stdout
        assert status.count("fsync always") == 2 and "replayed 0 WAL records" in status
    assert sorted(p.name for p in data.iterdir()) == ["router.json", "shard-0", "shard-1", "store.json"]
    with serving("--shards", "2", "--data", str(data)) as running:
        assert answers(running, sample) == before
        status = running.cdp("cluster", "status").stdout
        assert status.count("snapshot snapshot-") == 2  # the final snapshots were loaded, nothing replayed
        assert status.count("replayed 0 WAL records") == 2
        in_use = start_error("shard", "--data", str(data / "shard-0"))
        assert "in use by another process" in in_use
        done = running.cdp("cluster", "snapshot").stdout
        files = [Path(line.split(" | ")[1].strip()) for line in done.splitlines()[2:]]
        assert len(files) == 2 and all(f.exists() and f.parent.parent == data for f in files)
    bad = start_error("serve", "--shards", "3", "--data", str(data))
    assert "holds a store of 2 shards" in bad


def start_error(*args: str) -> str:
    out = subprocess.run([sys.executable, "-m", "server.cli", *args, "--port", "0"],
                         capture_output=True, text=True, timeout=60)
    assert out.returncode != 0
    return out.stderr


def test_memory_only_cluster_says_so_and_refuses_snapshots(local_cluster):
    status = local_cluster.cdp("cluster", "status").stdout
    assert status.count("memory only") == 2
    out = local_cluster.cdp("cluster", "snapshot", check=False)
    assert out.returncode == 1 and "FAILED_PRECONDITION" in out.stderr and "--data" in out.stderr


# ---- kill -9 -------------------------------------------------------------------------------
BATCH = 12
TS_US = 1_700_000_000_000_000


def batch_ids(prefix: str, k: int) -> list[str]:
    return [f"{prefix}{k:05d}-{j:02d}" for j in range(BATCH)]


def record(pid: str, k: int, j: int) -> dict:
    return {"profile_id": pid, "n": k * 100 + j, "even": j % 2 == 0, "tag": f"b{k % 7}"}


@dataclass
class Writer:
    """The client: batch k upserts BATCH new profiles, then tracks one event on each;
    each call is noted as acknowledged or failed. Every id is written by one batch only
    (ids start with the writer's `prefix`)."""
    store: object
    prefix: str
    acked: dict[str, set[int]] = field(default_factory=lambda: {"upsert": set(), "track": set()})
    failed: dict[str, set[int]] = field(default_factory=lambda: {"upsert": set(), "track": set()})
    stop: threading.Event = field(default_factory=threading.Event)
    k: int = 0
    unexpected: list[str] = field(default_factory=list)
    last_error: str = ""

    def run(self) -> None:
        try:
            self._run()
        except BaseException as e:  # noqa: BLE001 - the test thread reports it
            self.unexpected.append(f"batch {self.k}: {e!r}")

    def _run(self) -> None:
        while not self.stop.is_set():
            ids = batch_ids(self.prefix, self.k)
            up = pb.UpsertRequest(profiles=codec.profiles_from_records(
                [record(pid, self.k, j) for j, pid in enumerate(ids)]))
            self._call("upsert", lambda: self.store.Upsert(up, timeout=10))
            events = [{"profile_id": pid, "type": "visit", "ts": TS_US / 1e6, "k": self.k} for pid in ids]
            track = pb.TrackRequest(events=codec.events_from_records(events))
            self._call("track", lambda: self.store.Track(track, timeout=10))
            self.k += 1

    def _call(self, kind: str, fn) -> None:
        try:
            reply = fn()
            assert reply.accepted == BATCH and not reply.errors
            self.acked[kind].add(self.k)
        except grpc.RpcError as e:
            assert e.code() in (grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.DEADLINE_EXCEEDED), e
            self.failed[kind].add(self.k)
            self.last_error = f"{kind} {self.k}: {e.code().name}: {e.details()}"
            time.sleep(0.02)

    def acks(self) -> int:
        assert not self.unexpected, self.unexpected
        return len(self.acked["upsert"]) + len(self.acked["track"])


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_for(condition, timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.05)


def test_kill_9_loses_no_acknowledged_write(tmp_path):
    seed = int(os.environ.get("CDP_CRASH_SEED", "0")) or random.randrange(1 << 30)
    print(f"CDP_CRASH_SEED={seed}")  # shown with a failure: rerun with the same kill timing
    rng = random.Random(seed)
    ports = [free_port(), free_port()]
    shard_args = [("shard", "--port", str(p), "--data", str(tmp_path / f"s{i}"), "--fsync", "always")
                  for i, p in enumerate(ports)]
    shards = [start(*a)[0] for a in shard_args]
    procs = list(shards)
    try:
        router, address = start("router", *[a for p in ports for a in ("--shard", f"127.0.0.1:{p}")], "--port", "0")
        procs.append(router)
        running = Running(router, address)
        base = load(running)
        base_answers = answers(running, base)
        del base_answers["schema"]  # the crash test's events add a property
        running.store.CreateSegment(pb.CreateSegmentRequest(name="evens", where="even"))
        writers = [Writer(running.store, "c"), Writer(running.store, "d")]  # concurrent: group commits
        threads = [threading.Thread(target=w.run, daemon=True) for w in writers]
        for t in threads:
            t.start()
        acks = lambda: sum(w.acks() for w in writers)  # noqa: E731
        try:
            for _ in range(3):
                acked = acks()
                wait_for(lambda: acks() >= acked + 20, 30, "writes to be acknowledged")
                time.sleep(rng.uniform(0.0, 0.6))
                victim = rng.randrange(2)
                os.kill(shards[victim].pid, signal.SIGKILL)
                shards[victim].wait()
                time.sleep(rng.uniform(0.0, 0.3))
                shards[victim] = start(*shard_args[victim])[0]
                procs.append(shards[victim])
            acked = acks()
            wait_for(lambda: acks() >= acked + 20, 30, "writes after the last restart")
        except AssertionError as e:
            raise AssertionError(f"{e}; last errors: {[(w.k, w.last_error) for w in writers]}") from None
        finally:
            for w in writers:
                w.stop.set()
            for t in threads:
                t.join(timeout=30)
        assert sum(len(f) for w in writers for f in w.failed.values()) > 0, "no write failed: no kill?"
        check_crash_outcome(running, writers)
        after = answers(running, base)
        del after["schema"]
        assert after == base_answers   # the data from before the crashes is untouched
        status = running.admin.ClusterStatus(admin_pb2.ClusterStatusRequest())
        assert all(s.healthy and s.fsync == "always" for s in status.shards)
        replayed = [int(re.search(r"replayed (\d+) WAL records", s.recovery)[1]) for s in status.shards]
        assert max(replayed) > 0, [s.recovery for s in status.shards]  # a killed shard replayed its WAL
        running.channel.close()
    finally:
        for p in procs:
            stop(p)


def check_crash_outcome(running: Running, writers: list[Writer]) -> None:
    limit = sum(w.k + 1 for w in writers) * BATCH
    rows = query(running, f"SELECT profile_id, n, even, tag, event_count('visit') FROM profiles "
                          f"WHERE NOT ({BASE}) LIMIT {limit}")
    present = {r[0]: r[1:] for r in rows}
    attempted = {pid for w in writers for k in range(w.k + 1) for pid in batch_ids(w.prefix, k)}
    assert set(present) <= attempted, f"profiles nobody wrote: {sorted(set(present) - attempted)[:5]}"
    for w in writers:
        for k in w.acked["upsert"]:
            for j, pid in enumerate(batch_ids(w.prefix, k)):
                want = record(pid, k, j)
                assert present.get(pid, (None,))[:3] == (want["n"], want["even"], want["tag"]), (pid, k)
        for k in w.acked["track"]:
            assert all(present[pid][3] == 1 for pid in batch_ids(w.prefix, k)), (w.prefix, k)
        for k in range(w.k + 1):  # what was not acknowledged was at least attempted
            for pid in batch_ids(w.prefix, k):
                n, _, _, events = present.get(pid, (None, None, None, 0))
                assert n is None or k in w.acked["upsert"] | w.failed["upsert"], pid
                assert events == 0 or k in w.acked["track"] | w.failed["track"], pid
    assert all(events in (0, 1) for *_, events in present.values())
    evens = running.store.GetSegment(pb.GetSegmentRequest(name="evens")).size
    assert evens == query(running, "SELECT count(*) FROM profiles WHERE even")[0][0]
    w = writers[0]
    for k in random.sample(sorted(w.acked["track"] & w.acked["upsert"]), 5):
        got = running.store.GetProfile(pb.GetProfileRequest(profile_id=batch_ids(w.prefix, k)[3]))
        assert got.profile.fields["n"].int_value == k * 100 + 3
        assert [(e.type, e.ts_us) for e in got.events] == [("visit", TS_US)]


def test_persistent_shards_keep_their_slots_whatever_order_the_router_lists_them(tmp_path):
    """Shards remember the slots they own; a router restarted with them in another order
    adopts that map (every profile still found), and one listing a different set of
    shards refuses to start instead of reading profiles under the wrong shard."""
    shards = [start("shard", "--port", "0", "--data", str(tmp_path / f"s{i}"))
              for i in range(3)]
    procs = [p for p, _ in shards]
    addrs = [a for _, a in shards]
    ids = [f"p{i}" for i in range(300)]
    try:
        router, address = start("router", *[a for x in addrs for a in ("--shard", x)], "--port", "0")
        first = Running(router, address)
        first.store.Upsert(pb.UpsertRequest(profiles=codec.profiles_from_records(
            [{"profile_id": p, "n": i} for i, p in enumerate(ids)])))
        first.channel.close()
        stop(router)

        router, address = start("router", *[a for x in reversed(addrs) for a in ("--shard", x)],
                                "--port", "0")
        procs.append(router)
        again = Running(router, address)
        assert json.loads(again.cdp("query", "--json", "n >= 0").stdout)["rows"] == [[300]]
        for p in ids:  # each id is looked up on the shard the adopted map names
            assert again.store.GetProfile(pb.GetProfileRequest(profile_id=p)).profile.profile_id == p
        again.channel.close()
        stop(router)

        proc = subprocess.Popen([sys.executable, "-m", "server.cli", "router", "--shard", addrs[0],
                                 "--shard", addrs[1], "--port", "0"], stdout=subprocess.PIPE,
                                stderr=subprocess.PIPE, text=True, start_new_session=True)
        procs.append(proc)
        _, err = proc.communicate(timeout=60)
        assert proc.returncode != 0 and "do not fit" in err, err
    finally:
        for p in procs:
            stop(p)
