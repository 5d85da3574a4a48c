from google.protobuf.internal import containers as _containers
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class StringList(_message.Message):
    __slots__ = ("values",)
    VALUES_FIELD_NUMBER: _ClassVar[int]
    values: _containers.RepeatedScalarFieldContainer[str]
    def __init__(self, values: _Optional[_Iterable[str]] = ...) -> None: ...

class Value(_message.Message):
    __slots__ = ("null_value", "int_value", "float_value", "bool_value", "string_value", "timestamp_us", "tags", "timestamp_text")
    NULL_VALUE_FIELD_NUMBER: _ClassVar[int]
    INT_VALUE_FIELD_NUMBER: _ClassVar[int]
    FLOAT_VALUE_FIELD_NUMBER: _ClassVar[int]
    BOOL_VALUE_FIELD_NUMBER: _ClassVar[int]
    STRING_VALUE_FIELD_NUMBER: _ClassVar[int]
    TIMESTAMP_US_FIELD_NUMBER: _ClassVar[int]
    TAGS_FIELD_NUMBER: _ClassVar[int]
    TIMESTAMP_TEXT_FIELD_NUMBER: _ClassVar[int]
    null_value: bool
    int_value: int
    float_value: float
    bool_value: bool
    string_value: str
    timestamp_us: int
    tags: StringList
    timestamp_text: str
    def __init__(self, null_value: _Optional[bool] = ..., int_value: _Optional[int] = ..., float_value: _Optional[float] = ..., bool_value: _Optional[bool] = ..., string_value: _Optional[str] = ..., timestamp_us: _Optional[int] = ..., tags: _Optional[_Union[StringList, _Mapping]] = ..., timestamp_text: _Optional[str] = ...) -> None: ...

class Profile(_message.Message):
    __slots__ = ("profile_id", "fields")
    class FieldsEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: Value
        def __init__(self, key: _Optional[str] = ..., value: _Optional[_Union[Value, _Mapping]] = ...) -> None: ...
    PROFILE_ID_FIELD_NUMBER: _ClassVar[int]
    FIELDS_FIELD_NUMBER: _ClassVar[int]
    profile_id: str
    fields: _containers.MessageMap[str, Value]
    def __init__(self, profile_id: _Optional[str] = ..., fields: _Optional[_Mapping[str, Value]] = ...) -> None: ...

class Int64Column(_message.Message):
    __slots__ = ("values",)
    VALUES_FIELD_NUMBER: _ClassVar[int]
    values: _containers.RepeatedScalarFieldContainer[int]
    def __init__(self, values: _Optional[_Iterable[int]] = ...) -> None: ...

class DoubleColumn(_message.Message):
    __slots__ = ("values",)
    VALUES_FIELD_NUMBER: _ClassVar[int]
    values: _containers.RepeatedScalarFieldContainer[float]
    def __init__(self, values: _Optional[_Iterable[float]] = ...) -> None: ...

class BoolColumn(_message.Message):
    __slots__ = ("values",)
    VALUES_FIELD_NUMBER: _ClassVar[int]
    values: _containers.RepeatedScalarFieldContainer[bool]
    def __init__(self, values: _Optional[_Iterable[bool]] = ...) -> None: ...

class StringColumn(_message.Message):
    __slots__ = ("values",)
    VALUES_FIELD_NUMBER: _ClassVar[int]
    values: _containers.RepeatedScalarFieldContainer[str]
    def __init__(self, values: _Optional[_Iterable[str]] = ...) -> None: ...

class DictColumn(_message.Message):
    __slots__ = ("dictionary", "codes")
    DICTIONARY_FIELD_NUMBER: _ClassVar[int]
    CODES_FIELD_NUMBER: _ClassVar[int]
    dictionary: _containers.RepeatedScalarFieldContainer[str]
    codes: _containers.RepeatedScalarFieldContainer[int]
    def __init__(self, dictionary: _Optional[_Iterable[str]] = ..., codes: _Optional[_Iterable[int]] = ...) -> None: ...

