"""EventStore represents one shard's behavioural events, columnar and grouped by type.

Each event type has an `EventLog`: time-sorted `Chunk`s (row, ts, one array per
property) carrying their min/max ts, so a window is one binary search per chunk and
a contiguous slice; late events simply land in a newer chunk, which is also sorted,
so they are counted like any other. Appends go to a small unsorted tail that is
sealed (sorted) once it is big enough or when a query needs it; sealed chunks merge
LSM-style (a new chunk merges into its predecessor while they are of similar size,
up to MAX_CHUNK events), so a log stays a handful of chunks. Merges also drop the
events of deleted profiles (until then queries mask them with the live rows).

Properties are float64 with NaN for "absent" (NaN is never accepted as a value) or
dictionary codes of the narrowest int dtype with -1 for absent; the dictionary is per
log and property, so codes stay small.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Iterator

import numpy as np
from pyroaring import BitMap

from .arrays import INT_WIDTHS
from .bitmap_index import uint32_array
from .coerce import FieldBatch
from .dictionary import StringDictionary
from .schema import FieldType
from .timestamps import to_datetime
from .tracking import TS_FIELD, TYPE_FIELD

SEAL_EVENTS = 1 << 16      # a tail this long is sorted into a chunk without waiting for a read
MAX_CHUNK = 1 << 22        # chunks stop merging at this size (bounds the cost of one merge)
MERGE_RATIO = 4            # a chunk merges into its predecessor while it is at least 1/4 of it
INT64_MIN, INT64_MAX = np.iinfo(np.int64).min, np.iinfo(np.int64).max


@dataclass
class Chunk:
    """Events of one type sorted by ts; props[name] is float64 (NaN absent) or codes (-1)."""
    rows: np.ndarray
    ts: np.ndarray
    props: dict[str, np.ndarray] = field(default_factory=dict)
    complete: frozenset[str] = frozenset()  # properties present on every event (sealed chunks)

    def __len__(self) -> int:
        return len(self.ts)

    @property
    def min_ts(self) -> int:
        return int(self.ts[0])

    @property
    def max_ts(self) -> int:
        return int(self.ts[-1])

    def window(self, since: int | None, until: int | None) -> slice:
        """The contiguous slice of events with since <= ts <= until (None: unbounded)."""
        lo = 0 if since is None else int(np.searchsorted(self.ts, since, "left"))
        hi = len(self.ts) if until is None else int(np.searchsorted(self.ts, until, "right"))
        return slice(lo, max(lo, hi))

    def overlaps(self, since: int | None, until: int | None) -> bool:
        return (since is None or self.max_ts >= since) and (until is None or self.min_ts <= until)

    def take(self, sel: np.ndarray) -> "Chunk":
        return Chunk(self.rows[sel], self.ts[sel], {k: v[sel] for k, v in self.props.items()})

    def nbytes(self) -> int:
        return self.rows.nbytes + self.ts.nbytes + sum(v.nbytes for v in self.props.values())


def _narrow(codes: np.ndarray, n_values: int) -> np.ndarray:
    """Codes in the narrowest int dtype that holds -1 .. n_values."""
    width = next(w for w in INT_WIDTHS if np.iinfo(w).max >= n_values)
    return codes.astype(width, copy=False)


def _completed(chunk: Chunk) -> Chunk:
    """The chunk with `complete` set, so queries skip absent-value checks where none are."""
    chunk.complete = frozenset(
        name for name, v in chunk.props.items()
        if not (np.isnan(v).any() if v.dtype.kind == "f" else (v < 0).any()))
    return chunk


def _absent(kind: FieldType, n: int) -> np.ndarray:
    return np.full(n, np.nan) if kind is FieldType.FLOAT else np.full(n, -1, dtype=np.int8)


def _concat(chunks: list[Chunk], kinds: dict[str, FieldType]) -> Chunk:
    """One chunk of all events of `chunks` (unsorted); a property missing from a chunk
    is absent for its events."""
    if len(chunks) == 1:
        return chunks[0]
    names = {k for c in chunks for k in c.props}
    props = {k: np.concatenate([c.props[k] if k in c.props else _absent(kinds[k], len(c))
                                for c in chunks]) for k in names}
    return Chunk(np.concatenate([c.rows for c in chunks]), np.concatenate([c.ts for c in chunks]),
                 props)


class EventLog:
    """All events of one type on one shard (caller holds the shard lock)."""

    def __init__(self, name: str) -> None:
        self.name = name
        self.chunks: list[Chunk] = []
        self.kinds: dict[str, FieldType] = {}
        self.dictionaries: dict[str, StringDictionary] = {}
        self.members = BitMap()          # rows with at least one event of this type
        self._tail: list[Chunk] = []
        self._tail_len = 0

    def __len__(self) -> int:
        return sum(map(len, self.chunks)) + self._tail_len

    def append(self, rows: np.ndarray, ts: np.ndarray, props: list[FieldBatch],
               alive: np.ndarray | None = None) -> None:
        """Add events (rows uint32, ts int64 µs) with their property batches; `alive`
        (None: nothing deleted) lets merges drop deleted profiles' events."""
        stored = {}
        for batch in props:
            present = batch.named & ~batch.null
            if not present.any():
                continue
            stored[batch.field.name] = self._property_values(batch, present)
        self._tail.append(Chunk(rows, ts, stored))
        self._tail_len += len(rows)
        self.members.update(uint32_array(rows))
        if self._tail_len >= SEAL_EVENTS:
            self.seal(alive)

    def _property_values(self, batch: FieldBatch, present: np.ndarray) -> np.ndarray:
        name, kind = batch.field.name, batch.field.type
        self.kinds[name] = kind
        if kind is FieldType.FLOAT:
            return np.where(present, batch.values, np.nan)
        d = self.dictionaries.setdefault(name, StringDictionary())
        return _narrow(d.translation(batch.codes, batch.categories)[batch.codes], len(d))

    def seal(self, alive: np.ndarray | None = None) -> None:
        """Sort the tail into a chunk and merge similar-sized chunks (see the module doc)."""
        if not self._tail:
            return
        tail = _concat(self._tail, self.kinds)
        self._tail, self._tail_len = [], 0
        self.chunks.append(_completed(tail.take(np.argsort(tail.ts, kind="stable"))))
        while len(self.chunks) > 1:
            a, b = self.chunks[-2], self.chunks[-1]
            if len(b) * MERGE_RATIO < len(a) or len(a) + len(b) > MAX_CHUNK:
                break
            self.chunks[-2:] = [self._merged(a, b, alive)]

    def _merged(self, a: Chunk, b: Chunk, alive: np.ndarray | None) -> Chunk:
        both = _concat([a, b], self.kinds)
        order = np.argsort(both.ts, kind="stable")  # two sorted runs: timsort merges them
        if alive is not None:
            order = order[alive[both.rows[order]]]
        merged = both.take(order)
        for name, codes in merged.props.items():
            if codes.dtype.kind == "i":
                merged.props[name] = _narrow(codes, len(self.dictionaries[name]))
        return _completed(merged)

    def sealed(self, alive: np.ndarray | None = None) -> list[Chunk]:
        """The chunks, with the tail sealed first, so every event is in a sorted chunk."""
        self.seal(alive)
        return self.chunks

    def state(self, alive: np.ndarray | None) -> dict:
        """Sealed chunks are never modified (merges make new ones), so they are shared,
        not copied; the member bitmap is."""
        return {"name": self.name, "kinds": {k: v.value for k, v in self.kinds.items()},
                "dictionaries": {k: list(d.values) for k, d in self.dictionaries.items()},
                "members": self.members.copy(),
                "chunks": [{"rows": c.rows, "ts": c.ts, "props": dict(c.props),
                            "complete": sorted(c.complete)} for c in self.sealed(alive)]}

    @classmethod
    def from_state(cls, state: dict) -> "EventLog":
        log = cls(state["name"])
        log.kinds = {k: FieldType(v) for k, v in state["kinds"].items()}
        log.dictionaries = {k: StringDictionary.of(v) for k, v in state["dictionaries"].items()}
        log.members = state["members"]
        log.chunks = [Chunk(c["rows"], c["ts"], c["props"], frozenset(c["complete"]))
                      for c in state["chunks"]]
        return log

    def nbytes(self) -> int:
        stats = self.members.get_statistics()
        members = sum(stats[f"n_bytes_{k}_containers"] for k in ("array", "run", "bitset"))
        return sum(c.nbytes() for c in self.chunks) + sum(c.nbytes() for c in self._tail) + members

    def decode(self, name: str, values: np.ndarray) -> list[Any]:
        """Python values of one property (None where absent)."""
        if self.kinds[name] is FieldType.FLOAT:
            return [None if v != v else v for v in values.tolist()]
        return self.dictionaries[name].decode(values)


