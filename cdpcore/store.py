"""Store is the embedded facade: N in-process shards behind one Python API.

Writes are validated and coerced once for the whole batch, then routed by slot
(xxhash64(id) % 16384 → shard); queries are parsed once, run on every shard in
parallel (numpy releases the GIL in the heavy loops) and merged by the same reducer
the router uses, so answers do not depend on the number of shards.
"""
from __future__ import annotations

import time
from concurrent.futures import ThreadPoolExecutor
import datetime as _dt
from dataclasses import dataclass, field, replace
from typing import Any, Callable, Iterable, Mapping, Sequence

import numpy as np

from .arrays import distinct
from .batch import Categorical, TagSets
from .coerce import MISSING, FieldBatch, coerce
from .errors import BatchError, RecordError, SchemaError
from .ids import MAX_ID_BYTES, EncodedIds, check_id
from .query import aggregate, reduce as rd
from .query.ir import Select
from .query.parse import parse_select, parse_where
from .query.rules import normalize
from .schema import ID_FIELD, Field, FieldType, Schema
from .shard import Shard
from .slots import SlotMap


@dataclass
class UpsertResult:
    accepted: int
    errors: list[RecordError] = field(default_factory=list)


@dataclass
class DeleteResult:
    deleted: int
    not_found: list[str] = field(default_factory=list)


@dataclass
class QueryResult:
    columns: list[str]
    rows: list[tuple]


