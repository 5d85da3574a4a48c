"""Migration represents what one shard gives and takes when slots move between shards.

Moving a batch of slots from a source to a target shard (the router drives it, see
server/migration.py) needs three things of the engine, all here:

- `export_slots`: the profiles and events of the slots, as ordinary write batches, taken
  under the source's lock at one instant, together with the start of a `Capture`;
- `Capture`: every write the source applies to those slots after that instant, kept in
  apply order, so the target replays exactly what the copy missed (events are not
  idempotent: a copy plus a forward of the same event would count it twice);
- on the target, the copy and the replayed writes are ordinary upserts, tracks and
  deletes (so they are logged and recovered like any write) into slots it does not own
  yet: such rows are *foreign* (`Shard.foreign`), kept current but invisible to queries,
  segment sizes and change logs until ownership flips; the source's copy becomes
  foreign at the flip and is dropped (`Shard.drop_slots`).
"""
from __future__ import annotations

import threading
import time
from dataclasses import dataclass
from typing import TYPE_CHECKING, Iterator

import numpy as np

from .coerce import FieldBatch
from .column import NumericColumn, StringColumn, TagSetColumn
from .batch import TagSets
from .errors import FailedPrecondition
from .events import Chunk
from .ids import EncodedIds
from .routing import concat_batches
from .schema import Field, FieldType
from .slots import slots_of_hashes
from .tracking import TS, TYPE

if TYPE_CHECKING:
    from .shard import Shard

EXPORT_PART_ROWS = 20_000      # profiles per exported part (with their events): one message, one lock hold on the target
MAX_CAPTURED_RECORDS = 1_000_000   # a capture holding more is abandoned (the batch is retried)
CAPTURE_IDLE_S = 120.0         # a capture nobody took from for this long is ended (its router is gone)


@dataclass
class WriteOp:
    """One write as the shard applied it: kind "upsert" | "track" (ids, uid, batches as
    in `Shard.upsert`) or "delete" (ids only)."""
    kind: str
    ids: EncodedIds
    uid: np.ndarray | None = None
    batches: list[FieldBatch] | None = None

    def __len__(self) -> int:
        return len(self.ids) if self.uid is None else len(self.uid)


@dataclass
class ExportPart:
    """Up to EXPORT_PART_ROWS profiles of the moving slots and all their events."""
    profiles: WriteOp
    events: list[WriteOp]

    @property
    def n_events(self) -> int:
        return sum(len(op) for op in self.events)


class Capture:
    """The writes to some slots since an export, in the source's apply order. Recorded
    under the shard lock by `Shard` itself; taken by the migration in rounds."""

    def __init__(self, slots: np.ndarray) -> None:
        self.slots = slots
        self._ops: list[WriteOp] = []
        self._records = 0
        self.overflowed = False
        self.last_taken = time.monotonic()
        self._lock = threading.Lock()   # recording holds the shard lock; taking does not

    def abandoned(self) -> bool:
        return time.monotonic() - self.last_taken > CAPTURE_IDLE_S

    def record(self, op: WriteOp) -> None:
        keep = self.slots[slots_of_hashes(op.ids.hashes)]
        if not keep.any() or self.overflowed:
            return
        op = op if keep.all() else _subset(op, keep)
        with self._lock:
            self._ops.append(op)
            self._records += len(op)
            if self._records > MAX_CAPTURED_RECORDS:
                self.overflowed, self._ops = True, []

    def take(self) -> list[WriteOp]:
        """The writes recorded since the last take (oldest first)."""
        with self._lock:
            if self.overflowed:
                raise FailedPrecondition(
                    f"more than {MAX_CAPTURED_RECORDS:,} writes arrived for the moving slots "
                    "during the copy; the batch must be copied again")
            ops, self._ops = self._ops, []
            self.last_taken = time.monotonic()
            return ops


def _subset(op: WriteOp, keep_ids: np.ndarray) -> WriteOp:
    """The part of a write whose ids are in the captured slots."""
    sel = np.flatnonzero(keep_ids)
    if op.uid is None:
        return WriteOp(op.kind, op.ids.take(sel))
    local = np.full(len(op.ids), -1, dtype=np.int64)
    local[sel] = np.arange(sel.size)
    recs = np.flatnonzero(keep_ids[op.uid])
    return WriteOp(op.kind, op.ids.take(sel), local[op.uid[recs]], [b.take(recs) for b in op.batches])


# ---- export ---------------------------------------------------------------------------------
def rows_in_slots(shard: "Shard", slots: np.ndarray) -> np.ndarray:
    """Live rows of the shard whose profile hashes to one of `slots` (a slot mask)."""
    n = shard.n_rows
    return np.flatnonzero(shard.index.alive[:n] & slots[slots_of_hashes(shard.index.hashes[:n])])


@dataclass
class _LogCopy:
    """One event log as it was at the copy: its sealed chunks (never modified: merges and
    seals make new ones, so holding them is a snapshot) and its dictionaries' values."""
    name: str
    chunks: list[Chunk]
    kinds: dict[str, FieldType]
    categories: dict[str, list[str]]


