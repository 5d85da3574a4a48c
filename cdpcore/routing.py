"""Routing represents how one accepted write batch splits over the shards that own it.

The embedded Store applies each part in a worker thread; the router (server) sends each
part to its shard process. Both use this one function, so a record always reaches the
same shard whichever path wrote it.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Iterable

import numpy as np

from .arrays import segment_positions
from .coerce import FieldBatch
from .errors import BatchError
from .ids import EncodedIds, check_id
from .ingest import id_list
from .slots import SlotMap


@dataclass(frozen=True)
class ShardPart:
    """The records of a batch that one shard owns. Gathers are deferred (`ids`,
    `batches`) so they run wherever the part is applied, in parallel per shard."""
    shard: int
    distinct_ids: EncodedIds      # the whole batch's distinct ids
    id_positions: np.ndarray | None   # which of them this shard owns (None: all)
    uid: np.ndarray               # per record of this part: position in `ids()`
    records: np.ndarray | None    # record positions in the batch (None: all)

    def ids(self) -> EncodedIds:
        if self.id_positions is None:
            return self.distinct_ids
        return self.distinct_ids.take(self.id_positions)

    def batches(self, batches: list[FieldBatch]) -> list[FieldBatch]:
        if self.records is None:
            return batches
        return [b.take(self.records) for b in batches]


def split(enc: EncodedIds, slot_map: SlotMap, n_shards: int,
          distinct: tuple[np.ndarray, EncodedIds] | None = None) -> list[ShardPart]:
    """Parts of a batch per owning shard; records keep their order within a part.
    `distinct` is `distinct_ids(enc)` when the caller already knows it."""
    uid, uenc = distinct or distinct_ids(enc)
    owner_u = slot_map.shard_of_hashes(uenc.hashes)
    owner_rec = owner_u[uid]
    local = np.empty(len(uenc), dtype=np.int64)  # id position within its shard's ids
    parts = []
    for s in range(n_shards):
        us = np.flatnonzero(owner_u == s)
        if not us.size:
            continue
        if us.size == len(uenc):
            return [ShardPart(s, uenc, None, uid, None)]
        local[us] = np.arange(us.size)
        recs = np.flatnonzero(owner_rec == s)
        parts.append(ShardPart(s, uenc, us, local[uid[recs]], recs))
    return parts


def distinct_ids(enc: EncodedIds) -> tuple[np.ndarray, EncodedIds]:
    """(record → distinct id position, the distinct ids in first-seen order).

    Vectorised over the hashes: equal ids have equal hashes, and records whose hash
    repeats are compared byte for byte with the first record of that hash, so a 64-bit
    collision (never seen in practice) falls back to an exact dictionary pass.
    """
    n = len(enc)
    order = np.argsort(enc.hashes, kind="stable")  # stable: a group starts at its first record
    sorted_hashes = enc.hashes[order]
    starts = np.ones(n, dtype=bool)
    np.not_equal(sorted_hashes[1:], sorted_hashes[:-1], out=starts[1:])
    if starts.all():  # distinct hashes imply distinct ids
        return np.arange(n), enc
    group = np.cumsum(starts) - 1
    firsts = order[starts]                      # per group: its first record
    if not _same_ids(enc, order, firsts[group]):
        return _distinct_ids_exact(enc)
    rank = np.empty(len(firsts), dtype=np.int64)  # group → position in first-seen order
    rank[np.argsort(firsts, kind="stable")] = np.arange(len(firsts))
    uid = np.empty(n, dtype=np.int64)
    uid[order] = rank[group]
    return uid, enc.take(np.sort(firsts))


def _same_ids(enc: EncodedIds, records: np.ndarray, firsts: np.ndarray) -> bool:
    """Whether every record's id equals the id of the first record of its hash."""
    moved = records != firsts
    records, firsts = records[moved], firsts[moved]
    lengths = enc.lengths
    if not np.array_equal(lengths[records], lengths[firsts]):
        return False
    span = lengths[records]
    a = enc.buf[segment_positions(enc.off[:-1][records], span)]
    b = enc.buf[segment_positions(enc.off[:-1][firsts], span)]
    return bool(np.array_equal(a, b))


def _distinct_ids_exact(enc: EncodedIds) -> tuple[np.ndarray, EncodedIds]:
    ids = enc.decode()
    pos = {k: i for i, k in enumerate(dict.fromkeys(ids))}
    uid = np.fromiter(map(pos.__getitem__, ids), dtype=np.int64, count=len(ids))
    first = np.full(len(pos), len(ids), dtype=np.int64)
    np.minimum.at(first, uid, np.arange(len(ids)))
    return uid, enc.take(first)


def owners_of_ids(ids: Iterable[str], slot_map: SlotMap) -> tuple[list[str], EncodedIds, np.ndarray]:
    """Distinct, validated ids (deletes, lookups), encoded, with each one's owning shard."""
    ids = list(dict.fromkeys(id_list(ids)))
    for pid in ids:
        if (reason := check_id(pid)) is not None:
            raise BatchError(f"invalid profile_id {pid!r}: {reason}")
    enc = EncodedIds.encode(ids)
    return ids, enc, slot_map.shard_of_hashes(enc.hashes)