class EventStore:
    """One shard's events: a log per type (caller holds the shard lock)."""

    def __init__(self) -> None:
        self.logs: dict[str, EventLog] = {}

    def __len__(self) -> int:
        return sum(map(len, self.logs.values()))

    def log(self, name: str) -> EventLog | None:
        return self.logs.get(name)

    def append(self, rows: np.ndarray, batches: list[FieldBatch],
               alive: np.ndarray | None = None) -> dict[str, np.ndarray]:
        """Add a validated batch: batches[0] is the type, [1] the ts, the rest properties.
        Returns each type's rows (with repeats), for the segments that read that type."""
        types, stamps, props = batches[0], batches[1], batches[2:]
        rows = rows.astype(np.uint32, copy=False)
        codes = types.codes
        touched: dict[str, np.ndarray] = {}
        for code, sel in _groups(codes):
            name = types.categories[code]
            log = self.logs.get(name)
            if log is None:
                log = self.logs[name] = EventLog(name)
            if sel is None:
                log.append(rows, stamps.values, props, alive)
                touched[name] = rows
            else:
                touched[name] = rows[sel]
                log.append(touched[name], stamps.values[sel], [b.take(sel) for b in props], alive)
        return touched

    def nbytes(self) -> int:
        return sum(log.nbytes() for log in self.logs.values())

    def state(self, alive: np.ndarray | None) -> list[dict]:
        return [log.state(alive) for log in self.logs.values()]

    @classmethod
    def from_state(cls, state: list[dict]) -> "EventStore":
        store = cls()
        store.logs = {s["name"]: EventLog.from_state(s) for s in state}
        return store

    def events_of(self, row: int, limit: int, alive: np.ndarray) -> list[dict[str, Any]]:
        """One profile's events, most recent first (a scan of every chunk)."""
        found: list[tuple[int, str, Chunk, int]] = []
        for name, log in self.logs.items():
            for chunk in log.sealed(alive):
                for i in np.flatnonzero(chunk.rows == row).tolist():
                    found.append((int(chunk.ts[i]), name, chunk, i))
        found.sort(key=lambda e: e[0], reverse=True)
        return [self._event(self.logs[name], chunk, i, ts) for ts, name, chunk, i in found[:limit]]

    @staticmethod
    def _event(log: EventLog, chunk: Chunk, i: int, ts: int) -> dict[str, Any]:
        out: dict[str, Any] = {TYPE_FIELD: log.name, TS_FIELD: to_datetime(ts)}
        for name, values in chunk.props.items():
            v = log.decode(name, values[i:i + 1])[0]
            if v is not None:
                out[name] = v
        return out


def _groups(codes: np.ndarray) -> Iterator[tuple[int, np.ndarray | None]]:
    """(type code, positions) per distinct code; positions None when the batch has one."""
    if len(codes) and codes.min() == codes.max():
        yield int(codes[0]), None
        return
    order = np.argsort(codes, kind="stable")
    s = codes[order]
    cuts = np.flatnonzero(s[1:] != s[:-1]) + 1
    for part in np.split(order, cuts):
        yield int(codes[part[0]]), part
