"""Coalesce represents the router's group commit of profile writes, one queue per shard.

A small Upsert costs a shard far more in fixed work than in rows: one gRPC call plus a
few numpy steps per field, ~1 ms for 50 rows, where a 5,000-row Apply costs ~1 µs a row
(bench/RESULTS.md). So each shard gets a `ShardWriter`: one Apply in flight at a time,
and the writes that arrive meanwhile wait and then go out together, merged into one
batch (`routing.merge_writes`, records in arrival order so later writes win) which the
shard applies, and logs, as one.

Guarantees, each pinned by tests/server/test_coalesce.py:
- a caller is released only after the Apply carrying its rows succeeded on the shard;
- writes reach a shard in the order they were queued (a caller queues on every shard
  before it waits, in the order it was called);
- a failed merged Apply is retried write by write, so a shard error reaches only the
  writes that cause it; except when the shard is unreachable or the deadline passed,
  which every write of the group shares;
- a write whose caller's deadline passed before it was sent is not sent at all.
Record errors (validation) never get here: the router found them per call, before.
"""
from __future__ import annotations

import threading
import time
from collections import deque
from concurrent.futures import Future
from concurrent.futures import TimeoutError as FutureTimeout
from dataclasses import dataclass, field
from typing import Callable

import grpc

from cdpcore.coerce import FieldBatch
from cdpcore.errors import Unavailable
from cdpcore.routing import ShardPart, ShardWrite, merge_writes
from server.shard_client import NO_DEADLINE
from server.status import RemoteError

MAX_GROUP_RECORDS = 200_000   # records per merged Apply: bounds the message and the pause

Send = Callable[[ShardWrite, int, "float | None"], None]  # (write, epoch, timeout)


@dataclass(eq=False)
class _Queued:
    part: ShardPart
    batches: list[FieldBatch]
    epoch: int
    deadline: float | None            # time.monotonic(); None: none
    done: Future = field(default_factory=Future)

    def __len__(self) -> int:
        return len(self.part.uid)

    def write(self) -> ShardWrite:
        """Gathered here, on the writer's thread, not on the caller's."""
        return ShardWrite(self.part.ids(), self.part.uid, self.part.batches(self.batches))


class ShardWriter:
    """The write queue of one shard. Thread-safe; its sender thread starts on first use."""

    def __init__(self, name: str, send: Send, max_records: int = MAX_GROUP_RECORDS) -> None:
        """`send(write, epoch, timeout)` makes one Apply call and raises if it failed."""
        self.name = name
        self._send = send
        self._max_records = max_records
        self._queue: deque[_Queued] = deque()
        self._cond = threading.Condition()
        self._thread: threading.Thread | None = None
        self._closed = False
        self.applies = 0      # Apply calls sent (a merged one counts once)
        self.writes = 0       # writes those calls carried

    def submit(self, part: ShardPart, batches: list[FieldBatch], epoch: int,
               timeout: float | None) -> Future:
        """Queue one part of a write; the future is done when the shard applied it."""
        deadline = None if _unbounded(timeout) else time.monotonic() + timeout
        item = _Queued(part, batches, epoch, deadline)
        with self._cond:
            if self._closed:
                raise Unavailable(f"the router is stopping: no more writes to {self.name}")
            self._queue.append(item)
            if self._thread is None:
                self._thread = threading.Thread(target=self._run, name=f"cdp-write-{self.name}", daemon=True)
                self._thread.start()
            self._cond.notify()
        return item.done

    def close(self) -> None:
        """Stop taking writes; those still queued fail with Unavailable."""
        with self._cond:
            self._closed = True
            self._cond.notify_all()

    def _run(self) -> None:
        while (group := self._next_group()) is not None:
            self._deliver(group)

    def _next_group(self) -> list[_Queued] | None:
        """Everything queued (same slot-map epoch, up to max_records), once there is any."""
        with self._cond:
            while not self._queue and not self._closed:
                self._cond.wait()
            if self._closed:
                _fail(list(self._queue), Unavailable(f"the router stopped before writing to {self.name}"))
                self._queue.clear()
                return None
            group = [self._queue.popleft()]
            size = len(group[0])
            while (self._queue and self._queue[0].epoch == group[0].epoch
                   and size + len(self._queue[0]) <= self._max_records):
                group.append(self._queue.popleft())
                size += len(group[-1])
        return group

    def _deliver(self, group: list[_Queued]) -> None:
        group = _drop_expired(group)
        if not group:
            return
        try:
            self.applies += 1
            self._send(merge_writes([q.write() for q in group]), group[0].epoch, _timeout_of(group))
        except Exception as e:  # noqa: BLE001 - every outcome goes to the callers
            if len(group) > 1 and not _shared(e):
                for q in group:
                    self._deliver([q])
                return
            _fail(group, e)
            return
        self.writes += len(group)
        for q in group:
            q.done.set_result(None)


def wait(futures: list[Future], timeout: float | None) -> None:
    """Wait for queued writes (the first failure is raised, after all finished or the
    deadline passed)."""
    deadline = None if _unbounded(timeout) else time.monotonic() + timeout
    errors = []
    for f in futures:
        left = None if deadline is None else max(0.0, deadline - time.monotonic())
        try:
            f.result(left)
        except FutureTimeout:
            errors.append(_deadline_error())
        except Exception as e:  # noqa: BLE001 - raised below, after the others finished
            errors.append(e)
    if errors:
        raise errors[0]


def _unbounded(timeout: float | None) -> bool:
    """No deadline (a caller without one has ~2**63 µs "remaining")."""
    return timeout is None or timeout > NO_DEADLINE


def _timeout_of(group: list[_Queued]) -> float | None:
    """The latest deadline of the group (None if any has none): a short deadline of one
    caller must not fail the others' rows."""
    if any(q.deadline is None for q in group):
        return None
    return max(q.deadline for q in group) - time.monotonic()


def _drop_expired(group: list[_Queued]) -> list[_Queued]:
    now = time.monotonic()
    late = [q for q in group if q.deadline is not None and q.deadline <= now]
    _fail(late, _deadline_error())
    return [q for q in group if q not in late] if late else group


def _shared(e: Exception) -> bool:
    """Failures every write of a group shares (retrying them one by one cannot help)."""
    return isinstance(e, Unavailable) or (
        isinstance(e, RemoteError) and e.code == grpc.StatusCode.DEADLINE_EXCEEDED)


def _deadline_error() -> RemoteError:
    return RemoteError(grpc.StatusCode.DEADLINE_EXCEEDED, "deadline exceeded before the write was applied")


def _fail(items: list[_Queued], error: Exception) -> None:
    for q in items:
        q.done.set_exception(error)
