"""Codec represents the translation between cdp.v1 messages and cdpcore's Python types.

This package is the only code importing both `server.pb` and `cdpcore` (STYLE practice
3), and it holds no rule of the engine: values are translated, never validated beyond
what the message shape itself requires (lengths, dictionary codes); the engine judges.

- `values`: one Value ↔ one Python value; presence bitmaps.
- this module: profiles. Server side `records_from_profiles`, `columns_from_batch`
  (requests → Store inputs); `profile_message`, `query_response`, `upsert_response`
  (results → replies). Client side (`cdp ingest`, bench): `batch_from_columns`,
  `profiles_from_records`, `query_result`.
- `events`: the same for behavioural events (Track, GetProfile's events).
- `segments`: saved segments (definitions shipped to shards, SegmentInfo, changes,
  export batches).

The columnar path is vectorised: repeated numeric fields become numpy arrays through the
buffer protocol (`np.asarray`), raw `*_le` bytes through `np.frombuffer`, and the nulls
bitmap through `np.unpackbits`; nothing loops over records in Python.
"""
from __future__ import annotations

__all__ = ["INT64_MAX", "INT64_MIN", "Unencodable", "batch_from_columns", "change_messages",
           "columns_from_batch", "decode_column", "encode_column",
           "export_columns", "export_response", "initial_messages", "segment_info_message",
           "segment_info_of", "event_batch_from_columns", "event_batch_size",
           "event_columns_from_batch",
           "event_message", "event_of_message", "event_of_record", "events_from_records", "profile_message",
           "profiles_from_records", "python_of", "query_response", "query_result", "records_from_events",
           "records_from_profiles", "timestamp_fields_of", "track_response", "upsert_response", "value_of"]

import datetime as _dt
import itertools
from typing import Any, Callable, Collection, Iterable, Mapping, Sequence

import numpy as np

from cdpcore import Categorical, FieldType, QueryResult, Schema, TagSets, UpsertResult
from cdpcore import timestamps as ts
from cdpcore.errors import BatchError
from cdpcore.schema import ID_FIELD
from server.pb.cdp.v1 import profile_store_pb2 as pb

from .events import (Unencodable, event_batch_from_columns, event_batch_size, event_columns_from_batch,
                     event_message,
                     event_of_message, event_of_record, events_from_records, records_from_events,
                     track_response)
from .segments import (change_messages, export_columns,
                       export_response, initial_messages, segment_info_message, segment_info_of)
from .values import (INT64_MAX, INT64_MIN, bitmap_of_mask, categorical_of, datetime64_of_micros, fill_dict,
                     mask_of_bitmap, micros_of_datetime64, python_of, value_of)

# ---- row form --------------------------------------------------------------------------
def records_from_profiles(profiles: Iterable[pb.Profile]) -> list[dict[str, Any]]:
    """Profile messages → dicts for Store.upsert (one per profile, in order)."""
    records = []
    for i, p in enumerate(profiles):
        if ID_FIELD in p.fields:
            raise BatchError(f"profile {i}: {ID_FIELD!r} is the message's own field, not a key of `fields`")
        records.append({ID_FIELD: p.profile_id, **{name: python_of(v) for name, v in p.fields.items()}})
    return records


def profile_message(profile: Mapping[str, Any]) -> pb.Profile:
    """A profile dict (as Store.get_profile returns it) → Profile."""
    fields = {name: value_of(v) for name, v in profile.items() if name != ID_FIELD}
    return pb.Profile(profile_id=profile[ID_FIELD], fields=fields)


def profiles_from_records(records: Iterable[Mapping[str, Any]]) -> list[pb.Profile]:
    """Client side: dicts as Store.upsert takes them → Profile messages.

    datetime → timestamp_us, list/tuple/set → tags, None → null. A value with no wire
    form (or an id that is not a string) raises BatchError naming the record and field.
    """
    return [_profile_of_record(i, r) for i, r in enumerate(records)]


