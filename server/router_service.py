"""ProfileStore and Admin servicers: decode, call one Cluster method, encode."""
from __future__ import annotations

import time
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Any, Callable, Iterator

from cdpcore import tracking
from cdpcore.errors import BatchError, RecordError
from cdpcore.ingest import Rejections, check_columns, columns_of_records
from cdpcore.store import TrackResult, UpsertResult
from server import codec
from server.cluster import Cluster, Defer
from server.migration import Progress
from server.pb.cdp.v1 import admin_pb2, admin_pb2_grpc
from server.pb.cdp.v1 import profile_store_pb2 as pb
from server.pb.cdp.v1 import profile_store_pb2_grpc
from server.status import rpc
from server.watch import WatchLimit


DEFAULT_EVENTS_LIMIT = 100     # GetProfile's events when the request says 0
DEFAULT_EXPORT_BATCH = 10_000  # ExportSegment's members per message when the request says 0
STREAM_PENDING = 4             # a write stream's batches validated but not yet applied, at most

Write = Callable[[Any, int, float | None, Defer | None], UpsertResult]


class ProfileStoreService(profile_store_pb2_grpc.ProfileStoreServicer):
    def __init__(self, cluster: Cluster) -> None:
        self.cluster = cluster
        self._watches = WatchLimit()

    @rpc
    def Upsert(self, request: pb.UpsertRequest, context) -> pb.UpsertResponse:
        return codec.upsert_response(self._upsert(request, 0, context.time_remaining()))

    @rpc
    def UpsertStream(self, requests: Iterator[pb.UpsertRequest], context) -> pb.UpsertResponse:
        return codec.upsert_response(_stream(requests, context, self._upsert, _upsert_size))

    @rpc
    def Track(self, request: pb.TrackRequest, context) -> pb.TrackResponse:
        result = self._track(request, 0, context.time_remaining())
        return codec.track_response(result.accepted, result.errors)

    @rpc
    def TrackStream(self, requests: Iterator[pb.TrackRequest], context) -> pb.TrackResponse:
        result = _stream(requests, context, self._track, _track_size)
        return codec.track_response(result.accepted, result.errors)

    def _upsert(self, request: pb.UpsertRequest, offset: int, timeout: float | None,
                defer: Defer | None = None) -> UpsertResult:
        """Rows first, then the columnar batch; error indexes count across both."""
        results = []
        if request.profiles:
            ids, columns, rejections = columns_of_records(codec.records_from_profiles(request.profiles))
            results.append((offset, self.cluster.upsert(ids, columns, rejections, timeout, defer)))
        if request.columns.ids:
            timestamps = codec.timestamp_fields_of(self.cluster.schema)
            ids, columns = codec.columns_from_batch(request.columns, timestamps)
            ids = check_columns(ids, columns)
            shifted = offset + len(request.profiles)
            results.append((shifted, self.cluster.upsert(ids, columns, Rejections(len(ids)), timeout, defer)))
        return _combined(results)

    def _track(self, request: pb.TrackRequest, offset: int, timeout: float | None,
               defer: Defer | None = None) -> TrackResult:
        """Event rows first, then the columnar batch; error indexes count across both."""
        results = []
        if request.events:
            ids, columns, rejections = tracking.columns_of_events(codec.records_from_events(request.events))
            results.append((offset, self.cluster.track(ids, columns, rejections, timeout, defer)))
        if codec.event_batch_size(request.columns):
            ids, types, times, properties = codec.event_columns_from_batch(request.columns)
            ids, columns = tracking.check_event_columns(ids, types, times, properties)
            shifted = offset + len(request.events)
            results.append((shifted, self.cluster.track(ids, columns, Rejections(len(ids)), timeout, defer)))
        return _combined(results)

    @rpc
    def GetProfile(self, request: pb.GetProfileRequest, context) -> pb.GetProfileResponse:
        limit = request.events_limit or DEFAULT_EVENTS_LIMIT
        profile, events = self.cluster.get_profile(request.profile_id, limit, context.time_remaining())
        return pb.GetProfileResponse(profile=codec.profile_message(profile),
                                     events=[codec.event_message(request.profile_id, e) for e in events])

    @rpc
    def DeleteProfiles(self, request: pb.DeleteProfilesRequest, context) -> pb.DeleteProfilesResponse:
        result = self.cluster.delete(list(request.profile_ids), context.time_remaining())
        return pb.DeleteProfilesResponse(deleted=result.deleted, not_found=result.not_found)

    @rpc
    def Query(self, request: pb.QueryRequest, context) -> pb.QueryResponse:
        started = time.perf_counter()
        result = self.cluster.query(request.sql, context.time_remaining())
        return codec.query_response(result, (time.perf_counter() - started) * 1000)

    @rpc
    def ListIds(self, request: pb.ListIdsRequest, context) -> Iterator[pb.IdBatch]:
        for ids in self.cluster.list_ids(request.where, request.batch_size):
            yield pb.IdBatch(ids=ids)

    @rpc
    def GetSchema(self, request: pb.GetSchemaRequest, context) -> pb.SchemaResponse:
        return self._schema()

    @rpc
    def DefineFields(self, request: pb.DefineFieldsRequest, context) -> pb.SchemaResponse:
        self.cluster.define({f.name: f.type for f in request.fields})
        return self._schema()

    # ---- saved segments --------------------------------------------------------------
    @rpc
    def CreateSegment(self, request: pb.CreateSegmentRequest, context) -> pb.SegmentInfo:
        info = self.cluster.create_segment(request.name, request.where, context.time_remaining())
        return codec.segment_info_message(info)

    @rpc
    def GetSegment(self, request: pb.GetSegmentRequest, context) -> pb.SegmentInfo:
        return codec.segment_info_message(self.cluster.get_segment(request.name, context.time_remaining()))

    @rpc
    def ListSegments(self, request: pb.ListSegmentsRequest, context) -> pb.ListSegmentsResponse:
        infos = self.cluster.list_segments(context.time_remaining())
        return pb.ListSegmentsResponse(segments=[codec.segment_info_message(i) for i in infos])

    @rpc
    def DeleteSegment(self, request: pb.DeleteSegmentRequest, context) -> pb.DeleteSegmentResponse:
        self.cluster.delete_segment(request.name, context.time_remaining())
        return pb.DeleteSegmentResponse()

    @rpc
    def ExportSegment(self, request: pb.ExportSegmentRequest, context) -> Iterator[pb.ExportSegmentResponse]:
        yield from self.cluster.export_segment(request.name, list(request.fields),
                                               request.batch_size or DEFAULT_EXPORT_BATCH,
                                               context.time_remaining())

    @rpc
    def WatchSegment(self, request: pb.WatchSegmentRequest, context) -> Iterator[pb.WatchSegmentResponse]:
        """Until the client goes away (the callback stops the shard streams at once)."""
        with self._watches.slot():
            stream = self.cluster.watch_segment(request.name, dict(request.after), request.initial)
            context.add_callback(stream.cancel)
            yield from stream

    def _schema(self) -> pb.SchemaResponse:
        fields = [pb.FieldSpec(name=f.name, type=f.type.value) for f in self.cluster.schema.fields()]
        events = self.cluster.events
        properties = [pb.FieldSpec(name=f.name, type=f.type.value) for f in events.properties.fields()]
        return pb.SchemaResponse(fields=fields, strict=self.cluster.schema.strict,
                                 event_properties=properties, event_types=events.types())


