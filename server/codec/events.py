"""Behavioural events on the wire: Event rows and EventBatch columns ↔ cdpcore inputs.

Server side: `records_from_events` (rows → dicts for `tracking.columns_of_events`),
`event_columns_from_batch` (EventBatch → ids, types, ts, properties for
`tracking.check_event_columns`), `event_message` and `track_response` (results → replies).
Client side (`cdp ingest --events`, bench): `event_batch_from_columns` (what
`Store.track_columns` takes → EventBatch), `event_of_record`/`events_from_records`
(what `Store.track` takes → Event rows), `event_of_message` (reply → dict).

As in the profile codec, nothing here judges a value (a bool property, a bad type, a
time out of range: the engine rejects the event with its own reason); a value with
no wire form at all is a BatchError naming it.
"""
from __future__ import annotations

from typing import Any, Iterable, Mapping, Sequence

import numpy as np

from cdpcore import Categorical
from cdpcore import timestamps as ts
from cdpcore.errors import BatchError, RecordError
from cdpcore.schema import ID_FIELD
from cdpcore.tracking import RESERVED, TS_FIELD, TYPE_FIELD
from server.pb.cdp.v1 import profile_store_pb2 as pb

from .values import (bitmap_of_mask, categorical_of, datetime64_of_micros, fill_dict, mask_of_bitmap,
                     micros_of_datetime64, python_of, timestamp_of, value_of)

Columns = tuple[list[str] | Categorical, Categorical, Any, dict[str, Any]]   # ids, types, ts, properties


class Unencodable(BatchError):
    """A value of one event with no wire form; `field` names it (client side)."""

    def __init__(self, field: str, reason: str) -> None:
        super().__init__(f"{field}: {reason}")
        self.field, self.reason = field, reason


# ---- rows: server side -------------------------------------------------------------------
def records_from_events(events: Iterable[pb.Event]) -> list[dict[str, Any]]:
    """Event messages → dicts for Store.track / tracking.columns_of_events, in order.
    An unset ts is left out (the engine stamps it with its clock)."""
    return [_record_of_event(i, e) for i, e in enumerate(events)]


def _record_of_event(i: int, e: pb.Event) -> dict[str, Any]:
    reserved = RESERVED.intersection(e.properties.keys())
    if reserved:
        raise BatchError(f"event {i}: {min(reserved)!r} is the message's own field, not a property")
    record = {ID_FIELD: e.profile_id, TYPE_FIELD: e.type,
              **{name: python_of(v) for name, v in e.properties.items()}}
    kind = e.WhichOneof("ts")
    if kind == "ts_us":
        record[TS_FIELD] = timestamp_of(e.ts_us)
    elif kind == "ts_text":
        record[TS_FIELD] = e.ts_text
    return record


# ---- columns: server side ------------------------------------------------------------------
def event_batch_size(batch: pb.EventBatch) -> int:
    """Events in a batch (its ids come as strings or dictionary-encoded)."""
    return len(batch.profile_ids) or len(batch.profile_id_dict.codes)


def event_columns_from_batch(batch: pb.EventBatch) -> Columns:
    """An EventBatch → (ids, types, ts, properties) for tracking.check_event_columns,
    without per-event Python; ids are a Categorical when they came dictionary-encoded
    (the engine then checks and hashes each distinct id once); ts is None when the batch
    carries no times (all "now")."""
    ids = _ids(batch)
    n = len(ids)
    types = categorical_of(batch.types, n, None, "types")
    times = _times(batch.ts, n) if batch.HasField("ts") else None
    properties: dict[str, Any] = {}
    for prop in batch.properties:
        if prop.name in properties:
            raise BatchError(f"property {prop.name!r} is given twice")
        properties[prop.name] = _property(prop, n)
    return ids, types, times, properties


def _ids(batch: pb.EventBatch) -> list[str] | Categorical:
    if not batch.HasField("profile_id_dict"):
        return list(batch.profile_ids)
    if batch.profile_ids:
        raise BatchError("give the profile ids as profile_ids or as profile_id_dict, not both")
    d = batch.profile_id_dict
    return categorical_of(d, len(d.codes), None, "profile_id_dict")


