"""Units of cluster operations: migration plans, the router's state file, the map lock."""
from __future__ import annotations

import threading

import numpy as np
import pytest
from hypothesis import given, settings, strategies as st

from cdpcore.errors import FailedPrecondition
from cdpcore.slots import N_SLOTS, SlotMap
from server.cluster_state import ClusterState
from server.map_lock import MapLock
from server.migration import plan_add, plan_remove


def apply(owners: np.ndarray, moves) -> np.ndarray:
    out = owners.copy()
    for m in moves:
        assert (out[m.slots] == m.source).all(), "a move takes slots its source owns"
        out[m.slots] = m.target
    return out


def owner_maps():
    """Slot maps over 1..6 shards with sparse ids, as adds and removes leave them."""
    @st.composite
    def build(draw):
        ids = draw(st.lists(st.integers(0, 20), min_size=1, max_size=6, unique=True))
        cuts = sorted(draw(st.lists(st.integers(1, N_SLOTS - 1), min_size=len(ids) - 1,
                                    max_size=len(ids) - 1, unique=True)))
        owners = np.empty(N_SLOTS, dtype=np.int64)
        for shard, lo, hi in zip(ids, [0, *cuts], [*cuts, N_SLOTS]):
            owners[lo:hi] = shard
        return owners
    return build()


@settings(max_examples=200)
@given(owners=owner_maps())
def test_an_add_gives_the_new_shard_its_share(owners):
    new = int(owners.max()) + 1
    moves = plan_add(owners, new)
    after = apply(owners, moves)
    shards = np.unique(after)
    assert (after == new).sum() == N_SLOTS // len(shards)    # its even share, no more
    assert all(m.target == new for m in moves)
    before = np.bincount(owners)[shards[:-1]]
    if before.max() - before.min() <= 1:                     # balanced stays balanced
        counts = np.bincount(after)[shards]
        assert counts.max() - counts.min() <= 1
    assert plan_add(after, new) == []          # done: nothing left to resume


def test_adding_to_an_even_map_takes_evenly_from_every_shard():
    owners = SlotMap.even(3).owners.astype(np.int64)
    moves = plan_add(owners, 3)
    taken = np.bincount([m.source for m in moves for _ in m.slots], minlength=3)
    assert taken.max() - taken.min() <= 1 and taken.sum() == N_SLOTS // 4


@settings(max_examples=200)
@given(owners=owner_maps())
def test_a_remove_drains_the_shard_and_balances_the_rest(owners):
    shards = np.unique(owners)
    if len(shards) < 2:
        return
    leaving = int(shards[0])
    after = apply(owners, plan_remove(owners, leaving))
    assert leaving not in after
    counts = np.bincount(after)[np.unique(after)]
    # the others end even unless they were already more uneven than the drained slots can fix
    before = np.bincount(owners)[shards[1:]]
    assert counts.max() - counts.min() <= max(1, before.max() - before.min())


def test_the_state_file_round_trips_and_refuses_damage(tmp_path):
    state = ClusterState.fresh(["127.0.0.2:7001", "127.0.0.3:7002"])
    owners = state.slot_map.owners.copy()
    owners[100:200] = 5
    state.shards[5] = "127.0.0.4:7003"
    state.slot_map = SlotMap(owners, epoch=7)
    state.migration = {"kind": "add", "shard": 5}
    path = tmp_path / "router.json"
    state.save(path)
    again = ClusterState.load(path)
    assert again.shards == state.shards and again.cluster_id == state.cluster_id
    assert np.array_equal(again.slot_map.owners, owners) and again.slot_map.epoch == 7
    assert again.next_id == 6 and again.migration == {"kind": "add", "shard": 5}
    path.write_text(path.read_text().replace('"address": "127.0.0.4:7003"', '"addr": 1'))
    with pytest.raises(FailedPrecondition, match="not a cdp router state file"):
        ClusterState.load(path)
    path.write_text("{}")
    with pytest.raises(FailedPrecondition):
        ClusterState.load(path)
    assert ClusterState.load(tmp_path / "absent.json") is None


def test_a_flip_waits_for_users_and_new_users_wait_for_a_waiting_flip():
    lock = MapLock()
    events: list[str] = []
    release = lock.acquire_shared()
    flipped = threading.Event()

    def flip() -> None:
        with lock.exclusive():
            events.append("flip")
        flipped.set()
    t = threading.Thread(target=flip)
    t.start()
    assert not flipped.wait(0.1)               # a user holds it

    def late_user() -> None:
        with lock.shared():
            events.append("late user")
    u = threading.Thread(target=late_user)
    u.start()
    u.join(0.1)
    assert events == []                        # queued behind the waiting flip
    release()                                  # may come from another thread
    t.join(5)
    u.join(5)
    assert events == ["flip", "late user"]


def test_a_flip_gives_way_after_its_timeout_and_users_go_on():
    lock = MapLock()
    release = lock.acquire_shared()            # a long stream
    with pytest.raises(TimeoutError):
        with lock.exclusive(timeout=0.05):
            pass
    with lock.shared():                        # not blocked by a flip that gave up
        pass
    release()
    with lock.exclusive(timeout=1):
        pass
