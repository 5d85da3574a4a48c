"""Saved segments end to end: CRUD and error codes over the real router and shards,
in_segment through the router, exports, and watchers whose changes, applied to the
initial members, reproduce the final membership — also after reconnecting."""
from __future__ import annotations

import os
import signal
import threading
import time

import grpc
import numpy as np
import pytest

from cdpcore import Categorical, Store
from cdpcore.sample import SCHEMA, generate_columns
from server import codec
from server.pb.cdp.v1 import admin_pb2, shard_pb2, shard_pb2_grpc
from server.pb.cdp.v1 import profile_store_pb2 as pb

from .conftest import Running, serving, start, stop

pytestmark = pytest.mark.e2e

WHERE = {
    "adults_us_jp": "age >= 30 AND country IN ('US', 'JP')",
    "loyal": "orders_count >= 5",
    "loyal_jp": "in_segment('loyal') AND country = 'JP'",
    "buyers": "event_count('purchase') >= 2",
    "golf_or_plan": "has(interests, 'golf') OR plan IS NULL",
}
EXPANDED = {"loyal_jp": "orders_count >= 5 AND country = 'JP'"}   # the same without in_segment


# ---- helpers ---------------------------------------------------------------------------------
def load(running: Running, n: int = 2000, seed: int = 7) -> tuple[list[str], dict]:
    ids, cols = generate_columns(n, seed=seed)
    running.store.DefineFields(pb.DefineFieldsRequest(fields=[pb.FieldSpec(name=k, type=v) for k, v in SCHEMA.items()]))
    assert running.store.Upsert(pb.UpsertRequest(columns=codec.batch_from_columns(ids, cols))).accepted == n
    return ids, cols


def create(running: Running, name: str, where: str | None = None) -> pb.SegmentInfo:
    return running.store.CreateSegment(pb.CreateSegmentRequest(name=name, where=where or WHERE[name]))


def count(running: Running, where: str) -> int:
    return codec.query_result(running.store.Query(pb.QueryRequest(sql=where))).rows[0][0]


def list_ids(running: Running, where: str) -> set[str]:
    return {i for b in running.store.ListIds(pb.ListIdsRequest(where=where)) for i in b.ids}


def export(running: Running, name: str, fields: tuple[str, ...] = (), batch_size: int = 0) -> dict[str, dict]:
    """id → {field: value} of every member, as exported."""
    out: dict[str, dict] = {}
    request = pb.ExportSegmentRequest(name=name, fields=list(fields), batch_size=batch_size)
    for reply in running.store.ExportSegment(request):
        columns = codec.export_columns(reply.members)
        for i, pid in enumerate(reply.members.ids):
            assert pid not in out
            out[pid] = {f: columns[f][i] for f in fields}
    return out


def code_of(call, *args) -> grpc.StatusCode:
    with pytest.raises(grpc.RpcError) as e:
        result = call(*args)
        if hasattr(result, "__next__"):
            list(result)
    return e.value.code(), e.value.details()


class Watcher:
    """A WatchSegment stream read on its own thread."""

    def __init__(self, running: Running, name: str, after: dict[int, int] | None = None,
                 initial: bool = True) -> None:
        self.call = running.store.WatchSegment(pb.WatchSegmentRequest(name=name, after=after or {},
                                                                      initial=initial))
        self.changes: list[pb.SegmentChange] = []
        self.start: dict[int, int] = {}        # every shard's position at initial_done
        self.ready = threading.Event()
        self.error: grpc.RpcError | None = None
        self.lock = threading.Lock()
        self.thread = threading.Thread(target=self._read, daemon=True)
        self.thread.start()
        assert self.ready.wait(30), "the watch did not start"

    def _read(self) -> None:
        try:
            for msg in self.call:
                with self.lock:
                    self.changes.extend(msg.changes)
                if msg.initial_done:
                    self.start = dict(msg.positions)
                    self.ready.set()
        except grpc.RpcError as e:
            self.error = e
            self.ready.set()

    def snapshot(self) -> list[pb.SegmentChange]:
        with self.lock:
            return list(self.changes)

    def members(self, start: set[str] = frozenset()) -> set[str]:
        return apply(set(start), self.snapshot())

    def positions(self) -> dict[int, int]:
        """The last seq seen per shard: what to resume with."""
        return {**self.start, **{c.shard: c.seq for c in self.snapshot()}}

    def wait_until(self, expected: set[str], start: set[str] = frozenset(), timeout: float = 30) -> set[str]:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline and self.members(start) != expected and self.error is None:
            time.sleep(0.02)
        return self.members(start)

    def close(self) -> None:
        self.call.cancel()
        self.thread.join(10)


