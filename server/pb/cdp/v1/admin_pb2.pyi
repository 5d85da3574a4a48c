from google.protobuf.internal import containers as _containers
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class ClusterStatusRequest(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class SlotRange(_message.Message):
    __slots__ = ("first", "last")
    FIRST_FIELD_NUMBER: _ClassVar[int]
    LAST_FIELD_NUMBER: _ClassVar[int]
    first: int
    last: int
    def __init__(self, first: _Optional[int] = ..., last: _Optional[int] = ...) -> None: ...

class ShardStatus(_message.Message):
    __slots__ = ("address", "healthy", "error", "slots_owned", "slot_ranges", "profiles", "memory_bytes", "fsync", "data_dir", "recovery", "shard_id")
    ADDRESS_FIELD_NUMBER: _ClassVar[int]
    HEALTHY_FIELD_NUMBER: _ClassVar[int]
    ERROR_FIELD_NUMBER: _ClassVar[int]
    SLOTS_OWNED_FIELD_NUMBER: _ClassVar[int]
    SLOT_RANGES_FIELD_NUMBER: _ClassVar[int]
    PROFILES_FIELD_NUMBER: _ClassVar[int]
    MEMORY_BYTES_FIELD_NUMBER: _ClassVar[int]
    FSYNC_FIELD_NUMBER: _ClassVar[int]
    DATA_DIR_FIELD_NUMBER: _ClassVar[int]
    RECOVERY_FIELD_NUMBER: _ClassVar[int]
    SHARD_ID_FIELD_NUMBER: _ClassVar[int]
    address: str
    healthy: bool
    error: str
    slots_owned: int
    slot_ranges: _containers.RepeatedCompositeFieldContainer[SlotRange]
    profiles: int
    memory_bytes: int
    fsync: str
    data_dir: str
    recovery: str
    shard_id: int
    def __init__(self, address: _Optional[str] = ..., healthy: _Optional[bool] = ..., error: _Optional[str] = ..., slots_owned: _Optional[int] = ..., slot_ranges: _Optional[_Iterable[_Union[SlotRange, _Mapping]]] = ..., profiles: _Optional[int] = ..., memory_bytes: _Optional[int] = ..., fsync: _Optional[str] = ..., data_dir: _Optional[str] = ..., recovery: _Optional[str] = ..., shard_id: _Optional[int] = ...) -> None: ...

class ClusterStatusResponse(_message.Message):
    __slots__ = ("slot_map_epoch", "shards", "profiles", "segments", "migration", "cluster_id")
    SLOT_MAP_EPOCH_FIELD_NUMBER: _ClassVar[int]
    SHARDS_FIELD_NUMBER: _ClassVar[int]
    PROFILES_FIELD_NUMBER: _ClassVar[int]
    SEGMENTS_FIELD_NUMBER: _ClassVar[int]
    MIGRATION_FIELD_NUMBER: _ClassVar[int]
    CLUSTER_ID_FIELD_NUMBER: _ClassVar[int]
    slot_map_epoch: int
    shards: _containers.RepeatedCompositeFieldContainer[ShardStatus]
    profiles: int
    segments: int
    migration: MigrationStatus
    cluster_id: str
    def __init__(self, slot_map_epoch: _Optional[int] = ..., shards: _Optional[_Iterable[_Union[ShardStatus, _Mapping]]] = ..., profiles: _Optional[int] = ..., segments: _Optional[int] = ..., migration: _Optional[_Union[MigrationStatus, _Mapping]] = ..., cluster_id: _Optional[str] = ...) -> None: ...

class MigrationStatus(_message.Message):
    __slots__ = ("kind", "shard", "state", "slots_total", "slots_moved", "slots_moving", "profiles_copied", "events_copied", "profiles_per_second", "seconds", "error")
    KIND_FIELD_NUMBER: _ClassVar[int]
    SHARD_FIELD_NUMBER: _ClassVar[int]
    STATE_FIELD_NUMBER: _ClassVar[int]
    SLOTS_TOTAL_FIELD_NUMBER: _ClassVar[int]
    SLOTS_MOVED_FIELD_NUMBER: _ClassVar[int]
    SLOTS_MOVING_FIELD_NUMBER: _ClassVar[int]
    PROFILES_COPIED_FIELD_NUMBER: _ClassVar[int]
    EVENTS_COPIED_FIELD_NUMBER: _ClassVar[int]
    PROFILES_PER_SECOND_FIELD_NUMBER: _ClassVar[int]
    SECONDS_FIELD_NUMBER: _ClassVar[int]
    ERROR_FIELD_NUMBER: _ClassVar[int]
    kind: str
    shard: str
    state: str
    slots_total: int
    slots_moved: int
    slots_moving: int
    profiles_copied: int
    events_copied: int
    profiles_per_second: float
    seconds: float
    error: str
    def __init__(self, kind: _Optional[str] = ..., shard: _Optional[str] = ..., state: _Optional[str] = ..., slots_total: _Optional[int] = ..., slots_moved: _Optional[int] = ..., slots_moving: _Optional[int] = ..., profiles_copied: _Optional[int] = ..., events_copied: _Optional[int] = ..., profiles_per_second: _Optional[float] = ..., seconds: _Optional[float] = ..., error: _Optional[str] = ...) -> None: ...

class AddShardRequest(_message.Message):
    __slots__ = ("address",)
    ADDRESS_FIELD_NUMBER: _ClassVar[int]
    address: str
    def __init__(self, address: _Optional[str] = ...) -> None: ...

class RemoveShardRequest(_message.Message):
    __slots__ = ("address",)
    ADDRESS_FIELD_NUMBER: _ClassVar[int]
    address: str
    def __init__(self, address: _Optional[str] = ...) -> None: ...

class SnapshotRequest(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class ShardSnapshot(_message.Message):
    __slots__ = ("address", "file", "lsn", "seconds")
    ADDRESS_FIELD_NUMBER: _ClassVar[int]
    FILE_FIELD_NUMBER: _ClassVar[int]
    LSN_FIELD_NUMBER: _ClassVar[int]
    SECONDS_FIELD_NUMBER: _ClassVar[int]
    address: str
    file: str
    lsn: int
    seconds: float
    def __init__(self, address: _Optional[str] = ..., file: _Optional[str] = ..., lsn: _Optional[int] = ..., seconds: _Optional[float] = ...) -> None: ...

class SnapshotResponse(_message.Message):
    __slots__ = ("shards",)
    SHARDS_FIELD_NUMBER: _ClassVar[int]
    shards: _containers.RepeatedCompositeFieldContainer[ShardSnapshot]
    def __init__(self, shards: _Optional[_Iterable[_Union[ShardSnapshot, _Mapping]]] = ...) -> None: ...