def _profile_of_record(i: int, record: Mapping[str, Any]) -> pb.Profile:
    pid = record.get(ID_FIELD, "")
    if not isinstance(pid, str):
        raise BatchError(f"record {i}: {ID_FIELD} must be a string, got {type(pid).__name__}")
    fields = {}
    for name, v in record.items():
        if name == ID_FIELD:
            continue
        try:
            fields[name] = value_of(v)
        except (TypeError, ValueError) as e:
            raise BatchError(f"record {i}, field {name!r}: {e}") from None
    return pb.Profile(profile_id=pid, fields=fields)


# ---- columnar form: server side ---------------------------------------------------------
def timestamp_fields_of(schema: Schema) -> frozenset[str]:
    """The names `columns_from_batch` needs to read raw int64_le columns as µs timestamps."""
    return frozenset(f.name for f in schema.fields() if f.type is FieldType.TIMESTAMP)


def columns_from_batch(batch: pb.ColumnBatch, timestamp_fields: Collection[str] = ()
                       ) -> tuple[list[str], dict[str, object]]:
    """A ColumnBatch → (ids, columns) for Store.upsert_columns, without per-record Python.

    The proto lets `int64_le` carry either int values or timestamps (µs); which one is
    the field's declared type, so the caller names the timestamp fields (see
    `timestamp_fields_of`). Raises BatchError naming the column for a malformed column.
    """
    ids = list(batch.ids)
    columns: dict[str, object] = {}
    for col in batch.columns:
        if col.name in columns:
            raise BatchError(f"column {col.name!r} is given twice")
        columns[col.name] = decode_column(col, len(ids), col.name in timestamp_fields)
    return ids, columns


def decode_column(col: pb.Column, n: int, timestamps: bool = False) -> object:
    """One Column of a batch of n records → a column in a form upsert_columns takes."""
    kind = col.WhichOneof("values")
    if kind is None:
        if n:
            raise BatchError(f"column {col.name!r} has no values for {n} ids")
        return []
    if kind == "int64_le" and timestamps:
        kind = "timestamps_le"
    return _DECODERS[kind](col, n, _null_mask(col, n))


def _null_mask(col: pb.Column, n: int) -> np.ndarray | None:
    """The nulls bitmap (bit i, LSB first, = record i is null) as a bool mask; None if no nulls."""
    return mask_of_bitmap(col.nulls, n, f"column {col.name!r}: nulls bitmap")


def _sized(col: pb.Column, values: Any, n: int, what: str = "values") -> Any:
    if len(values) != n:
        raise BatchError(f"column {col.name!r} has {len(values)} {what} for {n} ids")
    return values


def _masked(values: np.ndarray, null: np.ndarray | None) -> np.ndarray:
    return values if null is None else np.ma.MaskedArray(values, mask=null)


def _repeated(dtype: Any, member: str) -> Callable[[pb.Column, int, np.ndarray | None], object]:
    def decode(col: pb.Column, n: int, null: np.ndarray | None) -> object:
        # np.asarray reads upb's packed repeated field through the buffer protocol.
        values = np.asarray(getattr(col, member).values, dtype=dtype)
        return _masked(_sized(col, values, n), null)
    return decode


def _raw(col: pb.Column, member: str, dtype: str, n: int) -> np.ndarray:
    data = getattr(col, member)
    if len(data) != 8 * n:
        raise BatchError(f"column {col.name!r} has {len(data)} bytes of {member} for {n} ids "
                         f"(expected {8 * n})")
    return np.frombuffer(data, dtype=dtype)


def _timestamps_us(col: pb.Column, n: int, null: np.ndarray | None) -> object:
    us = _sized(col, np.asarray(col.timestamps_us.values, dtype=np.int64), n)
    return _masked(datetime64_of_micros(us), null)


