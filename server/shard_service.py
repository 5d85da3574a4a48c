"""ShardStore servicer: one cdpcore Shard in its own process, driven by the router.

Each method decodes, calls one engine method, encodes (STYLE practice 2). The shard
keeps its own copy of the schema (the router declares fields on every shard before it
sends values for them), of the event schema (learnt from the event batches it is sent,
so a router that connects later can learn it back), and the set of slots it owns with
the slot-map epoch. When slots move (server/migration.py), the source exports them with
a capture of later writes, the target imports them into slots it does not own yet
(foreign rows: kept, logged, invisible), and the moved-out copy is dropped.

With a data directory (`cdp shard --data DIR`), every write goes through the engine's
ShardDurability (logged, applied, fsynced per policy before the reply) and the shard
recovers its data, schema, event schema and segments from DIR before it serves, and the
slots it owns (DIR/slots.json, with the cluster id), which the router checks when it connects.

Saved segments arrive compiled from the router; the shard keeps their members and change
logs current with every write (cdpcore.membership). Watch streams only read the bounded
change log, so a slow or vanished watcher never holds up a write.
"""
from __future__ import annotations

import os
import threading
import time
from pathlib import Path
from typing import Any, Iterator

import numpy as np

from cdpcore.segments import SegmentDef
from cdpcore import tracking, wire
from cdpcore.coerce import FieldBatch
from cdpcore.durability import RecoveryReport, ShardDurability
from cdpcore.errors import BatchError, FailedPrecondition, SegmentNotFound, Unavailable
from cdpcore.ids import EncodedIds
from cdpcore.membership import DEFAULT_RETAINED, ChangeLog, SegmentWatch, export_batches
from cdpcore.migration import Capture, WriteOp
from cdpcore.query import aggregate
from cdpcore.query.ir import Select
from cdpcore.query.reduce import Partial
from cdpcore.schema import Schema
from cdpcore.shard import Shard
from cdpcore.slots import N_SLOTS, slot_mask, slots_of_hashes
from server import codec
from server.pb.cdp.v1 import profile_store_pb2 as ps
from server.pb.cdp.v1 import shard_pb2 as pb
from server.pb.cdp.v1 import shard_pb2_grpc
from server.migration import PREFETCH_PARTS, prefetched
from server.shard_client import ShardClient
from server.status import rpc
from server.watch import POLL_S, WatchLimit

WATCH_BATCH = 5_000        # changes per watch message unless the router asks otherwise
EXPORT_BATCH = 10_000


class InMemory:
    """The write calls of ShardDurability, straight to the shard (no data directory)."""

    def __init__(self, shard: Shard) -> None:
        self.shard = shard

    def __getattr__(self, name: str) -> Any:
        return getattr(self.shard, name)  # upsert, track, delete, *_segment: the same signatures

    def define(self, spec: dict[str, str]) -> None:
        """Nothing to record: the schema lives in memory only."""


