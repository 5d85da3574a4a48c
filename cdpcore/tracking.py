"""Tracking represents the validation of one event batch, before anything is applied.

An event is `(profile_id, type, ts, properties)`. A batch is validated the way profile
upserts are (`ingest.prepare`: ids, per-column coercion, per-record errors), with the
event's own rules on top: a type is required, a missing timestamp means "now", and
properties are numbers or strings whose type is fixed store-wide the first time each
is seen (`EventSchema`). The result is an `ingest.PreparedBatch` whose field batches
are `type` (string), `ts` (timestamp) and the properties, so routing, the wire format
and the shards' id resolution are shared with upserts.
"""
from __future__ import annotations

import threading
from typing import Any, Callable, Iterable, Mapping, Sequence

import numpy as np

from . import ingest
from .arrays import used_codes
from .coerce import MISSING, FieldBatch, coerce
from .errors import BatchError, SchemaError
from .ingest import PreparedBatch, Rejections
from .schema import ID_FIELD, Field, FieldType, Schema, infer_type, parse_type

TYPE_FIELD = "type"
TS_FIELD = "ts"
RESERVED = frozenset({ID_FIELD, TYPE_FIELD, TS_FIELD})
TYPE = Field(TYPE_FIELD, FieldType.STRING)
TS = Field(TS_FIELD, FieldType.TIMESTAMP)
PROPERTY_TYPES = (FieldType.FLOAT, FieldType.STRING)


class PropertySchema(Schema):
    """Event properties: every number is a float property, every string a string one."""

    def declare(self, spec: Mapping[str, str | FieldType]) -> list[Field]:
        for name, ftype in spec.items():
            self.check_new_name(name)
            parsed = parse_type(ftype, name)
            if parsed not in PROPERTY_TYPES:
                raise SchemaError(f"property {name!r}: type must be float or string, got "
                                  f"{parsed.value}", name)
        return super().declare(spec)

    def check_new_name(self, name: Any) -> None:
        if name in RESERVED:
            raise SchemaError(f"{name!r} is reserved in events, not a property", name)
        super().check_new_name(name)

    def infer(self, name: Any, sample: Iterable[Any]) -> Field | None:
        """float for the first number, string for the first string; other values are
        rejected record by record when the batch is coerced to the inferred type."""
        self.check_new_name(name)
        sample = [v for v in sample if v is not None]
        for value in sample:
            ftype = infer_type(value)
            if ftype in (FieldType.INT, FieldType.FLOAT):
                return Field(name, FieldType.FLOAT)
            if ftype is FieldType.STRING:
                return Field(name, FieldType.STRING)
        if not sample:
            return None
        got = infer_type(sample[0])
        raise SchemaError(f"property {name!r}: values must be numbers or strings, got "
                          f"{got.value if got else type(sample[0]).__name__}", name)


class EventSchema:
    """What a store knows about its events: property types and the types ever tracked.

    Shared by every shard of a store (and kept by the router), like `Schema`. Types are
    only remembered, never declared: an unseen type is legal in a query, and matches
    nothing (the query gets a warning naming it).
    """

    def __init__(self) -> None:
        self.properties = PropertySchema()
        self._types: set[str] = set()
        self._lock = threading.Lock()

    def types(self) -> list[str]:
        with self._lock:
            return sorted(self._types)

    def knows_type(self, name: str) -> bool:
        return name in self._types

    def note_types(self, names: Iterable[str]) -> None:
        new = set(names) - self._types
        if new:
            with self._lock:
                self._types |= new

    def declare(self, spec: Mapping[str, str | FieldType]) -> list[Field]:
        return self.properties.declare(spec)


# ---- batch assembly ------------------------------------------------------------------

def columns_of_events(records: Sequence[Any]) -> tuple[list, dict[Any, list], Rejections]:
    """Dict events → (ids, one list per key incl. type/ts, rejections for non-mappings)."""
    return ingest.columns_of_records(records)


def check_event_columns(ids: Any, types: Any, ts: Any = None,
                        properties: Mapping[Any, Any] | None = None) -> tuple[list, dict[Any, Any]]:
    """Shape checks of a columnar event batch (a wrong shape rejects the whole batch)."""
    properties = dict(properties or {})
    for name in RESERVED & set(properties):
        raise BatchError(f"{name!r} is given as its own argument, not as a property")
    columns: dict[Any, Any] = {TYPE_FIELD: types}
    if ts is not None:
        columns[TS_FIELD] = ts
    columns.update(properties)
    return ingest.check_columns(ids, columns), columns


def write_events(events: EventSchema, ids: list, columns: dict[Any, Any], rejections: Rejections,
                 now_us: int, apply: Callable[[PreparedBatch], None]) -> PreparedBatch:
    """Validate, declare new properties, note the types, apply: the event write path of
    the embedded store and of the router alike."""
    def prepare(schema: Schema, ids: list, cols: dict[Any, Any], rej: Rejections) -> PreparedBatch:
        return prepare_events(schema, ids, cols, rej, now_us)

    def applied(prepared: PreparedBatch) -> None:
        events.note_types(accepted_types(prepared.batches[0]))
        apply(prepared)

    return ingest.write(events.properties, ids, columns, rejections, events.declare, applied,
                        prepare_fn=prepare)


def prepare_events(properties: Schema, ids: list, columns: dict[Any, Any], rejections: Rejections,
                   now_us: int) -> PreparedBatch:
    """Validate len(ids) events given column by column; batches[0] is the type, [1] the ts."""
    n = len(ids)
    columns = dict(columns)
    types = _event_types(columns.pop(TYPE_FIELD, None), n, rejections)
    stamps = _event_times(columns.pop(TS_FIELD, None), n, rejections, now_us)
    prepared = ingest.prepare(properties, ids, columns, rejections)
    good = np.flatnonzero(~rejections.bad)
    if good.size < n:
        types, stamps = types.take(good), stamps.take(good)
    prepared.batches[:0] = [types, stamps]
    return prepared


def accepted_types(types: FieldBatch) -> list[str]:
    return [types.categories[c] for c in used_codes(types.codes, len(types.categories)).tolist()]


def _event_types(column: Any, n: int, rejections: Rejections) -> FieldBatch:
    if column is None:
        column = [MISSING] * n
    batch, errors = coerce(TYPE, column, n)
    for i, reason in errors:
        rejections.reject(i, TYPE_FIELD, reason)
    codes = batch.codes
    empty = [c for c, v in enumerate(batch.categories) if v == ""]
    missing = ~batch.named | (codes < 0) | (np.isin(codes, empty) if empty else False)
    missing &= ~rejections.bad
    for i in np.flatnonzero(missing).tolist():
        rejections.reject(i, TYPE_FIELD, "an event needs a type (a non-empty string)")
    return batch


def _event_times(column: Any, n: int, rejections: Rejections, now_us: int) -> FieldBatch:
    if column is None:
        return FieldBatch(TS, np.ones(n, dtype=bool), np.zeros(n, dtype=bool),
                          values=np.full(n, now_us, dtype=np.int64))
    batch, errors = coerce(TS, column, n)
    for i, reason in errors:
        rejections.reject(i, TS_FIELD, reason)
    unset = ~batch.named | batch.null
    values = np.where(unset, now_us, batch.values).astype(np.int64, copy=False)
    return FieldBatch(TS, np.ones(n, dtype=bool), np.zeros(n, dtype=bool), values=values)
