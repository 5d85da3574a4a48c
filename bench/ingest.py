"""Load throughput of the embedded Store: upsert_columns and upsert(list of dicts).

    python bench/ingest.py                           # 2,000,000 columnar + 1,000,000 dict rows
    python bench/ingest.py --profiles 10000000 --dict-profiles 1000000 --update
    python bench/ingest.py --profiles 0 --dict-profiles 0 --events 20000000   # events only

After a warm-up (1,000 profiles into a throwaway store, so one-time costs such as
lazy imports are not timed), each path loads a fresh `Store(shards=2)` with the declared `cdpcore.sample.SCHEMA`.
Data is generated batch by batch (seeded, `cdpcore.sample`) and only the Store call is
timed, so the figures are the Store's ingest rate, not the generator's:

- columns: `store.upsert_columns(ids, columns)` with Categorical / TagSets / numpy and
  masked-array columns, batches of `--batch` (1,000,000);
- dicts: `store.upsert(rows)` with one dict per profile (None for nulls, timestamps as
  ISO strings, tags as lists), batches of `--dict-batch` (100,000);
- with `--update`, each path then upserts the same ids again with different values
  (seed + 1), timing updates of existing profiles;
- events (`--events`, default 5,000,000; 0 skips): a fresh store is loaded (untimed)
  with `--event-profiles` profiles (default: events ÷ 10), then their synthetic events
  (`cdpcore.sample.iter_events`, about 10 per profile, roughly time-ordered with late
  arrivals) are tracked with `store.track_columns`, `--event-batch` (1,000,000) per
  call, ids as strings; then as many again with the ids dictionary-encoded
  (`Categorical`, one dictionary per batch: each distinct id hashed once); then
  `--event-dicts` (200,000; 0 skips) as dicts with `store.track`. The event stores'
  size (`shard.events.nbytes()` ÷ events held) is reported after each columnar path.
"""
from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path
from typing import Any, Callable, Iterator

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.events import event_store_size  # noqa: E402
from bench.query_suite import batch_ranges, make_store, warm_up  # noqa: E402
from cdpcore import sample  # noqa: E402

TARGETS = {"columns": 1_000_000, "dicts": 200_000, "event columns": 1_000_000,
           "event cols, dict ids": 1_000_000}


def timed_load(store, n: int, batch: int, seed: int, make: Callable[[int, int], Any],
               call: Callable[[Any], Any], label: str) -> dict[str, Any]:
    seconds = 0.0
    accepted = errors = 0
    for lo, k in batch_ranges(n, batch):
        data = make(k, lo)
        t0 = time.perf_counter()
        res = call(data)
        seconds += time.perf_counter() - t0
        accepted += res.accepted
        errors += len(res.errors)
        if res.errors:
            print(f"!! {label}: {len(res.errors)} errors, first: {res.errors[:3]}", file=sys.stderr)
        del data, res
        print(f"\r  {label}: {lo + k:,}/{n:,} ({(lo + k) / seconds:,.0f}/s)", end="", file=sys.stderr)
    print(file=sys.stderr)
    return {"path": label, "profiles": n, "batch": batch, "seconds": seconds,
            "profiles_per_s": n / seconds if seconds else float("inf"),
            "accepted": accepted, "errors": errors}


def run_columns(n: int, batch: int, shards: int, seed: int, update: bool) -> list[dict[str, Any]]:
    store = make_store(shards)
    make = lambda s: (lambda k, lo: sample.generate_columns(k, s, lo))  # noqa: E731
    call = lambda d: store.upsert_columns(*d)  # noqa: E731
    out = [timed_load(store, n, batch, seed, make(seed), call, "columns")]
    if update:
        out.append(timed_load(store, n, batch, seed + 1, make(seed + 1), call, "columns update"))
    assert len(store) == n, f"store holds {len(store)} profiles, expected {n}"
    store.close()
    return out


def run_dicts(n: int, batch: int, shards: int, seed: int, update: bool) -> list[dict[str, Any]]:
    store = make_store(shards)
    make = lambda s: (lambda k, lo: sample.generate_rows(k, s, lo))  # noqa: E731
    out = [timed_load(store, n, batch, seed, make(seed), store.upsert, "dicts")]
    if update:
        out.append(timed_load(store, n, batch, seed + 1, make(seed + 1), store.upsert, "dicts update"))
    assert len(store) == n, f"store holds {len(store)} profiles, expected {n}"
    store.close()
    return out


def event_rows(ev: dict[str, Any]) -> list[dict[str, Any]]:
    """The dict form of an `iter_events` dict for `Store.track`: ISO-8601 times, and only
    the properties an event has (no None)."""
    types = np.array(sample.EVENT_TYPES, dtype=object)[ev["types"].codes].tolist()
    ts = np.datetime_as_string(ev["ts"], unit="s", timezone="UTC").tolist()
    amount = ev["properties"]["amount"]
    amounts = np.ma.getdata(amount).tolist()
    has_amount = (~np.ma.getmaskarray(amount)).tolist()
    cats = np.array(list(sample.EVENT_CATEGORIES) + [None], dtype=object)
    categories = cats[ev["properties"]["category"].codes].tolist()
    rows = []
    for pid, t, when, a, has, c in zip(ev["ids"], types, ts, amounts, has_amount, categories):
        row = {"profile_id": pid, "type": t, "ts": when}
        if has:
            row["amount"] = a
        if c is not None:
            row["category"] = c
        rows.append(row)
    return rows


