"""Routing represents how one accepted write batch splits over the shards that own it.

The embedded Store applies each part in a worker thread; the router (server) sends each
part to its shard process. Both use this one function, so a record always reaches the
same shard whichever path wrote it. The router may also join several parts bound for
one shard into one write (`merge_writes`, its group commit of concurrent writes).
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Iterable

import numpy as np

from .arrays import segment_positions
from .batch import TagSets
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


@dataclass(frozen=True)
class ShardWrite:
    """One shard's gathered part of a write: what one Apply call carries."""
    ids: EncodedIds               # distinct ids
    uid: np.ndarray               # per record: position in `ids`
    batches: list[FieldBatch]     # aligned with the records

    def __len__(self) -> int:
        return len(self.uid)


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


# ---- merging writes bound for one shard ------------------------------------------------
def merge_writes(writes: list[ShardWrite]) -> ShardWrite:
    """Several writes for one shard as one, records in the given order. Applying the
    result equals applying the writes one after the other: an id named by several of them
    becomes one distinct id, and the shard keeps, per field, the last record naming it."""
    if len(writes) == 1:
        return writes[0]
    ids = _concat_ids([w.ids for w in writes])
    starts = np.cumsum([0] + [len(w.ids) for w in writes[:-1]])
    records = np.concatenate([w.uid + s for w, s in zip(writes, starts.tolist())])
    uid, unique = distinct_ids(ids)
    return ShardWrite(unique, uid[records], concat_batches([w.batches for w in writes], [len(w) for w in writes]))


def _concat_ids(parts: list[EncodedIds]) -> EncodedIds:
    bases = np.cumsum([0] + [len(p.buf) for p in parts])
    off = np.concatenate([p.off[:-1] + b for p, b in zip(parts, bases[:-1].tolist())]
                         + [bases[-1:]]).astype(np.int64)
    return EncodedIds(np.concatenate([p.buf for p in parts]), off,
                      np.concatenate([p.hashes for p in parts]))


def concat_batches(groups: list[list[FieldBatch]], sizes: list[int]) -> list[FieldBatch]:
    """The records of several groups of field batches (group i: `sizes[i]` records) as
    one list of batches: per field named by any group, one batch over all records (records
    of a group without the field: named False), in order of first appearance."""
    by_name: dict[str, list[FieldBatch | None]] = {}
    for i, batches in enumerate(groups):
        for b in batches:
            by_name.setdefault(b.field.name, [None] * len(groups))[i] = b
    return [_concat_field(parts, sizes) for parts in by_name.values()]


def _concat_field(parts: list[FieldBatch | None], sizes: list[int]) -> FieldBatch:
    first = next(b for b in parts if b is not None)
    if any(b is not None and b.field != first.field for b in parts):
        raise BatchError(f"field {first.field.name!r} has two types in one merged write")

    def joined(attr: str, fill: Callable[[int], np.ndarray]) -> np.ndarray:
        return np.concatenate([fill(n) if b is None else getattr(b, attr) for b, n in zip(parts, sizes)])
    named = joined("named", lambda n: np.zeros(n, dtype=bool))
    null = joined("null", lambda n: np.zeros(n, dtype=bool))
    if first.codes is not None:
        codes, categories = _concat_codes(parts, sizes)
        return FieldBatch(first.field, named, null, codes=codes, categories=categories)
    if first.tags is not None:
        return FieldBatch(first.field, named, null, tags=_concat_tags(parts, sizes))
    dtype = first.values.dtype
    return FieldBatch(first.field, named, null, values=joined("values", lambda n: np.zeros(n, dtype=dtype)))


def _concat_codes(parts: list[FieldBatch | None], sizes: list[int]) -> tuple[np.ndarray, list[str]]:
    """String codes over the categories lists joined (a value in several lists gets several
    codes; the shard's dictionary maps them to one)."""
    codes, categories = [], []
    for b, n in zip(parts, sizes):
        if b is None:
            codes.append(np.full(n, -1, dtype=np.int32))
            continue
        codes.append(np.where(b.codes >= 0, b.codes + len(categories), -1).astype(np.int32))
        categories += b.categories
    return np.concatenate(codes), categories


def _concat_tags(parts: list[FieldBatch | None], sizes: list[int]) -> TagSets:
    offsets, codes, categories = [], [], []
    total = 0
    for b, n in zip(parts, sizes):
        if b is None:
            offsets.append(np.full(n, total, dtype=np.int64))
            continue
        offsets.append(b.tags.offsets[:-1] + total)
        codes.append(np.asarray(b.tags.codes, dtype=np.int64) + len(categories))
        categories += list(b.tags.categories)
        total += len(b.tags.codes)
    flat = np.concatenate(codes).astype(np.int32)
    return TagSets(np.concatenate(offsets + [np.array([total])]), flat, categories)
