"""Wire formats for what shards exchange: write batches and partial query results.

msgpack documents holding raw numpy buffers (dtype string + bytes), so a batch crosses
a process boundary without per-record encoding. The same write-batch form is what a
WAL record will hold (durability issue), which is why it lives in the engine.
"""
from __future__ import annotations

import datetime as _dt
from dataclasses import fields
from typing import Any

import msgpack
import numpy as np

from .batch import TagSets
from .coerce import FieldBatch
from .errors import BatchError
from .ids import EncodedIds
from .query import ir
from .query.reduce import Partial
from .schema import Field, FieldType
from .timestamps import EPOCH, from_datetime

_EXT_DATETIME = 1
_EXT_BIGINT = 2


# ---- numpy buffers ---------------------------------------------------------------------
def _arr(a: np.ndarray | None) -> list | None:
    return None if a is None else [a.dtype.str, np.ascontiguousarray(a).tobytes()]


def _unarr(x: list | None) -> np.ndarray | None:
    return None if x is None else np.frombuffer(x[1], dtype=np.dtype(x[0]))


# ---- write batches -----------------------------------------------------------------------
def encode_write(ids: EncodedIds, uid: np.ndarray, batches: list[FieldBatch]) -> bytes:
    """One shard's part of a write: its distinct ids, record → id, field batches."""
    doc = {
        "ids": [_arr(ids.buf), _arr(ids.off), _arr(ids.hashes)],
        "uid": _arr(uid),
        "fields": [_encode_field(b) for b in batches],
    }
    return msgpack.packb(doc, use_bin_type=True)


def decode_write(data: bytes) -> tuple[EncodedIds, np.ndarray, list[FieldBatch]]:
    try:
        doc = msgpack.unpackb(data, raw=False)
        buf, off, hashes = (_unarr(x) for x in doc["ids"])
        return EncodedIds(buf, off, hashes), _unarr(doc["uid"]), [_decode_field(f) for f in doc["fields"]]
    except (KeyError, TypeError, ValueError, msgpack.ExtraData, msgpack.FormatError) as e:
        raise BatchError(f"malformed write batch: {e}") from None


def _encode_field(b: FieldBatch) -> dict:
    doc = {"name": b.field.name, "type": b.field.type.value, "named": _arr(b.named),
           "null": _arr(b.null), "values": _arr(b.values), "codes": _arr(b.codes),
           "categories": b.categories}
    if b.tags is not None:
        doc["tags"] = [_arr(b.tags.offsets), _arr(b.tags.codes), list(b.tags.categories)]
    return doc


def _decode_field(doc: dict) -> FieldBatch:
    tags = doc.get("tags")
    return FieldBatch(
        Field(doc["name"], FieldType(doc["type"])), _unarr(doc["named"]), _unarr(doc["null"]),
        values=_unarr(doc["values"]), codes=_unarr(doc["codes"]), categories=doc["categories"],
        tags=None if tags is None else TagSets(_unarr(tags[0]), _unarr(tags[1]), tags[2]))


# ---- partial results ---------------------------------------------------------------------
def encode_partial(p: Partial) -> bytes:
    doc = {"kind": p.kind, "states": p.states,
           "groups": [[list(k), s] for k, s in p.groups.items()],
           "rows": [[list(r[0]), r[1], r[2], list(r[3])] for r in p.rows]}
    return pack(doc)


def decode_partial(data: bytes) -> Partial:
    doc = unpack(data)
    groups = {tuple(k): s for k, s in doc["groups"]}
    rows = [(tuple(r[0]), r[1], r[2], tuple(r[3])) for r in doc["rows"]]
    return Partial(doc["kind"], states=doc["states"], groups=groups, rows=rows)


def _wire_default(obj: Any) -> Any:
    """Values msgpack cannot carry itself (it calls this only for those, so packing a
    1,000-group partial involves no Python walk): datetimes and ints beyond 64 bits."""
    if isinstance(obj, _dt.datetime):
        return msgpack.ExtType(_EXT_DATETIME, from_datetime(obj).to_bytes(8, "little", signed=True))
    if isinstance(obj, int) and not isinstance(obj, bool):
        return msgpack.ExtType(_EXT_BIGINT, str(obj).encode())
    raise TypeError(f"cannot send a {type(obj).__name__} between processes")


def _ext_hook(code: int, data: bytes) -> Any:
    if code == _EXT_DATETIME:
        return EPOCH + _dt.timedelta(microseconds=int.from_bytes(data, "little", signed=True))
    if code == _EXT_BIGINT:
        return int(data.decode())
    return msgpack.ExtType(code, data)


# ---- small documents (profiles, schemas) ---------------------------------------------------
def pack(obj: Any) -> bytes:
    """msgpack with datetimes and big ints carried (profiles, schema maps)."""
    return msgpack.packb(obj, default=_wire_default, use_bin_type=True)


def unpack(data: bytes) -> Any:
    return msgpack.unpackb(data, raw=False, ext_hook=_ext_hook)


# ---- query plans (normalised IR, compiled once at the router) -------------------------------
_IR_TYPES = {cls.__name__: cls for cls in (
    ir.Compare, ir.InSet, ir.Like, ir.IsNull, ir.Has, ir.Const, ir.And, ir.Or, ir.Not,
    ir.FieldRef, ir.Agg, ir.OutputColumn, ir.OrderKey, ir.Select, ir.EventValue, ir.InSegment)}


def encode_plan(plan: Any) -> bytes:
    """A Select or predicate (or None) as msgpack; source spans are not sent."""
    return pack(_ir_doc(plan))


def decode_plan(data: bytes) -> Any:
    try:
        return _ir_obj(unpack(data))
    except (KeyError, TypeError, ValueError, msgpack.ExtraData, msgpack.FormatError) as e:
        raise BatchError(f"malformed query plan: {e}") from None


def _ir_doc(obj: Any) -> Any:
    name = type(obj).__name__
    if name in _IR_TYPES and type(obj) is _IR_TYPES[name]:
        return {"@": name, **{f.name: _ir_doc(getattr(obj, f.name)) for f in fields(obj) if f.name != "span"}}
    if isinstance(obj, (tuple, list)):
        return [_ir_doc(x) for x in obj]
    return obj


def _ir_obj(doc: Any) -> Any:
    if isinstance(doc, dict):
        cls = _IR_TYPES[doc["@"]]
        return cls(**{k: _ir_obj(v) for k, v in doc.items() if k != "@"})
    if isinstance(doc, list):
        return tuple(_ir_obj(x) for x in doc)
    return doc
