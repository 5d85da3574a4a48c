"""Load throughput of the embedded Store: upsert_columns and upsert(list of dicts).

    python bench/ingest.py                           # 2,000,000 columnar + 1,000,000 dict rows
    python bench/ingest.py --profiles 10000000 --dict-profiles 1000000 --update

After a warm-up (1,000 profiles into a throwaway store, so one-time costs such as
lazy imports are not timed), each path loads a fresh `Store(shards=2)` with the declared `cdpcore.sample.SCHEMA`.
Data is generated batch by batch (seeded, `cdpcore.sample`) and only the Store call is
timed, so the figures are the Store's ingest rate, not the generator's:

- columns: `store.upsert_columns(ids, columns)` with Categorical / TagSets / numpy and
  masked-array columns, batches of `--batch` (1,000,000);
- dicts: `store.upsert(rows)` with one dict per profile (None for nulls, timestamps as
  ISO strings, tags as lists), batches of `--dict-batch` (100,000);
- with `--update`, each path then upserts the same ids again with different values
  (seed + 1), timing updates of existing profiles.
"""
from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path
from typing import Any, Callable

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.query_suite import batch_ranges, make_store, warm_up  # noqa: E402
from cdpcore import sample  # noqa: E402

TARGETS = {"columns": 1_000_000, "dicts": 200_000}


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


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--profiles", type=int, default=2_000_000, help="columnar profiles (2,000,000)")
    p.add_argument("--dict-profiles", type=int, default=None,
                   help="dict rows (default: --profiles, at most 1,000,000; 0 skips)")
    p.add_argument("--batch", type=int, default=1_000_000, help="columnar batch size (1,000,000)")
    p.add_argument("--dict-batch", type=int, default=100_000, help="dict batch size (100,000)")
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

    print(f"\ncdpcore ingest — Store(shards={a.shards}), seed {a.seed}")
    head = f"{'path':<16}{'profiles':>12}{'batch':>11}{'seconds':>9}{'profiles/s':>13}  target"
    print(head + "\n" + "-" * len(head))
    for r in results:
        target = TARGETS.get(r["path"])
        verdict = "" if target is None else \
            f"{'pass' if r['profiles_per_s'] >= target else 'FAIL'} (≥ {target:,}/s)"
        print(f"{r['path']:<16}{r['profiles']:>12,}{r['batch']:>11,}{r['seconds']:>9.2f}"
              f"{r['profiles_per_s']:>13,.0f}  {verdict}")
    if a.json:
        Path(a.json).parent.mkdir(parents=True, exist_ok=True)
        Path(a.json).write_text(json.dumps({"when": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
                                            "args": vars(a), "results": results}, indent=2))
        print(f"\nwrote {a.json}")
    return 1 if any(r["errors"] for r in results) else 0


if __name__ == "__main__":
    sys.exit(main())
