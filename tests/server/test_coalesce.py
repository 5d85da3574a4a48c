"""Group commit of the router's writes (server/coalesce.py, routing.merge_writes).

Three layers: a merged write applied to a Shard equals the writes applied one by one;
the ShardWriter's queue (fake sends: order, release only after the send, errors to the
right callers, expired deadlines); and concurrent writers through a real router over two
in-process shards, whose Applies are slowed so that writes must queue and merge.
"""
from __future__ import annotations

import threading
import time
from typing import Any

import grpc
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from cdpcore.errors import BatchError, Unavailable
from cdpcore.ingest import columns_of_records, prepare
from cdpcore.routing import ShardWrite, merge_writes, split
from cdpcore.schema import Schema
from cdpcore.shard import Shard
from cdpcore.slots import SlotMap
from server import app, codec
from server.coalesce import ShardWriter, wait
from server.pb.cdp.v1 import profile_store_pb2 as pb
from server.pb.cdp.v1 import profile_store_pb2_grpc
from server.status import RemoteError

SCHEMA = {"n": "int", "x": "float", "flag": "bool", "city": "string", "tags": "string_set", "at": "timestamp"}


def schema() -> Schema:
    s = Schema()
    s.declare(SCHEMA)
    return s


def shard_write(records: list[dict[str, Any]], sch: Schema) -> ShardWrite:
    """Records (all valid) as the one part a one-shard cluster would send."""
    ids, columns, rejections = columns_of_records(records)
    prepared = prepare(sch, ids, columns, rejections)
    assert not prepared.errors
    (part,) = split(prepared.enc, SlotMap.even(1), 1, prepared.distinct)
    return ShardWrite(part.ids(), part.uid, part.batches(prepared.batches))


def profiles(shard: Shard, ids: list[str]) -> list[Any]:
    from cdpcore.ids import EncodedIds
    return shard.get(EncodedIds.encode(ids))


# ---- merge_writes ------------------------------------------------------------------------
VALUES = {
    "n": st.none() | st.integers(-5, 5),
    "x": st.none() | st.floats(-1, 1),
    "flag": st.none() | st.booleans(),
    "city": st.none() | st.sampled_from(["Tokyo", "Paris", "Lima"]),
    "tags": st.none() | st.lists(st.sampled_from(["a", "b", "c"]), max_size=3, unique=True),
    "at": st.none() | st.integers(0, 10**9),
}
RECORD = st.fixed_dictionaries({"profile_id": st.sampled_from([f"p{i}" for i in range(6)])},
                               optional=VALUES)


@settings(max_examples=60, deadline=None)
@given(st.lists(st.lists(RECORD, min_size=1, max_size=5), min_size=1, max_size=4))
def test_a_merged_write_equals_the_writes_one_after_the_other(batches):
    sch = schema()
    one_by_one, merged = Shard(sch), Shard(sch)
    writes = [shard_write(records, sch) for records in batches]
    for w in writes:
        one_by_one.upsert(w.ids, w.uid, w.batches)
    m = merge_writes(writes)
    merged.upsert(m.ids, m.uid, m.batches)
    ids = [f"p{i}" for i in range(6)]
    assert len(merged) == len(one_by_one)
    assert profiles(merged, ids) == profiles(one_by_one, ids)


# ---- ShardWriter with a fake send -----------------------------------------------------------
class FakeShard:
    """Records what each send carried; the first send waits for `release`."""

    def __init__(self, fail: Any = None) -> None:
        self.sent: list[list[str]] = []      # per Apply: the record ids, in order
        self.release = threading.Event()
        self.started = threading.Event()
        self.fail = fail                      # fn(ids) -> exception to raise, or None

    def send(self, w: ShardWrite, epoch: int, timeout: float | None) -> None:
        self.started.set()
        self.release.wait(10)
        ids = w.ids.decode()
        names = [ids[u] for u in w.uid.tolist()]
        error = self.fail(names) if self.fail else None
        if error is not None:
            raise error
        self.sent.append(names)


def submit(writer: ShardWriter, pid: str, timeout: float | None = 10.0, **fields: Any):
    sch = schema()
    ids, columns, rejections = columns_of_records([{"profile_id": pid, **fields}])
    prepared = prepare(sch, ids, columns, rejections)
    (part,) = split(prepared.enc, SlotMap.even(1), 1, prepared.distinct)
    return writer.submit(part, prepared.batches, 1, timeout)


def test_writes_queued_during_an_apply_go_out_as_one_in_order_and_are_released_after_it():
    fake = FakeShard()
    writer = ShardWriter("fake", fake.send)
    first = submit(writer, "a")
    assert fake.started.wait(5)
    later = [submit(writer, pid, n=i) for i, pid in enumerate(["b", "c", "b"])]
    time.sleep(0.05)
    assert not first.done() and not any(f.done() for f in later)  # nothing acknowledged early
    fake.release.set()
    wait([first, *later], 10)
    assert fake.sent == [["a"], ["b", "c", "b"]]
    assert (writer.applies, writer.writes) == (2, 4)
    writer.close()


def test_a_failed_merged_apply_is_retried_write_by_write_so_only_the_culprit_fails():
    fake = FakeShard(fail=lambda names: BatchError("bad record") if "bad" in names else None)
    writer = ShardWriter("fake", fake.send)
    first = submit(writer, "a")
    assert fake.started.wait(5)
    good1, bad, good2 = (submit(writer, pid) for pid in ["b", "bad", "c"])
    fake.release.set()
    wait([first, good1, good2], 10)
    with pytest.raises(BatchError):
        bad.result(10)
    assert fake.sent == [["a"], ["b"], ["c"]]


