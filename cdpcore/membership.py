"""Membership represents one shard's saved segments: a bitmap per segment kept current,
and the log of who entered and left each one.

After every write batch the shard hands over the rows it touched; each segment that can
be affected (it reads a field written, an event type tracked, or a segment whose
membership just changed for those rows) is re-checked on those rows only, and new rows
are checked against every segment. All segments of a batch are re-checked together
(`query.candidates`): a column, a leaf such as `country = 'JP'` or an event type's
events of the rows is read once for every segment needing it, so a segment costs what
it adds, not a fresh evaluation. The difference with the bitmap is the change: members
are added or removed and each change gets the next sequence number of that segment on
this shard; a batch's changes of all segments are logged in one block. Full
re-evaluations (a new segment, a timer refresh of a time-dependent one) diff whole
bitmaps instead.

The change log is bounded per segment: a watcher that asks for changes older than what
is retained gets `ChangesLost` and must re-read the membership, so ingest never waits
for slow or vanished watchers.
"""
from __future__ import annotations

import threading
from collections import deque
from dataclasses import dataclass
from typing import TYPE_CHECKING, Iterable, Iterator, Mapping, Sequence, Union

import numpy as np
from pyroaring import BitMap

from .arrays import distinct
from .bitmap_index import bitmap_of, rows_of, uint32_array
from .errors import ChangesLost
from .ids import decode_ids
from .query.candidates import CandidateRows
from .query.event_values import Window
from .query.executor import Evaluator
from .query.row_events import widest, windows_read
from .query.scratch import Scratch
from .segments import SegmentDef

if TYPE_CHECKING:
    from .shard import Shard

DEFAULT_RETAINED = 100_000  # changes kept per segment per shard


class _WriteIds:
    """The ids of the rows a write moved in or out of some segment, as bytes taken at
    the write (the rows may be deleted later), decoded once when a watcher first reads
    any of them: most changes are dropped from the log unread, and decoding every
    moved row's id at the write was a tenth of segment upkeep."""

    def __init__(self, buf: np.ndarray, off: np.ndarray) -> None:
        self._raw: tuple[np.ndarray, np.ndarray] | None = (buf, off)
        self._ids: np.ndarray | None = None

    def decoded(self) -> np.ndarray:
        if self._ids is None:
            assert self._raw is not None
            ids = decode_ids(*self._raw)
            self._ids = np.empty(len(ids), dtype=object)
            self._ids[:] = ids
            self._raw = None
        return self._ids


class BatchIds:
    """Some of a write's ids (`pos` into a shared `_WriteIds`): what a change-log block
    holds, sliced when the log is trimmed, decoded only when iterated."""
    __slots__ = ("_shared", "_pos")

    def __init__(self, shared: _WriteIds, pos: np.ndarray) -> None:
        self._shared, self._pos = shared, pos

    def __len__(self) -> int:
        return len(self._pos)

    def __getitem__(self, part: slice) -> "BatchIds":
        return BatchIds(self._shared, self._pos[part])

    def __iter__(self) -> Iterator[str]:
        return iter(self._shared.decoded()[self._pos].tolist())


Ids = Union[list, BatchIds]   # a change-log block's profile ids


@dataclass(frozen=True)
class Change:
    """One profile entering (entered=True) or leaving a segment on one shard. `initial`
    marks the members a watcher is given when it starts (seq: the position they are at)."""
    segment: str
    shard: int
    seq: int
    profile_id: str
    entered: bool
    initial: bool = False