def _strings(col: pb.Column, n: int, null: np.ndarray | None) -> object:
    member = col.strings if col.WhichOneof("values") == "strings" else col.timestamp_texts
    values = _sized(col, list(member.values), n)
    if null is None:
        return values
    arr = np.array(values, dtype=object)
    arr[null] = None
    return arr.tolist()


def _dict(col: pb.Column, n: int, null: np.ndarray | None) -> object:
    return categorical_of(col.dict, n, null, f"column {col.name!r}")


def _tags(col: pb.Column, n: int, null: np.ndarray | None) -> object:
    counts = _sized(col, np.asarray(col.tags.counts, dtype=np.int64), n, "counts")
    codes = np.asarray(col.tags.codes, dtype=np.int64)
    if counts.sum() != codes.size:
        raise BatchError(f"column {col.name!r}: tag counts add up to {counts.sum()} "
                         f"but {codes.size} codes are given")
    if null is not None:  # a null record's tags are ignored: drop them
        codes = codes[~np.repeat(null, counts)]
        counts = np.where(null, 0, counts)
    size = len(col.tags.dictionary)
    if codes.size and codes.max() >= size:
        raise BatchError(f"column {col.name!r}: tag code out of range (0..{size - 1} expected)")
    offsets = np.zeros(n + 1, dtype=np.int64)
    np.cumsum(counts, out=offsets[1:])
    return TagSets(offsets, codes.astype(np.int32), list(col.tags.dictionary), null)


_DECODERS: dict[str, Callable[[pb.Column, int, np.ndarray | None], object]] = {
    "ints": _repeated(np.int64, "ints"),
    "floats": _repeated(np.float64, "floats"),
    "bools": _repeated(np.bool_, "bools"),
    "strings": _strings,
    "dict": _dict,
    "timestamps_us": _timestamps_us,
    "timestamp_texts": _strings,   # a timestamp field parses ISO text (vectorised when plain)
    "tags": _tags,
    "int64_le": lambda col, n, null: _masked(_raw(col, "int64_le", "<i8", n), null),
    "timestamps_le": lambda col, n, null: _masked(datetime64_of_micros(_raw(col, "int64_le", "<i8", n)), null),
    "float64_le": lambda col, n, null: _masked(_raw(col, "float64_le", "<f8", n), null),
}


# ---- columnar form: client side -------------------------------------------------------
def batch_from_columns(ids: Sequence[str] | np.ndarray, columns: Mapping[str, object]) -> pb.ColumnBatch:
    """Client side: (ids, columns) in any form Store.upsert_columns takes → ColumnBatch.

    numpy ints → int64_le, floats → float64_le, bools → bools, datetime64 → timestamps_us,
    strings → dict, Categorical → dict, TagSets → tags, MaskedArray/NaT/None → nulls; a
    list mixing ints and floats goes as floats (one wire type per column).
    An int column meant as epoch seconds for a timestamp field has no wire form (int64_le
    is µs there): send datetime64 instead. Raises BatchError naming a bad column.
    """
    id_list = ids.tolist() if isinstance(ids, np.ndarray) else list(ids)
    batch = pb.ColumnBatch(ids=id_list)
    for name, values in columns.items():
        if isinstance(values, (str, bytes)) or not hasattr(values, "__len__"):
            raise BatchError(f"column {name!r} must be an array or list, got {type(values).__name__}")
        _sized_column(name, values, len(id_list))
        encode_column(batch.columns.add(name=name), values)
    return batch


def _sized_column(name: str, values: Any, n: int) -> None:
    if len(values) != n:
        raise BatchError(f"column {name!r} has {len(values)} values for {n} ids")


def encode_column(col: pb.Column, values: object) -> None:
    """Fill `col` (its name already set) from one column of upsert_columns input."""
    if isinstance(values, Categorical):
        _put_dict(col, values.codes, values.categories)
    elif isinstance(values, TagSets):
        _put_tags(col, values)
    elif isinstance(values, np.ma.MaskedArray):
        _put_array(col, np.ma.getdata(values), np.ma.getmaskarray(values))
    elif isinstance(values, np.ndarray):
        _put_array(col, values, None)
    else:
        _put_objects(col, list(values))  # type: ignore[call-overload]