def apply(members: set[str], changes: list[pb.SegmentChange]) -> set[str]:
    for c in changes:
        if c.entered:
            members.add(c.profile_id)
        else:
            members.discard(c.profile_id)
    return members


def assert_gapless(changes: list[pb.SegmentChange], after: dict[int, int] | None = None) -> None:
    """Per shard: seq goes up by one from the initial position (or `after`), no gaps."""
    last = dict(after or {})
    for c in changes:
        if c.initial:
            assert last.setdefault(c.shard, c.seq) == c.seq
        elif c.shard in last:
            assert c.seq == last[c.shard] + 1, (c.shard, c.seq, last[c.shard])
            last[c.shard] = c.seq
        else:
            last[c.shard] = c.seq


def churn(running: Running, ids: list[str], seed: int) -> None:
    """Upserts (columnar and rows), new profiles, events and deletes, all through the router."""
    rng = np.random.default_rng(seed)
    some = [ids[i] for i in rng.choice(len(ids), 300, replace=False)]
    ages = np.ma.MaskedArray(rng.integers(18, 80, 300), mask=rng.random(300) < 0.1)
    orders = rng.integers(0, 10, 300)
    batch = codec.batch_from_columns(some, {"age": ages, "orders_count": orders})
    assert running.store.Upsert(pb.UpsertRequest(columns=batch)).accepted == 300
    rows = [{"profile_id": f"new{seed}-{i}", "age": int(rng.integers(18, 80)), "country": ["US", "JP", "FR"][i % 3],
             "orders_count": i % 9} for i in range(100)]
    assert running.store.Upsert(pb.UpsertRequest(profiles=codec.profiles_from_records(rows))).accepted == 100
    buyers = [ids[i] for i in rng.integers(0, len(ids), 400)] + [f"ev{seed}-{i % 50}" for i in range(100)]
    events = codec.event_batch_from_columns(buyers, Categorical(np.zeros(len(buyers), np.int32), ["purchase"]))
    assert running.store.Track(pb.TrackRequest(columns=events)).accepted == len(buyers)
    gone = [ids[i] for i in rng.choice(len(ids), 100, replace=False)] + [rows[0]["profile_id"]]
    running.store.DeleteProfiles(pb.DeleteProfilesRequest(profile_ids=gone))


# ---- definitions and errors ----------------------------------------------------------------
def test_create_list_show_delete(local_cluster):
    load(local_cluster)
    info = create(local_cluster, "adults_us_jp")
    assert (info.name, info.where, info.time_dependent, list(info.depends_on)) == \
        ("adults_us_jp", WHERE["adults_us_jp"], False, [])
    assert info.size == count(local_cluster, WHERE["adults_us_jp"]) > 0
    assert info.created_at_us == info.refreshed_at_us > 1_700_000_000_000_000
    create(local_cluster, "loyal")
    nested = create(local_cluster, "loyal_jp")
    assert list(nested.depends_on) == ["loyal"] and nested.size == count(local_cluster, EXPANDED["loyal_jp"])
    listed = local_cluster.store.ListSegments(pb.ListSegmentsRequest()).segments
    assert [s.name for s in listed] == ["adults_us_jp", "loyal", "loyal_jp"]
    assert local_cluster.store.GetSegment(pb.GetSegmentRequest(name="loyal_jp")) == nested
    status = local_cluster.admin.ClusterStatus(admin_pb2.ClusterStatusRequest())
    assert status.segments == 3
    local_cluster.store.DeleteSegment(pb.DeleteSegmentRequest(name="loyal_jp"))
    local_cluster.store.DeleteSegment(pb.DeleteSegmentRequest(name="loyal"))
    assert [s.name for s in local_cluster.store.ListSegments(pb.ListSegmentsRequest()).segments] == ["adults_us_jp"]
    assert code_of(local_cluster.store.Query, pb.QueryRequest(sql="in_segment('loyal')"))[0] == \
        grpc.StatusCode.INVALID_ARGUMENT


