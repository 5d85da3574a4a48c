"""Batch coercion: one input column → typed storage values, per field type, vectorised.

A column arrives as a numpy array, a MaskedArray (masked = explicit null), a list of
Python values (None = explicit null, MISSING = record does not name the field),
a Categorical (string) or TagSets (string_set). The result is a `FieldBatch` aligned
with the batch's records plus the (record position, reason) pairs that were rejected.
Native types take a fast whole-array path; anything unusual falls back to a per-value
path that exists to produce precise error messages, not for speed.
"""
from __future__ import annotations

import itertools
import math
from dataclasses import dataclass, replace
from typing import Any, Callable

import numpy as np

from . import timestamps as ts
from .arrays import segment_positions
from .batch import Categorical, TagSets
from .schema import Field, FieldType

Errors = list[tuple[int, str]]
INT64_MIN, INT64_MAX = -(2 ** 63), 2 ** 63 - 1
MAX_STRING_BYTES = 65536


class _Missing:
    """Marks a record that does not name a field (distinct from an explicit null)."""

    def __repr__(self) -> str:
        return "MISSING"


MISSING = _Missing()


@dataclass(frozen=True)
class FieldBatch:
    """One field's new values for every record of a batch.

    named[i]: record i names the field; null[i]: it sets it to null. For numeric kinds
    `values` holds storage values; for strings `codes` index `categories` (-1 null); for
    string_set `tags` holds each record's tag codes.
    """
    field: Field
    named: np.ndarray
    null: np.ndarray
    values: np.ndarray | None = None
    codes: np.ndarray | None = None
    categories: list[str] | None = None
    tags: TagSets | None = None

    def slice(self, lo: int, hi: int) -> "FieldBatch":
        """Records lo..hi-1 as views (no copies): how a shard-sorted batch is split."""
        tags = None
        if self.tags is not None:
            a, b = int(self.tags.offsets[lo]), int(self.tags.offsets[hi])
            tags = TagSets(self.tags.offsets[lo:hi + 1] - a, self.tags.codes[a:b], self.tags.categories)
        return replace(self, named=self.named[lo:hi], null=self.null[lo:hi],
                       values=None if self.values is None else self.values[lo:hi],
                       codes=None if self.codes is None else self.codes[lo:hi], tags=tags)

    def take(self, sel: np.ndarray) -> "FieldBatch":
        tags = None
        if self.tags is not None:
            lengths = np.diff(self.tags.offsets)[sel]
            off = np.zeros(len(sel) + 1, dtype=np.int64)
            np.cumsum(lengths, out=off[1:])
            flat = self.tags.codes[segment_positions(self.tags.offsets[:-1][sel], lengths)]
            tags = TagSets(off, flat, self.tags.categories)
        return replace(self, named=self.named[sel], null=self.null[sel],
                       values=None if self.values is None else self.values[sel],
                       codes=None if self.codes is None else self.codes[sel], tags=tags)


# ---- scalar rules (the slow path, and the definition of what is accepted) ------------
def _type_name(v: Any) -> str:
    return type(v).__name__


def scalar_int(v: Any) -> int:
    if isinstance(v, (bool, np.bool_)):
        raise ValueError("expected int, got bool")
    if isinstance(v, (int, np.integer)):
        v = int(v)
    elif isinstance(v, (float, np.floating)) and math.isfinite(v) and float(v).is_integer():
        v = int(v)
    else:
        raise ValueError(f"expected int, got {_type_name(v)} {v!r}"[:200])
    if not INT64_MIN <= v <= INT64_MAX:
        raise ValueError(f"int out of range for a 64-bit column: {v}")
    return v


def scalar_float(v: Any) -> float:
    if isinstance(v, (bool, np.bool_)) or not isinstance(v, (int, float, np.integer, np.floating)):
        raise ValueError(f"expected float, got {_type_name(v)} {v!r}"[:200])
    try:
        f = float(v)
    except OverflowError:
        raise ValueError(f"number out of range for a float column: {v}") from None
    if not math.isfinite(f):
        raise ValueError(f"float must be finite, got {v!r}")
    return f


