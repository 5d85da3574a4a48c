"""Watch streams represent long-lived WatchSegment calls: the router's fan-in of every
shard's stream, and the limit on how many a process serves at once.

A watch must never slow writes. Each shard's side only reads its bounded change log, so
back-pressure from a slow client (the gRPC send blocks, the router's bounded queue fills,
the router stops reading the shard stream) only delays that watcher; when it falls
behind the log, the shard ends its stream with OUT_OF_RANGE.
"""
from __future__ import annotations

import contextlib
import queue
import threading
from typing import Any, Iterator, Sequence

import grpc

from cdpcore.errors import Overloaded, Unavailable
from server.pb.cdp.v1 import profile_store_pb2 as pb
from server.shard_client import ShardClient

MAX_WATCHES = 64        # concurrent watch streams per process (each holds a server thread)
POLL_S = 0.25           # how often a waiting stream checks that its client is still there
QUEUE_MESSAGES = 64     # messages buffered between the shard streams and the client


class WatchLimit:
    """At most `limit` watch streams at once: each one holds a server worker thread for
    its whole life, and writes must always find a free one."""

    def __init__(self, limit: int = MAX_WATCHES) -> None:
        self._limit = limit
        self._free = threading.BoundedSemaphore(limit)

    @contextlib.contextmanager
    def slot(self) -> Iterator[None]:
        if not self._free.acquire(blocking=False):
            raise Overloaded(f"too many segment watchers (at most {self._limit} per process); "
                             "retry later")
        try:
            yield
        finally:
            self._free.release()


class SegmentFanIn:
    """One client's watch over every shard: a thread per shard stream feeding one bounded
    queue, read by the servicer. `cancel` (from any thread, e.g. the gRPC callback when
    the client goes away) stops the shard streams and the threads."""

    def __init__(self, clients: Sequence[ShardClient], calls: Sequence[Any]) -> None:
        self._calls = list(calls)
        self._queue: queue.Queue = queue.Queue(QUEUE_MESSAGES)
        self._stopped = threading.Event()
        for i, (client, call) in enumerate(zip(clients, calls)):
            threading.Thread(target=self._pump, args=(client, call), daemon=True,
                             name=f"cdp-watch-{i}").start()

    def cancel(self) -> None:
        self._stopped.set()
        for call in self._calls:
            call.cancel()
        with contextlib.suppress(queue.Full):   # wake the reader now (full: it is not waiting)
            self._queue.put_nowait((None, None))

    def __iter__(self) -> Iterator[pb.WatchSegmentResponse]:
        """The shards' messages as they come; their `initial_done` markers (each with its
        shard's position) become one, sent when the last shard's arrives. A shard's
        failure ends the watch with it."""
        waiting = len(self._calls)
        done = pb.WatchSegmentResponse(initial_done=True)
        try:
            while not self._stopped.is_set():
                try:
                    msg, error = self._queue.get(timeout=POLL_S)
                except queue.Empty:
                    continue
                if error is not None:
                    raise error
                if msg is None:
                    continue                    # cancel's wake-up
                if not msg.initial_done:
                    yield msg
                    continue
                done.positions.update(msg.positions)
                waiting -= 1
                if waiting == 0:
                    yield done
        finally:
            self.cancel()

    def _pump(self, client: ShardClient, call: Any) -> None:
        try:
            for msg in call:
                if not self._offer(msg, None):
                    return
            self._offer(None, Unavailable(f"shard {client.address} ended the watch"))
        except grpc.RpcError as e:
            if not self._stopped.is_set():
                self._offer(None, client.error_of(e))

    def _offer(self, msg: Any, error: Exception | None) -> bool:
        """Queue an item, waiting while the client is slow; False once cancelled."""
        while not self._stopped.is_set():
            try:
                self._queue.put((msg, error), timeout=POLL_S)
                return True
            except queue.Full:
                continue
        return False