def test_bad_requests_get_precise_codes(local_cluster):
    load(local_cluster, 300)
    store = local_cluster.store
    create(local_cluster, "loyal")
    create(local_cluster, "loyal_jp")
    code, details = code_of(store.CreateSegment, pb.CreateSegmentRequest(name="loyal", where="age > 1"))
    assert code == grpc.StatusCode.ALREADY_EXISTS and "loyal" in details
    code, details = code_of(store.CreateSegment, pb.CreateSegmentRequest(name="x", where="age > 'old'"))
    assert code == grpc.StatusCode.INVALID_ARGUMENT and "line 1, col" in details
    code, details = code_of(store.CreateSegment, pb.CreateSegmentRequest(name="x", where="agee > 3"))
    assert code == grpc.StatusCode.INVALID_ARGUMENT and "agee" in details and "col 1" in details
    code, details = code_of(store.CreateSegment, pb.CreateSegmentRequest(name="bad name!", where="age > 1"))
    assert code == grpc.StatusCode.INVALID_ARGUMENT and "segment name" in details
    code, details = code_of(store.CreateSegment, pb.CreateSegmentRequest(name="x", where="in_segment('nope')"))
    assert code == grpc.StatusCode.INVALID_ARGUMENT and "nope" in details
    code, details = code_of(store.CreateSegment, pb.CreateSegmentRequest(name="me", where="in_segment('me')"))
    assert code == grpc.StatusCode.INVALID_ARGUMENT and "cycle" in details
    for call, request in [(store.GetSegment, pb.GetSegmentRequest(name="nope")),
                          (store.DeleteSegment, pb.DeleteSegmentRequest(name="nope")),
                          (store.ExportSegment, pb.ExportSegmentRequest(name="nope")),
                          (store.WatchSegment, pb.WatchSegmentRequest(name="nope"))]:
        assert code_of(call, request)[0] == grpc.StatusCode.NOT_FOUND
    code, details = code_of(store.DeleteSegment, pb.DeleteSegmentRequest(name="loyal"))
    assert code == grpc.StatusCode.FAILED_PRECONDITION and "loyal_jp" in details
    code, details = code_of(store.ExportSegment, pb.ExportSegmentRequest(name="loyal", fields=["agee"]))
    assert code == grpc.StatusCode.INVALID_ARGUMENT and "agee" in details
    code, details = code_of(store.WatchSegment, pb.WatchSegmentRequest(name="loyal", after={7: 1}))
    assert code == grpc.StatusCode.INVALID_ARGUMENT and "shard 7" in details
    assert [s.name for s in store.ListSegments(pb.ListSegmentsRequest()).segments] == ["loyal", "loyal_jp"]


# ---- membership through the router ------------------------------------------------------------
def test_in_segment_through_the_router_equals_the_condition(sharded_cluster):
    ids, _ = load(sharded_cluster)
    for name in WHERE:
        create(sharded_cluster, name)
    for round_ in range(2):
        for name, where in WHERE.items():
            where = EXPANDED.get(name, where)
            expected = list_ids(sharded_cluster, where)
            assert count(sharded_cluster, f"in_segment('{name}')") == len(expected), (round_, name)
            assert list_ids(sharded_cluster, f"in_segment('{name}')") == expected, (round_, name)
            info = sharded_cluster.store.GetSegment(pb.GetSegmentRequest(name=name))
            assert info.size == len(expected)
        churn(sharded_cluster, ids, seed=round_)
    # NOT in_segment(x) is true where x's condition is false or unknown (a null age)
    either = list_ids(sharded_cluster, "in_segment('loyal') AND NOT in_segment('adults_us_jp')")
    assert either == list_ids(sharded_cluster, WHERE["loyal"]) - list_ids(sharded_cluster, WHERE["adults_us_jp"])


def test_export_equals_list_ids_with_the_fields_of_the_embedded_engine(sharded_cluster):
    ids, cols = load(sharded_cluster, 3000)
    store = Store(shards=2)
    store.define_fields(SCHEMA)
    store.upsert_columns(ids, cols)
    where = "age BETWEEN 25 AND 50 OR has(interests, 'golf')"
    fields = ("age", "city", "signup_ts", "lifetime_value", "is_subscriber", "interests", "plan")
    create(sharded_cluster, "mixed", where)
    store.create_segment("mixed", where)
    got = export(sharded_cluster, "mixed", fields, batch_size=250)
    assert set(got) == list_ids(sharded_cluster, where)
    want = {pid: {f: b.columns[f][i] for f in fields}
            for b in store.export_segment("mixed", fields) for i, pid in enumerate(b.ids)}
    assert got == want
    assert set(export(sharded_cluster, "mixed")) == set(want)       # ids only