class TagColumn(_message.Message):
    __slots__ = ("dictionary", "codes", "counts")
    DICTIONARY_FIELD_NUMBER: _ClassVar[int]
    CODES_FIELD_NUMBER: _ClassVar[int]
    COUNTS_FIELD_NUMBER: _ClassVar[int]
    dictionary: _containers.RepeatedScalarFieldContainer[str]
    codes: _containers.RepeatedScalarFieldContainer[int]
    counts: _containers.RepeatedScalarFieldContainer[int]
    def __init__(self, dictionary: _Optional[_Iterable[str]] = ..., codes: _Optional[_Iterable[int]] = ..., counts: _Optional[_Iterable[int]] = ...) -> None: ...

class Column(_message.Message):
    __slots__ = ("name", "nulls", "ints", "floats", "bools", "strings", "dict", "timestamps_us", "timestamp_texts", "tags", "int64_le", "float64_le")
    NAME_FIELD_NUMBER: _ClassVar[int]
    NULLS_FIELD_NUMBER: _ClassVar[int]
    INTS_FIELD_NUMBER: _ClassVar[int]
    FLOATS_FIELD_NUMBER: _ClassVar[int]
    BOOLS_FIELD_NUMBER: _ClassVar[int]
    STRINGS_FIELD_NUMBER: _ClassVar[int]
    DICT_FIELD_NUMBER: _ClassVar[int]
    TIMESTAMPS_US_FIELD_NUMBER: _ClassVar[int]
    TIMESTAMP_TEXTS_FIELD_NUMBER: _ClassVar[int]
    TAGS_FIELD_NUMBER: _ClassVar[int]
    INT64_LE_FIELD_NUMBER: _ClassVar[int]
    FLOAT64_LE_FIELD_NUMBER: _ClassVar[int]
    name: str
    nulls: bytes
    ints: Int64Column
    floats: DoubleColumn
    bools: BoolColumn
    strings: StringColumn
    dict: DictColumn
    timestamps_us: Int64Column
    timestamp_texts: StringColumn
    tags: TagColumn
    int64_le: bytes
    float64_le: bytes
    def __init__(self, name: _Optional[str] = ..., nulls: _Optional[bytes] = ..., ints: _Optional[_Union[Int64Column, _Mapping]] = ..., floats: _Optional[_Union[DoubleColumn, _Mapping]] = ..., bools: _Optional[_Union[BoolColumn, _Mapping]] = ..., strings: _Optional[_Union[StringColumn, _Mapping]] = ..., dict: _Optional[_Union[DictColumn, _Mapping]] = ..., timestamps_us: _Optional[_Union[Int64Column, _Mapping]] = ..., timestamp_texts: _Optional[_Union[StringColumn, _Mapping]] = ..., tags: _Optional[_Union[TagColumn, _Mapping]] = ..., int64_le: _Optional[bytes] = ..., float64_le: _Optional[bytes] = ...) -> None: ...

class ColumnBatch(_message.Message):
    __slots__ = ("ids", "columns")
    IDS_FIELD_NUMBER: _ClassVar[int]
    COLUMNS_FIELD_NUMBER: _ClassVar[int]
    ids: _containers.RepeatedScalarFieldContainer[str]
    columns: _containers.RepeatedCompositeFieldContainer[Column]
    def __init__(self, ids: _Optional[_Iterable[str]] = ..., columns: _Optional[_Iterable[_Union[Column, _Mapping]]] = ...) -> None: ...

class UpsertRequest(_message.Message):
    __slots__ = ("profiles", "columns")
    PROFILES_FIELD_NUMBER: _ClassVar[int]
    COLUMNS_FIELD_NUMBER: _ClassVar[int]
    profiles: _containers.RepeatedCompositeFieldContainer[Profile]
    columns: ColumnBatch
    def __init__(self, profiles: _Optional[_Iterable[_Union[Profile, _Mapping]]] = ..., columns: _Optional[_Union[ColumnBatch, _Mapping]] = ...) -> None: ...

class RecordError(_message.Message):
    __slots__ = ("index", "field", "reason")
    INDEX_FIELD_NUMBER: _ClassVar[int]
    FIELD_FIELD_NUMBER: _ClassVar[int]
    REASON_FIELD_NUMBER: _ClassVar[int]
    index: int
    field: str
    reason: str
    def __init__(self, index: _Optional[int] = ..., field: _Optional[str] = ..., reason: _Optional[str] = ...) -> None: ...

