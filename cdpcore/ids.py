"""RowIdIndex represents the profile_id → row mapping of one shard.

Ids live in one packed UTF-8 byte buffer with an offsets array, and an open-addressing
table (linear probing, keyed by xxhash64) maps them to dense uint32 rows, so ten million
ids cost a few arrays instead of ten million Python objects. Every probe step runs for a
whole batch at once; full ids are compared byte for byte on a hash match, so a 64-bit
collision cannot merge two profiles.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import xxhash

from .arrays import grown, segment_positions
from .errors import Overloaded

MAX_ID_BYTES = 1024
_EMPTY = np.uint32(0)
_TOMB = np.uint32(0xFFFFFFFF)
_MAX_LOAD = 0.6


@dataclass(frozen=True)
class EncodedIds:
    """A batch of ids as one byte buffer + offsets, with their xxhash64 values."""

    buf: np.ndarray      # uint8
    off: np.ndarray      # int64, len n + 1
    hashes: np.ndarray   # uint64, len n

    def __len__(self) -> int:
        return len(self.hashes)

    @property
    def lengths(self) -> np.ndarray:
        return np.diff(self.off)

    @classmethod
    def encode(cls, ids: list[str]) -> "EncodedIds":
        """Encode valid ids (non-empty str); callers validate first (see `check_ids`)."""
        enc = list(map(str.encode, ids))
        n = len(enc)
        joined = "".join(ids).encode("utf-8")  # str.join is ~5x faster than bytes.join
        if len(joined) != sum(map(len, ids)):  # non-ASCII: byte lengths differ from str's
            joined = b"".join(enc)
            lengths = np.fromiter(map(len, enc), dtype=np.int64, count=n)
        else:
            lengths = np.fromiter(map(len, ids), dtype=np.int64, count=n)
        off = np.zeros(n + 1, dtype=np.int64)
        np.cumsum(lengths, out=off[1:])
        buf = np.frombuffer(joined, dtype=np.uint8)
        hashes = np.fromiter(map(xxhash.xxh64_intdigest, enc), dtype=np.uint64, count=n)
        return cls(buf, off, hashes)

    def take(self, sel: np.ndarray) -> "EncodedIds":
        all_lengths = self.lengths
        width = int(all_lengths[0]) if len(all_lengths) else 0
        if width and np.all(all_lengths == width):  # fixed-width ids: a 2-d gather
            buf = self.buf.reshape(-1, width)[sel].reshape(-1)
            off = np.arange(len(sel) + 1, dtype=np.int64) * width
            return EncodedIds(buf, off, self.hashes[sel])
        lengths = all_lengths[sel]
        off = np.zeros(len(sel) + 1, dtype=np.int64)
        np.cumsum(lengths, out=off[1:])
        buf = self.buf[segment_positions(self.off[:-1][sel], lengths)]
        return EncodedIds(buf, off, self.hashes[sel])

    def decode(self) -> list[str]:
        raw = self.buf.tobytes()
        o = self.off.tolist()
        return [raw[o[i]:o[i + 1]].decode("utf-8") for i in range(len(self))]


def check_id(value: object) -> str | None:
    """Why `value` is not a valid profile_id, or None when it is."""
    if not isinstance(value, str):
        return f"profile_id must be a string, got {type(value).__name__}"
    if not value:
        return "profile_id must not be empty"
    try:
        size = len(value.encode("utf-8"))
    except UnicodeEncodeError:
        return "profile_id is not valid UTF-8 text"
    if size > MAX_ID_BYTES:
        return f"profile_id longer than {MAX_ID_BYTES} bytes"
    return None


class RowIdIndex:
    """profile_id → row for one shard. Not thread-safe: the owning Shard locks."""

    def __init__(self) -> None:
        self.n_rows = 0
        self._buf = np.zeros(1 << 12, dtype=np.uint8)
        self._buf_len = 0
        self._off = np.zeros(1 << 8, dtype=np.uint32)  # 4 GiB of ids per shard at most
        self.hashes = np.zeros(1 << 8, dtype=np.uint64)
        self.alive = np.zeros(1 << 8, dtype=bool)
        self.n_alive = 0
        self._table = np.zeros(1 << 10, dtype=np.uint32)  # row + 1; 0 empty; _TOMB deleted
        self._used = 0  # occupied table slots, tombstones included

    # ---- persistence ---------------------------------------------------------------
    def state(self) -> dict:
        """Copies of the live parts (the hash table is rebuilt on load, by one sort)."""
        n = self.n_rows
        return {"buf": self._buf[:self._buf_len].copy(), "off": self._off[:n + 1].copy(),
                "hashes": self.hashes[:n].copy(), "alive": self.alive[:n].copy()}

    @classmethod
    def from_state(cls, state: dict) -> "RowIdIndex":
        index = cls()
        n = len(state["hashes"])
        index._buf, index._buf_len = state["buf"], len(state["buf"])
        index._off, index.hashes, index.alive = state["off"], state["hashes"], state["alive"]
        index.n_rows, index.n_alive = n, int(np.count_nonzero(state["alive"]))
        index._ensure_rows(n + 1)
        index._rebuild(index.n_alive)
        return index

    # ---- lookups -------------------------------------------------------------------
    def lookup(self, q: EncodedIds) -> np.ndarray:
        """Row of each id (int64), -1 where absent."""
        n = len(q)
        out = np.full(n, -1, dtype=np.int64)
        mask = len(self._table) - 1
        act = np.arange(n)
        pos = self._home(q.hashes)
        while act.size:
            t = self._table[pos]
            rows = t.astype(np.int64) - 1
            cand = np.flatnonzero((t != _EMPTY) & (t != _TOMB))
            cand = cand[self.hashes[rows[cand]] == q.hashes[act[cand]]]
            hit = np.zeros(act.size, dtype=bool)
            if cand.size:
                hit[cand[self._same_bytes(rows[cand], q, act[cand])]] = True
            out[act[hit]] = rows[hit]
            go_on = ~(hit | (t == _EMPTY))
            act, pos = act[go_on], (pos[go_on] + 1) & mask
        return out

    def ids_of(self, rows: np.ndarray) -> list[str]:
        """The profile ids of `rows`: one gather of their bytes and one decode, then
        slices (ASCII ids, the common case), or a decode per id otherwise."""
        return decode_ids(*self.id_bytes(np.asarray(rows, dtype=np.int64)))

    def id_bytes(self, rows: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(buffer, offsets) of the ids of `rows`, for vectorised sorting by id."""
        starts = self._off[rows].astype(np.int64)
        lengths = self._off[rows + 1] - starts
        off = np.zeros(len(rows) + 1, dtype=np.int64)
        np.cumsum(lengths, out=off[1:])
        return self._buf[segment_positions(starts, lengths)], off

    # ---- changes -------------------------------------------------------------------
    def insert(self, q: EncodedIds) -> np.ndarray:
        """Append ids known to be absent and distinct; returns their new rows."""
        k = len(q)
        start = self.n_rows
        rows = np.arange(start, start + k, dtype=np.int64)
        if self._buf_len + len(q.buf) >= 1 << 32:
            raise Overloaded("a shard holds at most 4 GiB of profile ids; add shards")
        self._ensure_rows(start + k)
        self._buf = grown(self._buf, self._buf_len + len(q.buf))
        self._buf[self._buf_len:self._buf_len + len(q.buf)] = q.buf
        self._off[start + 1:start + k + 1] = self._buf_len + q.off[1:]
        self._buf_len += len(q.buf)
        self.hashes[start:start + k] = q.hashes
        self.alive[start:start + k] = True
        self.n_rows += k
        self.n_alive += k
        if (self._used + k) > _MAX_LOAD * len(self._table):
            self._rebuild(self.n_alive)
        else:
            self._place(rows, q.hashes)
        return rows

    def delete(self, rows: np.ndarray) -> None:
        """Forget live `rows`: tombstone their slots and wipe their id bytes."""
        rows = rows[self.alive[rows]]
        if not rows.size:
            return
        slots = self._slots_of(rows)
        self._table[slots] = _TOMB
        self.alive[rows] = False
        self.n_alive -= len(rows)
        starts = self._off[rows].astype(np.int64)
        self._buf[segment_positions(starts, self._off[rows + 1] - starts)] = 0

    # ---- internals -----------------------------------------------------------------
    def _ensure_rows(self, needed: int) -> None:
        self._off = grown(self._off, needed + 1)
        self.hashes = grown(self.hashes, needed)
        self.alive = grown(self.alive, needed)

    def _home(self, hashes: np.ndarray) -> np.ndarray:
        """Home slot from the hash's HIGH bits: the low bits pick the cluster slot
        (hash % 16384), so within one shard they are far from uniform."""
        shift = np.uint64(64 - (len(self._table).bit_length() - 1))
        return (hashes >> shift).astype(np.int64)

    def _same_bytes(self, rows: np.ndarray, q: EncodedIds, qi: np.ndarray) -> np.ndarray:
        r_start = self._off[rows].astype(np.int64)
        r_len = self._off[rows + 1] - r_start
        q_start = q.off[qi]
        same = r_len == (q.off[qi + 1] - q_start)
        idx = np.flatnonzero(same)
        if idx.size:
            lengths = r_len[idx]
            a = self._buf[segment_positions(r_start[idx], lengths)]
            b = q.buf[segment_positions(q_start[idx], lengths)]
            seg = np.repeat(np.arange(idx.size), lengths)
            bad = np.bincount(seg[a != b], minlength=idx.size) > 0
            same[idx[bad]] = False
        return same

    def _place(self, rows: np.ndarray, hashes: np.ndarray) -> None:
        mask = len(self._table) - 1
        pos = self._home(hashes)
        act = np.arange(len(rows))
        while act.size:
            # Claim empty slots by scatter, then read back: where several ids want one
            # slot, exactly one value lands and the others probe on.
            free = np.flatnonzero(self._table[pos] == _EMPTY)
            vals = (rows[act[free]] + 1).astype(np.uint32)
            self._table[pos[free]] = vals
            left = np.ones(act.size, dtype=bool)
            left[free[self._table[pos[free]] == vals]] = False
            act, pos = act[left], (pos[left] + 1) & mask
        self._used += len(rows)

    def _slots_of(self, rows: np.ndarray) -> np.ndarray:
        mask = len(self._table) - 1
        pos = self._home(self.hashes[rows])
        want = (rows + 1).astype(np.uint32)
        out = np.empty(len(rows), dtype=np.int64)
        act = np.arange(len(rows))
        while act.size:
            hit = self._table[pos] == want[act]
            out[act[hit]] = pos[hit]
            act, pos = act[~hit], (pos[~hit] + 1) & mask
        return out

    def _rebuild(self, live: int) -> None:
        cap = 1 << 10
        while cap * 0.48 < live:
            cap <<= 1
        self._table = np.zeros(cap, dtype=np.uint32)
        self._used = 0
        rows = np.flatnonzero(self.alive[:self.n_rows])
        # Linear probing into an empty table, in home order, is a running maximum:
        # slot_i = max(home_i, slot_{i-1} + 1). One sort of (home, row) keys replaces
        # many rounds of random probes; the few slots that would run past the end
        # (and wrap) go through the ordinary probing path.
        keys = (self._home(self.hashes[rows]).astype(np.uint64) << np.uint64(32)) | rows.astype(np.uint64)
        keys.sort()
        homes = (keys >> np.uint64(32)).astype(np.int64)
        order = np.arange(len(keys), dtype=np.int64)
        slots = np.maximum.accumulate(homes - order) + order
        fits = slots < cap
        self._table[slots[fits]] = (keys[fits] & np.uint64(0xFFFFFFFF)).astype(np.uint32) + 1
        self._used = int(np.count_nonzero(fits))
        spill = (keys[~fits] & np.uint64(0xFFFFFFFF)).astype(np.int64)
        if spill.size:
            self._place(spill, self.hashes[spill])


def decode_ids(buf: np.ndarray, off: np.ndarray) -> list[str]:
    """The ids in `id_bytes` form: one decode, then slices (ASCII ids, the common case),
    or a decode per id otherwise."""
    raw = buf.tobytes()
    bounds = off.tolist()
    try:
        text = raw.decode("ascii")
    except UnicodeDecodeError:
        return [raw[a:b].decode("utf-8") for a, b in zip(bounds, bounds[1:])]
    return [text[a:b] for a, b in zip(bounds, bounds[1:])]