def _put_nulls(col: pb.Column, null: np.ndarray | None) -> None:
    col.nulls = bitmap_of_mask(null)


def _put_dict(col: pb.Column, codes: np.ndarray, categories: Sequence[str]) -> None:
    fill_dict(col.dict, codes, categories)


def _put_tags(col: pb.Column, tags: TagSets) -> None:
    col.tags.dictionary.extend(tags.categories)
    col.tags.codes.extend(tags.codes.tolist())
    col.tags.counts.extend(np.diff(tags.offsets).tolist())
    _put_nulls(col, tags.null)


def _put_array(col: pb.Column, arr: np.ndarray, null: np.ndarray | None) -> None:
    if arr.ndim != 1:
        raise BatchError(f"column {col.name!r} must be one-dimensional")
    kind = arr.dtype.kind
    if kind not in _ARRAY_PUTTERS:
        values = arr.tolist()
        if null is not None:
            values = [None if z else v for v, z in zip(values, null.tolist())]
        _put_objects(col, values)
        return
    null = _ARRAY_PUTTERS[kind](col, arr, null)
    _put_nulls(col, null)


def _put_ints(col: pb.Column, arr: np.ndarray, null: np.ndarray | None) -> np.ndarray | None:
    if arr.dtype.kind == "u" and arr.dtype.itemsize == 8:
        live = arr if null is None else arr[~null]
        if live.size and live.max() > INT64_MAX:
            raise BatchError(f"column {col.name!r}: int out of range for int64: {live.max()}")
    col.int64_le = arr.astype("<i8").tobytes()
    return null


def _put_floats(col: pb.Column, arr: np.ndarray, null: np.ndarray | None) -> np.ndarray | None:
    col.float64_le = arr.astype("<f8").tobytes()
    return null


def _put_bools(col: pb.Column, arr: np.ndarray, null: np.ndarray | None) -> np.ndarray | None:
    col.bools.values.extend(arr.tolist())
    return null


def _put_datetimes(col: pb.Column, arr: np.ndarray, null: np.ndarray | None) -> np.ndarray | None:
    nat = np.isnat(arr)
    col.timestamps_us.values.extend(micros_of_datetime64(arr, nat).tolist())
    return nat if null is None else null | nat


def _put_strings(col: pb.Column, arr: np.ndarray, null: np.ndarray | None) -> np.ndarray | None:
    categories, codes = np.unique(arr, return_inverse=True)
    codes = codes.astype(np.int32)
    if null is not None:
        codes[null] = -1
    _put_dict(col, codes, categories.tolist())
    return None     # nulls are the -1 codes


_ARRAY_PUTTERS: dict[str, Callable[[pb.Column, np.ndarray, np.ndarray | None], np.ndarray | None]] = {
    "i": _put_ints, "u": _put_ints, "f": _put_floats, "b": _put_bools,
    "M": _put_datetimes, "U": _put_strings,
}


# Lists of Python values (None = null): one wire kind per column, chosen from the types present.
def _put_objects(col: pb.Column, values: list[Any]) -> None:
    null = np.fromiter((v is None for v in values), dtype=bool, count=len(values))
    present = [v for v in values if v is not None]
    kinds = set(map(type, present))
    for accepted, put in _LIST_PUTTERS:
        if kinds <= accepted:
            put(col, values, null)
            return
    names = ", ".join(sorted(t.__name__ for t in kinds))
    raise BatchError(f"column {col.name!r} mixes value types ({names}); a columnar batch "
                     "holds one type per column (send rows for mixed values)")


