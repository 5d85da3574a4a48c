"""Routing represents how one accepted write batch splits over the shards that own it.

The embedded Store applies each part in a worker thread; the router (server) sends each
part to its shard process. Both use this one function, so a record always reaches the
same shard whichever path wrote it.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Iterable

import numpy as np

from .arrays import distinct
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


def split(enc: EncodedIds, slot_map: SlotMap, n_shards: int) -> list[ShardPart]:
    """Parts of a batch per owning shard; records keep their order within a part."""
    uid, uenc = distinct_ids(enc)
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
    """(record → distinct id position, the distinct ids in first-seen order)."""
    if len(distinct(enc.hashes)) == len(enc):  # distinct hashes imply distinct ids
        return np.arange(len(enc)), enc
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
