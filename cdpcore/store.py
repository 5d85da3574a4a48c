"""Store is the embedded facade: N in-process shards behind one Python API.

Writes are validated and coerced once for the whole batch, then routed by slot
(xxhash64(id) % 16384 → shard); queries are parsed once, run on every shard in
parallel (numpy releases the GIL in the heavy loops) and merged by the same reducer
the router uses, so answers do not depend on the number of shards.
"""
from __future__ import annotations

import threading
import time
from pathlib import Path
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Callable, Collection, Iterable, Iterator, Mapping, Sequence

import numpy as np

from .errors import RecordError
from .ids import EncodedIds, check_id
from . import ingest, routing, tracking
from .query import aggregate, reduce as rd
from .query import compile_select, compile_where, event_warnings
from .schema import Field, FieldType, Schema
from .shard import Shard
from .errors import QueryError
from .membership import DEFAULT_RETAINED, ChangeLog, ExportBatch, SegmentWatch, export_batches
from .periodic import Periodic
from .segments import DEFAULT_REFRESH_S, SegmentCatalog, SegmentInfo
from .slots import SlotMap

if TYPE_CHECKING:
    from .durability import ShardDurability


@dataclass
class UpsertResult:
    accepted: int
    errors: list[RecordError] = field(default_factory=list)


TrackResult = UpsertResult  # accepted events and per-event errors, as for upserts


@dataclass
class DeleteResult:
    deleted: int
    not_found: list[str] = field(default_factory=list)


@dataclass
class QueryResult:
    columns: list[str]
    rows: list[tuple]
    warnings: list[str] = field(default_factory=list)  # e.g. an event type never tracked