def _list_as_array(dtype: Any, fill: Any) -> Callable[[pb.Column, list[Any], np.ndarray], None]:
    def put(col: pb.Column, values: list[Any], null: np.ndarray) -> None:
        try:
            arr = np.array([fill if v is None else v for v in values], dtype=dtype)
        except OverflowError:
            raise BatchError(f"column {col.name!r}: int out of range for int64") from None
        _put_array(col, arr, null)
    return put


def _list_of_strings(col: pb.Column, values: list[Any], null: np.ndarray) -> None:
    categories = list(dict.fromkeys(v for v in values if v is not None))
    pos = {v: i for i, v in enumerate(categories)}
    codes = np.fromiter((-1 if v is None else pos[v] for v in values), dtype=np.int32, count=len(values))
    _put_dict(col, codes, categories)


def _list_of_datetimes(col: pb.Column, values: list[Any], null: np.ndarray) -> None:
    col.timestamps_us.values.extend(0 if v is None else ts.from_datetime(v) for v in values)
    _put_nulls(col, null)


def _list_of_tags(col: pb.Column, values: list[Any], null: np.ndarray) -> None:
    sets = [() if v is None else v for v in values]
    flat = list(itertools.chain.from_iterable(sets))
    if not set(map(type, flat)) <= {str}:
        raise BatchError(f"column {col.name!r}: tags must be strings")
    categories = list(dict.fromkeys(flat))
    pos = {v: i for i, v in enumerate(categories)}
    offsets = np.zeros(len(sets) + 1, dtype=np.int64)
    np.cumsum(np.fromiter(map(len, sets), dtype=np.int64, count=len(sets)), out=offsets[1:])
    codes = np.fromiter(map(pos.__getitem__, flat), dtype=np.int32, count=len(flat))
    _put_tags(col, TagSets(offsets, codes, categories, null))


def _list_of_nulls(col: pb.Column, values: list[Any], null: np.ndarray) -> None:
    # No type to go by: null strings, which every field type accepts as nulls.
    col.strings.values.extend([""] * len(values))
    _put_nulls(col, null)


_LIST_PUTTERS: tuple[tuple[set[type], Callable[[pb.Column, list[Any], np.ndarray], None]], ...] = (
    (set(), _list_of_nulls),
    ({str}, _list_of_strings),
    ({bool}, _list_as_array(np.bool_, False)),
    ({int}, _list_as_array(np.int64, 0)),
    ({int, float}, _list_as_array(np.float64, 0.0)),
    ({_dt.datetime, _dt.date}, _list_of_datetimes),
    ({list, tuple, set, frozenset}, _list_of_tags),
)


# ---- results ------------------------------------------------------------------------------
def upsert_response(result: UpsertResult, index_offset: int = 0) -> pb.UpsertResponse:
    """UpsertResult → UpsertResponse; `index_offset` shifts record indexes (rows before
    columns in one request, or earlier requests of an UpsertStream)."""
    errors = [pb.RecordError(index=e.index + index_offset, field=e.field or "", reason=e.reason)
              for e in result.errors]
    return pb.UpsertResponse(accepted=result.accepted, errors=errors)


def query_response(result: QueryResult, elapsed_ms: float) -> pb.QueryResponse:
    rows = [pb.Row(values=[_cell(v) for v in row]) for row in result.rows]
    return pb.QueryResponse(columns=result.columns, rows=rows, elapsed_ms=elapsed_ms, warnings=result.warnings)


def query_result(reply: pb.QueryResponse) -> QueryResult:
    """Client side: a QueryResponse back as the engine's QueryResult."""
    return QueryResult(list(reply.columns), [tuple(python_of(v) for v in r.values) for r in reply.rows],
                       list(reply.warnings))


def _cell(v: Any) -> pb.Value:
    if type(v) is int and not INT64_MIN <= v <= INT64_MAX:
        # a sum past int64: the wire has no wider integer, so it goes as a double,
        # as SQL engines widen an overflowing sum
        return pb.Value(float_value=float(v))
    return value_of(v)
