"""Single values: one cdp.v1 Value ↔ one Python value, and presence bitmaps.

Shared by the profile and event codecs; it judges nothing, it only translates.
"""
from __future__ import annotations

import datetime as _dt
from typing import Any, Callable, Iterable, Sequence

import numpy as np

from cdpcore import Categorical
from cdpcore import timestamps as ts
from cdpcore.errors import BatchError
from server.pb.cdp.v1 import profile_store_pb2 as pb

INT64_MIN, INT64_MAX = -(2 ** 63), 2 ** 63 - 1


# ---- single values -------------------------------------------------------------------
def python_of(value: pb.Value) -> Any:
    """A Value as the Python value Store.upsert takes (unset kind → None)."""
    kind = value.WhichOneof("kind")
    return None if kind is None else _PYTHON_OF[kind](value)


def timestamp_of(us: int) -> Any:
    if ts.MIN_US <= us <= ts.MAX_US:
        return ts.to_datetime(us)
    # datetime cannot hold it; a datetime64 still makes a timestamp field, and the
    # engine then rejects the record with its own "out of range" reason.
    return np.datetime64(us, "us")


_PYTHON_OF: dict[str, Callable[[pb.Value], Any]] = {
    "null_value": lambda v: None,          # null_value=false is still the null member
    "int_value": lambda v: v.int_value,
    "float_value": lambda v: v.float_value,
    "bool_value": lambda v: v.bool_value,
    "string_value": lambda v: v.string_value,
    "timestamp_us": lambda v: timestamp_of(v.timestamp_us),
    "tags": lambda v: list(v.tags.values),
    "timestamp_text": lambda v: v.timestamp_text,   # ISO text: a timestamp field parses it
}


def value_of(value: Any) -> pb.Value:
    """A Python (or numpy) value as a Value; TypeError/ValueError when it has no encoding."""
    encode = _VALUE_OF.get(type(value))
    return encode(value) if encode is not None else _value_of_other(value)


def _int_value(v: int) -> pb.Value:
    if not INT64_MIN <= v <= INT64_MAX:
        raise ValueError(f"int out of range for int64: {v}")
    return pb.Value(int_value=v)


def _tags_value(v: Iterable[str]) -> pb.Value:
    values = sorted(v) if isinstance(v, (set, frozenset)) else list(v)
    return pb.Value(tags=pb.StringList(values=values))


# Exact types first (the common case); `_value_of_other` walks the same table with
# isinstance, so its order matters: bool before int (bool is an int).
_VALUE_OF: dict[type, Callable[[Any], pb.Value]] = {
    type(None): lambda v: pb.Value(null_value=True),
    bool: lambda v: pb.Value(bool_value=v),
    int: _int_value,
    float: lambda v: pb.Value(float_value=v),
    str: lambda v: pb.Value(string_value=v),
    _dt.datetime: lambda v: pb.Value(timestamp_us=ts.from_datetime(v)),
    _dt.date: lambda v: pb.Value(timestamp_us=ts.from_datetime(v)),
    list: _tags_value,
    tuple: _tags_value,
    set: _tags_value,
    frozenset: _tags_value,
}


def _value_of_other(value: Any) -> pb.Value:
    if isinstance(value, np.datetime64):
        return pb.Value(timestamp_us=ts.to_micros(value))
    for base, encode in _VALUE_OF.items():
        if isinstance(value, base):
            return encode(value)
    if isinstance(value, np.ndarray) and value.ndim == 1:
        return _tags_value(value.tolist())
    if isinstance(value, np.generic):
        return value_of(value.item())
    raise TypeError(f"cannot encode {type(value).__name__} as a cdp.v1.Value")


# ---- bitmaps -------------------------------------------------------------------------------
def mask_of_bitmap(data: bytes, n: int, what: str) -> np.ndarray | None:
    """A bitmap (bit i, LSB first, = record i is flagged) as a bool mask; None if no bit
    is set. `what` names the bitmap in the error for a wrong length."""
    if not data:
        return None
    want = (n + 7) // 8
    if len(data) != want:
        raise BatchError(f"{what} has {len(data)} bytes for {n} ids (expected {want})")
    mask = np.unpackbits(np.frombuffer(data, dtype=np.uint8), count=n, bitorder="little").view(bool)
    return mask if mask.any() else None


def bitmap_of_mask(mask: np.ndarray | None) -> bytes:
    """The inverse of `mask_of_bitmap`: b"" when nothing is flagged."""
    if mask is None or not mask.any():
        return b""
    return np.packbits(mask, bitorder="little").tobytes()


# ---- dictionary-encoded strings ----------------------------------------------------------
def categorical_of(d: pb.DictColumn, n: int, null: np.ndarray | None, what: str) -> Categorical:
    """A DictColumn of n records → Categorical (null positions get code -1); `what`
    names the column in errors."""
    codes = np.asarray(d.codes, dtype=np.int32)
    if len(codes) != n:
        raise BatchError(f"{what} has {len(codes)} codes for {n} ids")
    if null is not None:
        codes = np.where(null, np.int32(-1), codes)
    size = len(d.dictionary)
    if codes.size and (codes.min() < -1 or codes.max() >= size):
        raise BatchError(f"{what}: dictionary code out of range (-1 or 0..{size - 1} expected)")
    return Categorical(codes, list(d.dictionary))


def fill_dict(d: pb.DictColumn, codes: np.ndarray, categories: Sequence[str]) -> None:
    """Only the categories this batch uses travel (a 100-row batch of cities must not
    carry the whole 1,000-city dictionary, nor make the router check it)."""
    codes = np.asarray(codes, dtype=np.int64)
    used = np.flatnonzero(np.bincount(codes[codes >= 0], minlength=len(categories)))
    remap = np.full(len(categories) + 1, -1, dtype=np.int64)  # index -1 → the trailing -1
    remap[used] = np.arange(len(used))
    d.dictionary.extend([categories[i] for i in used.tolist()])
    d.codes.extend(remap[codes].tolist())  # code -1 is the null


# ---- timestamps ----------------------------------------------------------------------------
def datetime64_of_micros(us: np.ndarray) -> np.ndarray:
    """µs since epoch → datetime64[us]. INT64_MIN is NaT, which the engine reads as null;
    moving it one up keeps it a value, out of range, so the record is rejected rather
    than nulled."""
    return np.maximum(us, INT64_MIN + 1).astype(np.int64).view("datetime64[us]")


def micros_of_datetime64(arr: np.ndarray, nat: np.ndarray) -> np.ndarray:
    """datetime64 of any unit → µs. A value too far out for µs (possible in coarse units)
    becomes INT64_MAX, out of range, so the server rejects that record as the engine would."""
    unit = np.datetime_data(arr.dtype)[0]
    if unit in ("us", "ns", "ps", "fs", "as"):   # every value fits in µs
        return arr.astype("datetime64[us]").view(np.int64)
    lo, hi = np.array([ts.MIN_US, ts.MAX_US], dtype="datetime64[us]").astype(arr.dtype).view(np.int64)
    raw = arr.view(np.int64)
    ok = nat | ((raw >= lo) & (raw <= hi))
    us = np.where(ok, arr, np.datetime64(0, unit)).astype("datetime64[us]").view(np.int64)
    return np.where(ok, us, INT64_MAX)
