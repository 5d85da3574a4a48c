"""Cluster represents the router's view of the shards: clients, slot map and schemas.

It runs the engine's own write paths (`ingest.write` for profiles,
`tracking.write_events` for events: validate, declare, split by slot) and ships each
shard its part; queries are parsed here once (so errors come back fast and positioned),
executed on every shard in parallel, and merged by the engine's reducer. The public
servicers are thin layers over these methods.

Saved segments: the router holds the catalog (definitions compiled against the cluster's
schemas, checked for names, dependencies and cycles); shards hold each segment's members
and change log, kept current by every write they apply. A restarted router learns the
definitions back from the shards, and a refresh timer re-binds the time-dependent ones.

Restarted shards: a shard process that comes back (from its data directory, or empty)
owns no slots until told. Each ShardClient is marked stale when a call finds its shard
unavailable, and its next call first runs `_resync`: the shard gets its slots, the
schema and any saved segment it lacks, exactly what `connect` gives every shard.
"""
from __future__ import annotations

import contextlib
import logging
import re
import threading
import time
import weakref
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Collection, Iterator, Mapping

import numpy as np

from cdpcore import routing, tracking, wire
from cdpcore.errors import BatchError, FailedPrecondition, ProfileNotFound, QueryError, Unavailable
from cdpcore.ingest import PreparedBatch, Rejections, write
from cdpcore.query import reduce as rd
from cdpcore.query import compile_select, compile_where, event_warnings
from cdpcore.query.reduce import Partial
from cdpcore.query.ir import Predicate
from cdpcore.schema import Schema
from cdpcore.periodic import Periodic
from cdpcore.segments import DEFAULT_REFRESH_S, SegmentCatalog, SegmentDef, SegmentInfo
from cdpcore.slots import N_SLOTS, SlotMap
from cdpcore.store import DeleteResult, QueryResult, TrackResult, UpsertResult
from cdpcore.tracking import EventSchema
from server.pb.cdp.v1 import profile_store_pb2 as ps
from server.pb.cdp.v1 import shard_pb2 as pb
from server.cluster_state import ClusterState
from server.coalesce import ShardWriter
from server.coalesce import wait as wait_written
from server.map_lock import MapLock
from server.migration import BATCH_SLOTS, Migrator, Progress, check_candidate, plan_add, plan_remove
from server.shard_client import ShardClient
from server.watch import RETIRE_QUIET_S, SegmentFanIn

log = logging.getLogger("cdp.server")


@dataclass
class ShardHealth:
    address: str
    healthy: bool
    error: str = ""
    slots: list[int] | None = None
    profiles: int = 0
    memory_bytes: int = 0
    fsync: str = ""            # "" : memory only
    data_dir: str = ""
    recovery: str = ""
    shard_id: int = 0


@dataclass
class ShardSnapshot:
    address: str
    file: str
    lsn: int
    seconds: float


Defer = Callable[[Callable[[], None]], None]


