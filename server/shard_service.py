"""ShardStore servicer: one cdpcore Shard in its own process, driven by the router.

Each method decodes, calls one engine method, encodes (STYLE practice 2). The shard
keeps its own copy of the schema (the router declares fields on every shard before it
sends values for them), of the event schema (learnt from the event batches it is sent,
so a router that connects later can learn it back), and the set of slots it owns with
the slot-map epoch.
"""
from __future__ import annotations

import os
import threading
from typing import Iterator

import numpy as np

from cdpcore import tracking, wire
from cdpcore.coerce import FieldBatch
from cdpcore.errors import BatchError, FailedPrecondition
from cdpcore.ids import EncodedIds
from cdpcore.query import aggregate
from cdpcore.query.ir import Select
from cdpcore.query.reduce import Partial
from cdpcore.schema import Schema
from cdpcore.shard import Shard
from cdpcore.slots import N_SLOTS, slots_of_hashes
from server.pb.cdp.v1 import profile_store_pb2 as ps
from server.pb.cdp.v1 import shard_pb2 as pb
from server.pb.cdp.v1 import shard_pb2_grpc
from server.status import rpc


class ShardService(shard_pb2_grpc.ShardStoreServicer):
    def __init__(self) -> None:
        self.schema = Schema()
        self.events = tracking.EventSchema()
        self.shard = Shard(self.schema)
        self.owned = np.zeros(N_SLOTS, dtype=bool)
        self.epoch = 0
        self._lock = threading.Lock()  # guards owned/epoch

    # ---- writes --------------------------------------------------------------------
    @rpc
    def Apply(self, request: pb.ApplyRequest, context) -> pb.ApplyResponse:
        ids, uid, batches = wire.decode_write(request.batch)
        self._check_owned(ids.hashes)
        unknown = {b.field.name: b.field.type for b in batches if self.schema.get(b.field.name) != b.field}
        if unknown:
            self.schema.declare(unknown)  # the router declares first; a conflict is a SchemaError
        self.shard.upsert(ids, uid, batches)
        return pb.ApplyResponse()

    @rpc
    def Track(self, request: pb.ApplyRequest, context) -> pb.ApplyResponse:
        ids, uid, batches = wire.decode_write(request.batch)
        self._check_owned(ids.hashes)
        self._learn_events(batches)
        self.shard.track(ids, uid, batches)
        self.events.note_types(tracking.accepted_types(batches[0]))
        return pb.ApplyResponse()

    @rpc
    def Delete(self, request: pb.ShardIdsRequest, context) -> pb.ShardDeleteResponse:
        found = self.shard.delete(EncodedIds.encode(list(request.ids)))
        return pb.ShardDeleteResponse(found=found.tolist())

    @rpc
    def Define(self, request: pb.ShardDefineRequest, context) -> pb.ShardSchemaResponse:
        self.schema.declare(wire.unpack(request.fields))
        return self._schema_response()

    @rpc
    def Assign(self, request: pb.ShardAssignRequest, context) -> pb.ShardStatusResponse:
        owned = np.zeros(N_SLOTS, dtype=bool)
        owned[np.asarray(request.slots, dtype=np.int64)] = True
        with self._lock:
            self.owned, self.epoch = owned, request.epoch
        return self._status()

    # ---- reads ---------------------------------------------------------------------
    @rpc
    def Execute(self, request: pb.ExecuteRequest, context) -> pb.ExecuteResponse:
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

    # ---- helpers -------------------------------------------------------------------
    def _check_owned(self, hashes: np.ndarray) -> None:
        """Refuse writes for slots this shard does not own (the router's map is stale)."""
        slots = slots_of_hashes(hashes)
        with self._lock:
            stray = slots[~self.owned[slots]]
            epoch = self.epoch
        if stray.size:
            raise FailedPrecondition(
                f"MOVED: slot {int(stray[0])} is not owned by this shard (epoch {epoch}); "
                "refresh the slot map")

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
            slots, epoch = np.flatnonzero(self.owned).tolist(), self.epoch
        return pb.ShardStatusResponse(profiles=len(self.shard), memory_bytes=rss_bytes(),
                                      slots=slots, epoch=epoch)


def rss_bytes() -> int:
    """Resident memory of this process (Linux /proc; 0 where unavailable)."""
    try:
        with open("/proc/self/statm") as f:
            return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")
    except (OSError, ValueError, IndexError):
        return 0