class ChangeLog:
    """Per-segment bounded logs of changes with per-segment sequence numbers.

    `cond` may be shared by several shards' logs (the embedded store), so one watcher
    can wait for a change on any of them.
    """

    def __init__(self, retained: int = DEFAULT_RETAINED,
                 cond: threading.Condition | None = None) -> None:
        self.retained = retained
        self.cond = cond or threading.Condition()
        # per segment, blocks of changes of one write: (first seq, ids, entered); a block
        # per write keeps appends O(1) in Python however many profiles moved. ids: a
        # list of str, or BatchIds (decoded when read)
        self._logs: dict[str, deque[tuple[int, Ids, bool]]] = {}
        self._kept: dict[str, int] = {}      # changes held per segment
        self._last: dict[str, int] = {}      # last seq handed out per segment
        self._lost: dict[str, int] = {}      # highest seq no longer retained per segment

    def last_seq(self, segment: str) -> int:
        return self._last.get(segment, 0)

    def append(self, segment: str, ids: Ids, entered: bool) -> None:
        """Log one write's enters (or exits); keeps exactly the last `retained` changes."""
        self.append_many([(segment, ids, entered)])

    def append_many(self, blocks: Sequence[tuple[str, Ids, bool]]) -> None:
        """Log one write's changes of several segments at once: one lock, one wake-up,
        so a watcher sees all of a write's changes on this shard or none."""
        blocks = [b for b in blocks if len(b[1])]
        if not blocks:
            return
        with self.cond:
            for segment, ids, entered in blocks:
                self._unlocked_append(segment, ids, entered)
            self.cond.notify_all()

    def _unlocked_append(self, segment: str, ids: Ids, entered: bool) -> None:
        log = self._logs.setdefault(segment, deque())
        first = self._last.get(segment, 0) + 1
        log.append((first, ids, entered))
        self._last[segment] = first + len(ids) - 1
        kept = self._kept.get(segment, 0) + len(ids)
        while kept > self.retained:
            old_first, old_ids, old_entered = log.popleft()
            drop = min(len(old_ids), kept - self.retained)
            if drop < len(old_ids):  # the oldest block is cut, not dropped whole
                log.appendleft((old_first + drop, old_ids[drop:], old_entered))
            kept -= drop
            self._lost[segment] = old_first + drop - 1
        self._kept[segment] = kept

    def since(self, segment: str, after: int, shard: int = 0) -> list[Change]:
        """The changes of `segment` with seq > after (caller holds `cond`)."""
        if after > self._last.get(segment, 0):
            raise ChangesLost(
                f"segment {segment!r}: position {after} is ahead of the log (last seq "
                f"{self._last.get(segment, 0)}): the segment was re-created; re-read it")
        if after < self._lost.get(segment, 0):
            raise ChangesLost(
                f"segment {segment!r}: changes after seq {after} are no longer retained "
                f"(the oldest kept is {self._lost[segment] + 1}); re-read the segment")
        out: list[Change] = []
        for first, ids, entered in reversed(self._logs.get(segment, ())):
            if first + len(ids) - 1 <= after:
                break
            skip = max(0, after + 1 - first)
            out.extend(reversed([Change(segment, shard, first + i, pid, entered)
                                 for i, pid in enumerate(ids[skip:], start=skip)]))
        out.reverse()
        return out

    def positions(self) -> dict[str, int]:
        return dict(self._last)

    def restore_positions(self, last: dict[str, int]) -> None:
        """After a restart: numbering continues; the changes themselves were not kept,
        so resuming from before these positions raises ChangesLost."""
        with self.cond:
            self._last.update(last)
            self._lost.update(last)

    def drop(self, segment: str) -> None:
        with self.cond:
            self._logs.pop(segment, None)
            self._kept.pop(segment, None)
            self._last.pop(segment, None)
            self._lost.pop(segment, None)
            self.cond.notify_all()


@dataclass(frozen=True)
class ExportBatch:
    """Members' ids and the requested fields' values (columns aligned with ids)."""
    ids: list[str]
    columns: dict[str, list]


def export_batches(shard: "Shard", name: str, fields: Sequence[str],
                   batch_size: int) -> Iterator[ExportBatch]:
    """One shard's members of a segment (and their `fields`) in batches: the member
    rows are taken once, each batch is read under the lock on its own, so writes go on;
    profiles deleted meanwhile are skipped."""
    rows = shard.read(lambda sh: rows_of(sh.visible(sh.segments.members(name))).astype(np.int64))
    for start in range(0, len(rows), batch_size):
        batch = shard.read(lambda sh: _export_rows(sh, rows[start:start + batch_size], fields))
        if batch.ids:
            yield batch