def timed_events(batches: Iterator[Any], call: Callable[[Any], Any], label: str,
                 batch: int) -> dict[str, Any]:
    """Time `call` on each batch of events (the generator is not timed)."""
    seconds = 0.0
    events = accepted = errors = calls = 0
    for data in batches:
        t0 = time.perf_counter()
        res = call(data)
        seconds += time.perf_counter() - t0
        calls += 1
        events += len(data["ids"]) if isinstance(data, dict) else len(data)
        accepted += res.accepted
        errors += len(res.errors)
        if res.errors:
            print(f"!! {label}: {len(res.errors)} errors, first: {res.errors[:3]}", file=sys.stderr)
        del data, res
        print(f"\r  {label}: {events:,} ({events / seconds:,.0f}/s)", end="", file=sys.stderr)
    print(file=sys.stderr)
    return {"path": label, "events": events, "batch": batch, "calls": calls, "seconds": seconds,
            "events_per_s": events / seconds if seconds else float("inf"),
            "accepted": accepted, "errors": errors}


def run_events(n_events: int, n_profiles: int, batch: int, n_dicts: int, dict_batch: int,
               shards: int, seed: int) -> list[dict[str, Any]]:
    """Track ~n_events synthetic events of n_profiles existing profiles (loaded untimed)."""
    store = make_store(shards)
    for lo, k in batch_ranges(n_profiles, 1_000_000):
        store.upsert_columns(*sample.generate_columns(k, seed, lo))
    out = []
    for dict_ids, label in ((False, "event columns"), (True, "event cols, dict ids")):
        parts = sample.event_batches(n_profiles, n_events / n_profiles, seed + dict_ids,
                                     batch_size=batch, dict_ids=dict_ids)
        out.append(timed_events(parts, lambda ev: store.track_columns(**ev), label, batch))
        held, nbytes = event_store_size(store)
        out[-1].update(events_held=held, event_store_bytes=nbytes,
                       bytes_per_event=nbytes / held if held else None)
    if n_dicts:
        dicts = (event_rows(ev) for ev in
                 sample.event_batches(n_profiles, n_dicts / n_profiles, seed + 1, batch_size=dict_batch))
        out.append(timed_events(dicts, store.track, "event dicts", dict_batch))
    assert len(store) == n_profiles, f"store holds {len(store)} profiles, expected {n_profiles}"
    store.close()
    return out


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--profiles", type=int, default=2_000_000, help="columnar profiles (2,000,000)")
    p.add_argument("--dict-profiles", type=int, default=None,
                   help="dict rows (default: --profiles, at most 1,000,000; 0 skips)")
    p.add_argument("--batch", type=int, default=1_000_000, help="columnar batch size (1,000,000)")
    p.add_argument("--dict-batch", type=int, default=100_000, help="dict batch size (100,000)")
    p.add_argument("--events", type=int, default=5_000_000,
                   help="events tracked with track_columns, about (5,000,000; 0 skips)")
    p.add_argument("--event-profiles", type=int, default=None,
                   help="profiles the events belong to (default: events ÷ 10)")
    p.add_argument("--event-batch", type=int, default=1_000_000, help="events per track_columns call")
    p.add_argument("--event-dicts", type=int, default=200_000,
                   help="events tracked as dicts with track, about (200,000; 0 skips)")
    p.add_argument("--event-dict-batch", type=int, default=10_000, help="events per track call")
    p.add_argument("--shards", type=int, default=2)
    p.add_argument("--seed", type=int, default=42)
    p.add_argument("--update", action="store_true", help="also time updates of existing profiles")
    p.add_argument("--json", metavar="OUT", help="also write the results as JSON to OUT")
    a = p.parse_args(argv)
    n_dicts = min(a.profiles, 1_000_000) if a.dict_profiles is None else a.dict_profiles

    warm_up(a.shards)
    results = []
    if a.profiles:
        results += run_columns(a.profiles, a.batch, a.shards, a.seed, a.update)
    if n_dicts:
        results += run_dicts(n_dicts, a.dict_batch, a.shards, a.seed, a.update)
    if a.events:
        n_prof = a.event_profiles or max(1, a.events // 10)
        results += run_events(a.events, n_prof, a.event_batch, a.event_dicts, a.event_dict_batch,
                              a.shards, a.seed)

    print(f"\ncdpcore ingest — Store(shards={a.shards}), seed {a.seed}")
    head = f"{'path':<21}{'records':>12}{'batch':>11}{'seconds':>9}{'records/s':>13}  target"
    print(head + "\n" + "-" * len(head))
    for r in results:
        n, rate = (r["events"], r["events_per_s"]) if "events" in r else (r["profiles"], r["profiles_per_s"])
        target = TARGETS.get(r["path"])
        verdict = "" if target is None else f"{'pass' if rate >= target else 'FAIL'} (≥ {target:,}/s)"
        print(f"{r['path']:<21}{n:>12,}{r['batch']:>11,}{r['seconds']:>9.2f}{rate:>13,.0f}  {verdict}")
    for r in results:
        if r.get("bytes_per_event") is not None:
            print(f"event store: {r['events_held']:,} events in {r['event_store_bytes'] / 2**20:,.1f} MiB "
                  f"= {r['bytes_per_event']:.2f} B/event (target ≤ 14)")
    if a.json:
        Path(a.json).parent.mkdir(parents=True, exist_ok=True)
        Path(a.json).write_text(json.dumps({"when": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
                                            "args": vars(a), "results": results}, indent=2))
        print(f"\nwrote {a.json}")
    return 1 if any(r["errors"] for r in results) else 0


if __name__ == "__main__":
    sys.exit(main())
