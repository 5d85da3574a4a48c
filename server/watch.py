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
from typing import Any, Callable, Iterator, Sequence

import grpc

from cdpcore.errors import Overloaded, Unavailable
from server.pb.cdp.v1 import profile_store_pb2 as pb
from server.shard_client import ShardClient

MAX_WATCHES = 64        # concurrent watch streams per process (each holds a server thread)
POLL_S = 0.25           # how often a waiting stream checks that its client is still there
QUEUE_MESSAGES = 64     # messages buffered between the shard streams and the client
RETIRE_QUIET_S = 2.0    # a removed shard's stream ends after this long without a message


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
    the client goes away) stops the shard streams and the threads.

    Shards come and go while a watch runs (cdp cluster add-shard / remove-shard): `add`
    starts the stream of a joining shard (its log starts empty: the profiles it was
    copied entered silently), `retire` ends a leaving shard's stream once it has sent
    all it had (it owns nothing any more, so nothing new is logged there)."""

    def __init__(self, name: str, clients: Sequence[ShardClient], calls: Sequence[Any]) -> None:
        self.name = name
        self._calls: dict[int, Any] = {}
        self._retired: set[int] = set()
        self._queue: queue.Queue = queue.Queue(QUEUE_MESSAGES)
        self._stopped = threading.Event()
        self._lock = threading.Lock()
        self._moved = threading.Condition(self._lock)
        self._waiting = len(calls)   # initial_done markers still to come
        self._sent: dict[int, int] = {}          # shard id → highest seq queued to the client
        self._ended: set[int] = set()            # shards whose stream is over
        self._barriers: list[tuple[int, int, int]] = []   # (source, seq, target) of slot flips
        for client, call in zip(clients, calls):
            self._start(client, call)

    def add(self, client: ShardClient, call: Any) -> None:
        """Watch one more shard, from the start of its log."""
        with self._lock:
            if self._stopped.is_set():
                call.cancel()
                return
            self._waiting += 1
            self._start(client, call)

    def barrier(self, source: int, seq: int, target: int) -> None:
        """Slots moved from `source` to `target` when the source's log was at `seq`: the
        target's later changes wait until the source's changes up to `seq` are sent, so a
        profile's change before the move never reaches the client after one made after it."""
        with self._moved:
            self._barriers.append((source, seq, target))

    def _hold_for_moves(self, shard_id: int) -> None:
        """Block this shard's stream while a barrier on it is unmet (see `barrier`); a
        source whose stream ended releases it (a failed stream ends the whole watch)."""
        with self._moved:
            while not self._stopped.is_set():
                self._barriers = [b for b in self._barriers
                                  if b[0] not in self._ended and self._sent.get(b[0], 0) < b[1]]
                if not any(t == shard_id for _, _, t in self._barriers):
                    return
                self._moved.wait(POLL_S)

    def _note_sent(self, shard_id: int, msg: Any) -> None:
        seqs = [c.seq for c in msg.changes]
        if msg.initial_done and shard_id in msg.positions:
            seqs.append(msg.positions[shard_id])
        if seqs:
            with self._moved:
                self._sent[shard_id] = max(self._sent.get(shard_id, 0), *seqs)
                self._moved.notify_all()

    def retire(self, shard_id: int) -> None:
        """Stop a drained shard's stream once it goes quiet (its log is complete)."""
        self._retired.add(shard_id)

    def _start(self, client: ShardClient, call: Any) -> None:
        shard_id = getattr(client, "shard_id", len(self._calls))
        self._calls[shard_id] = call
        threading.Thread(target=self._pump, args=(client, call, shard_id), daemon=True,
                         name=f"cdp-watch-{shard_id}").start()

    def cancel(self) -> None:
        self._stopped.set()
        with self._lock:
            calls = list(self._calls.values())
        for call in calls:
            call.cancel()
        with contextlib.suppress(queue.Full):   # wake the reader now (full: it is not waiting)
            self._queue.put_nowait((None, None))

    def __iter__(self) -> Iterator[pb.WatchSegmentResponse]:
        """The shards' messages as they come; their `initial_done` markers (each with its
        shard's position) become one, sent when the last shard's arrives. A shard's
        failure ends the watch with it."""
        done = pb.WatchSegmentResponse(initial_done=True)
        sent_done = False
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
                with self._lock:
                    self._waiting -= 1
                    ready = self._waiting == 0 and not sent_done
                if ready:   # a shard that joins later starts at its log's beginning: no marker
                    sent_done = True
                    yield done
        finally:
            self.cancel()

    def _pump(self, client: ShardClient, call: Any, shard_id: int) -> None:
        try:
            for msg in _until_quiet_after_retired(call, lambda: shard_id in self._retired):
                if msg.changes and not msg.changes[0].initial:
                    self._hold_for_moves(shard_id)
                if not self._offer(msg, None):
                    return
                self._note_sent(shard_id, msg)
            if shard_id not in self._retired:
                self._offer(None, Unavailable(f"shard {client.address} ended the watch"))
        except grpc.RpcError as e:
            if not self._stopped.is_set() and shard_id not in self._retired:
                self._offer(None, client.error_of(e))
        finally:
            with self._moved:
                self._ended.add(shard_id)
                self._moved.notify_all()
            if shard_id in self._retired:
                call.cancel()

    def _offer(self, msg: Any, error: Exception | None) -> bool:
        """Queue an item, waiting while the client is slow; False once cancelled."""
        while not self._stopped.is_set():
            try:
                self._queue.put((msg, error), timeout=POLL_S)
                return True
            except queue.Full:
                continue
        return False


def _until_quiet_after_retired(call: Any, retired: Callable[[], bool]) -> Iterator[Any]:
    """The stream's messages; once the shard is retired, the stream ends at the first
    RETIRE_QUIET_S without a message (a drained shard has sent everything it logged)."""
    box: queue.Queue = queue.Queue(1)
    done = threading.Event()

    def put(item: tuple) -> bool:
        while not done.is_set():
            try:
                box.put(item, timeout=POLL_S)
                return True
            except queue.Full:
                continue
        return False

    def read() -> None:
        try:
            for msg in call:
                if not put((msg, None)):
                    return
            put((None, None))
        except grpc.RpcError as e:
            put((None, e))
    threading.Thread(target=read, daemon=True, name="cdp-watch-read").start()
    try:
        while True:
            try:
                msg, error = box.get(timeout=RETIRE_QUIET_S if retired() else POLL_S)
            except queue.Empty:
                if retired():
                    return
                continue
            if error is not None:
                raise error
            if msg is None:
                return
            yield msg
    finally:
        done.set()