class Cluster:
    """Safe for concurrent use: the schemas lock themselves, clients are thread-safe."""

    def __init__(self, addresses: list[str], clock: Callable[[], float] = time.time,
                 segment_refresh_s: float | None = DEFAULT_REFRESH_S,
                 state_path: Path | None = None, move_batch: int | None = None) -> None:
        """`segment_refresh_s`: how often time-dependent segments are re-evaluated (None:
        never); `state_path`: the router's state file (shards and slot map), read at
        start when it exists and rewritten at every change (None: kept in memory);
        `move_batch`: slots moved per step when shards are added or removed."""
        self.state_path = state_path
        saved = ClusterState.load(state_path) if state_path is not None else None
        if saved is None and not addresses:
            raise ValueError("a cluster needs at least one shard address")
        self.state = saved or ClusterState.fresh(addresses)
        self._saved_state = saved is not None
        self._listed = [] if saved is None else addresses   # to match against the state's shards
        self.shards: dict[int, ShardClient] = {i: self._client(i, a) for i, a in self.state.shards.items()}
        self.map_lock = MapLock()
        self._watches: weakref.WeakSet[SegmentFanIn] = weakref.WeakSet()   # running watches
        self.migrator = Migrator(self, move_batch or BATCH_SLOTS)
        self._operation = threading.Lock()   # add/remove: check, join and start as one step
        self.schema = Schema()
        self.events = EventSchema()     # event property types and the types ever tracked
        self.segments = SegmentCatalog()
        self._clock = clock
        # Each fan-out holds one thread per shard for the length of a shard call, and the
        # router serves up to 32 calls at once (app.py), so size for that, not for cores.
        self._pool = ThreadPoolExecutor(max_workers=32 * max(4, len(self.shards)), thread_name_prefix="cdp-fanout")
        self._ddl = threading.Lock()    # segment create/delete/refresh, one at a time
        self._refresher = Periodic(self.refresh_segments, segment_refresh_s)
        # upserts to a shard go through its writer: concurrent ones become one Apply
        self._writers: dict[int, ShardWriter] = {}
        self._writers_lock = threading.Lock()

    def _client(self, shard_id: int, address: str) -> ShardClient:
        client = ShardClient(address, resync=self._resync)
        client.shard_id = shard_id
        return client

    @property
    def clients(self) -> list[ShardClient]:
        """The member shards, for fan-outs (a copy: shards may join or leave meanwhile)."""
        return list(self.shards.values())

    @property
    def slot_map(self) -> SlotMap:
        return self.state.slot_map

    def close(self) -> None:
        self._refresher.stop()
        for w in self._writers.values():
            w.close()
        self._pool.shutdown(wait=False)
        for c in self.clients:
            c.close()

    def connect(self) -> None:
        """Give every shard its slots and agree on one schema (the union of theirs); learn
        the event properties and types the shards hold (a restarted router must not
        accept a property of the other type, nor warn about types already tracked)."""
        if self._saved_state:
            self._check_saved_state()
        else:
            self.state.slot_map = self._agreed_slot_map()
            self._save_state()
        for client in self.clients:
            self._assign(client)
        for reply in self._fanout(lambda c: c.call("Schema", pb.ShardStatusRequest()), self.clients):
            self.schema.declare(wire.unpack(reply.fields))
            self.events.declare(wire.unpack(reply.event_properties) if reply.event_properties else {})
            self.events.note_types(reply.event_types)
        if self.schema.fields():
            self.define(self.schema.to_dict())
        self._learn_segments()
        self._drop_leftovers()
        if self.state.migration is not None:
            with self._operation:
                self._resume(self.state.migration)

    def _drop_leftovers(self) -> None:
        """Copies of slots a shard does not own, left by a migration that stopped (the
        router or a shard crashed mid-batch): no migration runs now, so they are garbage."""
        def drop(client: ShardClient) -> None:
            if client.call("Status", pb.ShardStatusRequest()).foreign:
                others = np.flatnonzero(self.slot_map.owners != client.shard_id).tolist()
                dropped = client.call("DropSlots", pb.DropSlotsRequest(slots=others)).dropped
                log.info("shard %s: dropped %d profiles left by an interrupted migration",
                         client.address, dropped)
        self._fanout(drop, self.clients)

    def _resume(self, migration: dict) -> None:
        shard_id = int(migration["shard"])
        address = self.state.shards[shard_id]
        log.info("resuming the interrupted %s of shard %s", migration["kind"], address)
        if migration["kind"] == "add":
            self._start_migration("add", shard_id, plan_add(self.slot_map.owners, shard_id))
        else:
            self._start_migration("remove", shard_id, plan_remove(self.slot_map.owners, shard_id))

    def _agreed_slot_map(self) -> SlotMap:
        """The slot map the shards already hold (persistent shards remember theirs), or an
        even one for fresh shards. A router restarted with its shards listed in another
        order adopts their map; one whose shards disagree with any map refuses to start,
        since serving would read every profile under the wrong shard."""
        replies = self._fanout(lambda c: c.call("Status", pb.ShardStatusRequest()), self.clients)
        clusters = {r.cluster_id for r in replies if r.cluster_id}
        if len(clusters) > 1:
            raise FailedPrecondition(f"these shards hold data of {len(clusters)} different clusters")
        if clusters:   # a router restarted without its state file: the shards' cluster
            self.state.cluster_id = clusters.pop()
        held = [np.asarray(r.slots, dtype=np.int64) for r in replies]
        even = SlotMap.even(len(self.clients))
        if not any(len(h) for h in held):
            return even
        owners = np.full(N_SLOTS, -1, dtype=np.int64)
        for i, slots in enumerate(held):
            owners[slots[owners[slots] == -1]] = i
        if all(len(h) for h in held) and (owners >= 0).all() and sum(map(len, held)) == N_SLOTS:
            return SlotMap(owners, epoch=max(r.epoch for r in replies))
        for i, slots in enumerate(held):
            if len(slots) and not np.array_equal(np.sort(slots), even.slots_of_shard(i)):
                raise FailedPrecondition(
                    f"shard {self.clients[i].address} holds {len(slots)} slots that do not fit "
                    f"a map over these {len(self.clients)} shards: list the shards as before "
                    "(same set), or start the router with the state file it wrote (--state)")
        return even

    def _check_saved_state(self) -> None:
        """A router restarted from its state file: shards listed on the command line that
        the file knows under another address (a restarted `cdp serve` gives its shards
        new ports) are found by the slots they hold; an epoch newer than the file's
        means the file is stale (serving would read profiles under the wrong shards)."""
        known = set(self.state.shards.values())
        for address in [a for a in self._listed if a not in known]:
            probe = ShardClient(address)
            try:
                status = probe.call("Status", pb.ShardStatusRequest())
            finally:
                probe.close()
            found = [i for i in self.shards
                     if status.slots and np.array_equal(np.sort(np.asarray(status.slots)),
                                                        self.slot_map.slots_of_shard(i))]
            if not found or status.cluster_id != self.state.cluster_id:
                raise FailedPrecondition(f"shard {address} is not in the state file {self.state_path}: "
                                         "add shards with `cdp cluster add-shard`")
            self.shards[found[0]].close()
            self.shards[found[0]] = self._client(found[0], address)
            self.state.shards[found[0]] = address
        for client, reply in zip(self.clients, self._fanout(
                lambda c: c.call("Status", pb.ShardStatusRequest()), self.clients)):
            if reply.epoch > self.slot_map.epoch:
                raise FailedPrecondition(
                    f"shard {client.address} was assigned slots at epoch {reply.epoch}, after this "
                    f"state file's epoch {self.slot_map.epoch}: the file is stale")
        self._save_state()

    def _save_state(self) -> None:
        if self.state_path is not None:
            self.state.save(self.state_path)

    def _assign(self, client: ShardClient) -> None:
        slots = self.slot_map.slots_of_shard(client.shard_id).tolist()
        client.call("Assign", pb.ShardAssignRequest(slots=slots, epoch=self.slot_map.epoch,
                                                    cluster_id=self.state.cluster_id))

    def _resync(self, client: ShardClient) -> None:
        """A shard that was unavailable is back (maybe a new process): what `connect`
        gives it. Idempotent, so a shard that only had a network blip takes no harm."""
        self._assign(client)
        if self.schema.fields():
            client.call("Define", pb.ShardDefineRequest(fields=wire.pack(self.schema.to_dict())))
        held = {s.name for s in client.call("Segments", pb.SegmentsRequest()).segments}
        now = self._now_us()
        for defn in self.segments.all():
            if defn.name not in held:
                client.call("DefineSegment", pb.DefineSegmentRequest(definition=defn.to_bytes(), now_us=now))
        log.info("shard %s is back: slots, schema and segments given again", client.address)

    def snapshot(self, timeout: float | None = None) -> list[ShardSnapshot]:
        """Every shard writes a snapshot now (all of them, in parallel)."""
        replies = self._fanout(lambda c: c.call("Snapshot", pb.ShardSnapshotRequest(), timeout), self.clients)
        return [ShardSnapshot(c.address, r.file, r.lsn, r.seconds) for c, r in zip(self.clients, replies)]

    # ---- cluster operations (see server/migration.py) ----------------------------------
    def add_shard(self, address: str, timeout: float | None = None) -> Progress:
        """Join a new, empty shard and start moving it an even share of the slots. An
        address already a member but short of its share resumes (an interrupted add)."""
        with self._operation:
            return self._add_shard(address, timeout)

    def _add_shard(self, address: str, timeout: float | None) -> Progress:
        self._refuse_if_migrating()
        member = [i for i, a in self.state.shards.items() if a == address]
        if member:
            moves = plan_add(self.slot_map.owners, member[0])
            if not moves:
                raise BatchError(f"{address} is already a member of this cluster (and holds its share)")
            return self._start_migration("add", member[0], moves)
        client = self._client(self.state.next_id, address)
        try:
            status = client.call("Status", pb.ShardStatusRequest(), timeout or 10.0)
            check_candidate(status, address, self.state.cluster_id)
            with self._ddl:
                self._resync(client)    # its (empty) slots, the schema, the segments
                with self.map_lock.exclusive():
                    self.shards[client.shard_id] = client
                    self.state.shards[client.shard_id] = address
                    self.state.next_id = client.shard_id + 1
                    self._save_state()
                    self._watch_joined(client)
        except Unavailable as e:
            client.close()
            raise BatchError(f"{address} does not answer: {e}") from None
        except Exception:
            client.close()
            raise
        log.info("shard %s joined as shard %d", address, client.shard_id)
        return self._start_migration("add", client.shard_id, plan_add(self.slot_map.owners, client.shard_id))

    def remove_shard(self, address: str) -> Progress:
        """Move a shard's slots evenly to the others, then let it go."""
        with self._operation:
            return self._remove_shard(address)

    def _remove_shard(self, address: str) -> Progress:
        self._refuse_if_migrating()
        member = [i for i, a in self.state.shards.items() if a == address]
        if not member:
            raise BatchError(f"{address} is not a member of this cluster")
        if len(self.shards) == 1:
            raise BatchError(f"{address} is the last shard: a cluster needs one")
        return self._start_migration("remove", member[0], plan_remove(self.slot_map.owners, member[0]))

    def _start_migration(self, kind: str, shard_id: int, moves: list) -> Progress:
        """Record it in the state file (a restarted router resumes it), then run it
        (the caller holds `_operation` and saw no migration running, so any copy of an
        unowned slot is a leftover)."""
        address = self.state.shards[shard_id]
        self._drop_leftovers()
        self.state.migration = {"kind": kind, "shard": shard_id}
        self._save_state()

        def finish() -> None:
            if kind == "remove":
                self._let_go(shard_id)
            self.state.migration = None
            self._save_state()
        return self.migrator.start(kind, address, moves, finish)

    def _let_go(self, shard_id: int) -> None:
        """A drained shard leaves the cluster (its process is the operator's to stop)."""
        with self.map_lock.exclusive():
            client = self.shards.pop(shard_id)
            del self.state.shards[shard_id]
            self._save_state()
            for fan_in in list(self._watches):
                fan_in.retire(shard_id)
        with self._writers_lock:
            writer = self._writers.pop(shard_id, None)
        if writer is not None:
            writer.close()
        try:
            client.call("Assign", pb.ShardAssignRequest(slots=[], epoch=self.slot_map.epoch,
                                                        cluster_id=self.state.cluster_id))
        except Exception as e:  # noqa: BLE001 - it owns nothing in the map either way
            log.warning("removed shard %s: %s", client.address, e)
        # running watches still read what it logged before it left (see SegmentFanIn.retire)
        threading.Timer(4 * RETIRE_QUIET_S, client.close).start()

    def _refuse_if_migrating(self) -> None:
        if self.migrator.running():
            p = self.migrator.progress
            raise FailedPrecondition(f"a migration is running ({p.kind} {p.shard}, "
                                     f"{p.slots_moved}/{p.slots_total} slots moved); wait for it")

    def commit_move(self, slots: np.ndarray, source: int, target: int) -> None:
        """Flip the slots' owner (the caller holds the map lock exclusively): the state
        file first (the commit point), then the two shards. A shard that misses its
        Assign is marked stale and gets its slots before its next call."""
        if self._watches:
            self._hold_watchers(source, target)
        owners = self.slot_map.owners.copy()
        owners[slots] = target
        self.state.slot_map = SlotMap(owners, epoch=self.slot_map.epoch + 1)
        self._save_state()
        for shard_id in (target, source):
            client = self.shards[shard_id]
            try:
                self._assign(client)
            except Exception as e:  # noqa: BLE001 - resynced before its next call
                client.stale = True
                log.warning("flip of %d slots: shard %s not told yet: %s", len(slots), client.address, e)

    # ---- schema --------------------------------------------------------------------
    def define(self, spec: Mapping[str, Any]) -> None:
        """Declare fields here and on every shard (shards first: they must accept it)."""
        fields = {name: getattr(t, "value", t) for name, t in spec.items()}
        request = pb.ShardDefineRequest(fields=wire.pack(fields))
        self._fanout(lambda c: c.call("Define", request), self.clients)
        self.schema.declare(fields)

    # ---- writes --------------------------------------------------------------------
    def upsert(self, ids: list, columns: dict[Any, Any], rejections: Rejections,
               timeout: float | None = None, defer: Defer | None = None) -> UpsertResult:
        """Validate here, apply on the shards. With `defer`, the apply step is handed to
        it instead of run now (UpsertStream overlaps the next batch's validation with
        this one's apply; its single applier thread keeps batches in order)."""
        prepared = write(self.schema, ids, columns, rejections, self.define,
                         self._applier("Apply", timeout, defer))
        return UpsertResult(prepared.accepted, prepared.errors)

    def track(self, ids: list, columns: dict[Any, Any], rejections: Rejections,
              timeout: float | None = None, defer: Defer | None = None) -> TrackResult:
        """Events: validated here against the cluster's event schema (new properties are
        declared here; each shard learns them from the batch it receives), stamped with
        this router's clock where they carry no time, then appended on the owning shards."""
        prepared = tracking.write_events(self.events, ids, columns, rejections, self._now_us(),
                                         self._applier("Track", timeout, defer))
        return TrackResult(prepared.accepted, prepared.errors)

    def _applier(self, method: str, timeout: float | None, defer: Defer | None
                 ) -> Callable[[PreparedBatch], None]:
        def apply(p: PreparedBatch) -> None:
            step = self._queue_upsert(p, timeout) if method == "Apply" else (
                lambda: self._apply(method, p, timeout))
            if defer is None:
                step()
                return
            try:
                defer(step)
            except BaseException:   # the step holds the slot-map lock until it runs
                with contextlib.suppress(Exception):
                    step()
                raise
        return apply

    def _queue_upsert(self, prepared: PreparedBatch, timeout: float | None) -> Callable[[], None]:
        """Queue the batch's parts on their shards' writers now (so they reach each shard
        in call order); the returned step waits until every part was applied. The slot
        map stays locked (shared) from the split until that wait ends, so no slot flips
        between routing a part and its shard applying it."""
        release = self.map_lock.acquire_shared()
        try:
            slot_map = self.slot_map
            parts = routing.split(prepared.enc, slot_map, slot_map.n_shards, prepared.distinct)
            done = [self._writer(p.shard).submit(p, prepared.batches, slot_map.epoch, timeout) for p in parts]
        except BaseException:
            release()
            raise

        def wait() -> None:
            try:
                wait_written(done, timeout)
            finally:
                release()
        return wait

    def _writer(self, shard_id: int) -> ShardWriter:
        with self._writers_lock:
            writer = self._writers.get(shard_id)
            if writer is None:
                client = self.shards[shard_id]
                writer = self._writers[shard_id] = ShardWriter(client.address, self._sender(client))
            return writer

    def _sender(self, client: ShardClient) -> Callable[[routing.ShardWrite, int, float | None], None]:
        def send(w: routing.ShardWrite, epoch: int, timeout: float | None) -> None:
            batch = wire.encode_write(w.ids, w.uid, w.batches)
            client.call("Apply", pb.ApplyRequest(batch=batch, epoch=epoch), timeout)
        return send

    def _apply(self, method: str, prepared: PreparedBatch, timeout: float | None) -> None:
        with self.map_lock.shared():
            slot_map = self.slot_map
            parts = routing.split(prepared.enc, slot_map, slot_map.n_shards, prepared.distinct)

            def send(part: routing.ShardPart) -> None:
                batch = wire.encode_write(part.ids(), part.uid, part.batches(prepared.batches))
                self.shards[part.shard].call(method, pb.ApplyRequest(batch=batch, epoch=slot_map.epoch), timeout)
            self._fanout(send, parts)

    def delete(self, ids: list[str], timeout: float | None = None) -> DeleteResult:
        with self.map_lock.shared():
            ids, _, owner = routing.owners_of_ids(ids, self.slot_map)
            found = np.zeros(len(ids), dtype=bool)

            def remove(s: int) -> None:
                sel = np.flatnonzero(owner == s)
                reply = self.shards[s].call("Delete", pb.ShardIdsRequest(ids=[ids[i] for i in sel]), timeout)
                found[sel] = reply.found
            self._fanout(remove, sorted(set(owner.tolist())))
        return DeleteResult(int(found.sum()), [ids[i] for i in np.flatnonzero(~found).tolist()])

    # ---- reads ---------------------------------------------------------------------
    def get_profile(self, profile_id: str, events_limit: int = 0, timeout: float | None = None
                    ) -> tuple[dict[str, Any], list[dict[str, Any]]]:
        """The profile and its `events_limit` most recent events (most recent first)."""
        request = pb.ShardIdsRequest(ids=[profile_id], events_limit=events_limit)
        with self.map_lock.shared():
            _, _, owner = routing.owners_of_ids([profile_id], self.slot_map)
            reply = self.shards[int(owner[0])].call("Get", request, timeout)
        profile = wire.unpack(reply.profiles)[0]
        if profile is None:
            raise ProfileNotFound(f"profile {profile_id!r} not found")
        events = wire.unpack(reply.events)[0] if reply.events else None
        return profile, events or []

    def query(self, sql: str, timeout: float | None = None) -> QueryResult:
        """A SELECT, or a bare WHERE condition answered as a count; `timeout` is the
        client's remaining deadline, passed on to every shard call. Event types never
        tracked are not an error (they match nothing) but come back as warnings."""
        now_us = self._now_us()
        if _is_select(sql):
            select = compile_select(sql, self.schema, now_us, self.events, self.segments.names())
            request = pb.ExecuteRequest(plan=wire.encode_plan(select), epoch=self.slot_map.epoch)
            merged = rd.merge_all(select, self._partials(request, timeout))
            return QueryResult([c.name for c in select.columns], rd.finalize(select, merged, self.schema),
                               event_warnings(select, self.events))
        where = self._compile(sql, now_us, self.segments.names())
        request = pb.ExecuteRequest(plan=wire.encode_plan(where), count_only=True, epoch=self.slot_map.epoch)
        return QueryResult(["count"], [(sum(p.states[0] for p in self._partials(request, timeout)),)],
                           event_warnings(where, self.events))

    def _now_us(self) -> int:
        return int(self._clock() * 1_000_000)

    def _compile(self, where: str, now_us: int, segments: Collection[str],
                 used: set[str] | None = None) -> Predicate | None:
        return compile_where(where, self.schema, now_us, self.events, segments, used)

    def _partials(self, request: pb.ExecuteRequest, timeout: float | None) -> list[Partial]:
        with self.map_lock.shared():
            request.epoch = self.slot_map.epoch
            replies = self._fanout(lambda c: c.call("Execute", request, timeout), self.clients)
        return [wire.decode_partial(r.partial) for r in replies]

    def list_ids(self, where: str, batch_size: int) -> Iterator[list[str]]:
        plan = self._compile(where, self._now_us(), self.segments.names())
        request = pb.ShardListIdsRequest(where=wire.encode_plan(plan), batch_size=batch_size)
        # Each shard lists its ids when its stream starts; starting them all under the map
        # lock makes one consistent listing (each id once, even while slots move), and a
        # slow reader then holds nothing.
        with self.map_lock.shared():
            streams = [client.stream("ListIds", request) for client in self.clients]
            firsts = [next(s, None) for s in streams]
        for first, stream in zip(firsts, streams):
            if first is not None:
                yield list(first.ids)
                for batch in stream:
                    yield list(batch.ids)

    def health(self) -> list[ShardHealth]:
        def probe(client: ShardClient) -> ShardHealth:
            try:
                s = client.ping()
            except Exception as e:  # noqa: BLE001 - a status report shows every failure
                return ShardHealth(client.address, False, str(e), shard_id=client.shard_id)
            return ShardHealth(client.address, True, "", list(s.slots), s.profiles, s.memory_bytes,
                               s.fsync, s.data_dir, s.recovery, client.shard_id)
        return self._fanout(probe, self.clients)

    # ---- saved segments ----------------------------------------------------------------
    def create_segment(self, name: str, where: str, timeout: float | None = None) -> SegmentInfo:
        """Compile and check here, compute the members on every shard, then serve it; if a
        shard fails, the shards that took it drop it again and the error is raised."""
        with self._ddl:
            now = self._now_us()
            defn = self.segments.define(name, where, self._compile, now)
            request = pb.DefineSegmentRequest(definition=defn.to_bytes(), now_us=now)
            outcomes = self._attempt(lambda c: c.call("DefineSegment", request, timeout), self.clients)
            failed = [e for _, e in outcomes if e is not None]
            if failed:
                self._drop_quietly(name, [c for c, (_, e) in zip(self.clients, outcomes) if e is None])
                raise failed[0]
            self.segments.add(defn)
        if defn.time_dependent:
            self._refresher.start()
        return SegmentInfo.of(defn, sum(r.size for r, _ in outcomes))

    def get_segment(self, name: str, timeout: float | None = None) -> SegmentInfo:
        defn = self.segments.get(name)
        return SegmentInfo.of(defn, self._segment_sizes(timeout)[name])

    def list_segments(self, timeout: float | None = None) -> list[SegmentInfo]:
        sizes = self._segment_sizes(timeout)
        return [SegmentInfo.of(d, sizes[d.name]) for d in self.segments.all()]

    def delete_segment(self, name: str, timeout: float | None = None) -> None:
        """Refused while other segments read it; if a shard cannot drop it, it stays."""
        with self._ddl:
            defn = self.segments.remove(name)
            try:
                request = pb.DropSegmentRequest(name=name)
                self._fanout(lambda c: c.call("DropSegment", request, timeout), self.clients)
            except Exception:
                self.segments.restore(defn)
                raise

    def refresh_segments(self) -> list[str]:
        """Re-bind the time-dependent segments to the clock and re-evaluate them on every
        shard, in dependency order (the refresh timer calls this); returns their names."""
        with self._ddl:
            now = self._now_us()
            defs = self.segments.rebound(self._compile, now)
            for defn in defs:
                request = pb.RefreshSegmentRequest(definition=defn.to_bytes(), now_us=now)
                self._fanout(lambda c: c.call("RefreshSegment", request), self.clients)
        return [d.name for d in defs]

    def export_segment(self, name: str, fields: list[str], batch_size: int,
                       timeout: float | None = None) -> Iterator[ps.ExportSegmentResponse]:
        """Members in batches, shard after shard; `timeout` (None: none) bounds each shard's stream."""
        self.segments.get(name)
        for f in fields:
            if f not in self.schema:
                raise QueryError(f"unknown field {f!r}")
        request = pb.ShardExportRequest(name=name, fields=fields, batch_size=batch_size)
        with self.map_lock.shared():   # no slot moves mid-export: each member exactly once
            for client in self.clients:
                yield from client.stream("ExportSegment", request, timeout)

    def watch_segment(self, name: str, after: Mapping[int, int], initial: bool) -> SegmentFanIn:
        """Every shard's changes of a segment, fanned in (see server/watch.py); shards named
        in `after` resume after that seq, the others start now (with members if `initial`)."""
        self.segments.get(name)
        unknown = sorted(s for s in after if s >= self.state.next_id)
        if unknown:
            raise QueryError(f"shard {unknown[0]} does not exist (shard ids are below {self.state.next_id})")
        with self.map_lock.shared():   # shards joining or leaving update the registered fan-ins
            clients = self.clients
            calls = [client.open_stream("WatchSegment", pb.ShardWatchRequest(
                         name=name, resume=client.shard_id in after, after=after.get(client.shard_id, 0),
                         initial=initial, shard=client.shard_id), None)
                     for client in clients]
            fan_in = SegmentFanIn(name, clients, calls)
            self._watches.add(fan_in)
        return fan_in

    def _hold_watchers(self, source: int, target: int) -> None:
        """Before a flip: each running watch delivers the source's changes logged so far
        before the target's later ones (the moving profiles' order across the two)."""
        reply = self.shards[source].call("Segments", pb.SegmentsRequest())
        last = {s.name: s.last_seq for s in reply.segments}
        for fan_in in list(self._watches):
            fan_in.barrier(source, last.get(fan_in.name, 0), target)

    def _watch_joined(self, client: ShardClient) -> None:
        """A shard joined (map lock held exclusively): every running watch reads it too,
        from its log's start (it logs nothing before it owns slots)."""
        for fan_in in list(self._watches):
            fan_in.add(client, client.open_stream("WatchSegment", pb.ShardWatchRequest(
                name=fan_in.name, resume=True, after=0, shard=client.shard_id), None))

    def _segment_sizes(self, timeout: float | None) -> Counter[str]:
        sizes: Counter[str] = Counter()
        for reply in self._fanout(lambda c: c.call("Segments", pb.SegmentsRequest(), timeout), self.clients):
            sizes.update({s.name: s.size for s in reply.segments})
        return sizes

    def _learn_segments(self) -> None:
        """Serve the segments the shards hold (a restarted router must keep them), in
        creation order; a shard that lacks one (it restarted empty) is given it again."""
        replies = self._fanout(lambda c: c.call("Segments", pb.SegmentsRequest(definitions=True)),
                               self.clients)
        held = [{s.name for s in r.segments} for r in replies]
        found: dict[str, SegmentDef] = {}
        for defn in (SegmentDef.from_bytes(s.definition) for r in replies for s in r.segments):
            if defn.name not in found or defn.bound_us > found[defn.name].bound_us:
                found[defn.name] = defn
        now = self._now_us()
        for defn in sorted(found.values(), key=lambda d: (d.created_us, d.name)):
            missing = [c for c, names in zip(self.clients, held) if defn.name not in names]
            request = pb.DefineSegmentRequest(definition=defn.to_bytes(), now_us=now)
            self._fanout(lambda c: c.call("DefineSegment", request), missing)
            self.segments.restore(defn)
            if defn.time_dependent:
                self._refresher.start()

    def _drop_quietly(self, name: str, clients: list[ShardClient]) -> None:
        """Roll back a half-made segment; a shard that cannot drop it is logged (the
        next router to connect would give it back to the others: see _learn_segments)."""
        request = pb.DropSegmentRequest(name=name)
        for _, error in self._attempt(lambda c: c.call("DropSegment", request), clients):
            if error is not None:
                log.warning("rolling back segment %r: %s", name, error)

    # ---- fan-out -------------------------------------------------------------------
    def _fanout(self, fn: Callable[[Any], Any], items: list) -> list:
        """Run fn on every item in parallel; the first failure is raised (never a
        partial answer), after every call has finished."""
        outcomes = self._attempt(fn, items)
        for _, error in outcomes:
            if error is not None:
                raise error
        return [result for result, _ in outcomes]

    def _attempt(self, fn: Callable[[Any], Any], items: list) -> list[tuple[Any, Exception | None]]:
        """Run fn on every item in parallel: (result, None) or (None, error) per item."""
        futures = [self._pool.submit(fn, x) for x in items]
        outcomes: list[tuple[Any, Exception | None]] = []
        for f in futures:
            try:
                outcomes.append((f.result(), None))
            except Exception as e:  # noqa: BLE001 - the caller decides
                outcomes.append((None, e))
        return outcomes


_LEADING = re.compile(r"(\s+|--[^\n]*(\n|$)|/\*.*?\*/|\()*", re.DOTALL)
_SELECT = re.compile(r"select\b", re.IGNORECASE)


def _is_select(sql: str) -> bool:
    """A SELECT statement (after blanks, comments and parentheses), else a condition."""
    return _SELECT.match(sql, _LEADING.match(sql).end()) is not None