@dataclass
class SlotCopy:
    """The profiles of some slots and a snapshot of the event logs, taken under the
    source's lock (`copy_slots`); `parts` builds the messages after it is released."""
    ids: EncodedIds
    fields: list[FieldBatch]
    position: np.ndarray        # shard row → its place among the copied rows, -1 elsewhere
    logs: list[_LogCopy]

    @property
    def profiles(self) -> int:
        return len(self.ids)

    def parts(self) -> Iterator[ExportPart]:
        """Up to EXPORT_PART_ROWS profiles at a time, each with all its events."""
        events = [_copied_events(log, self.position) for log in self.logs]
        for lo in range(0, len(self.ids), EXPORT_PART_ROWS):
            hi = min(lo + EXPORT_PART_ROWS, len(self.ids))
            part_ids = self.ids.take(np.arange(lo, hi))
            profiles = WriteOp("upsert", part_ids, np.arange(hi - lo), [b.slice(lo, hi) for b in self.fields])
            pieces = []
            for name, pos, ts, props in events:
                a, b = np.searchsorted(pos, [lo, hi])
                if b > a:
                    pieces.append((name, pos[a:b] - lo, ts[a:b], [p.slice(a, b) for p in props]))
            # one track op for all types: the target resolves the part's ids once, not per type
            ops = [WriteOp("track", part_ids, np.concatenate([p[1] for p in pieces]),
                           _event_batches(pieces))] if pieces else []
            yield ExportPart(profiles, ops)


def copy_slots(shard: "Shard", slots: np.ndarray) -> SlotCopy:
    """What must be read under the lock: the rows' ids and field values (gathers: they
    change in place) and the event logs' sealed chunks (references: they never do)."""
    rows = rows_in_slots(shard, slots)
    position = np.full(shard.n_rows, -1, dtype=np.int32)
    position[rows] = np.arange(len(rows), dtype=np.int32)
    alive = shard.alive_or_none()
    logs = [_LogCopy(log.name, list(log.sealed(alive)), dict(log.kinds),
                     {k: list(d.values) for k, d in log.dictionaries.items()})
            for log in shard.events.logs.values()]
    return SlotCopy(_ids_of_rows(shard, rows), [_column_batch(col, rows) for col in shard.columns.values()],
                    position, logs)


def _ids_of_rows(shard: "Shard", rows: np.ndarray) -> EncodedIds:
    buf, off = shard.index.id_bytes(rows)
    return EncodedIds(buf, off, shard.index.hashes[rows].copy())


def _column_batch(col, rows: np.ndarray) -> FieldBatch:
    """A column's values for `rows` as a write batch that sets every one of them
    (absent values as nulls), in the column's own storage form."""
    n = len(rows)
    named = np.ones(n, dtype=bool)
    if isinstance(col, StringColumn):
        codes = col.codes[rows].astype(np.int32)
        return FieldBatch(col.field, named, codes < 0, codes=codes, categories=list(col.dictionary.values))
    if isinstance(col, TagSetColumn):
        return FieldBatch(col.field, named, ~col.present[rows], tags=_tag_sets(col, rows))
    assert isinstance(col, NumericColumn)
    return FieldBatch(col.field, named, ~col.present[rows], values=col.values[rows].copy())


def _tag_sets(col: TagSetColumn, rows: np.ndarray) -> TagSets:
    """Each row's tags (one bitmap intersection per tag), grouped by row position."""
    pos, codes = col.tag_pairs(rows)
    order = np.argsort(pos, kind="stable")
    offsets = np.zeros(len(rows) + 1, dtype=np.int64)
    np.cumsum(np.bincount(pos, minlength=len(rows)), out=offsets[1:])
    return TagSets(offsets, codes[order], list(col.dictionary.values))


def _copied_events(log: _LogCopy, position: np.ndarray
                   ) -> tuple[str, np.ndarray, np.ndarray, list[FieldBatch]]:
    """(type, the place of each event's profile among the copied rows (ascending), ts,
    property batches) of the copied profiles' events of one log."""
    picked: list[Chunk] = []
    places: list[np.ndarray] = []
    wanted = position >= 0      # a byte per row: the scan's gather is 4x narrower than position's
    for chunk in log.chunks:
        sel = np.flatnonzero(wanted[chunk.rows])
        if sel.size:
            picked.append(chunk.take(sel))
            places.append(position[picked[-1].rows])
    if not picked:
        return log.name, np.zeros(0, dtype=np.int64), np.zeros(0, dtype=np.int64), []
    place = np.concatenate(places)
    order = np.argsort(place, kind="stable")
    ts = np.concatenate([c.ts for c in picked])[order]
    props = [_property_batch(log, name, [c.props.get(name) for c in picked], [len(c) for c in picked]).take(order)
             for name in log.kinds]
    return log.name, place[order].astype(np.int64), ts, props


def _property_batch(log: _LogCopy, name: str, parts: list[np.ndarray | None],
                    lengths: list[int]) -> FieldBatch:
    kind = log.kinds[name]
    if kind is FieldType.FLOAT:
        values = np.concatenate([p if p is not None else np.full(k, np.nan) for p, k in zip(parts, lengths)])
        null = np.isnan(values)
        return FieldBatch(Field(name, kind), np.ones(len(values), dtype=bool), null, values=values)
    codes = np.concatenate([p.astype(np.int32) if p is not None else np.full(k, -1, dtype=np.int32)
                            for p, k in zip(parts, lengths)])
    return FieldBatch(Field(name, kind), np.ones(len(codes), dtype=bool), codes < 0, codes=codes,
                      categories=log.categories[name])


def _event_batches(pieces: list[tuple[str, np.ndarray, np.ndarray, list[FieldBatch]]]) -> list[FieldBatch]:
    """One track batch (type, ts, then the properties) of the events of several types:
    (type, record → id position, ts, property batches) each; a property a type lacks is
    not named on its events (absent)."""
    groups, sizes = [], []
    for name, _, ts, props in pieces:
        n = len(ts)
        ones, zeros = np.ones(n, dtype=bool), np.zeros(n, dtype=bool)
        types = FieldBatch(TYPE, ones, zeros, codes=np.zeros(n, dtype=np.int32), categories=[name])
        groups.append([types, FieldBatch(TS, ones, zeros, values=ts.astype(np.int64, copy=False)), *props])
        sizes.append(n)
    return concat_batches(groups, sizes)