def _export_rows(shard: "Shard", rows: np.ndarray, fields: Sequence[str]) -> ExportBatch:
    rows = rows[shard.index.alive[rows]]
    return ExportBatch(shard.index.ids_of(rows), {f: shard.values_of(f, rows) for f in fields})


@dataclass
class SegmentState:
    defn: SegmentDef
    members: BitMap
    refreshed_us: int


class Memberships:
    """One shard's segments (caller holds the shard lock)."""

    def __init__(self, log: ChangeLog | None = None) -> None:
        self.log = log or ChangeLog()
        self.states: dict[str, SegmentState] = {}
        self._windows: dict[str, Window] | None = None  # see `event_windows`
        self._scratch = Scratch()

    def members(self, name: str) -> BitMap:
        state = self.states.get(name)
        return state.members if state is not None else BitMap()

    def names(self) -> list[str]:
        return list(self.states)

    def define(self, shard: "Shard", defn: SegmentDef, now_us: int) -> int:
        """Add (or replace) a segment and compute its membership; no changes are logged
        for the initial members. Returns the size."""
        members = _evaluate(shard, defn)
        self.states[defn.name] = SegmentState(defn, members, now_us)
        self._windows = None
        return len(shard.visible(members))

    def drop(self, name: str) -> None:
        self.states.pop(name, None)
        self._windows = None
        self.log.drop(name)

    def snapshot(self, shard: "Shard", name: str, with_members: bool) -> tuple[int, list[str]]:
        """(the segment's last seq, its members' ids if `with_members`), read together
        under the caller's shard lock: where a watcher starts. Only ids are made here;
        anything per member is built after the lock is released."""
        rows = (rows_of(shard.visible(self.members(name))).astype(np.int64) if with_members
                else np.zeros(0, np.int64))
        return self.log.last_seq(name), shard.index.ids_of(rows)

    def state(self) -> dict:
        return {"segments": [{"defn": st.defn.to_bytes(), "members": st.members.copy(),
                              "refreshed_us": st.refreshed_us} for st in self.states.values()],
                "positions": self.log.positions()}

    def load(self, state: dict) -> None:
        for doc in state["segments"]:
            defn = SegmentDef.from_bytes(doc["defn"])
            self.states[defn.name] = SegmentState(defn, doc["members"], doc["refreshed_us"])
        self._windows = None
        self.log.restore_positions(state["positions"])

    def refresh(self, shard: "Shard", defn: SegmentDef, now_us: int) -> None:
        """Re-evaluate a segment in full with a re-bound definition; log the difference."""
        state = self.states.get(defn.name)
        if state is None:
            return
        fresh = _evaluate(shard, defn)
        self._log_rows(shard, defn.name, rows_of(fresh - state.members), True)
        self._log_rows(shard, defn.name, rows_of(state.members - fresh), False)
        state.defn, state.members, state.refreshed_us = defn, fresh, now_us
        self._windows = None

    def event_windows(self) -> dict[str, Window]:
        """Per event type, a window covering every window the segments' conditions read
        on a few rows: what a write batch gathers of its rows' events, once per type."""
        if self._windows is None:
            out: dict[str, Window] = {}
            for state in self.states.values():
                for type_, w in windows_read(state.defn.plan).items():
                    out[type_] = widest(out.get(type_), w)
            self._windows = out
        return self._windows

    def after_write(self, shard: "Shard", created: np.ndarray, field_rows: np.ndarray,
                    fields: frozenset[str], type_rows: Mapping[str, np.ndarray]) -> None:
        """Re-check each segment on the rows a write can have changed for it: rows whose
        fields it reads were written (`field_rows`, `fields`), rows that got events of a
        type it reads (`type_rows`), rows whose membership changed in a segment it reads;
        `created` (new profiles) against every segment. All row arrays sorted, distinct.

        All segments are re-checked together on the union of those rows (`CandidateRows`:
        a leaf or event scan shared by several segments is computed once), each keeping
        to its own rows, in order, so a segment sees the new membership of those it reads."""
        if not self.states:
            return
        rows = distinct(np.concatenate([created, field_rows, *type_rows.values()]))
        if not len(rows):
            return
        cands = CandidateRows(shard, rows, self.event_windows(), self._scratch)
        written = _WrittenRows(cands, created, field_rows, fields, type_rows)
        moves: list[tuple[str, np.ndarray, np.ndarray]] = []
        anywhere = np.zeros(len(rows), dtype=bool)
        for name, state in self.states.items():
            context = written.candidates(state.defn)
            if context is None:
                continue
            found = self._recheck(context, state)
            if found is not None:
                entered, left = cands.slots(found[0]), cands.slots(found[1])
                moved = written.changed[name] = np.zeros(len(rows), dtype=bool)
                moved[entered] = moved[left] = True
                anywhere |= moved
                moves.append((name, entered, left))
                cands.segments_changed()
        self._log_moves(shard, rows, anywhere, moves)

    def after_delete(self, shard: "Shard", rows: np.ndarray) -> None:
        """Deleted rows leave every segment (call before the rows are forgotten)."""
        gone = bitmap_of(rows)
        for name, state in self.states.items():
            left = state.members & gone
            if left:
                self._log_rows(shard, name, rows_of(left), False)
                state.members -= left

    def _recheck(self, cands: CandidateRows, state: SegmentState) -> tuple[np.ndarray, np.ndarray] | None:
        """Update the segment on the candidate rows; returns the rows that (entered, left),
        or None when nothing moved."""
        now_in = cands.test(state.defn.plan)
        was = cands.in_bitmap(state.members)
        moved = now_in != was
        if not np.count_nonzero(moved):
            return None
        entered, left = cands.rows[moved & now_in], cands.rows[moved & was]
        if len(entered):
            state.members.update(uint32_array(entered))
        if len(left):
            state.members -= bitmap_of(left)
        return entered, left

    def _log_moves(self, shard: "Shard", rows: np.ndarray, moved: np.ndarray,
                   moves: list[tuple[str, np.ndarray, np.ndarray]]) -> None:
        """Log a write's changes of all segments in one block: the id bytes of the rows
        that moved anywhere (`moved`, a mask over `rows`) are taken once, and each
        segment's enters and exits (indices into `rows`) refer to them (`BatchIds`)."""
        if moves and shard.foreign:   # foreign rows change silently (cdpcore.migration)
            visible = ~shard.is_foreign(rows)
            moved = moved & visible
            moves = [(n, e[visible[e]], l[visible[l]]) for n, e, l in moves]
            moves = [m for m in moves if len(m[1]) or len(m[2])]
        if not moves:
            return
        pos = np.flatnonzero(moved)
        shared = _WriteIds(*shard.index.id_bytes(rows[pos]))
        index = np.cumsum(moved, dtype=np.int64) - 1     # rows → position among the moved
        blocks: list[tuple[str, Ids, bool]] = []
        for name, entered, left in moves:
            blocks += [(name, BatchIds(shared, index[entered]), True), (name, BatchIds(shared, index[left]), False)]
        self.log.append_many(blocks)

    def _log_rows(self, shard: "Shard", name: str, rows: Iterable[int] | np.ndarray,
                  entered: bool) -> None:
        rows = np.asarray(rows, dtype=np.int64)
        if len(rows) and shard.foreign:  # foreign rows change silently (cdpcore.migration)
            rows = rows[~shard.is_foreign(rows)]
        if len(rows):
            self.log.append(name, shard.index.ids_of(rows), entered)


