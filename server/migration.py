"""Migration represents an AddShard or RemoveShard in progress: slots moving between shards.

The router plans which slots move where (an even share for a new shard; a removed
shard's slots spread evenly over the rest) and moves them one batch at a time, while
clients keep writing and querying:

1. the target drops any leftover copy of the batch (an earlier attempt);
2. the source exports the batch's profiles and events at one instant and starts
   capturing later writes to those slots (cdpcore.migration); the target pulls the
   parts straight from the source (PullSlots: the data never pass through the router)
   and imports them as foreign rows: kept, logged, invisible;
3. catch-up rounds replay the captured writes on the target until few remain;
4. the flip, under the slot-map lock held exclusively (writes and queries wait a few
   milliseconds): the last captured writes, the new map (epoch + 1, persisted), the
   target and source told their new slots;
5. the source drops its copy, now foreign to it.

A failure before the flip rolls the batch back (the target drops its copy, the
source stops capturing); the batch is tried again a few times, then the migration
stops with the error in its status (the slots already moved stay moved; running the
same command again resumes). The state file records the migration in progress, so a
router that crashed resumes it when it restarts, after dropping the copies its
shards hold of slots they do not own (a half-copied batch).
"""
from __future__ import annotations

import logging
import queue
import threading
import time
import uuid
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Callable, Iterator, TypeVar

import numpy as np

from cdpcore.errors import BatchError, FailedPrecondition
from cdpcore.slots import N_SLOTS
from server.pb.cdp.v1 import shard_pb2 as pb

if TYPE_CHECKING:
    from server.cluster import Cluster
    from server.shard_client import ShardClient

log = logging.getLogger("cdp.migration")
T = TypeVar("T")

BATCH_SLOTS = 512          # slots per batch (~3% of the keyspace per flip): each batch scans the source's event chunks once
CATCH_UP_ROUNDS = 8        # rounds before the flip replays the rest under the lock
CATCH_UP_SMALL = 2_000     # captured records few enough to replay under the lock
BATCH_ATTEMPTS = 3
FLIP_WAIT_S = 2.0          # longest the flip waits for routed calls to finish (writes queue meanwhile)
FLIP_ATTEMPTS = 30
PREFETCH_PARTS = 2         # exported parts read ahead of the target's imports
RETRY_PAUSE_S = 1.0


@dataclass
class Move:
    source: int            # shard ids
    target: int
    slots: np.ndarray


@dataclass
class Progress:
    """What `cdp cluster status` shows of the running (or last) migration."""
    kind: str              # "add" | "remove"
    shard: str             # the address added or removed
    slots_total: int
    state: str = "running"
    slots_moved: int = 0
    slots_moving: int = 0
    profiles_copied: int = 0
    events_copied: int = 0
    error: str = ""
    started: float = field(default_factory=time.monotonic)
    finished: float | None = None

    @property
    def seconds(self) -> float:
        return (self.finished or time.monotonic()) - self.started

    @property
    def profiles_per_second(self) -> float:
        return self.profiles_copied / self.seconds if self.seconds > 0 else 0.0


def even_quotas(counts: dict[int, int], last: int | None = None) -> dict[int, int]:
    """Slots each shard should own for an even split (the larger shares go to the
    shards that own most now, so the fewest slots move; never to `last`, a shard being
    filled, so planning again after a partial add asks for the same share)."""
    base, extra = divmod(N_SLOTS, len(counts))
    ranked = sorted(counts, key=lambda s: (s == last, -counts[s], s))
    return {s: base + (1 if i < extra else 0) for i, s in enumerate(ranked)}


def plan_add(owners: np.ndarray, target: int) -> list[Move]:
    """Moves giving a shard (new, or short after an interrupted add) an even share,
    taken from the shards over their quota; none when it has its share."""
    counts = _counts(owners)
    counts.setdefault(target, 0)
    quotas = even_quotas(counts, last=target)
    if counts[target] >= quotas[target]:
        return []
    need = quotas[target] - counts[target]
    gives: dict[int, int] = {}
    for s in sorted(counts, key=lambda s: quotas[s] - counts[s]):   # the largest surplus first
        if s != target and counts[s] > quotas[s] and need > 0:
            gives[s] = min(counts[s] - quotas[s], need)
            need -= gives[s]
    return [Move(s, target, np.flatnonzero(owners == s)[-n:]) for s, n in gives.items()]