# ---- watching --------------------------------------------------------------------------------
def test_watch_from_the_initial_members_reproduces_the_membership(sharded_cluster):
    ids, _ = load(sharded_cluster)
    for name in ("loyal", "loyal_jp", "buyers"):
        create(sharded_cluster, name)
    watchers = {name: Watcher(sharded_cluster, name) for name in ("loyal_jp", "buyers")}
    try:
        initial = {name: w.members() for name, w in watchers.items()}
        assert initial["loyal_jp"] == set(export(sharded_cluster, "loyal_jp"))
        for seed in range(3):
            churn(sharded_cluster, ids, seed)
        for name, w in watchers.items():
            final = set(export(sharded_cluster, name))
            assert final == list_ids(sharded_cluster, EXPANDED.get(name, WHERE[name]))
            assert w.wait_until(final) == final, name
            changes = w.snapshot()
            assert_gapless(changes)
            assert any(not c.initial for c in changes) and all(c.initial for c in changes[:len(initial[name])])
    finally:
        for w in watchers.values():
            w.close()


def test_a_reconnecting_watcher_misses_nothing(local_cluster):
    ids, _ = load(local_cluster)
    create(local_cluster, "loyal")
    first = Watcher(local_cluster, "loyal")
    churn(local_cluster, ids, seed=1)
    expected = set(export(local_cluster, "loyal"))
    assert first.wait_until(expected) == expected
    first.close()
    positions = first.positions()
    assert set(positions) == {0, 1}
    churn(local_cluster, ids, seed=2)                       # while nobody watches
    second = Watcher(local_cluster, "loyal", after=positions, initial=True)   # initial is moot on resume
    try:
        churn(local_cluster, ids, seed=3)
        final = set(export(local_cluster, "loyal"))
        assert second.wait_until(final, start=expected) == final
        assert not any(c.initial for c in second.snapshot())
        assert_gapless(second.snapshot(), after=positions)
    finally:
        second.close()


def test_a_watcher_without_initial_members_sees_only_changes(local_cluster):
    load(local_cluster, 500)
    create(local_cluster, "loyal")
    w = Watcher(local_cluster, "loyal", initial=False)
    try:
        assert w.snapshot() == []
        records = [{"profile_id": "fresh", "orders_count": 9}, {"profile_id": "fresh2", "orders_count": 1}]
        local_cluster.store.Upsert(pb.UpsertRequest(profiles=codec.profiles_from_records(records)))
        assert w.wait_until({"fresh"}) == {"fresh"}
        local_cluster.store.DeleteProfiles(pb.DeleteProfilesRequest(profile_ids=["fresh"]))
        assert w.wait_until(set()) == set()
        assert [(c.profile_id, c.entered) for c in w.snapshot()] == [("fresh", True), ("fresh", False)]
    finally:
        w.close()


def test_watch_ends_with_not_found_when_the_segment_is_deleted(local_cluster):
    load(local_cluster, 100)
    create(local_cluster, "loyal")
    w = Watcher(local_cluster, "loyal")
    local_cluster.store.DeleteSegment(pb.DeleteSegmentRequest(name="loyal"))
    w.thread.join(10)
    assert w.error is not None and w.error.code() == grpc.StatusCode.NOT_FOUND


def test_resuming_from_changes_no_longer_retained_is_out_of_range():
    with serving("--shards", "2", "--retained-changes", "30") as running:
        load(running, 300)
        create(running, "loyal")
        w = Watcher(running, "loyal", initial=False)
        flip = [f"p{i}" for i in range(40)]      # about 20 a shard: each batch fits in the log
        for orders, members in ((9, set(flip)), (0, set()), (9, set(flip)), (0, set())):
            batch = codec.batch_from_columns(flip, {"orders_count": np.full(40, orders)})
            running.store.Upsert(pb.UpsertRequest(columns=batch))
            assert w.wait_until(members) == members
        assert len(w.snapshot()) == 160 and w.error is None
        w.close()
        late = Watcher(running, "loyal", after={0: 1}, initial=False)
        assert late.error is not None and late.error.code() == grpc.StatusCode.OUT_OF_RANGE
        assert "retained" in late.error.details()
        fresh = Watcher(running, "loyal", after=w.positions())   # up to date: fine
        assert fresh.error is None
        fresh.close()