class Store:
    """An in-memory profile store of `shards` partitions. Safe for concurrent use."""

    def __init__(self, shards: int = 4, *, strict: bool = False,
                 clock: Callable[[], float] | None = None,
                 segment_refresh_s: float | None = DEFAULT_REFRESH_S,
                 retained_changes: int = DEFAULT_RETAINED,
                 data_dir: str | Path | None = None, fsync: str = "always",
                 snapshot_interval_s: float | None = 300.0) -> None:
        """`segment_refresh_s`: how often time-dependent segments are re-evaluated in the
        background (None: only when `refresh_segments` is called); `retained_changes`:
        segment changes kept per segment and shard for watchers; `data_dir`: persist
        (a WAL and snapshots per shard, recovered here) with the `fsync` policy
        ("always", "interval=MS" or "never"), snapshotting every `snapshot_interval_s`
        while writes arrive (and by WAL size, and on close)."""
        self.schema = Schema(strict=strict)
        self.event_schema = tracking.EventSchema()
        self.segment_catalog = SegmentCatalog()
        self.slot_map = SlotMap.even(shards)
        self._changes = threading.Condition()
        self.shards = [Shard(self.schema, i, ChangeLog(retained_changes, self._changes))
                       for i in range(shards)]
        self._clock = clock or time.time
        self._pool = ThreadPoolExecutor(max_workers=shards, thread_name_prefix="cdp-shard") \
            if shards > 1 else None
        self._ddl = threading.Lock()  # segment create/delete/refresh, one at a time
        self._durable = self._open(Path(data_dir), fsync, snapshot_interval_s) \
            if data_dir is not None else []
        # where writes go: the durable wrappers (log, apply, sync) or the shards directly
        self._writers = self._durable or self.shards
        self.recovery = [d.recovered for d in self._durable]
        self._refresher = Periodic(self.refresh_segments, segment_refresh_s)
        if any(d.time_dependent for d in self.segment_catalog.all()):
            self._refresher.start()

    def _open(self, data_dir: Path, fsync: str, interval_s: float | None) -> list["ShardDurability"]:
        from .durability import ShardDurability, check_layout  # only persistent stores need it
        check_layout(data_dir, len(self.shards))
        durable = []
        for shard in self.shards:
            d = ShardDurability(shard, data_dir / f"shard-{shard.shard_id}", self.schema,
                                self.event_schema, fsync, snapshot_interval_s=interval_s)
            d.recover()
            durable.append(d)
        for shard in self.shards:  # the catalog comes back from the shards' definitions
            for state in shard.segments.states.values():
                if state.defn.name not in self.segment_catalog.names():
                    self.segment_catalog.restore(state.defn)
        return durable

    def snapshot(self) -> list[str]:
        """Snapshot every shard now (a persistent store); returns the files written."""
        return [str(d.snapshot().path) for d in self._durable]

    def __len__(self) -> int:
        return sum(len(s) for s in self.shards)

    def close(self) -> None:
        """Stop background work; a persistent store takes a final snapshot."""
        self._refresher.stop()
        for d in self._durable:
            d.close()
        if self._pool is not None:
            self._pool.shutdown(wait=True)

    # ---- schema --------------------------------------------------------------------
    def define_fields(self, spec: Mapping[str, str | FieldType]) -> list[Field]:
        """Declare fields; returns the ones that were new."""
        added = self.schema.declare(spec)
        for d in self._durable:
            d.define({f.name: f.type.value for f in added})
        return added

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
                                lambda p: self._route(p, "upsert"))
        return UpsertResult(prepared.accepted, prepared.errors)

    def _route(self, prepared: ingest.PreparedBatch, method: str) -> None:
        """Apply each shard's part with `method` ("upsert" / "track"); the part's
        gathers run in the worker thread."""
        batches = prepared.batches
        parts = routing.split(prepared.enc, self.slot_map, len(self.shards), prepared.distinct)
        self._map(lambda p: getattr(self._writers[p.shard], method)(p.ids(), p.uid, p.batches(batches)),
                  parts)

    def track(self, events: Sequence[Mapping[str, Any]]) -> TrackResult:
        """Append events given as dicts: profile_id, type, optional ts, properties."""
        return self._track(*tracking.columns_of_events(events))

    def track_columns(self, ids: Sequence[str] | np.ndarray, types: Any, ts: Any = None,
                      properties: Mapping[str, Any] | None = None) -> TrackResult:
        """Bulk columnar event append: `types` a list or Categorical, `ts` None (now) or a
        column (datetime64 arrays are the fast path), properties as in `upsert_columns`."""
        ids, columns = tracking.check_event_columns(ids, types, ts, properties)
        return self._track(ids, columns, ingest.Rejections(len(ids)))

    def _track(self, ids: list, columns: dict[str, Any], rejections: ingest.Rejections) -> TrackResult:
        prepared = tracking.write_events(self.event_schema, ids, columns, rejections,
                                         self.now_us(), lambda p: self._route(p, "track"))
        return TrackResult(prepared.accepted, prepared.errors)

    def delete(self, ids: Iterable[str]) -> DeleteResult:
        """Delete profiles by id; unknown ids are reported, not an error."""
        ids, enc, owner = routing.owners_of_ids(ids, self.slot_map)
        found = np.zeros(len(ids), dtype=bool)
        for s, writer in enumerate(self._writers):
            sel = np.flatnonzero(owner == s)
            if sel.size:
                found[sel] = writer.delete(enc.take(sel))
        return DeleteResult(int(found.sum()), [ids[i] for i in np.flatnonzero(~found).tolist()])

    # ---- reads ---------------------------------------------------------------------
    def get_profile(self, profile_id: str) -> dict[str, Any] | None:
        """The profile's non-null fields (plus profile_id), or None if unknown."""
        found = self._owner(profile_id)
        return None if found is None else found[0].get(found[1])[0]

    def events_of(self, profile_id: str, limit: int = 100) -> list[dict[str, Any]] | None:
        """The profile's events, most recent first (at most `limit`), or None if unknown."""
        found = self._owner(profile_id)
        return None if found is None else found[0].events_of(found[1], limit)[0]

    def _owner(self, profile_id: str) -> tuple[Shard, EncodedIds] | None:
        """The shard owning a (valid) id, with the id encoded; None for an invalid id."""
        if check_id(profile_id) is not None:
            return None
        enc = EncodedIds.encode([profile_id])
        return self.shards[int(self.slot_map.shard_of_hashes(enc.hashes)[0])], enc

    def now_us(self) -> int:
        return int(self._clock() * 1_000_000)

    def count(self, where: str = "") -> int:
        """Number of profiles matching a WHERE condition ('' matches all)."""
        pred = compile_where(where, self.schema, self.now_us(), self.event_schema,
                             self.segment_catalog.names())
        return sum(self._map(lambda s: s.read(lambda sh: aggregate.count_where(sh, pred)), self.shards))

    def query(self, sql: str) -> QueryResult:
        """Run a SELECT over `profiles`."""
        select = compile_select(sql, self.schema, self.now_us(), self.event_schema,
                                self.segment_catalog.names())
        partials = self._map(lambda s: s.read(lambda sh: aggregate.run_select(sh, select)), self.shards)
        merged = rd.merge_all(select, partials)
        return QueryResult([c.name for c in select.columns], rd.finalize(select, merged, self.schema),
                           event_warnings(select, self.event_schema))

    # ---- saved segments ---------------------------------------------------------------
    def create_segment(self, name: str, where: str) -> SegmentInfo:
        """Save a segment: its membership is computed now and kept current by every write."""
        with self._ddl:
            now = self.now_us()
            defn = self.segment_catalog.define(name, where, self._compile_segment, now)
            self._map(lambda w: w.define_segment(defn, now), self._writers)
            self.segment_catalog.add(defn)
        if defn.time_dependent:
            self._refresher.start()
        return self.get_segment(name)

    def get_segment(self, name: str) -> SegmentInfo:
        defn = self.segment_catalog.get(name)
        size = sum(s.read(lambda sh: len(sh.visible(sh.segments.members(name)))) for s in self.shards)
        return SegmentInfo.of(defn, size)

    def list_segments(self) -> list[SegmentInfo]:
        return [self.get_segment(d.name) for d in self.segment_catalog.all()]

    def delete_segment(self, name: str) -> None:
        """Forget a segment; refused while other segments read it."""
        with self._ddl:
            self.segment_catalog.remove(name)
            for writer in self._writers:
                writer.drop_segment(name)

    def refresh_segments(self) -> list[str]:
        """Re-bind time-dependent segments to the clock and re-evaluate them (the timer
        calls this); returns their names."""
        with self._ddl:
            now = self.now_us()
            defs = self.segment_catalog.rebound(self._compile_segment, now)
            for defn in defs:
                self._map(lambda w: w.refresh_segment(defn, now), self._writers)
        return [d.name for d in defs]

    def export_segment(self, name: str, fields: Sequence[str] = (),
                       batch_size: int = 10_000) -> Iterator[ExportBatch]:
        """The segment's members (and `fields` of each) in batches, shard after shard;
        profiles deleted while the export runs are skipped."""
        self.segment_catalog.get(name)
        for f in fields:
            if f not in self.schema:
                raise QueryError(f"unknown field {f!r}")
        for shard in self.shards:
            yield from export_batches(shard, name, fields, batch_size)

    def watch_segment(self, name: str, after: Mapping[int, int] | None = None,
                      initial: bool = True) -> SegmentWatch:
        """Changes of a segment's membership as they happen: first the current members
        (unless `initial` is False or `after` gives positions to resume from)."""
        self.segment_catalog.get(name)
        return SegmentWatch(self.shards, self._changes, name, after, initial)

    def _compile_segment(self, where: str, now_us: int, names: Collection[str], used: set[str]):
        return compile_where(where, self.schema, now_us, self.event_schema, names, used)

    def _map(self, fn: Callable[[Any], Any], items: list) -> list:
        if self._pool is None or len(items) < 2:
            return [fn(x) for x in items]
        return list(self._pool.map(fn, items))
