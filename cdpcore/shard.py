"""Shard represents the profiles of the slots one shard owns, all in memory.

The shard is the only lock holder (STYLE practice 13): public methods take the lock;
`_unlocked_*` helpers assume it is held. Batches arrive already validated and coerced
by the store, so everything here is vectorised bookkeeping: resolve ids to rows,
append new rows, scatter each field's values.
"""
from __future__ import annotations

import threading
from typing import Any, Callable, TypeVar

import numpy as np
from pyroaring import BitMap

from .arrays import distinct, last_occurrence
from .bitmap_index import bitmap_of, rows_of
from .coerce import FieldBatch
from .events import EventStore
from .membership import ChangeLog, Memberships
from .column import NumericColumn, StringColumn, TagSetColumn, make_column
from .ids import EncodedIds, RowIdIndex
from .migration import Capture, SlotCopy, WriteOp, copy_slots, rows_in_slots
from .schema import ID_FIELD, Field, FieldType, Schema
from .segments import SegmentDef
from .slots import slots_of_hashes
from .timestamps import to_datetime

Column = NumericColumn | StringColumn | TagSetColumn
T = TypeVar("T")


class Shard:
    """One partition of a store. Safe for concurrent use."""

    def __init__(self, schema: Schema, shard_id: int = 0, log: ChangeLog | None = None) -> None:
        self.shard_id = shard_id
        self.schema = schema
        self.index = RowIdIndex()
        self.columns: dict[str, Column] = {}
        self.events = EventStore()
        self.segments = Memberships(log)
        # Slot ownership, for shards in a cluster whose slots move (cdpcore.migration):
        # `owned` is a mask over the 16384 slots (None: every row is this shard's, as in
        # the embedded store); `foreign` holds the live rows of slots it does not own, a
        # migration's copy in progress or a moved-out copy not dropped yet: kept current,
        # but invisible to queries, segment sizes and change logs.
        self.owned: np.ndarray | None = None
        self.foreign = BitMap()
        self._captures: list[Capture] = []
        self._capacity = 0
        self._lock = threading.RLock()

    # ---- reads ---------------------------------------------------------------------
    @property
    def n_rows(self) -> int:
        """Rows allocated, deleted ones included (row ids are never reused)."""
        return self.index.n_rows

    def __len__(self) -> int:
        """Profiles this shard serves (foreign rows excluded)."""
        return self.index.n_alive - len(self.foreign)

    def column_for(self, name: str) -> Column | None:
        """The column of a declared field; None when this shard never stored it."""
        return self.columns.get(name)

    def write_lock(self) -> threading.RLock:
        """The shard's lock, for callers that must do more under it than one write
        (durability: log the record and apply it as one step)."""
        return self._lock

    def read(self, fn: Callable[["Shard"], T]) -> T:
        """Run a read-only function (a query) against a consistent state."""
        with self._lock:
            return fn(self)

    def get(self, ids: EncodedIds) -> list[dict[str, Any] | None]:
        with self._lock:
            rows = self.index.lookup(ids)
            names = ids.decode()
            return [None if r < 0 else self._unlocked_profile(int(r), pid) for r, pid in zip(rows, names)]

    def events_of(self, ids: EncodedIds, limit: int) -> list[list[dict[str, Any]] | None]:
        """Each profile's events, most recent first, at most `limit`; None if unknown."""
        with self._lock:
            rows = self.index.lookup(ids)
            return [None if r < 0 else self.events.events_of(int(r), limit, self.alive_or_none())
                    for r in rows.tolist()]

    def alive_or_none(self) -> np.ndarray | None:
        """The live-row mask, or None when nothing was ever deleted (nothing to mask)."""
        return self.index.alive[:self.n_rows] if len(self) < self.n_rows else None

    def _unlocked_profile(self, row: int, profile_id: str) -> dict[str, Any]:
        out: dict[str, Any] = {ID_FIELD: profile_id}
        for name, col in self.columns.items():
            v = col.value(row)
            if v is not None:
                out[name] = v
        return out

    # ---- writes --------------------------------------------------------------------
    def upsert(self, ids: EncodedIds, rec_uid: np.ndarray, batches: list[FieldBatch]) -> None:
        """Apply valid records. ids are the batch's distinct ids for this shard;
        rec_uid[i] is record i's position in ids; batches are aligned with records."""
        with self._lock:
            rows_u, created = self._unlocked_rows(ids)
            rows = rows_u[rec_uid]
            has_dups = len(rec_uid) > len(ids)
            for batch in batches:
                self._unlocked_write(batch, rows, has_dups)
            if self.segments.states:
                written = frozenset(b.field.name for b in batches if b.named.any())
                self.segments.after_write(self, created, np.sort(rows_u), written, {})
            self._unlocked_captured(WriteOp("upsert", ids, rec_uid, batches))

    def track(self, ids: EncodedIds, rec_uid: np.ndarray, batches: list[FieldBatch]) -> None:
        """Append valid events (see `tracking.prepare_events` for the batches); an event
        for an unknown profile creates the profile."""
        with self._lock:
            rows_u, created = self._unlocked_rows(ids)
            by_type = self.events.append(rows_u[rec_uid], batches, self.alive_or_none())
            if self.segments.states:
                type_rows = {t: distinct(rows) for t, rows in by_type.items()}
                self.segments.after_write(self, created, rows_u[:0], frozenset(), type_rows)
            self._unlocked_captured(WriteOp("track", ids, rec_uid, batches))

    def _unlocked_rows(self, ids: EncodedIds) -> tuple[np.ndarray, np.ndarray]:
        """(the rows of distinct ids, creating rows for new ones; the new rows, sorted)."""
        rows = self.index.lookup(ids)
        new = np.flatnonzero(rows < 0)
        if not new.size:
            return rows, new
        rows[new] = self.index.insert(ids if new.size == len(ids) else ids.take(new))
        self._unlocked_ensure_capacity()
        created = np.sort(rows[new])
        if self.owned is not None:
            self.foreign |= bitmap_of(created[~self._unlocked_owns(created)])
        return rows, created

    def delete(self, ids: EncodedIds) -> np.ndarray:
        """Delete the given ids; returns a bool per id: was it found."""
        with self._lock:
            rows = self.index.lookup(ids)
            found = rows >= 0
            self._unlocked_delete_rows(distinct(rows[found]))
            self._unlocked_captured(WriteOp("delete", ids))
            return found

    def _unlocked_delete_rows(self, gone: np.ndarray) -> None:
        self.segments.after_delete(self, gone)
        for col in self.columns.values():
            col.clear(gone)
        self.index.delete(gone)
        if self.foreign:
            self.foreign -= bitmap_of(gone)

    def _unlocked_ensure_capacity(self) -> None:
        if self.n_rows > self._capacity:
            self._capacity = max(self.n_rows, self._capacity * 2, 1024)
            for col in self.columns.values():
                col.ensure(self._capacity)

    def _unlocked_column(self, field: Field) -> Column:
        col = self.columns.get(field.name)
        if col is None:
            col = self.columns[field.name] = make_column(field)
            col.ensure(self._capacity)
        return col

    def _unlocked_write(self, batch: FieldBatch, rows: np.ndarray, has_dups: bool) -> None:
        if not batch.named.all():
            sel = np.flatnonzero(batch.named)
            batch, rows = batch.take(sel), rows[sel]
        if has_dups:  # later records win: keep each row's last occurrence
            keep = last_occurrence(rows)
            if len(keep) < len(rows):
                batch, rows = batch.take(keep), rows[keep]
        if not len(rows):
            return
        col = self._unlocked_column(batch.field)
        if isinstance(col, StringColumn):
            col.write(rows, col.translate(batch.codes, batch.categories))
        elif isinstance(col, TagSetColumn):
            tags = batch.tags
            lengths = np.diff(tags.offsets)
            pair_rows = np.repeat(rows, lengths)
            keep = ~np.repeat(batch.null, lengths)
            col.write(rows, batch.null, pair_rows[keep], tags.codes[keep], list(tags.categories))
        else:
            col.write(rows, batch.values, batch.null)

    # ---- slot ownership and migration (see cdpcore.migration) ----------------------
    def set_owned(self, owned: np.ndarray) -> None:
        """The slots this shard serves from now on (a mask over the 16384 slots); live
        rows of other slots become foreign."""
        with self._lock:
            self.owned = owned
            self._unlocked_find_foreign()

    def _unlocked_find_foreign(self) -> None:
        if self.owned is None:
            self.foreign = BitMap()
            return
        rows = np.flatnonzero(self.index.alive[:self.n_rows])
        self.foreign = bitmap_of(rows[~self._unlocked_owns(rows)])

    def _unlocked_owns(self, rows: np.ndarray) -> np.ndarray:
        return self.owned[slots_of_hashes(self.index.hashes[rows])]

    def is_foreign(self, rows: np.ndarray) -> np.ndarray:
        """Per row (distinct): does it belong to a slot this shard does not own."""
        if not self.foreign:
            return np.zeros(len(rows), dtype=bool)
        return np.isin(rows, rows_of(self.foreign & bitmap_of(rows)), assume_unique=True)

    def visible(self, members: BitMap) -> BitMap:
        """`members` without foreign rows (what a segment's size and exports count)."""
        return members - self.foreign if self.foreign else members

    def export_slots(self, slots: np.ndarray) -> tuple[Capture, SlotCopy]:
        """Copy the profiles and events of `slots` (a slot mask) and start capturing the
        writes to them, at one instant: the copy plus the captured writes is exactly
        the slots' state at any later moment. The copy's parts are built afterwards,
        outside the lock (`SlotCopy.parts`)."""
        with self._lock:
            capture = Capture(slots)
            self._captures.append(capture)
            return capture, copy_slots(self, slots)

    def end_capture(self, capture: Capture) -> None:
        with self._lock:
            if capture in self._captures:
                self._captures.remove(capture)

    def drop_slots(self, slots: np.ndarray) -> int:
        """Forget every profile (and its events) of `slots`: a moved-out copy at the
        source, or an abandoned copy at the target. Returns the profiles dropped."""
        with self._lock:
            gone = rows_in_slots(self, slots)
            self._unlocked_delete_rows(gone)
            return len(gone)

    def _unlocked_captured(self, op: WriteOp) -> None:
        if not self._captures:
            return
        self._captures = [c for c in self._captures if not c.abandoned()]  # their migration is gone
        for capture in self._captures:
            capture.record(op)

    # ---- persistence (see cdpcore.durability) ---------------------------------------
    def state(self) -> dict:
        """A consistent copy of everything the shard holds (mutable arrays copied, sealed
        event chunks shared), taken under the lock; writing it out happens outside."""
        with self._lock:
            n = self.n_rows
            return {"index": self.index.state(),
                    "columns": [{"name": c.field.name, "type": c.field.type.value, **c.state(n)}
                                for c in self.columns.values()],
                    "events": self.events.state(self.alive_or_none()),
                    "segments": self.segments.state()}

    def load(self, state: dict) -> None:
        """Replace this (empty) shard's contents with a `state()`; the fields must be
        declared in the schema already."""
        with self._lock:
            self.index = RowIdIndex.from_state(state["index"])
            self.columns = {}
            for doc in state["columns"]:
                col = self.columns[doc["name"]] = make_column(Field(doc["name"], FieldType(doc["type"])))
                col.load(doc)
            self._capacity = 0
            self._unlocked_ensure_capacity()
            self.events = EventStore.from_state(state["events"])
            self.segments.load(state["segments"])
            self._unlocked_find_foreign()

    # ---- saved segments --------------------------------------------------------------
    def define_segment(self, defn: SegmentDef, now_us: int) -> int:
        """Add a segment (computing its members); returns its size here."""
        with self._lock:
            return self.segments.define(self, defn, now_us)

    def refresh_segment(self, defn: SegmentDef, now_us: int) -> None:
        with self._lock:
            self.segments.refresh(self, defn, now_us)

    def drop_segment(self, name: str) -> None:
        with self._lock:
            self.segments.drop(name)

    # ---- output helpers (caller holds the lock via `read`) ---------------------------
    def values_of(self, name: str, rows: np.ndarray) -> list[Any]:
        """Python values of one field (or profile_id) for output rows."""
        if name == ID_FIELD:
            return self.index.ids_of(rows)
        col = self.columns.get(name)
        if col is None:
            return [None] * len(rows)
        if isinstance(col, TagSetColumn):
            return col.tags_of(rows)
        if isinstance(col, StringColumn):
            return col.dictionary.decode(col.codes[rows])
        present = col.present[rows].tolist()
        if col.field.type is FieldType.TIMESTAMP:
            return [to_datetime(v) if p else None for v, p in zip(col.values[rows].tolist(), present)]
        return [v if p else None for v, p in zip(col.values[rows].tolist(), present)]