def _times(t: pb.EventTimes, n: int) -> Any:
    """Absent times are masked (a MaskedArray) or None (text): the engine stamps them now."""
    absent = mask_of_bitmap(t.absent, n, "ts: absent bitmap")
    kind = t.WhichOneof("values")
    if kind is None:
        if n and (absent is None or not absent.all()):
            raise BatchError(f"ts has no values for {n} ids")
        return None
    if kind == "texts":
        return _with_nones(_sized("ts", list(t.texts.values), n), absent)
    us = _raw("ts", t.us_le, "<i8", n) if kind == "us_le" else \
        _sized("ts", np.asarray(t.us.values, dtype=np.int64), n)
    return _masked(datetime64_of_micros(us), absent)


def _property(p: pb.EventProperty, n: int) -> Any:
    what = f"property {p.name!r}"
    absent = mask_of_bitmap(p.absent, n, f"{what}: absent bitmap")
    kind = p.WhichOneof("values")
    if kind is None:
        if n:
            raise BatchError(f"{what} has no values for {n} ids")
        return []
    if kind == "float64_le":
        return _masked(_raw(what, p.float64_le, "<f8", n), absent)
    if kind == "floats":
        return _masked(_sized(what, np.asarray(p.floats.values, dtype=np.float64), n), absent)
    if kind == "dict":
        return categorical_of(p.dict, n, absent, what)
    return _with_nones(_sized(what, list(p.strings.values), n), absent)


def _sized(what: str, values: Any, n: int) -> Any:
    if len(values) != n:
        raise BatchError(f"{what} has {len(values)} values for {n} ids")
    return values


def _raw(what: str, data: bytes, dtype: str, n: int) -> np.ndarray:
    if len(data) != 8 * n:
        raise BatchError(f"{what} has {len(data)} bytes for {n} ids (expected {8 * n})")
    return np.frombuffer(data, dtype=dtype)


def _masked(values: np.ndarray, absent: np.ndarray | None) -> np.ndarray:
    return values if absent is None else np.ma.MaskedArray(values, mask=absent)


def _with_nones(values: list[Any], absent: np.ndarray | None) -> list[Any]:
    if absent is None:
        return values
    arr = np.array(values, dtype=object)
    arr[absent] = None
    return arr.tolist()


# ---- results -------------------------------------------------------------------------------
def event_message(profile_id: str, event: Mapping[str, Any]) -> pb.Event:
    """One event as the engine returns it ({"type", "ts": datetime, **properties}) → Event."""
    properties = {k: value_of(v) for k, v in event.items() if k not in (TYPE_FIELD, TS_FIELD)}
    return pb.Event(profile_id=profile_id, type=event[TYPE_FIELD], ts_us=ts.from_datetime(event[TS_FIELD]),
                    properties=properties)


def track_response(accepted: int, errors: Iterable[RecordError]) -> pb.TrackResponse:
    return pb.TrackResponse(accepted=accepted, errors=[
        pb.RecordError(index=e.index, field=e.field or "", reason=e.reason) for e in errors])


def event_of_message(e: pb.Event) -> dict[str, Any]:
    """Client side: an Event back as a dict ({"type", "ts", **properties}; ts a datetime
    when given as µs, the text when given as text, absent when unset)."""
    out: dict[str, Any] = {TYPE_FIELD: e.type}
    kind = e.WhichOneof("ts")
    if kind is not None:
        out[TS_FIELD] = timestamp_of(e.ts_us) if kind == "ts_us" else e.ts_text
    out.update((name, python_of(v)) for name, v in sorted(e.properties.items()))
    return out


# ---- rows: client side ---------------------------------------------------------------------
def events_from_records(records: Iterable[Mapping[str, Any]]) -> list[pb.Event]:
    """Dicts as Store.track takes them → Event messages; a value with no wire form
    raises BatchError naming the record and the field."""
    events = []
    for i, record in enumerate(records):
        try:
            events.append(event_of_record(record))
        except Unencodable as e:
            raise BatchError(f"record {i}, field {e.field!r}: {e.reason}") from None
    return events


