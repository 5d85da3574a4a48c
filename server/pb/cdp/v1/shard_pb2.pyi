from server.pb.cdp.v1 import profile_store_pb2 as _profile_store_pb2
from google.protobuf.internal import containers as _containers
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class ApplyRequest(_message.Message):
    __slots__ = ("batch", "epoch")
    BATCH_FIELD_NUMBER: _ClassVar[int]
    EPOCH_FIELD_NUMBER: _ClassVar[int]
    batch: bytes
    epoch: int
    def __init__(self, batch: _Optional[bytes] = ..., epoch: _Optional[int] = ...) -> None: ...

class ApplyResponse(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class ExecuteRequest(_message.Message):
    __slots__ = ("plan", "count_only", "epoch")
    PLAN_FIELD_NUMBER: _ClassVar[int]
    COUNT_ONLY_FIELD_NUMBER: _ClassVar[int]
    EPOCH_FIELD_NUMBER: _ClassVar[int]
    plan: bytes
    count_only: bool
    epoch: int
    def __init__(self, plan: _Optional[bytes] = ..., count_only: _Optional[bool] = ..., epoch: _Optional[int] = ...) -> None: ...

class ExecuteResponse(_message.Message):
    __slots__ = ("partial",)
    PARTIAL_FIELD_NUMBER: _ClassVar[int]
    partial: bytes
    def __init__(self, partial: _Optional[bytes] = ...) -> None: ...

class ShardDefineRequest(_message.Message):
    __slots__ = ("fields", "strict")
    FIELDS_FIELD_NUMBER: _ClassVar[int]
    STRICT_FIELD_NUMBER: _ClassVar[int]
    fields: bytes
    strict: bool
    def __init__(self, fields: _Optional[bytes] = ..., strict: _Optional[bool] = ...) -> None: ...

class ShardSchemaResponse(_message.Message):
    __slots__ = ("fields", "strict", "event_properties", "event_types")
    FIELDS_FIELD_NUMBER: _ClassVar[int]
    STRICT_FIELD_NUMBER: _ClassVar[int]
    EVENT_PROPERTIES_FIELD_NUMBER: _ClassVar[int]
    EVENT_TYPES_FIELD_NUMBER: _ClassVar[int]
    fields: bytes
    strict: bool
    event_properties: bytes
    event_types: _containers.RepeatedScalarFieldContainer[str]
    def __init__(self, fields: _Optional[bytes] = ..., strict: _Optional[bool] = ..., event_properties: _Optional[bytes] = ..., event_types: _Optional[_Iterable[str]] = ...) -> None: ...

class ShardIdsRequest(_message.Message):
    __slots__ = ("ids", "epoch", "events_limit")
    IDS_FIELD_NUMBER: _ClassVar[int]
    EPOCH_FIELD_NUMBER: _ClassVar[int]
    EVENTS_LIMIT_FIELD_NUMBER: _ClassVar[int]
    ids: _containers.RepeatedScalarFieldContainer[str]
    epoch: int
    events_limit: int
    def __init__(self, ids: _Optional[_Iterable[str]] = ..., epoch: _Optional[int] = ..., events_limit: _Optional[int] = ...) -> None: ...

class ShardGetResponse(_message.Message):
    __slots__ = ("profiles", "events")
    PROFILES_FIELD_NUMBER: _ClassVar[int]
    EVENTS_FIELD_NUMBER: _ClassVar[int]
    profiles: bytes
    events: bytes
    def __init__(self, profiles: _Optional[bytes] = ..., events: _Optional[bytes] = ...) -> None: ...

class ShardDeleteResponse(_message.Message):
    __slots__ = ("found",)
    FOUND_FIELD_NUMBER: _ClassVar[int]
    found: _containers.RepeatedScalarFieldContainer[bool]
    def __init__(self, found: _Optional[_Iterable[bool]] = ...) -> None: ...

class ShardListIdsRequest(_message.Message):
    __slots__ = ("where", "batch_size")
    WHERE_FIELD_NUMBER: _ClassVar[int]
    BATCH_SIZE_FIELD_NUMBER: _ClassVar[int]
    where: bytes
    batch_size: int
    def __init__(self, where: _Optional[bytes] = ..., batch_size: _Optional[int] = ...) -> None: ...

class ShardStatusRequest(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class ShardStatusResponse(_message.Message):
    __slots__ = ("profiles", "memory_bytes", "slots", "epoch", "fsync", "data_dir", "recovery", "cluster_id", "foreign")
    PROFILES_FIELD_NUMBER: _ClassVar[int]
    MEMORY_BYTES_FIELD_NUMBER: _ClassVar[int]
    SLOTS_FIELD_NUMBER: _ClassVar[int]
    EPOCH_FIELD_NUMBER: _ClassVar[int]
    FSYNC_FIELD_NUMBER: _ClassVar[int]
    DATA_DIR_FIELD_NUMBER: _ClassVar[int]
    RECOVERY_FIELD_NUMBER: _ClassVar[int]
    CLUSTER_ID_FIELD_NUMBER: _ClassVar[int]
    FOREIGN_FIELD_NUMBER: _ClassVar[int]
    profiles: int
    memory_bytes: int
    slots: _containers.RepeatedScalarFieldContainer[int]
    epoch: int
    fsync: str
    data_dir: str
    recovery: str
    cluster_id: str
    foreign: int
    def __init__(self, profiles: _Optional[int] = ..., memory_bytes: _Optional[int] = ..., slots: _Optional[_Iterable[int]] = ..., epoch: _Optional[int] = ..., fsync: _Optional[str] = ..., data_dir: _Optional[str] = ..., recovery: _Optional[str] = ..., cluster_id: _Optional[str] = ..., foreign: _Optional[int] = ...) -> None: ...

class ShardSnapshotRequest(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class ShardSnapshotResponse(_message.Message):
    __slots__ = ("file", "lsn", "seconds")
    FILE_FIELD_NUMBER: _ClassVar[int]
    LSN_FIELD_NUMBER: _ClassVar[int]
    SECONDS_FIELD_NUMBER: _ClassVar[int]
    file: str
    lsn: int
    seconds: float
    def __init__(self, file: _Optional[str] = ..., lsn: _Optional[int] = ..., seconds: _Optional[float] = ...) -> None: ...

class ShardAssignRequest(_message.Message):
    __slots__ = ("slots", "epoch", "cluster_id")
    SLOTS_FIELD_NUMBER: _ClassVar[int]
    EPOCH_FIELD_NUMBER: _ClassVar[int]
    CLUSTER_ID_FIELD_NUMBER: _ClassVar[int]
    slots: _containers.RepeatedScalarFieldContainer[int]
    epoch: int
    cluster_id: str
    def __init__(self, slots: _Optional[_Iterable[int]] = ..., epoch: _Optional[int] = ..., cluster_id: _Optional[str] = ...) -> None: ...

class DefineSegmentRequest(_message.Message):
    __slots__ = ("definition", "now_us")
    DEFINITION_FIELD_NUMBER: _ClassVar[int]
    NOW_US_FIELD_NUMBER: _ClassVar[int]
    definition: bytes
    now_us: int
    def __init__(self, definition: _Optional[bytes] = ..., now_us: _Optional[int] = ...) -> None: ...

class DefineSegmentResponse(_message.Message):
    __slots__ = ("size",)
    SIZE_FIELD_NUMBER: _ClassVar[int]
    size: int
    def __init__(self, size: _Optional[int] = ...) -> None: ...

class RefreshSegmentRequest(_message.Message):
    __slots__ = ("definition", "now_us")
    DEFINITION_FIELD_NUMBER: _ClassVar[int]
    NOW_US_FIELD_NUMBER: _ClassVar[int]
    definition: bytes
    now_us: int
    def __init__(self, definition: _Optional[bytes] = ..., now_us: _Optional[int] = ...) -> None: ...

class DropSegmentRequest(_message.Message):
    __slots__ = ("name",)
    NAME_FIELD_NUMBER: _ClassVar[int]
    name: str
    def __init__(self, name: _Optional[str] = ...) -> None: ...

class SegmentsRequest(_message.Message):
    __slots__ = ("definitions",)
    DEFINITIONS_FIELD_NUMBER: _ClassVar[int]
    definitions: bool
    def __init__(self, definitions: _Optional[bool] = ...) -> None: ...

class ShardSegment(_message.Message):
    __slots__ = ("name", "size", "definition", "last_seq")
    NAME_FIELD_NUMBER: _ClassVar[int]
    SIZE_FIELD_NUMBER: _ClassVar[int]
    DEFINITION_FIELD_NUMBER: _ClassVar[int]
    LAST_SEQ_FIELD_NUMBER: _ClassVar[int]
    name: str
    size: int
    definition: bytes
    last_seq: int
    def __init__(self, name: _Optional[str] = ..., size: _Optional[int] = ..., definition: _Optional[bytes] = ..., last_seq: _Optional[int] = ...) -> None: ...

class SegmentsResponse(_message.Message):
    __slots__ = ("segments",)
    SEGMENTS_FIELD_NUMBER: _ClassVar[int]
    segments: _containers.RepeatedCompositeFieldContainer[ShardSegment]
    def __init__(self, segments: _Optional[_Iterable[_Union[ShardSegment, _Mapping]]] = ...) -> None: ...

class ShardExportRequest(_message.Message):
    __slots__ = ("name", "fields", "batch_size")
    NAME_FIELD_NUMBER: _ClassVar[int]
    FIELDS_FIELD_NUMBER: _ClassVar[int]
    BATCH_SIZE_FIELD_NUMBER: _ClassVar[int]
    name: str
    fields: _containers.RepeatedScalarFieldContainer[str]
    batch_size: int
    def __init__(self, name: _Optional[str] = ..., fields: _Optional[_Iterable[str]] = ..., batch_size: _Optional[int] = ...) -> None: ...

class ShardWatchRequest(_message.Message):
    __slots__ = ("name", "resume", "after", "initial", "shard", "batch_size")
    NAME_FIELD_NUMBER: _ClassVar[int]
    RESUME_FIELD_NUMBER: _ClassVar[int]
    AFTER_FIELD_NUMBER: _ClassVar[int]
    INITIAL_FIELD_NUMBER: _ClassVar[int]
    SHARD_FIELD_NUMBER: _ClassVar[int]
    BATCH_SIZE_FIELD_NUMBER: _ClassVar[int]
    name: str
    resume: bool
    after: int
    initial: bool
    shard: int
    batch_size: int
    def __init__(self, name: _Optional[str] = ..., resume: _Optional[bool] = ..., after: _Optional[int] = ..., initial: _Optional[bool] = ..., shard: _Optional[int] = ..., batch_size: _Optional[int] = ...) -> None: ...

class WriteOp(_message.Message):
    __slots__ = ("kind", "batch")
    KIND_FIELD_NUMBER: _ClassVar[int]
    BATCH_FIELD_NUMBER: _ClassVar[int]
    kind: str
    batch: bytes
    def __init__(self, kind: _Optional[str] = ..., batch: _Optional[bytes] = ...) -> None: ...

class WriteOps(_message.Message):
    __slots__ = ("ops", "profiles", "events")
    OPS_FIELD_NUMBER: _ClassVar[int]
    PROFILES_FIELD_NUMBER: _ClassVar[int]
    EVENTS_FIELD_NUMBER: _ClassVar[int]
    ops: _containers.RepeatedCompositeFieldContainer[WriteOp]
    profiles: int
    events: int
    def __init__(self, ops: _Optional[_Iterable[_Union[WriteOp, _Mapping]]] = ..., profiles: _Optional[int] = ..., events: _Optional[int] = ...) -> None: ...

class ExportSlotsRequest(_message.Message):
    __slots__ = ("slots", "migration")
    SLOTS_FIELD_NUMBER: _ClassVar[int]
    MIGRATION_FIELD_NUMBER: _ClassVar[int]
    slots: _containers.RepeatedScalarFieldContainer[int]
    migration: str
    def __init__(self, slots: _Optional[_Iterable[int]] = ..., migration: _Optional[str] = ...) -> None: ...

class CatchUpRequest(_message.Message):
    __slots__ = ("migration", "end")
    MIGRATION_FIELD_NUMBER: _ClassVar[int]
    END_FIELD_NUMBER: _ClassVar[int]
    migration: str
    end: bool
    def __init__(self, migration: _Optional[str] = ..., end: _Optional[bool] = ...) -> None: ...

class PullSlotsRequest(_message.Message):
    __slots__ = ("source", "slots", "migration")
    SOURCE_FIELD_NUMBER: _ClassVar[int]
    SLOTS_FIELD_NUMBER: _ClassVar[int]
    MIGRATION_FIELD_NUMBER: _ClassVar[int]
    source: str
    slots: _containers.RepeatedScalarFieldContainer[int]
    migration: str
    def __init__(self, source: _Optional[str] = ..., slots: _Optional[_Iterable[int]] = ..., migration: _Optional[str] = ...) -> None: ...

class PullSlotsResponse(_message.Message):
    __slots__ = ("profiles", "events")
    PROFILES_FIELD_NUMBER: _ClassVar[int]
    EVENTS_FIELD_NUMBER: _ClassVar[int]
    profiles: int
    events: int
    def __init__(self, profiles: _Optional[int] = ..., events: _Optional[int] = ...) -> None: ...

class DropSlotsRequest(_message.Message):
    __slots__ = ("slots",)
    SLOTS_FIELD_NUMBER: _ClassVar[int]
    slots: _containers.RepeatedScalarFieldContainer[int]
    def __init__(self, slots: _Optional[_Iterable[int]] = ...) -> None: ...

class DropSlotsResponse(_message.Message):
    __slots__ = ("dropped",)
    DROPPED_FIELD_NUMBER: _ClassVar[int]
    dropped: int
    def __init__(self, dropped: _Optional[int] = ...) -> None: ...