def _stream(requests: Iterator[Any], context, write: Write, size: Callable[[Any], int]) -> UpsertResult:
    """A client stream of write requests (UpsertStream, TrackStream) with one summary.
    Each request is validated while the previous ones are applied on the shards; one
    applier thread keeps the batches' order (later records win), and at most
    STREAM_PENDING applies wait, so a fast client cannot queue up memory (upserts that
    wait together reach each shard as one Apply: see server/coalesce.py). Indexes count
    across the stream."""
    total = UpsertResult(0, [])
    offset = 0
    with ThreadPoolExecutor(max_workers=1, thread_name_prefix="cdp-apply") as applier:
        pending: list[Future] = []

        def defer(step: Callable[[], None]) -> None:
            while len(pending) >= STREAM_PENDING:
                pending.pop(0).result()  # re-raises a failed apply: the stream fails
            pending.append(applier.submit(step))
        for request in requests:
            result = write(request, offset, context.time_remaining(), defer)
            total.accepted += result.accepted
            total.errors += result.errors
            offset += size(request)
        for f in pending:
            f.result()
    return total


def _upsert_size(request: pb.UpsertRequest) -> int:
    return len(request.profiles) + len(request.columns.ids)


def _track_size(request: pb.TrackRequest) -> int:
    return len(request.events) + codec.event_batch_size(request.columns)