class UpsertResponse(_message.Message):
    __slots__ = ("accepted", "errors")
    ACCEPTED_FIELD_NUMBER: _ClassVar[int]
    ERRORS_FIELD_NUMBER: _ClassVar[int]
    accepted: int
    errors: _containers.RepeatedCompositeFieldContainer[RecordError]
    def __init__(self, accepted: _Optional[int] = ..., errors: _Optional[_Iterable[_Union[RecordError, _Mapping]]] = ...) -> None: ...

class Event(_message.Message):
    __slots__ = ("profile_id", "type", "ts_us", "ts_text", "properties")
    class PropertiesEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: Value
        def __init__(self, key: _Optional[str] = ..., value: _Optional[_Union[Value, _Mapping]] = ...) -> None: ...
    PROFILE_ID_FIELD_NUMBER: _ClassVar[int]
    TYPE_FIELD_NUMBER: _ClassVar[int]
    TS_US_FIELD_NUMBER: _ClassVar[int]
    TS_TEXT_FIELD_NUMBER: _ClassVar[int]
    PROPERTIES_FIELD_NUMBER: _ClassVar[int]
    profile_id: str
    type: str
    ts_us: int
    ts_text: str
    properties: _containers.MessageMap[str, Value]
    def __init__(self, profile_id: _Optional[str] = ..., type: _Optional[str] = ..., ts_us: _Optional[int] = ..., ts_text: _Optional[str] = ..., properties: _Optional[_Mapping[str, Value]] = ...) -> None: ...

class EventTimes(_message.Message):
    __slots__ = ("absent", "us_le", "us", "texts")
    ABSENT_FIELD_NUMBER: _ClassVar[int]
    US_LE_FIELD_NUMBER: _ClassVar[int]
    US_FIELD_NUMBER: _ClassVar[int]
    TEXTS_FIELD_NUMBER: _ClassVar[int]
    absent: bytes
    us_le: bytes
    us: Int64Column
    texts: StringColumn
    def __init__(self, absent: _Optional[bytes] = ..., us_le: _Optional[bytes] = ..., us: _Optional[_Union[Int64Column, _Mapping]] = ..., texts: _Optional[_Union[StringColumn, _Mapping]] = ...) -> None: ...

class EventProperty(_message.Message):
    __slots__ = ("name", "absent", "float64_le", "floats", "dict", "strings")
    NAME_FIELD_NUMBER: _ClassVar[int]
    ABSENT_FIELD_NUMBER: _ClassVar[int]
    FLOAT64_LE_FIELD_NUMBER: _ClassVar[int]
    FLOATS_FIELD_NUMBER: _ClassVar[int]
    DICT_FIELD_NUMBER: _ClassVar[int]
    STRINGS_FIELD_NUMBER: _ClassVar[int]
    name: str
    absent: bytes
    float64_le: bytes
    floats: DoubleColumn
    dict: DictColumn
    strings: StringColumn
    def __init__(self, name: _Optional[str] = ..., absent: _Optional[bytes] = ..., float64_le: _Optional[bytes] = ..., floats: _Optional[_Union[DoubleColumn, _Mapping]] = ..., dict: _Optional[_Union[DictColumn, _Mapping]] = ..., strings: _Optional[_Union[StringColumn, _Mapping]] = ...) -> None: ...

class EventBatch(_message.Message):
    __slots__ = ("profile_ids", "types", "ts", "properties", "profile_id_dict")
    PROFILE_IDS_FIELD_NUMBER: _ClassVar[int]
    TYPES_FIELD_NUMBER: _ClassVar[int]
    TS_FIELD_NUMBER: _ClassVar[int]
    PROPERTIES_FIELD_NUMBER: _ClassVar[int]
    PROFILE_ID_DICT_FIELD_NUMBER: _ClassVar[int]
    profile_ids: _containers.RepeatedScalarFieldContainer[str]
    types: DictColumn
    ts: EventTimes
    properties: _containers.RepeatedCompositeFieldContainer[EventProperty]
    profile_id_dict: DictColumn
    def __init__(self, profile_ids: _Optional[_Iterable[str]] = ..., types: _Optional[_Union[DictColumn, _Mapping]] = ..., ts: _Optional[_Union[EventTimes, _Mapping]] = ..., properties: _Optional[_Iterable[_Union[EventProperty, _Mapping]]] = ..., profile_id_dict: _Optional[_Union[DictColumn, _Mapping]] = ...) -> None: ...