class _WrittenRows:
    """What a write touched, as masks over the batch's candidate rows, and the rows each
    segment must be re-checked on (`changed`: rows whose membership of a segment changed
    in this write, filled in as segments are re-checked in order)."""

    def __init__(self, cands: CandidateRows, created: np.ndarray, field_rows: np.ndarray,
                 fields: frozenset[str], type_rows: Mapping[str, np.ndarray]) -> None:
        self._cands = cands
        self.fields = fields
        self.created = self._mask(created)
        self.everything = bool(self.created.all())
        self.field_rows = self._mask(field_rows)
        self.type_rows = {t: self._mask(r) for t, r in type_rows.items()}
        self._types = frozenset(type_rows)
        self.changed: dict[str, np.ndarray] = {}
        self._contexts: dict[tuple, CandidateRows | None] = {}

    def _mask(self, rows: np.ndarray) -> np.ndarray:
        out = np.zeros(len(self._cands), dtype=bool)
        out[self._cands.slots(rows)] = True
        return out

    def candidates(self, d: SegmentDef) -> CandidateRows | None:
        """The candidates `d` must be re-checked on (None: none), shared by the segments
        whose reads the write touched alike: the same written fields, event types and
        changed segments give the same rows."""
        if self.everything:
            return self._cands
        key = (not d.fields.isdisjoint(self.fields), d.event_types & self._types,
               tuple(s for s in d.segments if s in self.changed))
        found = self._contexts.get(key, False)
        if found is False:
            check = self._check(*key)
            found = self._contexts[key] = None if check is None else self._cands.subset(check)
        return found

    def _check(self, fields_hit: bool, types: frozenset[str], segments: tuple[str, ...]) -> np.ndarray | None:
        check = self.created
        for part in ([self.field_rows] if fields_hit else []) + [self.type_rows[t] for t in types] + [
                self.changed[s] for s in segments]:
            check = check | part
        return check if np.count_nonzero(check) else None


