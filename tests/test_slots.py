"""slot_of must never change: these vectors pin it (a change would orphan stored data)."""
import numpy as np
import pytest
import xxhash

from cdpcore.ids import EncodedIds
from cdpcore.slots import N_SLOTS, SlotMap, slot_of, slots_of_hashes

# Published XXH64 (seed 0) reference values, so the hash itself is the standard one.
REFERENCE_XXH64 = {b"": 0xEF46DB3751D8E999, b"abc": 0x44BC2CF5AD770999}

GOLDEN_SLOTS = {
    "u1": 8511,
    "user-42": 15489,
    "123456789": 11907,
    "anon:3f9c2e": 10551,
    "ユーザー": 15723,
    "a" * 100: 4019,
}


@pytest.mark.parametrize("data,expected", REFERENCE_XXH64.items())
def test_xxh64_reference_vectors(data, expected):
    assert xxhash.xxh64_intdigest(data) == expected


@pytest.mark.parametrize("profile_id,slot", GOLDEN_SLOTS.items())
def test_golden_slots(profile_id, slot):
    assert slot_of(profile_id) == slot


def test_vectorised_slots_match_scalar():
    ids = list(GOLDEN_SLOTS)
    slots = slots_of_hashes(EncodedIds.encode(ids).hashes)
    assert slots.tolist() == [GOLDEN_SLOTS[i] for i in ids]


def test_even_slot_map_is_balanced_and_contiguous():
    for n in (1, 2, 3, 7, 16):
        m = SlotMap.even(n)
        counts = np.bincount(m.owners, minlength=n)
        assert counts.sum() == N_SLOTS and counts.max() - counts.min() <= 1
        assert np.all(np.diff(m.owners) >= 0)


def test_slot_map_rejects_bad_shapes():
    with pytest.raises(ValueError):
        SlotMap(np.zeros(10, dtype=np.int32))
    with pytest.raises(ValueError):
        SlotMap.even(0)