def _counts(owners: np.ndarray) -> dict[int, int]:
    return {int(s): int(c) for s, c in zip(*np.unique(owners, return_counts=True))}


def plan_remove(owners: np.ndarray, leaving: int) -> list[Move]:
    """Moves spreading a leaving shard's slots over the others, up to even shares."""
    counts = {s: c for s, c in _counts(owners).items() if s != leaving}
    quotas = even_quotas(counts)
    slots = np.flatnonzero(owners == leaving)
    moves, start = [], 0
    for s in sorted(counts, key=lambda s: counts[s]):
        take = max(0, quotas[s] - counts[s])
        if take:
            moves.append(Move(leaving, s, slots[start:start + take]))
        start += take
    if start < len(slots):    # rounding: the rest to the smallest
        moves.append(Move(leaving, min(counts, key=lambda s: counts[s]), slots[start:]))
    return moves


def in_batches(moves: list[Move], size: int) -> list[Move]:
    """The moves cut into batches of `size` slots, round-robin over the moves, so each
    shard's extra load is spread over the run."""
    queues = [[Move(m.source, m.target, m.slots[i:i + size]) for i in range(0, len(m.slots), size)]
              for m in moves]
    out: list[Move] = []
    while any(queues):
        for q in queues:
            if q:
                out.append(q.pop(0))
    return out


class Migrator:
    """Runs one migration at a time, in a background thread."""

    def __init__(self, cluster: "Cluster", batch_slots: int = BATCH_SLOTS) -> None:
        self.cluster = cluster
        self.batch_slots = batch_slots
        self.progress: Progress | None = None
        self._lock = threading.Lock()
        self._thread: threading.Thread | None = None

    def running(self) -> bool:
        return self._thread is not None and self._thread.is_alive()

    def start(self, kind: str, address: str, moves: list[Move],
              finish: Callable[[], None]) -> Progress:
        """Run `moves`, then `finish` (under no lock); refused while another runs."""
        with self._lock:
            if self.running():
                p = self.progress
                raise FailedPrecondition(f"a migration is running ({p.kind} {p.shard}, "
                                         f"{p.slots_moved}/{p.slots_total} slots moved); wait for it")
            self.progress = Progress(kind, address, sum(len(m.slots) for m in moves))
            self._thread = threading.Thread(target=self._run, args=(self.progress, moves, finish),
                                            name="cdp-migration", daemon=True)
            self._thread.start()
            return self.progress

    def _run(self, progress: Progress, moves: list[Move], finish: Callable[[], None]) -> None:
        try:
            for batch in in_batches(moves, self.batch_slots):
                self._move_with_retries(progress, batch)
            finish()
            progress.state = "done"
            log.info("%s %s done: %d slots, %d profiles in %.1f s", progress.kind, progress.shard,
                     progress.slots_moved, progress.profiles_copied, progress.seconds)
        except Exception as e:  # noqa: BLE001 - shown in the status; the batch was rolled back
            progress.state, progress.error = "failed", str(e)
            log.error("%s %s failed: %s", progress.kind, progress.shard, e)
        finally:
            progress.slots_moving = 0
            progress.finished = time.monotonic()

    def _move_with_retries(self, progress: Progress, move: Move) -> None:
        """A batch that failed was rolled back; try it again a few times (a shard that
        restarted or a capture that overflowed) before giving up."""
        for attempt in range(1, BATCH_ATTEMPTS + 1):
            try:
                self._move(progress, move)
                return
            except Exception as e:  # noqa: BLE001 - retried, then raised
                if attempt == BATCH_ATTEMPTS:
                    raise
                log.warning("moving %d slots (attempt %d): %s; retrying", len(move.slots), attempt, e)
                time.sleep(RETRY_PAUSE_S * attempt)

    def _flip(self, move: Move, source: "ShardClient", target: "ShardClient", name: str) -> None:
        """Catch up, then flip under the exclusive map lock. A long stream holding the
        map (ListIds, ExportSegment) makes the flip give way after FLIP_WAIT_S rather
        than stall every client queued behind it; it catches up again and retries."""
        for attempt in range(1, FLIP_ATTEMPTS + 1):
            for _ in range(CATCH_UP_ROUNDS):
                if _replay(source, target, name, end=False) < CATCH_UP_SMALL:
                    break
            try:
                with self.cluster.map_lock.exclusive(FLIP_WAIT_S):
                    _replay(source, target, name, end=True)
                    self.cluster.commit_move(move.slots, move.source, move.target)
                    return
            except TimeoutError:
                if attempt == FLIP_ATTEMPTS:
                    raise
                log.info("flip of %d slots gave way to a long stream (attempt %d)", len(move.slots), attempt)

    def _move(self, progress: Progress, move: Move) -> None:
        cluster = self.cluster
        source, target = cluster.shards[move.source], cluster.shards[move.target]
        slots = move.slots.tolist()
        name = uuid.uuid4().hex
        progress.slots_moving = len(slots)
        target.call("DropSlots", pb.DropSlotsRequest(slots=slots))
        try:
            copied = target.call("PullSlots", pb.PullSlotsRequest(source=source.address, slots=slots,
                                                                  migration=name))
            progress.profiles_copied += copied.profiles
            progress.events_copied += copied.events
            self._flip(move, source, target, name)
        except Exception:
            _roll_back(source, target, name, slots)
            raise
        progress.slots_moved += len(slots)
        progress.slots_moving = 0
        try:   # the batch is committed: a copy left here is dropped before the next migration
            source.call("DropSlots", pb.DropSlotsRequest(slots=slots))
        except Exception as e:  # noqa: BLE001 - invisible meanwhile (foreign rows)
            log.warning("dropping %d moved slots from %s: %s", len(slots), source.address, e)