def _evaluate(shard: "Shard", defn: SegmentDef) -> BitMap:
    rs = Evaluator(shard).evaluate(defn.plan)
    return rs.bitmap().copy() if rs.has_bitmap else bitmap_of(rs.rows())


class SegmentWatch:
    """A watcher of one segment over some shards: first (optionally) the current members,
    then every change, in order per shard. `positions` (shard → last seq seen) is what a
    reconnecting watcher passes as `after` to miss nothing still retained."""

    def __init__(self, shards: Sequence["Shard"], cond: threading.Condition, name: str,
                 after: Mapping[int, int] | None, initial: bool) -> None:
        self.name = name
        self._shards = list(shards)
        self._cond = cond
        self._pending: deque[Change] = deque()
        self.positions: dict[int, int] = {}
        for shard in self._shards:
            if after is not None and shard.shard_id in after:
                self.positions[shard.shard_id] = int(after[shard.shard_id])
                with cond:
                    shard.segments.log.since(name, self.positions[shard.shard_id])  # lost?
            else:
                seq, ids = shard.read(lambda sh: sh.segments.snapshot(sh, name, initial))
                self.positions[shard.shard_id] = seq
                self._pending.extend(Change(name, shard.shard_id, seq, pid, True, True) for pid in ids)

    def poll(self, timeout: float | None = None) -> list[Change]:
        """The changes available now, waiting up to `timeout` s for one (None: forever);
        raises ChangesLost when this watcher fell behind the retained log."""
        with self._cond:
            found = self._take()
            if not found:
                self._cond.wait(timeout)
                found = self._take()
        return found

    def _take(self) -> list[Change]:
        out = list(self._pending)
        self._pending.clear()
        for shard in self._shards:
            fresh = shard.segments.log.since(self.name, self.positions[shard.shard_id], shard.shard_id)
            if fresh:
                self.positions[shard.shard_id] = fresh[-1].seq
                out.extend(fresh)
        return out

    def __iter__(self) -> Iterator[Change]:
        while True:
            yield from self.poll()
