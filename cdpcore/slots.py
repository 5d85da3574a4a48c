"""Key placement: profile_id → one of 16384 fixed slots → the shard that owns it.

`slot_of` must never change: a different hash would orphan every stored profile, so it
is pinned by golden vectors in tests/test_slots.py (as Redis pins CRC16 '123456789').
"""
from __future__ import annotations

import numpy as np
import xxhash

N_SLOTS = 16384


def slot_of(profile_id: str) -> int:
    """xxhash64 (seed 0) of the UTF-8 id, modulo 16384."""
    return xxhash.xxh64_intdigest(profile_id.encode("utf-8")) % N_SLOTS


def slot_mask(slots) -> np.ndarray:
    """A bool mask over the 16384 slots from slot numbers."""
    mask = np.zeros(N_SLOTS, dtype=bool)
    mask[np.asarray(list(slots), dtype=np.int64)] = True
    return mask


def slots_of_hashes(hashes: np.ndarray) -> np.ndarray:
    """Vectorised slot_of for ids whose xxhash64 values are already known."""
    return (hashes % np.uint64(N_SLOTS)).astype(np.int64)


class SlotMap:
    """slot → shard number, versioned by `epoch` (bumped on every ownership change)."""

    def __init__(self, owners: np.ndarray, epoch: int = 1) -> None:
        if owners.shape != (N_SLOTS,):
            raise ValueError(f"a slot map has exactly {N_SLOTS} entries")
        self.owners = owners.astype(np.int32)
        self.epoch = epoch

    @classmethod
    def even(cls, n_shards: int) -> "SlotMap":
        """Contiguous, equal ranges of slots, as Redis Cluster assigns them."""
        if n_shards < 1:
            raise ValueError("a store needs at least one shard")
        return cls((np.arange(N_SLOTS, dtype=np.int64) * n_shards) // N_SLOTS)

    @property
    def n_shards(self) -> int:
        return int(self.owners.max()) + 1

    def shard_of_hashes(self, hashes: np.ndarray) -> np.ndarray:
        return self.owners[slots_of_hashes(hashes)]

    def slots_of_shard(self, shard: int) -> np.ndarray:
        return np.flatnonzero(self.owners == shard)
