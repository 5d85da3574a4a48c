"""server.watch: the router's fan-in of shard watch streams, and the watch limit."""
from __future__ import annotations

import threading

import grpc
import pytest

from cdpcore.errors import Overloaded, Unavailable
from server.pb.cdp.v1 import profile_store_pb2 as pb
from server.status import RemoteError
from server.watch import SegmentFanIn, WatchLimit


class FakeError(grpc.RpcError):
    def __init__(self, code: grpc.StatusCode, details: str) -> None:
        self._code, self._details = code, details

    def code(self) -> grpc.StatusCode:
        return self._code

    def details(self) -> str:
        return self._details


class FakeClient:
    def __init__(self, address: str) -> None:
        self.address = address

    def error_of(self, e: grpc.RpcError) -> Exception:
        return RemoteError(e.code(), e.details())


class FakeCall:
    """A shard stream: the given messages (an exception ends it), then it stays open
    until cancelled, as a live watch does."""

    def __init__(self, items: list) -> None:
        self.items = items
        self.cancelled = threading.Event()

    def __iter__(self):
        for item in self.items:
            if isinstance(item, Exception):
                raise item
            yield item
        self.cancelled.wait()
        raise FakeError(grpc.StatusCode.CANCELLED, "cancelled")

    def cancel(self) -> None:
        self.cancelled.set()


def change(pid: str, shard: int, seq: int) -> pb.WatchSegmentResponse:
    return pb.WatchSegmentResponse(changes=[pb.SegmentChange(profile_id=pid, entered=True, shard=shard, seq=seq)])


def done(shard: int, position: int) -> pb.WatchSegmentResponse:
    return pb.WatchSegmentResponse(initial_done=True, positions={shard: position})


def fan_in(*streams: list) -> tuple[SegmentFanIn, list[FakeCall]]:
    calls = [FakeCall(s) for s in streams]
    return SegmentFanIn("s", [FakeClient(f"shard{i}") for i in range(len(calls))], calls), calls


def test_one_initial_done_with_every_shards_position_after_the_last_shards_marker():
    fan, calls = fan_in([change("a", 0, 4), done(0, 4), change("b", 0, 5)], [done(1, 9), change("c", 1, 10)])
    got = []
    for msg in fan:
        got.append(msg)
        if len(got) == 4:
            fan.cancel()
    markers = [m for m in got if m.initial_done]
    assert len(markers) == 1 and dict(markers[0].positions) == {0: 4, 1: 9} and not markers[0].changes
    ids = [c.profile_id for m in got for c in m.changes]
    assert sorted(ids) == ["a", "b", "c"] and ids.index("a") < ids.index("b")
    assert all(c.cancelled.is_set() for c in calls)


def test_a_shard_error_ends_the_watch_with_it_and_stops_the_others():
    fan, calls = fan_in([done(0, 0)], [FakeError(grpc.StatusCode.OUT_OF_RANGE, "changes lost")])
    with pytest.raises(RemoteError) as e:
        list(fan)
    assert e.value.code == grpc.StatusCode.OUT_OF_RANGE and "changes lost" in str(e.value)
    assert calls[0].cancelled.wait(5)


def test_a_shard_stream_that_ends_is_unavailable():
    class Ending(FakeCall):
        def __iter__(self):
            yield done(0, 0)
    fan = SegmentFanIn("s", [FakeClient("10.0.0.1:7101")], [Ending([])])
    with pytest.raises(Unavailable, match="10.0.0.1:7101"):
        list(fan)


def test_a_slow_reader_holds_the_pumps_back_without_losing_order():
    messages = [change(f"p{i}", 0, i + 1) for i in range(300)]   # several times the queue size
    fan, _ = fan_in([done(0, 0), *messages])
    seqs = []
    for msg in fan:
        seqs += [c.seq for c in msg.changes]
        if len(seqs) == 300:
            fan.cancel()
    assert seqs == list(range(1, 301))


class GatedCall(FakeCall):
    """A stream that sends its first items, then the rest only once `gate` is set."""

    def __init__(self, first: list, rest: list) -> None:
        super().__init__(first)
        self.rest = rest
        self.gate = threading.Event()

    def __iter__(self):
        yield from self.items
        self.gate.wait()
        yield from self.rest
        self.cancelled.wait()
        raise FakeError(grpc.StatusCode.CANCELLED, "cancelled")


def test_after_a_slot_flip_the_targets_changes_wait_for_the_sources_earlier_ones():
    """p left on shard 0 (seq 6) just before its slot moved to shard 1, then entered there:
    shard 0's stream is slow, yet the client gets the exit before the enter."""
    source = GatedCall([done(0, 5)], [pb.WatchSegmentResponse(changes=[
        pb.SegmentChange(profile_id="p", entered=False, shard=0, seq=6)])])
    target = GatedCall([done(1, 0)], [change("p", 1, 1)])
    fan = SegmentFanIn("s", [FakeClient("a"), FakeClient("b")], [source, target])
    fan.barrier(0, 6, 1)
    got = []
    for msg in fan:
        got += [(c.shard, c.entered) for c in msg.changes]
        if msg.initial_done:
            target.gate.set()                                # the target's post-flip change comes first,
            threading.Timer(0.3, source.gate.set).start()   # the source's pre-flip one later
        if len(got) == 2:
            fan.cancel()
    assert got == [(0, False), (1, True)]


def test_the_watch_limit_refuses_past_its_size_and_frees_on_exit():
    limit = WatchLimit(2)
    with limit.slot(), limit.slot():
        with pytest.raises(Overloaded, match="at most 2"):
            with limit.slot():
                pass
    with limit.slot(), limit.slot():
        pass
