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

import logging
import re
import threading
import time
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any, Callable, Collection, Iterator, Mapping

import numpy as np

from cdpcore import routing, tracking, wire
from cdpcore.errors import FailedPrecondition, ProfileNotFound, QueryError
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
from server.coalesce import ShardWriter
from server.coalesce import wait as wait_written
from server.shard_client import ShardClient
from server.watch import SegmentFanIn

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
                 segment_refresh_s: float | None = DEFAULT_REFRESH_S) -> None:
        """`segment_refresh_s`: how often time-dependent segments are re-evaluated (None: never)."""
        if not addresses:
            raise ValueError("a cluster needs at least one shard address")
        self.clients = [ShardClient(a, resync=self._resync) for a in addresses]
        self.slot_map = SlotMap.even(len(addresses))
        self.schema = Schema()
        self.events = EventSchema()     # event property types and the types ever tracked
        self.segments = SegmentCatalog()
        self._clock = clock
        # Each fan-out holds one thread per shard for the length of a shard call, and the
        # router serves up to 32 calls at once (app.py), so size for that, not for cores.
        self._pool = ThreadPoolExecutor(max_workers=32 * len(addresses), thread_name_prefix="cdp-fanout")
        self._ddl = threading.Lock()    # segment create/delete/refresh, one at a time
        self._refresher = Periodic(self.refresh_segments, segment_refresh_s)
        # upserts to a shard go through its writer: concurrent ones become one Apply
        self._writers = [ShardWriter(c.address, self._sender(c)) for c in self.clients]

    def close(self) -> None:
        self._refresher.stop()
        for w in self._writers:
            w.close()
        self._pool.shutdown(wait=False)
        for c in self.clients:
            c.close()

    def connect(self) -> None:
        """Give every shard its slots and agree on one schema (the union of theirs); learn
        the event properties and types the shards hold (a restarted router must not
        accept a property of the other type, nor warn about types already tracked)."""
        self.slot_map = self._agreed_slot_map()
        for client in self.clients:
            self._assign(client)
        for reply in self._fanout(lambda c: c.call("Schema", pb.ShardStatusRequest()), self.clients):
            self.schema.declare(wire.unpack(reply.fields))
            self.events.declare(wire.unpack(reply.event_properties) if reply.event_properties else {})
            self.events.note_types(reply.event_types)
        if self.schema.fields():
            self.define(self.schema.to_dict())
        self._learn_segments()

    def _agreed_slot_map(self) -> SlotMap:
        """The slot map the shards already hold (persistent shards remember theirs), or an
        even one for fresh shards. A router restarted with its shards listed in another
        order adopts their map; one whose shards disagree with any map refuses to start,
        since serving would read every profile under the wrong shard."""
        replies = self._fanout(lambda c: c.call("Status", pb.ShardStatusRequest()), self.clients)
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
                    "(same set; adding shards online is not built yet)")
        return even

    def _assign(self, client: ShardClient) -> None:
        slots = self.slot_map.slots_of_shard(self.clients.index(client)).tolist()
        client.call("Assign", pb.ShardAssignRequest(slots=slots, epoch=self.slot_map.epoch))

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
            else:
                defer(step)
        return apply

    def _queue_upsert(self, prepared: PreparedBatch, timeout: float | None) -> Callable[[], None]:
        """Queue the batch's parts on their shards' writers now (so they reach each shard
        in call order); the returned step waits until every part was applied."""
        parts = routing.split(prepared.enc, self.slot_map, len(self.clients), prepared.distinct)
        epoch = self.slot_map.epoch
        done = [self._writers[p.shard].submit(p, prepared.batches, epoch, timeout) for p in parts]
        return lambda: wait_written(done, timeout)

    def _sender(self, client: ShardClient) -> Callable[[routing.ShardWrite, int, float | None], None]:
        def send(w: routing.ShardWrite, epoch: int, timeout: float | None) -> None:
            batch = wire.encode_write(w.ids, w.uid, w.batches)
            client.call("Apply", pb.ApplyRequest(batch=batch, epoch=epoch), timeout)
        return send

    def _apply(self, method: str, prepared: PreparedBatch, timeout: float | None) -> None:
        parts = routing.split(prepared.enc, self.slot_map, len(self.clients), prepared.distinct)
        epoch = self.slot_map.epoch

        def send(part: routing.ShardPart) -> None:
            batch = wire.encode_write(part.ids(), part.uid, part.batches(prepared.batches))
            self.clients[part.shard].call(method, pb.ApplyRequest(batch=batch, epoch=epoch), timeout)
        self._fanout(send, parts)

    def delete(self, ids: list[str], timeout: float | None = None) -> DeleteResult:
        ids, _, owner = routing.owners_of_ids(ids, self.slot_map)
        found = np.zeros(len(ids), dtype=bool)

        def remove(s: int) -> None:
            sel = np.flatnonzero(owner == s)
            reply = self.clients[s].call("Delete", pb.ShardIdsRequest(ids=[ids[i] for i in sel]), timeout)
            found[sel] = reply.found
        self._fanout(remove, sorted(set(owner.tolist())))
        return DeleteResult(int(found.sum()), [ids[i] for i in np.flatnonzero(~found).tolist()])

    # ---- reads ---------------------------------------------------------------------
    def get_profile(self, profile_id: str, events_limit: int = 0, timeout: float | None = None
                    ) -> tuple[dict[str, Any], list[dict[str, Any]]]:
        """The profile and its `events_limit` most recent events (most recent first)."""
        _, _, owner = routing.owners_of_ids([profile_id], self.slot_map)
        client = self.clients[int(owner[0])]
        request = pb.ShardIdsRequest(ids=[profile_id], events_limit=events_limit)
        reply = client.call("Get", request, timeout)
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
        replies = self._fanout(lambda c: c.call("Execute", request, timeout), self.clients)
        return [wire.decode_partial(r.partial) for r in replies]

    def list_ids(self, where: str, batch_size: int) -> Iterator[list[str]]:
        plan = self._compile(where, self._now_us(), self.segments.names())
        request = pb.ShardListIdsRequest(where=wire.encode_plan(plan), batch_size=batch_size)
        for client in self.clients:
            for batch in client.stream("ListIds", request):
                yield list(batch.ids)

    def health(self) -> list[ShardHealth]:
        def probe(client: ShardClient) -> ShardHealth:
            try:
                s = client.ping()
            except Exception as e:  # noqa: BLE001 - a status report shows every failure
                return ShardHealth(client.address, False, str(e))
            return ShardHealth(client.address, True, "", list(s.slots), s.profiles, s.memory_bytes,
                               s.fsync, s.data_dir, s.recovery)
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
        for client in self.clients:
            yield from client.stream("ExportSegment", request, timeout)

    def watch_segment(self, name: str, after: Mapping[int, int], initial: bool) -> SegmentFanIn:
        """Every shard's changes of a segment, fanned in (see server/watch.py); shards named
        in `after` resume after that seq, the others start now (with members if `initial`)."""
        self.segments.get(name)
        unknown = sorted(set(after) - set(range(len(self.clients))))
        if unknown:
            raise QueryError(f"shard {unknown[0]} does not exist (shards are 0..{len(self.clients) - 1})")
        calls = [client.open_stream("WatchSegment", pb.ShardWatchRequest(
                     name=name, resume=i in after, after=after.get(i, 0), initial=initial, shard=i), None)
                 for i, client in enumerate(self.clients)]
        return SegmentFanIn(self.clients, calls)

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
