"""Durability bench (issue 6): ingest throughput per fsync policy, snapshot and recovery.

1. Ingest: the same stream of profile upserts (batches of --batch rows) and event batches
   into a fresh persistent Store per policy (`always`, `interval=100`, `never`), with
   --writers threads writing at once (group commit shares fsyncs between them), and an
   in-memory Store as the reference.
2. Snapshot and recovery of one shard holding --profiles profiles and ~--events-per-profile
   events each: snapshot time and file size vs the shard's in-memory size, then recovery
   time from snapshot + a WAL tail of --tail batches.

    python bench/durability.py --profiles 1000000            # while iterating
    python bench/durability.py --profiles 5000000 --events-per-profile 7.4   # the issue's size
"""
from __future__ import annotations

import argparse
import os
import shutil
import tempfile
import threading
import time
from pathlib import Path

import numpy as np

from cdpcore import Store, sample

CLOCK = sample.REF_NOW.timestamp()


def ingest_rate(data_dir: Path | None, policy: str, batches: list, writers: int,
                shards: int) -> float:
    """Profiles per second for upserting the batches from `writers` threads."""
    store = Store(shards=shards, clock=lambda: CLOCK, segment_refresh_s=None,
                  data_dir=data_dir, fsync=policy)

    def work(k: int) -> None:
        for ids, cols in batches[k::writers]:
            store.upsert_columns(ids, cols)

    began = time.perf_counter()
    threads = [threading.Thread(target=work, args=(k,)) for k in range(writers)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    rate = sum(len(ids) for ids, _ in batches) / (time.perf_counter() - began)
    store.close() if data_dir is None else _abandon(store)
    return rate


def _abandon(store: Store) -> None:
    """Stop without the final snapshot (not part of the ingest being measured)."""
    for d in store._durable:
        d.close(take_snapshot=False)
    store._refresher.stop()


def snapshot_and_recovery(root: Path, n: int, events_per_profile: float, tail: int) -> dict:
    store = Store(shards=1, clock=lambda: CLOCK, segment_refresh_s=None, data_dir=root,
                  fsync="never")
    t = time.perf_counter()
    for ids, cols in sample.batches(n, 500_000):
        store.upsert_columns(ids, cols)
    for ev in sample.iter_events(n, events_per_profile, dict_ids=True):
        store.track_columns(**ev)
    loaded = time.perf_counter() - t
    shard = store.shards[0]
    memory = _memory(shard)
    t = time.perf_counter()
    path = Path(store.snapshot()[0])
    snap_s = time.perf_counter() - t
    for ids, cols in sample.batches(tail * 10_000, 10_000, seed=7):
        store.upsert_columns(ids, cols)
    counts = [store.count(q) for q in ("age > 30", "event_count('purchase', '30d') >= 1", "")]
    _abandon(store)
    t = time.perf_counter()
    again = Store(shards=1, clock=lambda: CLOCK, segment_refresh_s=None, data_dir=root, fsync="never")
    recover_s = time.perf_counter() - t
    same = counts == [again.count(q) for q in ("age > 30", "event_count('purchase', '30d') >= 1", "")]
    report = again.recovery[0]
    _abandon(again)
    return {"profiles": n, "events": len(shard.events), "load_s": loaded, "snapshot_s": snap_s,
            "snapshot_bytes": path.stat().st_size, "memory_bytes": memory, "recover_s": recover_s,
            "replayed": report.replayed, "same_answers": same}


def _memory(shard) -> int:
    """Bytes held by the shard's arrays and bitmaps (what a snapshot has to write)."""
    n = shard.n_rows
    total = shard.events.nbytes() + shard.index.state()["buf"].nbytes + n * (8 + 8 + 1)
    for col in shard.columns.values():
        st = col.state(n)
        total += sum(v.nbytes for v in st.values() if isinstance(v, np.ndarray))
        total += sum(len(b.serialize()) for b in st.get("bitmaps", []))
    return total


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--profiles", type=int, default=1_000_000)
    ap.add_argument("--events-per-profile", type=float, default=7.4)
    ap.add_argument("--ingest-profiles", type=int, default=1_000_000)
    ap.add_argument("--batch", type=int, default=10_000)
    ap.add_argument("--writers", type=int, default=4)
    ap.add_argument("--shards", type=int, default=2)
    ap.add_argument("--tail", type=int, default=20, help="WAL batches after the snapshot")
    args = ap.parse_args()
    print(f"load {os.getloadavg()}")
    batches = list(sample.batches(args.ingest_profiles, args.batch))
    rates = {"memory": ingest_rate(None, "never", batches, args.writers, args.shards)}
    for policy in ("never", "interval=100", "always"):
        root = Path(tempfile.mkdtemp(prefix="cdp-dur-"))
        try:
            rates[policy] = ingest_rate(root, policy, batches, args.writers, args.shards)
        finally:
            shutil.rmtree(root, ignore_errors=True)
    print(f"ingest of {args.ingest_profiles:,} profiles, batches of {args.batch:,}, {args.writers} writers, "
          f"{args.shards} shards:")
    for k, v in rates.items():
        print(f"  {k:14s} {v:12,.0f} profiles/s  ({v / rates['never']:.0%} of fsync=never)")
    print(f"  target: always ≥ 70% of never -> {'pass' if rates['always'] >= 0.7 * rates['never'] else 'FAIL'}")
    root = Path(tempfile.mkdtemp(prefix="cdp-snap-"))
    try:
        r = snapshot_and_recovery(root, args.profiles, args.events_per_profile, args.tail)
    finally:
        shutil.rmtree(root, ignore_errors=True)
    print(f"one shard: {r['profiles']:,} profiles, {r['events']:,} events (loaded in {r['load_s']:.1f} s)")
    print(f"  snapshot {r['snapshot_s']:.2f} s, {r['snapshot_bytes'] / 2**20:,.0f} MiB "
          f"(in memory {r['memory_bytes'] / 2**20:,.0f} MiB, ratio {r['snapshot_bytes'] / r['memory_bytes']:.2f})")
    print(f"  recovery {r['recover_s']:.2f} s (snapshot + {r['replayed']} WAL records), "
          f"answers equal: {r['same_answers']}")
    print(f"load {os.getloadavg()}")


if __name__ == "__main__":
    main()