def event_of_record(record: Mapping[str, Any]) -> pb.Event:
    """One event dict → Event: ts as text stays text (the engine parses it), any other
    time (epoch seconds, datetime) goes as µs by the engine's own conversion; raises
    Unencodable (field, reason) for a value with no wire form."""
    etype = record.get(TYPE_FIELD)
    event = pb.Event(profile_id=_text(ID_FIELD, record.get(ID_FIELD, "")),
                     type="" if etype is None else _text(TYPE_FIELD, etype))
    _put_event_time(event, record.get(TS_FIELD))
    for name, v in record.items():
        if name not in RESERVED:
            try:
                event.properties[_text("", name)].CopyFrom(value_of(v))
            except (TypeError, ValueError, Unencodable) as e:
                raise Unencodable(str(name), getattr(e, "reason", str(e))) from None
    return event


def _text(name: str, value: Any) -> str:
    """A string protobuf can carry (UTF-8: no lone surrogates, which JSON's \\ud800 makes)."""
    if not isinstance(value, str):
        raise Unencodable(name, f"must be a string, got {type(value).__name__}")
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        raise Unencodable(name, "is not valid UTF-8 text") from None
    return value


def _put_event_time(event: pb.Event, value: Any) -> None:
    if value is None:
        return
    if isinstance(value, str):
        event.ts_text = _text(TS_FIELD, value)
        return
    try:
        event.ts_us = ts.to_micros(value)
    except (TypeError, ValueError, OverflowError) as e:
        raise Unencodable(TS_FIELD, str(e)) from None


# ---- columns: client side ------------------------------------------------------------------
def event_batch_from_columns(ids: Sequence[str] | np.ndarray, types: Any, times: Any = None,
                             properties: Mapping[str, Any] | None = None) -> pb.EventBatch:
    """Client side: what Store.track_columns takes → EventBatch.

    ids: strings, or a Categorical (sent dictionary-encoded: the faster form when the
    batch names profiles many times). types: list of str (None = no type) or Categorical. times: None (all "now"), a
    datetime64 array (MaskedArray/NaT = absent), a numeric array of epoch seconds, or a
    list of ISO text / epoch seconds / datetime / None. properties: numeric arrays
    (MaskedArray = absent) → float64, string arrays / Categorical → dict, lists of
    numbers or of strings (None = absent). Raises BatchError naming what has no wire form.
    """
    batch = pb.EventBatch()
    if isinstance(ids, Categorical):
        fill_dict(batch.profile_id_dict, ids.codes, ids.categories)
        n = len(ids)
    else:
        batch.profile_ids.extend(ids.tolist() if isinstance(ids, np.ndarray) else list(ids))
        n = len(batch.profile_ids)
    _put_strings(batch.types, _sized("types", types, n), "types")
    if times is not None:
        _put_times(batch.ts, _sized("ts", times, n))
    for name, values in (properties or {}).items():
        if name in RESERVED:
            raise BatchError(f"{name!r} is given as its own argument, not as a property")
        _put_property(batch.properties.add(name=name), _sized(f"property {name!r}", values, n))
    return batch


def _put_strings(d: pb.DictColumn, values: Any, what: str) -> None:
    """Strings (Categorical, string array, or list with None = absent) into a DictColumn;
    BatchError when the values are not all strings."""
    if isinstance(values, Categorical):
        fill_dict(d, values.codes, values.categories)
        return
    if isinstance(values, np.ndarray) and values.dtype.kind == "U":
        absent = np.ma.getmaskarray(values) if isinstance(values, np.ma.MaskedArray) else None
        categories, codes = np.unique(np.ma.getdata(values), return_inverse=True)
        codes = np.where(absent, -1, codes) if absent is not None else codes
        fill_dict(d, codes, categories.tolist())
        return
    values = values.tolist() if isinstance(values, np.ndarray) else list(values)
    if not all(v is None or isinstance(v, str) for v in values):
        raise BatchError(f"{what} must be strings (None = absent)")
    categories = list(dict.fromkeys(v for v in values if v is not None))
    pos = {v: i for i, v in enumerate(categories)}
    fill_dict(d, np.fromiter((-1 if v is None else pos[v] for v in values), dtype=np.int64,
                             count=len(values)), categories)