class ShardService(shard_pb2_grpc.ShardStoreServicer):
    def __init__(self, retained_changes: int = DEFAULT_RETAINED, data_dir: str | Path | None = None,
                 fsync: str = "always") -> None:
        """`retained_changes`: segment changes kept per segment for watchers; `data_dir`:
        persist there with the `fsync` policy, recovering what it holds first (None: memory only)."""
        self.schema = Schema()
        self.events = tracking.EventSchema()
        self.shard = Shard(self.schema, log=ChangeLog(retained_changes))
        self.durable: ShardDurability | None = None
        self.recovery: RecoveryReport | None = None
        if data_dir is not None:
            self.durable = ShardDurability(self.shard, Path(data_dir), self.schema, self.events, fsync)
            self.recovery = self.durable.recover()
        # every write RPC goes through this: log + apply + sync, or apply only
        self.writer: ShardDurability | InMemory = self.durable or InMemory(self.shard)
        self.owned = np.zeros(N_SLOTS, dtype=bool)
        self.epoch = 0
        self.cluster_id = ""
        saved = self.durable.load_slots() if self.durable is not None else None
        if saved is not None:  # a restarted shard knows its slots: the router checks them
            self.owned = slot_mask(saved[0])
            self.epoch, self.cluster_id = saved[1], saved[2]
            self.shard.set_owned(self.owned)
        self._lock = threading.Lock()  # guards owned/epoch/cluster_id
        self._watches = WatchLimit()
        self._captures: dict[str, Capture] = {}   # migration name → writes captured for it

    def close(self) -> None:
        """Graceful shutdown: a final snapshot, so the next start replays nothing."""
        if self.durable is not None:
            self.durable.close()

    # ---- writes --------------------------------------------------------------------
    @rpc
    def Apply(self, request: pb.ApplyRequest, context) -> pb.ApplyResponse:
        ids, uid, batches = wire.decode_write(request.batch)
        self._check_owned(ids.hashes)
        self._upsert(ids, uid, batches)
        return pb.ApplyResponse()

    @rpc
    def Track(self, request: pb.ApplyRequest, context) -> pb.ApplyResponse:
        ids, uid, batches = wire.decode_write(request.batch)
        self._check_owned(ids.hashes)
        self._track(ids, uid, batches)
        return pb.ApplyResponse()

    def _upsert(self, ids: EncodedIds, uid: np.ndarray, batches: list[FieldBatch]) -> None:
        unknown = {b.field.name: b.field.type for b in batches if self.schema.get(b.field.name) != b.field}
        if unknown:
            self.schema.declare(unknown)  # the router declares first; a conflict is a SchemaError
        self.writer.upsert(ids, uid, batches)

    def _track(self, ids: EncodedIds, uid: np.ndarray, batches: list[FieldBatch]) -> None:
        self._learn_events(batches)
        self.writer.track(ids, uid, batches)
        self.events.note_types(tracking.accepted_types(batches[0]))

    @rpc
    def Delete(self, request: pb.ShardIdsRequest, context) -> pb.ShardDeleteResponse:
        found = self.writer.delete(EncodedIds.encode(list(request.ids)))
        return pb.ShardDeleteResponse(found=found.tolist())

    @rpc
    def Define(self, request: pb.ShardDefineRequest, context) -> pb.ShardSchemaResponse:
        added = self.schema.declare(wire.unpack(request.fields))
        if added:
            self.writer.define({f.name: f.type.value for f in added})
        return self._schema_response()

    @rpc
    def Assign(self, request: pb.ShardAssignRequest, context) -> pb.ShardStatusResponse:
        owned = slot_mask(request.slots)
        with self._lock:
            if self.cluster_id and request.cluster_id and request.cluster_id != self.cluster_id:
                raise FailedPrecondition(f"this shard holds data of cluster {self.cluster_id}, "
                                         f"not {request.cluster_id}")
            cluster_id = request.cluster_id or self.cluster_id
            if self.durable is not None:
                self.durable.save_slots(list(request.slots), request.epoch, cluster_id)
            self.owned, self.epoch, self.cluster_id = owned, request.epoch, cluster_id
            self.shard.set_owned(owned)
        return self._status()

    # ---- slot migration ----------------------------------------------------------------
    @rpc
    def ExportSlots(self, request: pb.ExportSlotsRequest, context) -> Iterator[pb.WriteOps]:
        """Copy the slots' profiles and events, starting a capture of the writes to them."""
        slots = slot_mask(request.slots)
        with self._lock:
            if (slots & ~self.owned).any():
                raise FailedPrecondition("ExportSlots: slots this shard does not own")
        capture, copy = self.shard.export_slots(slots)
        self._end_capture(request.migration)
        self._captures[request.migration] = capture
        for part in copy.parts():
            yield pb.WriteOps(ops=[_op_message(op) for op in (part.profiles, *part.events)],
                              profiles=len(part.profiles.ids), events=part.n_events)

    @rpc
    def CatchUp(self, request: pb.CatchUpRequest, context) -> pb.WriteOps:
        """The writes to the exporting slots since the last CatchUp (or the export)."""
        capture = self._captures.get(request.migration)
        if capture is None:
            raise FailedPrecondition(f"no capture {request.migration!r} on this shard (restarted?)")
        ops = capture.take()
        if request.end:
            self._end_capture(request.migration)
        return pb.WriteOps(ops=[_op_message(op) for op in ops], profiles=sum(map(len, ops)))

    def _end_capture(self, name: str) -> None:
        capture = self._captures.pop(name, None)
        if capture is not None:
            self.shard.end_capture(capture)

    @rpc
    def Import(self, request: pb.WriteOps, context) -> pb.ApplyResponse:
        """Copied or captured writes for slots this shard does not own (yet), in order."""
        self._import(request)
        return pb.ApplyResponse()

    @rpc
    def PullSlots(self, request: pb.PullSlotsRequest, context) -> pb.PullSlotsResponse:
        """Copy slots from their source directly; the next part is read while this one
        is imported."""
        source = ShardClient(request.source)
        copied = pb.PullSlotsResponse()
        try:
            export = source.stream("ExportSlots", pb.ExportSlotsRequest(
                slots=request.slots, migration=request.migration), context.time_remaining())
            for part in prefetched(export, PREFETCH_PARTS):
                self._import(part)
                copied.profiles += part.profiles
                copied.events += part.events
        finally:
            source.close()
        return copied

    def _import(self, request: pb.WriteOps) -> None:
        for op in request.ops:
            ids, uid, batches = wire.decode_write(op.batch)
            self._check_foreign(ids.hashes)
            if op.kind == "upsert":
                self._upsert(ids, uid, batches)
            elif op.kind == "track":
                self._track(ids, uid, batches)
            elif op.kind == "delete":
                self.writer.delete(ids)
            else:
                raise BatchError(f"Import: unknown write kind {op.kind!r}")

    @rpc
    def DropSlots(self, request: pb.DropSlotsRequest, context) -> pb.DropSlotsResponse:
        slots = slot_mask(request.slots)
        with self._lock:
            if (slots & self.owned).any():
                raise FailedPrecondition("DropSlots: refusing to drop slots this shard owns")
        return pb.DropSlotsResponse(dropped=self.writer.drop_slots(slots))

    # ---- reads ---------------------------------------------------------------------
    @rpc
    def Execute(self, request: pb.ExecuteRequest, context) -> pb.ExecuteResponse:
        self._check_epoch(request.epoch)
        plan = wire.decode_plan(request.plan)  # compiled once, at the router
        if request.count_only:
            count = self.shard.read(lambda sh: aggregate.count_where(sh, plan))
            return pb.ExecuteResponse(partial=wire.encode_partial(Partial("aggregate", states=[count])))
        if not isinstance(plan, Select):
            raise BatchError("Execute needs a compiled SELECT plan")
        partial = self.shard.read(lambda sh: aggregate.run_select(sh, plan))
        return pb.ExecuteResponse(partial=wire.encode_partial(partial))

    @rpc
    def Get(self, request: pb.ShardIdsRequest, context) -> pb.ShardGetResponse:
        ids = EncodedIds.encode(list(request.ids))
        profiles = self.shard.get(ids)
        events = self.shard.events_of(ids, request.events_limit) if request.events_limit else None
        return pb.ShardGetResponse(profiles=wire.pack(profiles),
                                   events=b"" if events is None else wire.pack(events))

    @rpc
    def ListIds(self, request: pb.ShardListIdsRequest, context) -> Iterator[ps.IdBatch]:
        where = wire.decode_plan(request.where)
        size = request.batch_size or 10_000
        ids = self.shard.read(lambda sh: aggregate.ids_where(sh, where))
        for start in range(0, len(ids), size):
            yield ps.IdBatch(ids=ids[start:start + size])

    @rpc
    def Schema(self, request: pb.ShardStatusRequest, context) -> pb.ShardSchemaResponse:
        return self._schema_response()

    @rpc
    def Status(self, request: pb.ShardStatusRequest, context) -> pb.ShardStatusResponse:
        return self._status()

    # ---- saved segments --------------------------------------------------------------
    @rpc
    def DefineSegment(self, request: pb.DefineSegmentRequest, context) -> pb.DefineSegmentResponse:
        size = self.writer.define_segment(SegmentDef.from_bytes(request.definition), request.now_us)
        return pb.DefineSegmentResponse(size=size)

    @rpc
    def RefreshSegment(self, request: pb.RefreshSegmentRequest, context) -> pb.DefineSegmentResponse:
        self.writer.refresh_segment(SegmentDef.from_bytes(request.definition), request.now_us)
        return pb.DefineSegmentResponse()

    @rpc
    def DropSegment(self, request: pb.DropSegmentRequest, context) -> pb.DefineSegmentResponse:
        self.writer.drop_segment(request.name)
        return pb.DefineSegmentResponse()

    @rpc
    def Snapshot(self, request: pb.ShardSnapshotRequest, context) -> pb.ShardSnapshotResponse:
        if self.durable is None:
            raise FailedPrecondition("this shard keeps its data in memory only (started without --data)")
        started = time.perf_counter()
        written = self.durable.snapshot()
        return pb.ShardSnapshotResponse(file=str(written.path), lsn=written.lsn,
                                        seconds=time.perf_counter() - started)

    @rpc
    def Segments(self, request: pb.SegmentsRequest, context) -> pb.SegmentsResponse:
        held = self.shard.read(lambda sh: [(st.defn, len(sh.visible(st.members)), sh.segments.log.last_seq(name))
                                           for name, st in sh.segments.states.items()])
        return pb.SegmentsResponse(segments=[
            pb.ShardSegment(name=d.name, size=size, last_seq=seq,
                            definition=d.to_bytes() if request.definitions else b"")
            for d, size, seq in held])

    @rpc
    def ExportSegment(self, request: pb.ShardExportRequest, context) -> Iterator[ps.ExportSegmentResponse]:
        name, fields = request.name, list(request.fields)
        self._segment_created(name)
        for batch in export_batches(self.shard, name, fields, request.batch_size or EXPORT_BATCH):
            yield codec.export_response(batch)

    @rpc
    def WatchSegment(self, request: pb.ShardWatchRequest, context) -> Iterator[ps.WatchSegmentResponse]:
        """Initial members (if asked), the initial_done marker, then changes until the
        router cancels; polls with a short timeout (and is woken on cancellation)."""
        with self._watches.slot():
            name, shard, size = request.name, request.shard, request.batch_size or WATCH_BATCH
            created = self._segment_created(name)
            start, members = ((request.after, []) if request.resume else self.shard.read(
                lambda sh: sh.segments.snapshot(sh, name, request.initial)))
            cond = self.shard.segments.log.cond
            watch = SegmentWatch([self.shard], cond, name, {self.shard.shard_id: start}, initial=False)
            context.add_callback(lambda: _notify(cond))
            for first in range(0, len(members), size):
                part = members[first:first + size]
                yield ps.WatchSegmentResponse(changes=codec.initial_messages(part, shard, start))
            yield from _watch_messages(watch.poll(timeout=0), shard, size)
            position = watch.positions[self.shard.shard_id]
            yield ps.WatchSegmentResponse(initial_done=True, positions={shard: position})
            while context.is_active():
                changes = watch.poll(timeout=POLL_S)
                if self._segment_created(name) != created:
                    raise SegmentNotFound(f"segment {name!r} was deleted")
                yield from _watch_messages(changes, shard, size)

    def _segment_created(self, name: str) -> int:
        """When the segment of that name was created (which tells a re-created one apart);
        SegmentNotFound if this shard does not hold it."""
        state = self.shard.segments.states.get(name)
        if state is None:
            raise SegmentNotFound(f"segment {name!r} not found")
        return state.defn.created_us

    # ---- helpers -------------------------------------------------------------------
    def _check_owned(self, hashes: np.ndarray) -> None:
        """Refuse writes for slots this shard does not own (the router's map is stale)."""
        slots = slots_of_hashes(hashes)
        with self._lock:
            if self.epoch == 0:  # a (re)started shard: the router has not connected yet
                raise Unavailable("this shard has no slots yet: waiting for the router to assign them")
            stray = slots[~self.owned[slots]]
            epoch = self.epoch
        if stray.size:
            raise FailedPrecondition(
                f"MOVED: slot {int(stray[0])} is not owned by this shard (epoch {epoch}); "
                "refresh the slot map")

    def _check_epoch(self, epoch: int) -> None:
        """A router whose slot map is older than this shard's assignment would merge
        answers over the wrong shards (slots moved since): refuse, as MOVED does."""
        with self._lock:
            mine = self.epoch
        if epoch and epoch < mine:
            raise FailedPrecondition(f"MOVED: slot map epoch {epoch} is older than this shard's "
                                     f"({mine}); refresh the slot map")

    def _check_foreign(self, hashes: np.ndarray) -> None:
        """Imports only go to slots this shard does not own: an owned slot has live data
        that a copy would overwrite."""
        slots = slots_of_hashes(hashes)
        with self._lock:
            owned = slots[self.owned[slots]]
        if owned.size:
            raise FailedPrecondition(f"Import: slot {int(owned[0])} is owned by this shard")

    def _learn_events(self, batches: list[FieldBatch]) -> None:
        """Declare the batch's properties this shard has not seen (the router checked
        them against the cluster's event schema; a conflict here is a SchemaError)."""
        if len(batches) < 2 or batches[0].field != tracking.TYPE or batches[1].field != tracking.TS:
            raise BatchError("an event batch starts with its type and ts fields")
        props = self.events.properties
        unknown = {b.field.name: b.field.type for b in batches[2:] if props.get(b.field.name) != b.field}
        if unknown:
            self.events.declare(unknown)

    def _schema_response(self) -> pb.ShardSchemaResponse:
        return pb.ShardSchemaResponse(fields=wire.pack(self.schema.to_dict()), strict=self.schema.strict,
                                      event_properties=wire.pack(self.events.properties.to_dict()),
                                      event_types=self.events.types())

    def _status(self) -> pb.ShardStatusResponse:
        with self._lock:
            slots, epoch, cluster_id = np.flatnonzero(self.owned).tolist(), self.epoch, self.cluster_id
        durable = self.durable
        return pb.ShardStatusResponse(
            profiles=len(self.shard), memory_bytes=rss_bytes(), slots=slots, epoch=epoch,
            cluster_id=cluster_id, foreign=len(self.shard.foreign),
            fsync=str(durable.wal.policy) if durable else "",
            data_dir=str(durable.directory) if durable else "",
            recovery=self.recovery.summary() if self.recovery else "")


def _op_message(op: WriteOp) -> pb.WriteOp:
    uid = op.uid if op.uid is not None else np.zeros(0, dtype=np.int64)
    return pb.WriteOp(kind=op.kind, batch=wire.encode_write(op.ids, uid, op.batches or []))


def _watch_messages(changes: list, shard: int, size: int) -> Iterator[ps.WatchSegmentResponse]:
    for start in range(0, len(changes), size):
        yield ps.WatchSegmentResponse(changes=codec.change_messages(changes[start:start + size], shard))


def _notify(cond: threading.Condition) -> None:
    with cond:
        cond.notify_all()


def rss_bytes() -> int:
    """Resident memory of this process (Linux /proc; 0 where unavailable)."""
    try:
        with open("/proc/self/statm") as f:
            return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")
    except (OSError, ValueError, IndexError):
        return 0
