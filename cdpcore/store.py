"""Store is the embedded facade: N in-process shards behind one Python API.

Writes are validated and coerced once for the whole batch, then routed by slot
(xxhash64(id) % 16384 → shard); queries are parsed once, run on every shard in
parallel (numpy releases the GIL in the heavy loops) and merged by the same reducer
the router uses, so answers do not depend on the number of shards.
"""
from __future__ import annotations

import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any, Callable, Iterable, Mapping, Sequence

import numpy as np

from .coerce import FieldBatch
from .errors import RecordError
from .ids import EncodedIds, check_id
from . import ingest, routing
from .query import aggregate, reduce as rd
from .query import compile_select, compile_where
from .schema import Field, FieldType, Schema
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
        return self._ingest(*ingest.columns_of_records(records))

    def upsert_columns(self, ids: Sequence[str] | np.ndarray,
                       columns: Mapping[str, Any]) -> UpsertResult:
        """Bulk columnar upsert: every record names every given column.

        A column is a numpy array, a MaskedArray (masked = null), a list (None = null),
        a `Categorical` (string) or `TagSets` (string_set); see cdpcore.batch.
        """
        ids = ingest.check_columns(ids, columns)
        return self._ingest(ids, dict(columns), ingest.Rejections(len(ids)))

    def _ingest(self, ids: list, columns: dict[str, Any], rejections: ingest.Rejections) -> UpsertResult:
        prepared = ingest.write(self.schema, ids, columns, rejections, self.schema.declare,
                                lambda p: self._route_upsert(p.enc, p.batches))
        return UpsertResult(prepared.accepted, prepared.errors)

    def _route_upsert(self, enc: EncodedIds, batches: list[FieldBatch]) -> None:
        """Apply each shard's part; its gathers run in the worker thread."""
        parts = routing.split(enc, self.slot_map, len(self.shards))
        self._map(lambda p: self.shards[p.shard].upsert(p.ids(), p.uid, p.batches(batches)), parts)

    def delete(self, ids: Iterable[str]) -> DeleteResult:
        """Delete profiles by id; unknown ids are reported, not an error."""
        ids, enc, owner = routing.owners_of_ids(ids, self.slot_map)
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
        pred = compile_where(where, self.schema, self.now_us())
        return sum(self._map(lambda s: s.read(lambda sh: aggregate.count_where(sh, pred)), self.shards))

    def query(self, sql: str) -> QueryResult:
        """Run a SELECT over `profiles`."""
        select = compile_select(sql, self.schema, self.now_us())
        partials = self._map(lambda s: s.read(lambda sh: aggregate.run_select(sh, select)), self.shards)
        merged = rd.merge_all(select, partials)
        return QueryResult([c.name for c in select.columns], rd.finalize(select, merged, self.schema))

    def _map(self, fn: Callable[[Any], Any], items: list) -> list:
        if self._pool is None or len(items) < 2:
            return [fn(x) for x in items]
        return list(self._pool.map(fn, items))