def _put_times(t: pb.EventTimes, values: Any) -> None:
    if isinstance(values, np.ndarray) and values.dtype.kind in "Miuf":
        us, absent = _micros_of_array(values)
    elif all(v is None or isinstance(v, str) for v in values):
        absent = np.fromiter((v is None for v in values), dtype=bool, count=len(values))
        t.texts.values.extend(["" if v is None else v for v in values])
        t.absent = bitmap_of_mask(absent)
        return
    else:
        us, absent = _micros_of_list(list(values))
    t.us_le = us.astype("<i8").tobytes()
    t.absent = bitmap_of_mask(absent)


def _micros_of_array(values: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """datetime64 (NaT/masked = absent) or epoch seconds → (µs, absent), vectorised with
    the engine's rounding (round half to even of seconds × 10⁶)."""
    absent = np.ma.getmaskarray(values) if isinstance(values, np.ma.MaskedArray) else np.zeros(len(values), bool)
    data = np.ma.getdata(values)
    if data.dtype.kind == "M":
        nat = np.isnat(data)
        return micros_of_datetime64(data, nat), absent | nat
    seconds = data.astype(np.float64)
    live = seconds[~absent]
    if not np.all(np.isfinite(live) & (live * 1e6 >= ts.MIN_US) & (live * 1e6 <= ts.MAX_US)):
        raise BatchError("ts: epoch seconds out of range")
    if data.dtype.kind == "f":
        return np.where(absent, 0, np.round(seconds * 1e6)).astype(np.int64), absent
    return np.where(absent, 0, data).astype(np.int64) * 1_000_000, absent


def _micros_of_list(values: list[Any]) -> tuple[np.ndarray, np.ndarray]:
    absent = np.fromiter((v is None for v in values), dtype=bool, count=len(values))
    us = np.zeros(len(values), dtype=np.int64)
    for i in np.flatnonzero(~absent).tolist():   # mixed kinds only; arrays take the path above
        try:
            us[i] = ts.to_micros(values[i])
        except (TypeError, ValueError, OverflowError) as e:
            raise BatchError(f"ts of event {i}: {e}") from None
    return us, absent


def _put_property(p: pb.EventProperty, values: Any) -> None:
    if isinstance(values, Categorical) or (isinstance(values, np.ndarray) and values.dtype.kind == "U"):
        _put_strings(p.dict, values, f"property {p.name!r}")
    elif isinstance(values, np.ndarray) and values.dtype.kind in "iuf":
        absent = np.ma.getmaskarray(values) if isinstance(values, np.ma.MaskedArray) else None
        p.float64_le = np.ma.getdata(values).astype("<f8").tobytes()
        p.absent = bitmap_of_mask(absent)
    else:
        _put_property_list(p, values.tolist() if isinstance(values, np.ndarray) else list(values))


def _put_property_list(p: pb.EventProperty, values: list[Any]) -> None:
    kinds = {type(v) for v in values if v is not None}
    if kinds <= {str}:        # strings, or nothing at all (absent everywhere)
        _put_strings(p.dict, values, f"property {p.name!r}")
    elif kinds <= {int, float}:
        absent = np.fromiter((v is None for v in values), dtype=bool, count=len(values))
        try:
            numbers = np.array([0.0 if v is None else v for v in values], dtype=np.float64)
        except OverflowError:
            raise BatchError(f"property {p.name!r}: number out of range for float64") from None
        p.float64_le = numbers.astype("<f8").tobytes()
        p.absent = bitmap_of_mask(absent)
    else:
        names = ", ".join(sorted(t.__name__ for t in kinds))
        raise BatchError(f"property {p.name!r} has values of types {names}; a column holds numbers "
                         "or strings (send rows for other values)")