class TrackRequest(_message.Message):
    __slots__ = ("events", "columns")
    EVENTS_FIELD_NUMBER: _ClassVar[int]
    COLUMNS_FIELD_NUMBER: _ClassVar[int]
    events: _containers.RepeatedCompositeFieldContainer[Event]
    columns: EventBatch
    def __init__(self, events: _Optional[_Iterable[_Union[Event, _Mapping]]] = ..., columns: _Optional[_Union[EventBatch, _Mapping]] = ...) -> None: ...

class TrackResponse(_message.Message):
    __slots__ = ("accepted", "errors")
    ACCEPTED_FIELD_NUMBER: _ClassVar[int]
    ERRORS_FIELD_NUMBER: _ClassVar[int]
    accepted: int
    errors: _containers.RepeatedCompositeFieldContainer[RecordError]
    def __init__(self, accepted: _Optional[int] = ..., errors: _Optional[_Iterable[_Union[RecordError, _Mapping]]] = ...) -> None: ...

class DeleteProfilesRequest(_message.Message):
    __slots__ = ("profile_ids",)
    PROFILE_IDS_FIELD_NUMBER: _ClassVar[int]
    profile_ids: _containers.RepeatedScalarFieldContainer[str]
    def __init__(self, profile_ids: _Optional[_Iterable[str]] = ...) -> None: ...

class DeleteProfilesResponse(_message.Message):
    __slots__ = ("deleted", "not_found")
    DELETED_FIELD_NUMBER: _ClassVar[int]
    NOT_FOUND_FIELD_NUMBER: _ClassVar[int]
    deleted: int
    not_found: _containers.RepeatedScalarFieldContainer[str]
    def __init__(self, deleted: _Optional[int] = ..., not_found: _Optional[_Iterable[str]] = ...) -> None: ...

class GetProfileRequest(_message.Message):
    __slots__ = ("profile_id", "events_limit")
    PROFILE_ID_FIELD_NUMBER: _ClassVar[int]
    EVENTS_LIMIT_FIELD_NUMBER: _ClassVar[int]
    profile_id: str
    events_limit: int
    def __init__(self, profile_id: _Optional[str] = ..., events_limit: _Optional[int] = ...) -> None: ...

class GetProfileResponse(_message.Message):
    __slots__ = ("profile", "events")
    PROFILE_FIELD_NUMBER: _ClassVar[int]
    EVENTS_FIELD_NUMBER: _ClassVar[int]
    profile: Profile
    events: _containers.RepeatedCompositeFieldContainer[Event]
    def __init__(self, profile: _Optional[_Union[Profile, _Mapping]] = ..., events: _Optional[_Iterable[_Union[Event, _Mapping]]] = ...) -> None: ...

class QueryRequest(_message.Message):
    __slots__ = ("sql",)
    SQL_FIELD_NUMBER: _ClassVar[int]
    sql: str
    def __init__(self, sql: _Optional[str] = ...) -> None: ...

class Row(_message.Message):
    __slots__ = ("values",)
    VALUES_FIELD_NUMBER: _ClassVar[int]
    values: _containers.RepeatedCompositeFieldContainer[Value]
    def __init__(self, values: _Optional[_Iterable[_Union[Value, _Mapping]]] = ...) -> None: ...

class QueryResponse(_message.Message):
    __slots__ = ("columns", "rows", "elapsed_ms", "warnings")
    COLUMNS_FIELD_NUMBER: _ClassVar[int]
    ROWS_FIELD_NUMBER: _ClassVar[int]
    ELAPSED_MS_FIELD_NUMBER: _ClassVar[int]
    WARNINGS_FIELD_NUMBER: _ClassVar[int]
    columns: _containers.RepeatedScalarFieldContainer[str]
    rows: _containers.RepeatedCompositeFieldContainer[Row]
    elapsed_ms: float
    warnings: _containers.RepeatedScalarFieldContainer[str]
    def __init__(self, columns: _Optional[_Iterable[str]] = ..., rows: _Optional[_Iterable[_Union[Row, _Mapping]]] = ..., elapsed_ms: _Optional[float] = ..., warnings: _Optional[_Iterable[str]] = ...) -> None: ...