def _combined(results: list[tuple[int, UpsertResult]]) -> UpsertResult:
    """Results of a request's parts, each part's error indexes shifted by its offset."""
    errors = [RecordError(e.index + base, e.field, e.reason) for base, r in results for e in r.errors]
    return UpsertResult(sum(r.accepted for _, r in results), errors)


class AdminService(admin_pb2_grpc.AdminServicer):
    def __init__(self, cluster: Cluster) -> None:
        self.cluster = cluster

    @rpc
    def ClusterStatus(self, request: admin_pb2.ClusterStatusRequest, context) -> admin_pb2.ClusterStatusResponse:
        shards = [admin_pb2.ShardStatus(
            address=h.address, healthy=h.healthy, error=h.error, slots_owned=len(h.slots or []),
            slot_ranges=[admin_pb2.SlotRange(first=a, last=b) for a, b in slot_ranges(h.slots or [])],
            profiles=h.profiles, memory_bytes=h.memory_bytes, fsync=h.fsync, data_dir=h.data_dir,
            recovery=h.recovery, shard_id=h.shard_id) for h in self.cluster.health()]
        progress = self.cluster.migrator.progress
        return admin_pb2.ClusterStatusResponse(slot_map_epoch=self.cluster.slot_map.epoch, shards=shards,
                                               profiles=sum(s.profiles for s in shards),
                                               segments=len(self.cluster.segments.names()),
                                               migration=_migration_message(progress) if progress else None,
                                               cluster_id=self.cluster.state.cluster_id)

    @rpc
    def AddShard(self, request: admin_pb2.AddShardRequest, context) -> admin_pb2.MigrationStatus:
        return _migration_message(self.cluster.add_shard(_address(request.address), context.time_remaining()))

    @rpc
    def RemoveShard(self, request: admin_pb2.RemoveShardRequest, context) -> admin_pb2.MigrationStatus:
        return _migration_message(self.cluster.remove_shard(_address(request.address)))

    @rpc
    def Snapshot(self, request: admin_pb2.SnapshotRequest, context) -> admin_pb2.SnapshotResponse:
        done = self.cluster.snapshot(context.time_remaining())
        return admin_pb2.SnapshotResponse(shards=[
            admin_pb2.ShardSnapshot(address=s.address, file=s.file, lsn=s.lsn, seconds=s.seconds) for s in done])


def _address(text: str) -> str:
    """A host:port, or INVALID_ARGUMENT naming what is wrong with it."""
    host, sep, port = text.strip().rpartition(":")
    if not sep or not host or not port.isdigit() or not 0 < int(port) < 65536:
        raise BatchError(f"shard address {text!r} is not host:port")
    return text.strip()


def _migration_message(p: Progress) -> admin_pb2.MigrationStatus:
    return admin_pb2.MigrationStatus(
        kind=p.kind, shard=p.shard, state=p.state, slots_total=p.slots_total, slots_moved=p.slots_moved,
        slots_moving=p.slots_moving, profiles_copied=p.profiles_copied, events_copied=p.events_copied,
        profiles_per_second=p.profiles_per_second, seconds=p.seconds, error=p.error)


def slot_ranges(slots: list[int]) -> list[tuple[int, int]]:
    """Sorted slots as inclusive (first, last) runs, as Redis CLUSTER SLOTS shows them."""
    out: list[tuple[int, int]] = []
    for s in sorted(slots):
        if out and s == out[-1][1] + 1:
            out[-1] = (out[-1][0], s)
        else:
            out.append((s, s))
    return out