def scalar_bool(v: Any) -> bool:
    if isinstance(v, (bool, np.bool_)):
        return bool(v)
    raise ValueError(f"expected bool, got {_type_name(v)} {v!r}"[:200])


def scalar_string(v: Any) -> str:
    if not isinstance(v, str):
        raise ValueError(f"expected string, got {_type_name(v)} {v!r}"[:200])
    if len(v) > MAX_STRING_BYTES // 4 and len(v.encode("utf-8", "surrogatepass")) > MAX_STRING_BYTES:
        raise ValueError(f"string longer than {MAX_STRING_BYTES} bytes")
    try:
        v.encode("utf-8")
    except UnicodeEncodeError:
        raise ValueError("string is not valid UTF-8 text") from None
    return v


def scalar_tags(v: Any) -> list[str]:
    if not isinstance(v, (list, tuple, set, frozenset, np.ndarray)):
        raise ValueError(f"expected a list of strings, got {_type_name(v)} {v!r}"[:200])
    try:
        return [scalar_string(t) for t in v]
    except ValueError as e:
        raise ValueError(f"tag: {e}") from None


def scalar_timestamp(v: Any) -> int:
    try:
        return ts.to_micros(v)
    except (TypeError, ValueError, OverflowError) as e:
        raise ValueError(str(e)) from None


SCALAR: dict[FieldType, Callable[[Any], Any]] = {
    FieldType.INT: scalar_int,
    FieldType.FLOAT: scalar_float,
    FieldType.BOOL: scalar_bool,
    FieldType.STRING: scalar_string,
    FieldType.TIMESTAMP: scalar_timestamp,
    FieldType.STRING_SET: scalar_tags,
}
NATIVE: dict[FieldType, tuple[type, ...]] = {
    FieldType.INT: (int,),
    FieldType.FLOAT: (float, int),
    FieldType.BOOL: (bool,),
    FieldType.STRING: (str,),
    FieldType.TIMESTAMP: (str, int, float),
    FieldType.STRING_SET: (list, tuple, set, frozenset),
}


# ---- entry point ---------------------------------------------------------------------
def coerce(field: Field, column: Any, n: int) -> tuple[FieldBatch, Errors]:
    """Coerce one input column of length n for `field`."""
    if isinstance(column, Categorical):
        return _from_categorical(field, column)
    if isinstance(column, TagSets):
        return _from_tagsets(field, column)
    if isinstance(column, np.ma.MaskedArray):
        null = np.ma.getmaskarray(column)
        return _from_array(field, np.ma.getdata(column), null)
    if isinstance(column, np.ndarray) and column.dtype != object:
        return _from_array(field, column, np.zeros(n, dtype=bool))
    return _from_objects(field, list(column))


def _whole(field: Field, n: int, values=None, null=None, errors: Errors | None = None,
           named=None, **kw) -> tuple[FieldBatch, Errors]:
    null = np.zeros(n, dtype=bool) if null is None else null
    named = np.ones(n, dtype=bool) if named is None else named
    return FieldBatch(field, named, null, values=values, **kw), errors or []


def _reject(field: Field, n: int, reason: str, null: np.ndarray | None = None) -> tuple[FieldBatch, Errors]:
    """Every record fails with `reason`, except those that leave the field null (a column
    of the wrong kind cannot reject a record that gives it no value)."""
    batch, _ = _whole(field, n, null=np.ones(n, dtype=bool))
    failing = range(n) if null is None else np.flatnonzero(~null).tolist()
    return batch, [(i, reason) for i in failing]


# ---- pre-encoded forms -----------------------------------------------------------------
def _from_categorical(field: Field, col: Categorical) -> tuple[FieldBatch, Errors]:
    n = len(col)
    if field.type is not FieldType.STRING:
        return _reject(field, n, f"expected {field.type.value}, got categorical strings",
                       np.asarray(col.codes) < 0)
    cats = list(col.categories)
    reasons = _category_problems(cats)
    codes = col.codes.astype(np.int32)
    errors: Errors = []
    if reasons:
        hit = np.isin(codes, list(reasons))
        errors = [(int(i), reasons[int(codes[i])]) for i in np.flatnonzero(hit)]
        codes = np.where(hit, -1, codes)
    return _whole(field, n, null=codes < 0, codes=codes, categories=cats, errors=errors)


