"""Ingest represents the validation of one write batch, before anything is applied.

It checks ids, coerces every column (declared fields by their type, new fields by the
type inferred from the batch's still-valid records), and returns what to apply: the
accepted records' ids and field batches, the new fields to declare, and one
RecordError per rejected record and reason. A rejected record changes nothing, and
cannot even add a field to the schema.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Callable, Iterable, Mapping, Sequence

import numpy as np

from .arrays import used_codes
from .batch import Categorical, TagSets
from .coerce import MISSING, FieldBatch, coerce
from .errors import BatchError, RecordError, SchemaError
from .ids import MAX_ID_BYTES, EncodedIds, check_id
from .schema import ID_FIELD, Field, Schema


@dataclass
class PreparedBatch:
    enc: EncodedIds                # accepted records' ids, in batch order
    batches: list[FieldBatch]      # aligned with `enc`
    new_fields: list[Field]        # to declare before applying
    errors: list[RecordError] = field(default_factory=list)
    # (record → position in the distinct ids, the distinct ids) when the ids came
    # dictionary-encoded, so routing need not find the distinct ids again
    distinct: tuple[np.ndarray, EncodedIds] | None = None

    @property
    def accepted(self) -> int:
        return len(self.enc)


class Rejections:
    """Which records of a batch are rejected, and why."""

    def __init__(self, n: int) -> None:
        self.bad = np.zeros(n, dtype=bool)
        self.errors: list[RecordError] = []

    def copy(self) -> "Rejections":
        out = Rejections(len(self.bad))
        out.bad[:] = self.bad
        out.errors = list(self.errors)
        return out

    def reject(self, index: int, fld: str | None, reason: str) -> None:
        self.errors.append(RecordError(index, fld, reason))
        self.bad[index] = True


def columns_of_records(records: Sequence[Any]) -> tuple[list, dict[Any, list], Rejections]:
    """Dict records → (ids, one list per named field with MISSING where a record does
    not name it, rejections for records that are not mappings)."""
    records = list(records)
    rejections = Rejections(len(records))
    if not set(map(type, records)) <= {dict}:
        for i, r in enumerate(records):
            if not isinstance(r, Mapping):
                rejections.reject(i, None, f"record must be a mapping, got {type(r).__name__}")
                records[i] = {}
    ids = [r.get(ID_FIELD) for r in records]
    names = set().union(*(r.keys() for r in records)) - {ID_FIELD}
    columns = {name: [r.get(name, MISSING) for r in records] for name in sorted(names, key=str)}
    return ids, columns, rejections


def id_list(ids: Any) -> list | Categorical:
    """A batch's ids as a list, or as given when dictionary-encoded (a Categorical: the
    fast path for events, where one batch names the same profile many times); a bare
    string is refused, not split into characters."""
    if isinstance(ids, (str, bytes)):
        raise BatchError("ids must be a list of profile ids, not a single string")
    if isinstance(ids, Categorical):
        return ids
    return ids.tolist() if isinstance(ids, np.ndarray) else list(ids)


def check_columns(ids: Any, columns: Mapping[Any, Any]) -> list:
    """Shape checks of a columnar batch (a wrong shape rejects the whole batch)."""
    ids = id_list(ids)
    if ID_FIELD in columns:
        raise BatchError(f"{ID_FIELD!r} is given as the ids argument, not as a column")
    for name, col in columns.items():
        if isinstance(col, (str, bytes)) or not hasattr(col, "__len__"):
            raise BatchError(f"column {name!r} must be an array or list, got {type(col).__name__}")
        if len(col) != len(ids):
            raise BatchError(f"column {name!r} has {len(col)} values for {len(ids)} ids")
    return ids


def write(schema: Schema, ids: list, columns: dict[Any, Any], rejections: Rejections,
          declare: Callable[[dict[str, Any]], Any], apply: Callable[["PreparedBatch"], None],
          prepare_fn: Callable[..., "PreparedBatch"] | None = None) -> "PreparedBatch":
    """Validate, declare the batch's new fields, apply: the write path of the embedded
    store and of the router alike (events pass their own `prepare`)."""
    initial = rejections.copy()
    prepared = (prepare_fn or prepare)(schema, ids, columns, rejections)
    if prepared.new_fields:
        try:
            declare({f.name: f.type for f in prepared.new_fields})
        except SchemaError:  # another writer declared one first, differently: re-check
            return write(schema, ids, columns, initial, declare, apply, prepare_fn)
    if prepared.accepted:
        apply(prepared)
    return prepared


def prepare(schema: Schema, ids: list, columns: dict[Any, Any], rejections: Rejections) -> PreparedBatch:
    """Validate a batch of len(ids) records given column by column."""
    keyed = _encode_categorical_ids(ids, rejections) if isinstance(ids, Categorical) else None
    enc = None if keyed else _encode_ids(ids, rejections)
    batches = []
    pending: list[tuple[Field, FieldBatch]] = []
    for name, col in columns.items():  # declared fields first: they decide validity
        known = schema.get(name) if isinstance(name, str) else None
        if known is not None:
            batches.append(_coerce(known, col, rejections))
    for name, col in columns.items():
        if not (isinstance(name, str) and name in schema):
            new = _infer(schema, name, col, rejections)
            if new is not None:
                pending.append((new, _coerce(new, col, rejections)))
    good = np.flatnonzero(~rejections.bad)
    new_fields = [f for f, b in pending if np.any(b.named[good] & ~b.null[good])]
    batches += [b for f, b in pending if f in new_fields]
    distinct = None
    if keyed:
        distinct = _used_ids(*keyed, good)
        enc = distinct[1].take(distinct[0])
    elif enc is None:
        enc = EncodedIds.encode([ids[i] for i in good.tolist()])
    elif good.size < len(ids):
        enc = enc.take(good)
    if good.size < len(ids):
        batches = [b.take(good) for b in batches]
    rejections.errors.sort(key=lambda e: (e.index, e.field or ""))
    return PreparedBatch(enc, batches, new_fields, rejections.errors, distinct)


def _encode_ids(ids: list | Categorical, rejections: Rejections) -> EncodedIds | None:
    """Encode the ids (hashing them once for the whole write path) when all are valid;
    otherwise reject the bad ones one by one and return None."""
    if isinstance(ids, Categorical):
        return _encode_categorical_ids(ids, rejections)
    if ids and set(map(type, ids)) == {str}:
        try:
            enc = EncodedIds.encode(ids)
        except UnicodeEncodeError:
            enc = None
        if enc is not None and enc.lengths.min() > 0 and enc.lengths.max() <= MAX_ID_BYTES:
            return enc
    for i, v in enumerate(ids):
        reason = None if rejections.bad[i] else check_id(v)
        if reason is not None:
            rejections.reject(i, ID_FIELD, reason)
    return None


def _encode_categorical_ids(ids: Categorical, rejections: Rejections) -> tuple[EncodedIds, np.ndarray]:
    """(the distinct ids the batch uses, record → position in them): each distinct id is
    checked and hashed once. Records with a bad id (or code -1) are rejected."""
    codes = ids.codes
    used = used_codes(codes, len(ids.categories))
    values = [ids.categories[c] for c in used.tolist()]
    position = np.zeros(len(ids.categories) + 1, dtype=np.int64)  # code → index in `used`
    position[used] = np.arange(len(used))
    bad = codes < 0
    enc = _encode_ids(values, Rejections(len(values)))
    reasons: dict[int, str] = {}
    if enc is None:  # some distinct ids are invalid: reject their records
        reasons = {int(c): r for c, v in zip(used.tolist(), values) if (r := check_id(v))}
        bad |= np.isin(codes, list(reasons))
        enc = EncodedIds.encode([v if check_id(v) is None else "-" for v in values])
    for i in np.flatnonzero(bad & ~rejections.bad).tolist():
        rejections.reject(i, ID_FIELD, reasons.get(int(codes[i]), "profile_id is missing"))
    return enc, position[codes]


def _used_ids(enc: EncodedIds, uid: np.ndarray, good: np.ndarray) -> tuple[np.ndarray, EncodedIds]:
    """The accepted records' (uid, distinct ids): ids named only by rejected records go,
    so they cannot create profiles."""
    uid = uid[good]
    used = used_codes(uid, len(enc))
    if len(used) == len(enc):
        return uid, enc
    table = np.zeros(len(enc), dtype=np.int64)
    table[used] = np.arange(len(used))
    return table[uid], enc.take(used)


def _coerce(fld: Field, col: Any, rejections: Rejections) -> FieldBatch:
    batch, errs = coerce(fld, col, len(rejections.bad))
    for i, reason in errs:
        rejections.reject(i, fld.name, reason)
    return batch


def _infer(schema: Schema, name: Any, col: Any, rejections: Rejections) -> Field | None:
    """The new field of a column; a bad name rejects every record naming it, values no
    type can be inferred from reject only the records giving such a value."""
    label = name if isinstance(name, str) else repr(name)
    try:
        schema.check_new_name(name)
    except SchemaError as e:
        for i in _naming(col, len(rejections.bad), nulls=True):
            rejections.reject(i, label, str(e))
        return None
    try:
        return schema.infer(name, _inference_sample(col, rejections.bad))
    except SchemaError as e:
        for i in _naming(col, len(rejections.bad), nulls=False):
            rejections.reject(i, label, str(e))
        return None


def _naming(col: Any, n: int, nulls: bool) -> Iterable[int]:
    """Records that name the field of this column (with a value, unless `nulls`)."""
    if isinstance(col, list):
        return [i for i, v in enumerate(col) if v is not MISSING and (nulls or v is not None)]
    return range(n)


def _inference_sample(col: Any, bad: np.ndarray) -> Iterable[Any]:
    """Values to infer a new field's type from: only records not already rejected."""
    if isinstance(col, Categorical):
        return col.categories[:1] or [None]
    if isinstance(col, TagSets):
        return [[]]
    if isinstance(col, np.ndarray) and col.dtype != object:
        return [_DTYPE_SAMPLE.get(np.ma.getdata(col).dtype.kind)]
    return (v for v, b in zip(col, bad.tolist()) if not b and v is not MISSING)


_DTYPE_SAMPLE = {"b": True, "i": 0, "u": 0, "f": 0.0, "M": np.datetime64(0, "s"), "U": ""}