class ListIdsRequest(_message.Message):
    __slots__ = ("where", "batch_size")
    WHERE_FIELD_NUMBER: _ClassVar[int]
    BATCH_SIZE_FIELD_NUMBER: _ClassVar[int]
    where: str
    batch_size: int
    def __init__(self, where: _Optional[str] = ..., batch_size: _Optional[int] = ...) -> None: ...

class IdBatch(_message.Message):
    __slots__ = ("ids",)
    IDS_FIELD_NUMBER: _ClassVar[int]
    ids: _containers.RepeatedScalarFieldContainer[str]
    def __init__(self, ids: _Optional[_Iterable[str]] = ...) -> None: ...

class FieldSpec(_message.Message):
    __slots__ = ("name", "type")
    NAME_FIELD_NUMBER: _ClassVar[int]
    TYPE_FIELD_NUMBER: _ClassVar[int]
    name: str
    type: str
    def __init__(self, name: _Optional[str] = ..., type: _Optional[str] = ...) -> None: ...

class GetSchemaRequest(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class DefineFieldsRequest(_message.Message):
    __slots__ = ("fields",)
    FIELDS_FIELD_NUMBER: _ClassVar[int]
    fields: _containers.RepeatedCompositeFieldContainer[FieldSpec]
    def __init__(self, fields: _Optional[_Iterable[_Union[FieldSpec, _Mapping]]] = ...) -> None: ...

class SchemaResponse(_message.Message):
    __slots__ = ("fields", "strict", "event_properties", "event_types")
    FIELDS_FIELD_NUMBER: _ClassVar[int]
    STRICT_FIELD_NUMBER: _ClassVar[int]
    EVENT_PROPERTIES_FIELD_NUMBER: _ClassVar[int]
    EVENT_TYPES_FIELD_NUMBER: _ClassVar[int]
    fields: _containers.RepeatedCompositeFieldContainer[FieldSpec]
    strict: bool
    event_properties: _containers.RepeatedCompositeFieldContainer[FieldSpec]
    event_types: _containers.RepeatedScalarFieldContainer[str]
    def __init__(self, fields: _Optional[_Iterable[_Union[FieldSpec, _Mapping]]] = ..., strict: _Optional[bool] = ..., event_properties: _Optional[_Iterable[_Union[FieldSpec, _Mapping]]] = ..., event_types: _Optional[_Iterable[str]] = ...) -> None: ...

class CreateSegmentRequest(_message.Message):
    __slots__ = ("name", "where")
    NAME_FIELD_NUMBER: _ClassVar[int]
    WHERE_FIELD_NUMBER: _ClassVar[int]
    name: str
    where: str
    def __init__(self, name: _Optional[str] = ..., where: _Optional[str] = ...) -> None: ...

class SegmentInfo(_message.Message):
    __slots__ = ("name", "where", "size", "time_dependent", "depends_on", "created_at_us", "refreshed_at_us")
    NAME_FIELD_NUMBER: _ClassVar[int]
    WHERE_FIELD_NUMBER: _ClassVar[int]
    SIZE_FIELD_NUMBER: _ClassVar[int]
    TIME_DEPENDENT_FIELD_NUMBER: _ClassVar[int]
    DEPENDS_ON_FIELD_NUMBER: _ClassVar[int]
    CREATED_AT_US_FIELD_NUMBER: _ClassVar[int]
    REFRESHED_AT_US_FIELD_NUMBER: _ClassVar[int]
    name: str
    where: str
    size: int
    time_dependent: bool
    depends_on: _containers.RepeatedScalarFieldContainer[str]
    created_at_us: int
    refreshed_at_us: int
    def __init__(self, name: _Optional[str] = ..., where: _Optional[str] = ..., size: _Optional[int] = ..., time_dependent: _Optional[bool] = ..., depends_on: _Optional[_Iterable[str]] = ..., created_at_us: _Optional[int] = ..., refreshed_at_us: _Optional[int] = ...) -> None: ...

class GetSegmentRequest(_message.Message):
    __slots__ = ("name",)
    NAME_FIELD_NUMBER: _ClassVar[int]
    name: str
    def __init__(self, name: _Optional[str] = ...) -> None: ...

class ListSegmentsRequest(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class ListSegmentsResponse(_message.Message):
    __slots__ = ("segments",)
    SEGMENTS_FIELD_NUMBER: _ClassVar[int]
    segments: _containers.RepeatedCompositeFieldContainer[SegmentInfo]
    def __init__(self, segments: _Optional[_Iterable[_Union[SegmentInfo, _Mapping]]] = ...) -> None: ...

class DeleteSegmentRequest(_message.Message):
    __slots__ = ("name",)
    NAME_FIELD_NUMBER: _ClassVar[int]
    name: str
    def __init__(self, name: _Optional[str] = ...) -> None: ...

class DeleteSegmentResponse(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class ExportSegmentRequest(_message.Message):
    __slots__ = ("name", "fields", "batch_size")
    NAME_FIELD_NUMBER: _ClassVar[int]
    FIELDS_FIELD_NUMBER: _ClassVar[int]
    BATCH_SIZE_FIELD_NUMBER: _ClassVar[int]
    name: str
    fields: _containers.RepeatedScalarFieldContainer[str]
    batch_size: int
    def __init__(self, name: _Optional[str] = ..., fields: _Optional[_Iterable[str]] = ..., batch_size: _Optional[int] = ...) -> None: ...

class ExportSegmentResponse(_message.Message):
    __slots__ = ("members",)
    MEMBERS_FIELD_NUMBER: _ClassVar[int]
    members: ColumnBatch
    def __init__(self, members: _Optional[_Union[ColumnBatch, _Mapping]] = ...) -> None: ...

class WatchSegmentRequest(_message.Message):
    __slots__ = ("name", "after", "initial")
    class AfterEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: int
        value: int
        def __init__(self, key: _Optional[int] = ..., value: _Optional[int] = ...) -> None: ...
    NAME_FIELD_NUMBER: _ClassVar[int]
    AFTER_FIELD_NUMBER: _ClassVar[int]
    INITIAL_FIELD_NUMBER: _ClassVar[int]
    name: str
    after: _containers.ScalarMap[int, int]
    initial: bool
    def __init__(self, name: _Optional[str] = ..., after: _Optional[_Mapping[int, int]] = ..., initial: _Optional[bool] = ...) -> None: ...

class SegmentChange(_message.Message):
    __slots__ = ("profile_id", "entered", "shard", "seq", "initial")
    PROFILE_ID_FIELD_NUMBER: _ClassVar[int]
    ENTERED_FIELD_NUMBER: _ClassVar[int]
    SHARD_FIELD_NUMBER: _ClassVar[int]
    SEQ_FIELD_NUMBER: _ClassVar[int]
    INITIAL_FIELD_NUMBER: _ClassVar[int]
    profile_id: str
    entered: bool
    shard: int
    seq: int
    initial: bool
    def __init__(self, profile_id: _Optional[str] = ..., entered: _Optional[bool] = ..., shard: _Optional[int] = ..., seq: _Optional[int] = ..., initial: _Optional[bool] = ...) -> None: ...

class WatchSegmentResponse(_message.Message):
    __slots__ = ("changes", "initial_done", "positions")
    class PositionsEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: int
        value: int
        def __init__(self, key: _Optional[int] = ..., value: _Optional[int] = ...) -> None: ...
    CHANGES_FIELD_NUMBER: _ClassVar[int]
    INITIAL_DONE_FIELD_NUMBER: _ClassVar[int]
    POSITIONS_FIELD_NUMBER: _ClassVar[int]
    changes: _containers.RepeatedCompositeFieldContainer[SegmentChange]
    initial_done: bool
    positions: _containers.ScalarMap[int, int]
    def __init__(self, changes: _Optional[_Iterable[_Union[SegmentChange, _Mapping]]] = ..., initial_done: _Optional[bool] = ..., positions: _Optional[_Mapping[int, int]] = ...) -> None: ...
