"""Persistent stores: WAL + snapshots + recovery through `Store(data_dir=...)`.

A "crash" here is a store abandoned without `close()` (no final snapshot, WAL files
left as written) whose directory locks are released by hand, as the OS does when a
process dies; the real `kill -9` test runs shard processes (tests/e2e).
"""
from __future__ import annotations

import errno
import threading

import numpy as np
import pytest

from cdpcore import Store, sample
from cdpcore.durability import RecoveryError
from cdpcore.errors import FailedPrecondition

NOW = sample.REF_NOW.timestamp()
QUERIES = ["age > 30", "country = 'JP' AND has(interests, 'golf')", "in_segment('jp')",
           "event_count('purchase') >= 1", "event_sum('purchase', 'amount') > 50", ""]


def open_store(path, shards=2, **kw) -> Store:
    return Store(shards=shards, clock=lambda: NOW, segment_refresh_s=None, data_dir=path, **kw)


def crash(store: Store) -> None:
    """Leave the store as a killed process would: nothing flushed beyond what the WAL
    wrote, the directory locks freed."""
    for d in store._durable:
        d.wal.close()
        d._lock_file.release()


def load(store: Store, n: int = 2_000) -> list[str]:
    ids, cols = sample.generate_columns(n)
    store.upsert_columns(ids, cols)
    store.track_columns(**sample.generate_events(n, 3, dict_ids=True))
    store.create_segment("jp", "country = 'JP'")
    store.delete(ids[:7])
    return ids


def answers(store: Store) -> list:
    return [store.count(q) for q in QUERIES]


@pytest.mark.parametrize("shards", [1, 3])
def test_close_and_reopen_restores_everything(tmp_path, shards):
    s = open_store(tmp_path, shards)
    ids = load(s)
    s.define_fields({"declared_only": "float"})
    before, profile, events = answers(s), s.get_profile(ids[100]), s.events_of(ids[100])
    s.close()
    s2 = open_store(tmp_path, shards)
    assert all(r.snapshot and r.replayed == 0 for r in s2.recovery)
    assert answers(s2) == before
    assert s2.get_profile(ids[100]) == profile and s2.events_of(ids[100]) == events
    assert "declared_only" in s2.schema and s2.get_profile(ids[0]) is None
    assert [x.name for x in s2.list_segments()] == ["jp"]
    s2.upsert([{"profile_id": "fresh", "country": "JP"}])
    assert s2.count("in_segment('jp')") == before[2] + 1
    s2.close()


def test_crash_replays_the_wal_after_the_last_snapshot(tmp_path):
    s = open_store(tmp_path)
    load(s)
    s.snapshot()
    s.upsert([{"profile_id": "after", "age": 99, "country": "JP"}])
    s.track([{"profile_id": "after", "type": "purchase", "amount": 60.0}])
    s.delete(["u00000100"])
    s.create_segment("old", "age > 90")
    before = answers(s)
    crash(s)
    s2 = open_store(tmp_path)
    assert sum(r.replayed for r in s2.recovery) >= 4
    assert answers(s2) == before and s2.get_segment("old").size == s.get_segment("old").size
    # segment change numbering continues; older positions are reported lost, not replayed
    w = s2.watch_segment("jp", initial=False)
    s2.upsert([{"profile_id": "another", "country": "JP"}])
    assert [c.profile_id for c in w.poll(0)] == ["another"]
    s2.close()