def prefetched(items: Iterator[T], depth: int) -> Iterator[T]:
    """The items of an iterator, read ahead by a thread up to `depth` items; closing the
    generator stops the thread (it never blocks for good on a full queue)."""
    q: queue.Queue = queue.Queue(depth)
    stop = threading.Event()
    end = object()

    def put(item: object) -> bool:
        while not stop.is_set():
            try:
                q.put(item, timeout=0.1)
                return True
            except queue.Full:
                continue
        return False

    def pump() -> None:
        try:
            for item in items:
                if not put(item):
                    return
            put(end)
        except BaseException as e:  # noqa: BLE001 - handed to the consumer
            put(e)
    threading.Thread(target=pump, daemon=True, name="cdp-prefetch").start()
    try:
        while True:
            item = q.get()
            if item is end:
                return
            if isinstance(item, BaseException):
                raise item
            yield item
    finally:
        stop.set()


def _replay(source: "ShardClient", target: "ShardClient", name: str, end: bool) -> int:
    """Apply the writes captured since the last round on the target; how many records."""
    ops = source.call("CatchUp", pb.CatchUpRequest(migration=name, end=end))
    if ops.ops:
        target.call("Import", ops)
    return ops.profiles


def _roll_back(source: "ShardClient", target: "ShardClient", name: str, slots: list[int]) -> None:
    """Undo a batch that did not flip: stop the capture, drop the target's copy (best
    effort: a shard that is down drops leftovers when the batch is retried)."""
    for call in (lambda: source.call("CatchUp", pb.CatchUpRequest(migration=name, end=True)),
                 lambda: target.call("DropSlots", pb.DropSlotsRequest(slots=slots))):
        try:
            call()
        except Exception as e:  # noqa: BLE001 - logged; the original error is raised
            log.warning("rolling back a slot batch: %s", e)


def check_candidate(status: pb.ShardStatusResponse, address: str, cluster_id: str) -> None:
    """Why a shard cannot join this cluster, as an INVALID_ARGUMENT."""
    if status.cluster_id and status.cluster_id != cluster_id:
        raise BatchError(f"{address} holds data of another cluster ({status.cluster_id})")
    if status.slots or status.profiles or status.foreign:
        raise BatchError(f"{address} is not empty ({len(status.slots)} slots, "
                         f"{status.profiles + status.foreign} profiles): start a fresh shard")