def _category_problems(cats: list[Any]) -> dict[int, str]:
    """Category index → why it is not an acceptable string. A batch of 100 rows from the
    wire carries ~100 categories: the common all-good case is settled by three C-level
    passes (types, lengths, one UTF-8 encode), the per-value check only names problems."""
    if _all_good_strings(cats):
        return {}
    out = {}
    for i, c in enumerate(cats):
        try:
            scalar_string(c)
        except ValueError as e:
            out[i] = str(e)
    return out


def _all_good_strings(values: list[Any]) -> bool:
    """Whether every value passes `scalar_string` (a fast, conservative test)."""
    if not values:
        return True
    if set(map(type, values)) != {str} or max(map(len, values)) > MAX_STRING_BYTES // 4:
        return False
    try:
        "".join(values).encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def _from_tagsets(field: Field, col: TagSets) -> tuple[FieldBatch, Errors]:
    n = len(col)
    if field.type is not FieldType.STRING_SET:
        return _reject(field, n, f"expected {field.type.value}, got tag sets", col.null)
    null = col.null if col.null is not None else np.zeros(n, dtype=bool)
    reasons = _category_problems(list(col.categories))
    if not reasons:
        return _whole(field, n, null=null, tags=col)
    owner = np.repeat(np.arange(n), np.diff(col.offsets))
    hit = np.isin(col.codes, list(reasons))
    bad_records = np.unique(owner[hit])
    errors = [(int(i), "tag: " + reasons[int(col.codes[np.flatnonzero(hit & (owner == i))[0]])])
              for i in bad_records]
    null = null.copy()
    null[bad_records] = True
    return _whole(field, n, null=null, tags=col, errors=errors)


# ---- numpy arrays ----------------------------------------------------------------------
def _from_array(field: Field, arr: np.ndarray, null: np.ndarray) -> tuple[FieldBatch, Errors]:
    if arr.ndim != 1:
        return _reject(field, len(arr), "column must be one-dimensional")
    kind = arr.dtype.kind
    if kind in "USO" or field.type in (FieldType.STRING, FieldType.STRING_SET):
        if field.type is FieldType.TIMESTAMP and kind == "U":
            fast = ts.iso_array_to_micros(arr)
            if fast is not None:
                return _checked_micros(field, fast, null)
        objs = arr.tolist()
        return _from_objects(field, [None if z else v for v, z in zip(objs, null.tolist())])
    handler = _ARRAY_HANDLERS[field.type]
    return handler(field, arr, null)


def _bad_positions(field: Field, ok: np.ndarray, null: np.ndarray, reason: Callable[[int], str]):
    bad = np.flatnonzero(~ok & ~null)
    return [(int(i), reason(int(i))) for i in bad], null | ~ok


def _array_int(field, arr, null):
    kind = arr.dtype.kind
    if kind == "b":
        return _reject(field, len(arr), "expected int, got bool", null)
    if kind == "u" and arr.dtype.itemsize == 8:
        ok = arr <= np.uint64(INT64_MAX)
        errors, null = _bad_positions(field, ok, null, lambda i: f"int out of range: {arr[i]}")
        return _whole(field, len(arr), values=np.where(ok, arr, 0).astype(np.int64), null=null, errors=errors)
    if kind == "f":
        ok = np.isfinite(arr) & (arr == np.floor(arr)) & (arr >= -2.0 ** 63) & (arr < 2.0 ** 63)
        errors, null = _bad_positions(field, ok, null, lambda i: f"expected int, got float {arr[i]!r}")
        return _whole(field, len(arr), values=np.where(ok, arr, 0).astype(np.int64), null=null, errors=errors)
    if kind in "iu":
        return _whole(field, len(arr), values=arr.astype(np.int64), null=null)
    return _reject(field, len(arr), f"expected int, got {arr.dtype}", null)


def _array_float(field, arr, null):
    if arr.dtype.kind not in "iuf":
        return _reject(field, len(arr), f"expected float, got {arr.dtype}", null)
    vals = arr.astype(np.float64)
    ok = np.isfinite(vals)
    errors, null = _bad_positions(field, ok, null, lambda i: f"float must be finite, got {arr[i]!r}")
    return _whole(field, len(arr), values=np.where(ok, vals, 0.0), null=null, errors=errors)