def test_a_damaged_snapshot_falls_back_to_the_previous_one(tmp_path):
    s = open_store(tmp_path, shards=1)
    load(s)
    first = s.snapshot()
    s.upsert([{"profile_id": "between", "age": 1}])
    second = s.snapshot()
    s.upsert([{"profile_id": "last", "age": 2}])
    before = answers(s)
    crash(s)
    newest = second[0]
    data = bytearray(open(newest, "rb").read())
    data[len(data) // 2] ^= 0xFF
    open(newest, "wb").write(bytes(data))
    s2 = open_store(tmp_path, shards=1)
    report = s2.recovery[0]
    assert report.snapshot in first[0] and newest.split("/")[-1] in report.skipped[0]
    assert answers(s2) == before
    s2.close()


def test_a_truncated_snapshot_is_skipped(tmp_path):
    s = open_store(tmp_path, shards=1)
    load(s)
    path = s.snapshot()[0]
    before = answers(s)
    crash(s)
    with open(path, "r+b") as f:
        f.truncate(100)
    s2 = open_store(tmp_path, shards=1)
    assert s2.recovery[0].snapshot is None and "truncated" in s2.recovery[0].skipped[0]
    assert answers(s2) == before  # the whole WAL is still there: nothing was dropped
    s2.close()


def test_a_torn_wal_tail_is_cut_and_reported(tmp_path):
    s = open_store(tmp_path, shards=1)
    s.upsert([{"profile_id": "a", "age": 1}])
    s.upsert([{"profile_id": "b", "age": 2}])
    crash(s)
    wal = sorted((tmp_path / "shard-0").glob("wal-*.log"))[-1]
    with open(wal, "r+b") as f:
        f.truncate(wal.stat().st_size - 3)
    s2 = open_store(tmp_path, shards=1)
    assert s2.recovery[0].cut is not None
    assert s2.count("") == 1 and s2.get_profile("a") is not None
    s2.upsert([{"profile_id": "c", "age": 3}])
    s2.close()
    s3 = open_store(tmp_path, shards=1)
    assert {s3.get_profile(p) is not None for p in ("a", "c")} == {True}
    s3.close()


def test_writes_keep_flowing_during_snapshots(tmp_path):
    s = open_store(tmp_path, fsync="never")
    load(s, 500)
    stop = threading.Event()
    written: list[str] = []

    def writer() -> None:
        i = 0
        while not stop.is_set():
            s.upsert([{"profile_id": f"w{i}", "age": i % 90}])
            written.append(f"w{i}")
            i += 1

    t = threading.Thread(target=writer)
    t.start()
    for _ in range(3):
        s.snapshot()
    stop.set()
    t.join()
    crash(s)
    s2 = open_store(tmp_path)
    assert all(s2.get_profile(p) is not None for p in written)
    s2.close()


def test_a_failed_log_write_is_not_applied(tmp_path, monkeypatch):
    s = open_store(tmp_path, shards=1)
    s.upsert([{"profile_id": "a", "age": 1}])
    wal = s._durable[0].wal

    def full(record: bytes) -> int:
        raise OSError(errno.ENOSPC, "No space left on device")
    monkeypatch.setattr(wal, "append", full)
    with pytest.raises(OSError):
        s.upsert([{"profile_id": "b", "age": 2}])
    assert s.get_profile("b") is None
    monkeypatch.undo()
    s.upsert([{"profile_id": "c", "age": 3}])
    s.close()
    s2 = open_store(tmp_path, shards=1)
    assert s2.get_profile("b") is None and s2.get_profile("c") is not None
    s2.close()


def test_directory_guards(tmp_path):
    s = open_store(tmp_path)
    with pytest.raises(FailedPrecondition, match="in use"):
        open_store(tmp_path)
    s.close()
    with pytest.raises(RecoveryError, match="2 shards"):
        open_store(tmp_path, shards=3)
    (tmp_path / "store.json").write_text("not json")
    with pytest.raises(RecoveryError, match="store.json"):
        open_store(tmp_path)


def test_fsync_policies_are_accepted(tmp_path):
    for policy in ("always", "interval=50", "never"):
        s = open_store(tmp_path / policy, fsync=policy)
        s.upsert_columns([f"p{i}" for i in range(100)], {"age": np.arange(100)})
        s.close()
        s2 = open_store(tmp_path / policy)
        assert s2.count("age >= 0") == 100
        s2.close()
    with pytest.raises(ValueError):
        open_store(tmp_path / "bad", fsync="sometimes")


def test_timed_snapshots_follow_writes(tmp_path):
    import time
    s = open_store(tmp_path, shards=1, snapshot_interval_s=0.05)
    s.upsert([{"profile_id": "a", "age": 1}])
    deadline = time.monotonic() + 10
    while not list((tmp_path / "shard-0").glob("snapshot-*.cdps")) and time.monotonic() < deadline:
        time.sleep(0.01)
    assert list((tmp_path / "shard-0").glob("snapshot-*.cdps")), "no timed snapshot within 10 s"
    s.close()