def test_a_stalled_watcher_never_blocks_writes_and_is_told_it_fell_behind():
    with serving("--shards", "2", "--retained-changes", "5") as running:
        ids = [f"{'x' * 100}{i:06d}" for i in range(5000)]    # long ids: big messages fill buffers
        running.store.Upsert(pb.UpsertRequest(columns=codec.batch_from_columns(ids, {"grp": np.zeros(5000, int)})))
        create(running, "odd", "grp = 1")
        call = running.store.WatchSegment(pb.WatchSegmentRequest(name="odd"), timeout=120)
        assert next(call).initial_done                     # then read nothing for a while
        for k in range(1, 61):
            batch = codec.batch_from_columns(ids, {"grp": np.full(5000, k % 2)})
            assert running.store.Upsert(pb.UpsertRequest(columns=batch), timeout=30).accepted == 5000
        with pytest.raises(grpc.RpcError) as e:
            for _ in call:
                pass
        assert e.value.code() == grpc.StatusCode.OUT_OF_RANGE
        assert count(running, "in_segment('odd')") == 0


def test_watchers_are_limited_and_those_that_go_away_release_their_streams(local_cluster):
    load(local_cluster, 100)
    create(local_cluster, "loyal")
    calls = []
    for _ in range(64):
        calls.append(local_cluster.store.WatchSegment(pb.WatchSegmentRequest(name="loyal")))
        assert next(calls[-1]).initial_done
    code, details = code_of(local_cluster.store.WatchSegment, pb.WatchSegmentRequest(name="loyal"))
    assert code == grpc.StatusCode.RESOURCE_EXHAUSTED and "at most 64" in details
    assert count(local_cluster, "in_segment('loyal')") >= 0          # other calls are still served
    for call in calls:
        call.cancel()
    deadline = time.monotonic() + 10        # the server learns of the cancels asynchronously
    while True:
        w = Watcher(local_cluster, "loyal")
        error = w.error
        w.close()
        if error is None or time.monotonic() > deadline:
            break
        time.sleep(0.1)
    assert error is None


# ---- time and restarts -----------------------------------------------------------------------
def test_time_dependent_segments_are_refreshed_on_the_timer():
    with serving("--shards", "2", "--segment-refresh", "0.5") as running:
        event = pb.Event(profile_id="t1", type="ping")          # at the router's clock
        running.store.Track(pb.TrackRequest(events=[event]))
        info = create(running, "recent", "event_count('ping', '2s') >= 1")
        assert info.time_dependent and info.size == 1
        w = Watcher(running, "recent")
        try:
            assert w.members() == {"t1"}
            assert w.wait_until(set(), timeout=20) == set()
            later = running.store.GetSegment(pb.GetSegmentRequest(name="recent"))
            assert later.size == 0 and later.refreshed_at_us > info.refreshed_at_us
        finally:
            w.close()


def test_a_new_router_learns_the_segments_from_the_shards(three_shards):
    running, procs = three_shards
    ids, _ = load(running, 1000)
    for name in ("loyal", "loyal_jp", "adults_us_jp"):
        create(running, name)
    before = list(running.store.ListSegments(pb.ListSegmentsRequest()).segments)
    addresses = [s.address for s in running.admin.ClusterStatus(admin_pb2.ClusterStatusRequest()).shards]
    stop(procs[3])
    proc, address = start("router", *[a for addr in addresses for a in ("--shard", addr)], "--port", "0")
    again = Running(proc, address)
    try:
        assert list(again.store.ListSegments(pb.ListSegmentsRequest()).segments) == before
        churn(again, ids, seed=5)
        assert count(again, "in_segment('loyal_jp')") == count(again, EXPANDED["loyal_jp"])
        code, _ = code_of(again.store.DeleteSegment, pb.DeleteSegmentRequest(name="loyal"))
        assert code == grpc.StatusCode.FAILED_PRECONDITION
    finally:
        again.channel.close()
        stop(proc)



def test_a_segment_a_shard_could_not_take_is_rolled_back_on_the_others(three_shards):
    running, procs = three_shards
    load(running, 300)
    addresses = [s.address for s in running.admin.ClusterStatus(admin_pb2.ClusterStatusRequest()).shards]
    os.kill(procs[1].pid, signal.SIGKILL)
    procs[1].wait()
    code, details = code_of(running.store.CreateSegment, pb.CreateSegmentRequest(name="loyal", where=WHERE["loyal"]))
    assert code == grpc.StatusCode.UNAVAILABLE and addresses[1] in details
    for address in (addresses[0], addresses[2]):
        with grpc.insecure_channel(address) as channel:
            held = shard_pb2_grpc.ShardStoreStub(channel).Segments(shard_pb2.SegmentsRequest())
            assert list(held.segments) == []
    code, _ = code_of(running.store.Query, pb.QueryRequest(sql="in_segment('loyal')"))
    assert code == grpc.StatusCode.INVALID_ARGUMENT