class Store:
    """An in-memory profile store of `shards` partitions. Safe for concurrent use."""

    def __init__(self, shards: int = 4, *, strict: bool = False,
                 clock: Callable[[], float] | None = None) -> None:
        self.schema = Schema(strict=strict)
        self.slot_map = SlotMap.even(shards)
        self.shards = [Shard(self.schema, i) for i in range(shards)]
        self._clock = clock or time.time
        self._pool = ThreadPoolExecutor(max_workers=shards, thread_name_prefix="cdp-shard") \
            if shards > 1 else None

    def __len__(self) -> int:
        return sum(len(s) for s in self.shards)

    def close(self) -> None:
        if self._pool is not None:
            self._pool.shutdown(wait=True)

    # ---- schema --------------------------------------------------------------------
    def define_fields(self, spec: Mapping[str, str | FieldType]) -> list[Field]:
        """Declare fields; returns the ones that were new."""
        return self.schema.declare(spec)

    # ---- writes --------------------------------------------------------------------
    def upsert(self, records: Sequence[Mapping[str, Any]]) -> UpsertResult:
        """Upsert profiles given as dicts; each changes only the fields it names."""
        records = list(records)
        n = len(records)
        errors: list[RecordError] = []
        bad = np.zeros(n, dtype=bool)
        not_dict = [] if set(map(type, records)) <= {dict} else \
            [i for i, r in enumerate(records) if not isinstance(r, Mapping)]
        for i in not_dict:
            errors.append(RecordError(i, None, f"record must be a mapping, got {type(records[i]).__name__}"))
            bad[i] = True
            records[i] = {}
        ids = [r.get(ID_FIELD) for r in records]
        names = set().union(*(r.keys() for r in records)) - {ID_FIELD}
        columns = {name: [r.get(name, MISSING) for r in records] for name in sorted(names, key=str)}
        return self._ingest(ids, columns, n, errors, bad)

    def upsert_columns(self, ids: Sequence[str] | np.ndarray,
                       columns: Mapping[str, Any]) -> UpsertResult:
        """Bulk columnar upsert: every record names every given column.

        A column is a numpy array, a MaskedArray (masked = null), a list (None = null),
        a `Categorical` (string) or `TagSets` (string_set); see cdpcore.batch.
        """
        ids = ids.tolist() if isinstance(ids, np.ndarray) else list(ids)
        n = len(ids)
        for name, col in columns.items():
            if len(col) != n:
                raise BatchError(f"column {name!r} has {len(col)} values for {n} ids")
        return self._ingest(ids, dict(columns), n, [], np.zeros(n, dtype=bool))

    def _ingest(self, ids: list, columns: dict[str, Any], n: int,
                errors: list[RecordError], bad: np.ndarray) -> UpsertResult:
        self._check_ids(ids, errors, bad)
        batches = []
        for name, col in columns.items():
            batch = self._coerce_field(name, col, n, errors, bad)
            if batch is not None:
                batches.append(batch)
        good = np.flatnonzero(~bad)
        if good.size:
            if good.size < n:
                batches = [b.take(good) for b in batches]
                ids = [ids[i] for i in good.tolist()]
            self._route_upsert(ids, batches)
        errors.sort(key=lambda e: (e.index, e.field or ""))
        return UpsertResult(int(good.size), errors)

    @staticmethod
    def _check_ids(ids: list, errors: list[RecordError], bad: np.ndarray) -> None:
        if not ids:
            return
        if set(map(type, ids)) == {str} and all(ids) and max(map(len, ids)) <= MAX_ID_BYTES // 4:
            try:
                "".join(ids).encode("utf-8")
                return
            except UnicodeEncodeError:
                pass
        for i, v in enumerate(ids):
            reason = check_id(v)
            if reason is not None:
                errors.append(RecordError(i, ID_FIELD, reason))
                bad[i] = True

    def _coerce_field(self, name: Any, col: Any, n: int, errors: list[RecordError],
                      bad: np.ndarray) -> FieldBatch | None:
        try:
            field = self.schema.get(name) if isinstance(name, str) else None
            field = field or self.schema.infer(name, _inference_sample(col))
        except SchemaError as e:
            self._reject_naming(name, col, n, str(e), errors, bad)
            return None
        if field is None:  # only nulls so far: nothing to store, nothing to infer
            return None
        batch, errs = coerce(field, col, n)
        for i, reason in errs:
            errors.append(RecordError(i, name, reason))
            bad[i] = True
        return batch

    @staticmethod
    def _reject_naming(name, col, n, reason, errors, bad) -> None:
        """Reject every record that gives `name` a non-null value."""
        if isinstance(col, (list, tuple)):
            hits = [i for i, v in enumerate(col) if v is not MISSING and v is not None]
        else:
            hits = range(n)
        for i in hits:
            errors.append(RecordError(i, name if isinstance(name, str) else repr(name), reason))
            bad[i] = True

    def _route_upsert(self, ids: list[str], batches: list[FieldBatch]) -> None:
        enc = EncodedIds.encode(ids)
        if len(distinct(enc.hashes)) == len(ids):  # distinct hashes imply distinct ids
            uid = np.arange(len(ids))
            uenc = enc
        else:
            pos = {k: i for i, k in enumerate(dict.fromkeys(ids))}
            uid = np.fromiter(map(pos.__getitem__, ids), dtype=np.int64, count=len(ids))
            first = np.full(len(pos), len(ids), dtype=np.int64)
            np.minimum.at(first, uid, np.arange(len(ids)))
            uenc = enc.take(first)
        # Sort ids and records by owning shard once; each shard then gets slices.
        owner_u = self.slot_map.shard_of_hashes(uenc.hashes)
        n_shards = len(self.shards)
        if n_shards > 1:
            order_u = np.argsort(owner_u, kind="stable")
            uenc, owner_u = uenc.take(order_u), owner_u[order_u]
            new_pos = np.empty(len(order_u), dtype=np.int64)
            new_pos[order_u] = np.arange(len(order_u))
            uid = new_pos[uid]
            order_r = np.argsort(uid, kind="stable")  # records follow their id's shard order
            uid = uid[order_r]
            batches = [b.take(order_r) for b in batches]
        u_bounds = np.searchsorted(owner_u, np.arange(n_shards + 1))
        r_bounds = np.searchsorted(uid, u_bounds)
        jobs = []
        for s, shard in enumerate(self.shards):
            ulo, uhi, rlo, rhi = u_bounds[s], u_bounds[s + 1], r_bounds[s], r_bounds[s + 1]
            if uhi > ulo:
                ids_s = uenc.take(np.arange(ulo, uhi)) if n_shards > 1 else uenc
                jobs.append((shard, (ids_s, uid[rlo:rhi] - ulo, [b.slice(rlo, rhi) for b in batches])))
        self._map(lambda job: job[0].upsert(*job[1]), jobs)

    def delete(self, ids: Iterable[str]) -> DeleteResult:
        """Delete profiles by id; unknown ids are reported, not an error."""
        ids = list(dict.fromkeys(ids))
        bad = [i for i in ids if check_id(i) is not None]
        if bad:
            raise BatchError(f"invalid profile_id {bad[0]!r}: {check_id(bad[0])}")
        if not ids:
            return DeleteResult(0)
        enc = EncodedIds.encode(ids)
        owner = self.slot_map.shard_of_hashes(enc.hashes)
        found = np.zeros(len(ids), dtype=bool)
        for s, shard in enumerate(self.shards):
            sel = np.flatnonzero(owner == s)
            if sel.size:
                found[sel] = shard.delete(enc.take(sel))
        return DeleteResult(int(found.sum()), [ids[i] for i in np.flatnonzero(~found).tolist()])

    # ---- reads ---------------------------------------------------------------------
    def get_profile(self, profile_id: str) -> dict[str, Any] | None:
        """The profile's non-null fields (plus profile_id), or None if unknown."""
        if check_id(profile_id) is not None:
            return None
        enc = EncodedIds.encode([profile_id])
        shard = self.shards[int(self.slot_map.shard_of_hashes(enc.hashes)[0])]
        return shard.get(enc)[0]

    def now_us(self) -> int:
        return int(self._clock() * 1_000_000)

    def count(self, where: str = "") -> int:
        """Number of profiles matching a WHERE condition ('' matches all)."""
        pred = normalize(parse_where(where, self.schema, self.now_us()))
        return sum(self._map(lambda s: s.read(lambda sh: aggregate.count_where(sh, pred)), self.shards))

    def query(self, sql: str) -> QueryResult:
        """Run a SELECT over `profiles`."""
        select = parse_select(sql, self.schema, self.now_us())
        select = _with_where(select, normalize(select.where) if select.where is not None else None)
        partials = self._map(lambda s: s.read(lambda sh: aggregate.run_select(sh, select)), self.shards)
        merged = rd.merge_all(select, partials)
        return QueryResult([c.name for c in select.columns], rd.finalize(select, merged, self.schema))

    def _map(self, fn: Callable[[Any], Any], items: list) -> list:
        if self._pool is None or len(items) < 2:
            return [fn(x) for x in items]
        return list(self._pool.map(fn, items))


def _with_where(select: Select, where) -> Select:
    return replace(select, where=where)


def _inference_sample(col: Any) -> Iterable[Any]:
    """Values to infer a new field's type from, whatever form the column takes."""
    if isinstance(col, Categorical):
        return [c for c in col.categories[:1]] or [None]
    if isinstance(col, TagSets):
        return [[]]
    if isinstance(col, np.ndarray) and col.dtype != object:
        data = np.ma.getdata(col)
        return [_dtype_sample(data.dtype)]
    return (v for v in col if v is not MISSING)


def _dtype_sample(dtype: np.dtype) -> Any:
    return {"b": True, "i": 0, "u": 0, "f": 0.0, "M": _dt.datetime(2000, 1, 1), "U": ""}.get(dtype.kind)