def test_an_unreachable_shard_fails_the_whole_group_without_retries():
    calls = []

    def send(w, epoch, timeout):
        calls.append(len(w))
        fake.release.wait(10)
        raise Unavailable("shard down")
    fake = FakeShard()
    writer = ShardWriter("fake", send)
    futures = [submit(writer, "a")]
    time.sleep(0.05)
    futures += [submit(writer, pid) for pid in ["b", "c"]]
    fake.release.set()
    for f in futures:
        with pytest.raises(Unavailable):
            f.result(10)
    assert calls == [1, 2]


def test_a_write_whose_deadline_passed_while_queued_is_not_sent():
    fake = FakeShard()
    writer = ShardWriter("fake", fake.send)
    first = submit(writer, "a")
    assert fake.started.wait(5)
    late = submit(writer, "late", timeout=0.01)
    on_time = submit(writer, "b")
    time.sleep(0.05)
    fake.release.set()
    wait([first, on_time], 10)
    with pytest.raises(RemoteError) as e:
        late.result(10)
    assert e.value.code == grpc.StatusCode.DEADLINE_EXCEEDED
    assert fake.sent == [["a"], ["b"]]


def test_a_closed_writer_refuses_writes_and_fails_what_was_queued():
    fake = FakeShard()
    writer = ShardWriter("fake", fake.send)
    first = submit(writer, "a")
    assert fake.started.wait(5)
    queued = submit(writer, "b")
    writer.close()
    fake.release.set()
    first.result(10)
    with pytest.raises(Unavailable):
        queued.result(10)
    with pytest.raises(Unavailable):
        submit(writer, "c")


# ---- concurrent writers through a real router -------------------------------------------------
@pytest.fixture
def router():
    """A router over two in-process shards; every Apply is slowed by 20 ms so that
    concurrent writes queue behind it and merge."""
    shards = [app.build_shard() for _ in range(2)]
    for server, _, _ in shards:
        server.start()
    server, port, cluster = app.build_router([f"127.0.0.1:{p}" for _, p, _ in shards], segment_refresh_s=None)
    for shard_id in cluster.shards:
        w = cluster._writer(shard_id)
        w._send = _slowed(w._send)
    server.start()
    channel = grpc.insecure_channel(f"127.0.0.1:{port}")
    try:
        yield profile_store_pb2_grpc.ProfileStoreStub(channel), cluster
    finally:
        channel.close()
        server.stop(0).wait()
        cluster.close()
        for s, _, service in shards:
            s.stop(0).wait()
            service.close()


def _slowed(send):
    def slow(*args):
        time.sleep(0.02)
        send(*args)
    return slow


CLIENTS, CALLS = 6, 12


def client_batches(c: int) -> list[pb.UpsertRequest]:
    """Client c's calls: own ids (one per call) plus `c-last`, rewritten by every call
    with the call number, and (every third call) a record with a bad value at index 1."""
    out = []
    for k in range(CALLS):
        records = [{"profile_id": f"c{c}-{k}", "n": k, "city": f"city{c}"},
                   {"profile_id": f"c{c}-last", "n": k, "tags": [f"t{k}"]}]
        if k % 3 == 0:
            records.insert(1, {"profile_id": f"c{c}-bad{k}", "n": "not a number"})
        out.append(pb.UpsertRequest(profiles=codec.profiles_from_records(records)))
    return out


def test_concurrent_writers_every_acknowledged_row_present_errors_to_their_callers(router):
    stub, cluster = router
    stub.DefineFields(pb.DefineFieldsRequest(fields=[pb.FieldSpec(name="n", type="int")]), timeout=10)
    replies: dict[int, list[pb.UpsertResponse]] = {}

    def client(c: int) -> None:
        replies[c] = [stub.Upsert(r, timeout=30) for r in client_batches(c)]  # one call at a time
    threads = [threading.Thread(target=client, args=(c,)) for c in range(CLIENTS)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert sum(w.writes for w in cluster._writers.values()) > sum(w.applies for w in cluster._writers.values()), \
        "no write was merged: the test did not exercise the group commit"
    for c in range(CLIENTS):
        for k, reply in enumerate(replies[c]):
            bad = k % 3 == 0
            assert reply.accepted == 2
            assert [(e.index, e.field) for e in reply.errors] == ([(1, "n")] if bad else [])
        for k in range(CALLS):
            got = stub.GetProfile(pb.GetProfileRequest(profile_id=f"c{c}-{k}"), timeout=10).profile
            assert codec.python_of(got.fields["n"]) == k
        last = stub.GetProfile(pb.GetProfileRequest(profile_id=f"c{c}-last"), timeout=10).profile
        assert codec.python_of(last.fields["n"]) == CALLS - 1        # the client's last write won
        assert codec.python_of(last.fields["tags"]) == [f"t{CALLS - 1}"]
    count = stub.Query(pb.QueryRequest(sql="n >= 0"), timeout=10)
    assert count.rows[0].values[0].int_value == CLIENTS * (CALLS + 1)


def test_a_stream_keeps_its_order_while_its_batches_merge(router):
    stub, cluster = router
    requests = [pb.UpsertRequest(columns=codec.batch_from_columns(
        [f"s{i}" for i in range(k, k + 50)] + ["s-last"], {"n": list(range(k, k + 51))}))
        for k in range(0, 2000, 50)]
    reply = stub.UpsertStream(iter(requests), timeout=60)
    assert reply.accepted == 51 * len(requests) and not reply.errors
    last = stub.GetProfile(pb.GetProfileRequest(profile_id="s-last"), timeout=10).profile
    assert codec.python_of(last.fields["n"]) == 2000
    assert stub.Query(pb.QueryRequest(sql="n >= 0"), timeout=10).rows[0].values[0].int_value == 2001