def _array_bool(field, arr, null):
    if arr.dtype.kind != "b":
        return _reject(field, len(arr), f"expected bool, got {arr.dtype}", null)
    return _whole(field, len(arr), values=arr.astype(bool), null=null)


def _array_timestamp(field, arr, null):
    kind = arr.dtype.kind
    if kind == "M":
        return _datetime64(field, arr, null | np.isnat(arr))
    if kind in "iu":
        big = np.abs(arr.astype(np.float64)) > ts.MAX_US / 1e6
        micros = np.where(big, 0, arr).astype(np.int64) * 1_000_000
        errors, null = _bad_positions(field, ~big, null, lambda i: f"timestamp out of range: {arr[i]}")
        batch, more = _checked_micros(field, micros, null)
        return batch, errors + more
    if kind == "f":
        ok = np.isfinite(arr) & (np.abs(arr) <= ts.MAX_US / 1e6)
        micros = np.round(np.where(ok, arr, 0.0) * 1e6).astype(np.int64)
        errors, null = _bad_positions(field, ok, null, lambda i: f"timestamp out of range: {arr[i]!r}")
        batch, more = _checked_micros(field, micros, null)
        return batch, errors + more
    return _reject(field, len(arr), f"expected timestamp, got {arr.dtype}", null)


def _datetime64(field, arr, null):
    """datetime64 of any unit → µs, range-checked in the array's own unit first
    (converting 2**62 seconds to µs would overflow without a word)."""
    unit = np.datetime_data(arr.dtype)[0]
    if unit in ("ns", "ps", "fs", "as"):  # every value of these units is in range
        return _checked_micros(field, arr.astype("datetime64[us]").view(np.int64), null)
    bounds = np.array([ts.MIN_US, ts.MAX_US], dtype="datetime64[us]").astype(arr.dtype).view(np.int64)
    raw = arr.view(np.int64)
    ok = (raw >= bounds[0]) & (raw <= bounds[1])
    errors, null = _bad_positions(field, ok, null, lambda i: "timestamp out of range (years 1–9999)")
    micros = np.where(ok, arr, np.datetime64(0, unit)).astype("datetime64[us]").view(np.int64)
    return _whole(field, len(arr), values=micros, null=null, errors=errors)


def _checked_micros(field, micros, null):
    ok = (micros >= ts.MIN_US) & (micros <= ts.MAX_US)
    errors, null = _bad_positions(field, ok, null, lambda i: "timestamp out of range (years 1–9999)")
    return _whole(field, len(micros), values=np.where(ok, micros, 0), null=null, errors=errors)


_ARRAY_HANDLERS = {
    FieldType.INT: _array_int,
    FieldType.FLOAT: _array_float,
    FieldType.BOOL: _array_bool,
    FieldType.TIMESTAMP: _array_timestamp,
}


# ---- Python objects ----------------------------------------------------------------------
def _from_objects(field: Field, vals: list[Any]) -> tuple[FieldBatch, Errors]:
    n = len(vals)
    types = np.fromiter(map(type, vals), dtype=object, count=n)
    named = types != _Missing
    null = (types == type(None)) | ~named
    take = np.flatnonzero(~null)
    native = NATIVE[field.type]
    sub_types = set(types[take].tolist())
    objs = np.fromiter(vals, dtype=object, count=n)[take] if take.size else np.zeros(0, dtype=object)
    if sub_types and sub_types <= set(native):
        fast = _FAST_OBJECTS[field.type](objs)
        if fast is not None:
            return _assemble(field, n, named, null, take, fast, [])
    good, values, errors = _scalar_loop(field, objs, take)
    null = null.copy()
    null[take[~good]] = True
    return _assemble(field, n, named, null, take[good], values, errors)


def _scalar_loop(field: Field, objs: np.ndarray, take: np.ndarray):
    fn = SCALAR[field.type]
    good = np.ones(len(objs), dtype=bool)
    values: list[Any] = []
    errors: Errors = []
    for k, v in enumerate(objs.tolist()):
        try:
            values.append(fn(v))
        except ValueError as e:
            good[k] = False
            errors.append((int(take[k]), str(e)))
    return good, values, errors


def _fast_int(objs: np.ndarray):
    try:
        return objs.astype(np.int64)
    except OverflowError:
        return None


def _fast_float(objs: np.ndarray):
    try:
        vals = objs.astype(np.float64)
    except OverflowError:
        return None
    return vals if np.isfinite(vals).all() else None


def _fast_identity(objs: np.ndarray):
    return objs.tolist()


_FAST_OBJECTS = {
    FieldType.INT: _fast_int,
    FieldType.FLOAT: _fast_float,
    FieldType.BOOL: lambda objs: objs.astype(bool),
    FieldType.STRING: lambda objs: _fast_strings(objs.tolist()),
    FieldType.TIMESTAMP: lambda objs: _fast_timestamps(objs),
    FieldType.STRING_SET: lambda objs: _fast_tags(objs.tolist()),
}


def _fast_timestamps(objs: np.ndarray):
    """All ISO strings numpy can parse, or all epoch numbers in range; else None."""
    vals = objs.tolist()
    kinds = set(map(type, vals))
    micros = None
    if kinds == {str}:
        micros = ts.iso_array_to_micros(np.array(vals))
    elif kinds <= {int, float}:
        try:
            secs = np.array(vals, dtype=np.float64)
        except OverflowError:
            return None
        if not np.all(np.abs(secs) <= ts.MAX_US / 1e6):
            return None
        micros = np.array(vals, dtype=np.int64) * 1_000_000 if kinds == {int} else \
            np.round(secs * 1e6).astype(np.int64)
    if micros is None or not np.all((micros >= ts.MIN_US) & (micros <= ts.MAX_US)):
        return None  # the per-value path names each bad value
    return micros


def _fast_strings(vals: list[str]):
    """vals when every string is plainly acceptable; None sends them value by value."""
    if max(map(len, vals), default=0) > MAX_STRING_BYTES // 4:
        return None
    try:
        "".join(vals).encode("utf-8")  # lone surrogates are not text we can store
    except UnicodeEncodeError:
        return None
    return vals


def _fast_tags(vals: list[Any]):
    flat = list(itertools.chain.from_iterable(vals))
    if set(map(type, flat)) - {str} or _fast_strings(flat) is None:
        return None
    return vals


def _assemble(field: Field, n: int, named, null, take, values, errors) -> tuple[FieldBatch, Errors]:
    """Scatter the per-value results at positions `take` into a record-aligned batch."""
    t = field.type
    if t is FieldType.STRING:
        cats = list(dict.fromkeys(values))
        pos = {v: i for i, v in enumerate(cats)}
        codes = np.full(n, -1, dtype=np.int32)
        codes[take] = np.fromiter(map(pos.__getitem__, values), dtype=np.int32, count=len(values))
        return _whole(field, n, null=null, named=named, codes=codes, categories=cats, errors=errors)
    if t is FieldType.STRING_SET:
        return _whole(field, n, null=null, named=named, tags=_tagsets(n, take, values), errors=errors)
    out = np.zeros(n, dtype=_STORAGE[t])
    if len(take):
        out[take] = np.asarray(values, dtype=_STORAGE[t])
    return _whole(field, n, values=out, null=null, named=named, errors=errors)


_STORAGE = {FieldType.INT: np.int64, FieldType.FLOAT: np.float64,
            FieldType.BOOL: np.bool_, FieldType.TIMESTAMP: np.int64}


def _tagsets(n: int, take: np.ndarray, sets: list[Any]) -> TagSets:
    lengths = np.zeros(n, dtype=np.int64)
    lengths[take] = np.fromiter(map(len, sets), dtype=np.int64, count=len(sets))
    flat = list(itertools.chain.from_iterable(sets))
    cats = list(dict.fromkeys(flat))
    pos = {v: i for i, v in enumerate(cats)}
    codes = np.fromiter(map(pos.__getitem__, flat), dtype=np.int32, count=len(flat))
    off = np.zeros(n + 1, dtype=np.int64)
    np.cumsum(lengths, out=off[1:])
    return TagSets(off, codes, cats)
