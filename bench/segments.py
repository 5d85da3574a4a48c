"""Saved-segment costs (issue 5), embedded engine: what each saved segment costs a write,
`in_segment` latency, segment creation and refresh times, and where the time goes.

    python bench/segments.py                                  # 1M profiles, 3 events each
    python bench/segments.py --maintenance-profile            # + per-segment timing and cProfile
    python bench/segments.py --profiles 10000000 --events-per-profile 0 --latency-only

1. Loads `--profiles` synthetic profiles (cdpcore.sample, seeded) and about
   `--events-per-profile` events each into `Store(shards=--shards)` whose clock is
   pinned at `sample.REF_NOW` (movable, for the refresh figures).
2. Ingest with 0, 10 and 100 saved segments (`segment_mix`: attribute conditions,
   tag tests, event conditions, clock-relative conditions and segments reading
   segments, interleaved so the first 10 are the same mix as all 100), then 0 again
   (the drift check: the store grew and the machine's load may have changed). Per
   phase, `--rounds` batches of `--batch` (10,000) of each kind, only the Store call
   timed: full-row updates of random existing profiles, 3-field updates, new profiles
   (upsert_columns), and event batches (track_columns, ids as a Categorical, recent
   events). Throughput relative to the mean of the two 0-segment phases; targets: 10
   segments ≥ 80 %, 100 ≥ 50 %. Rates come from the median batch (a one-off column
   capacity doubling, ≈ 1 s at 5M rows per shard, would dominate a total over a few
   batches); the slowest batch is shown next to each.
3. Creation time of each segment (by kind); `refresh_segments()` time with the
   clock-dependent ones among the 100 (after moving the clock one day).
4. `in_segment('x')` latency: `count`, a mixed condition and a group-by, next to the
   same condition evaluated afresh.
5. Watcher latency: acknowledged single-profile upsert → change received by a thread
   blocked in `poll()` (target: median ≤ 50 ms).
6. With `--maintenance-profile`: per-segment re-check time per batch (a timing wrapper
   around `Memberships._recheck`; segments are re-checked together, so a leaf or event
   gather shared by several is charged to the first that needs it), by kind and the
   costliest segments, and a cProfile of one batch of each kind with the shards run one
   after the other.

Timings are only meaningful on a quiet machine: the 1-minute load average is printed
before and after each phase.
"""
from __future__ import annotations

import argparse
import cProfile
import gc
import io
import json
import os
import pstats
import statistics
import sys
import threading
import time
from collections import defaultdict
from pathlib import Path
from typing import Any

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.measure import time_it  # noqa: E402
from cdpcore import Store, sample  # noqa: E402

REF_NOW_S = sample.REF_NOW.timestamp()
TARGETS = {10: 0.80, 100: 0.50}
LATENCY_TARGET_MS = 2.0
WATCH_TARGET_MS = 50.0
KINDS = ("update", "update3", "new", "events")
PARTIAL_FIELDS = ("lifetime_value", "orders_count", "last_seen")

# ---- the segments -------------------------------------------------------------------------

_PATTERN = ["attr", "event", "tag", "attr", "event", "derived", "attr", "tag", "event", "clock"]
_COUNTRIES = ["JP", "US", "GB", "DE", "FR", "BR", "CA", "IN", "MX", "AU"]
_CATS = sample.EVENT_CATEGORIES


def _attr(i: int) -> str:
    c, a = _COUNTRIES[i % 10], 18 + (i * 7) % 45
    return [f"country = '{c}' AND age BETWEEN {a} AND {a + 9}",
            f"plan = '{sample.PLANS[i % 4]}' AND lifetime_value > {100 * (i % 7 + 1)}",
            f"gender = 'female' AND orders_count >= {i % 5 + 1} AND country IN ('{c}', 'US')",
            f"city LIKE 'San%' AND age >= {a}",
            f"signup_ts >= '{2016 + i % 10}-01-01' AND is_subscriber"][i % 5]


def _tag(i: int) -> str:
    t = sample.INTERESTS
    return [f"has(interests, '{t[i % 20]}')",
            f"has_any(interests, '{t[i % 20]}', '{t[(i + 7) % 20]}') AND is_subscriber",
            f"has(interests, '{t[i % 20]}') AND NOT has(interests, '{t[(i + 3) % 20]}') AND age < 40"][i % 3]


def _event(i: int) -> str:
    return [f"event_count('purchase', '30d') >= {i % 3 + 1}",
            f"event_sum('purchase', 'amount', '90d') > {50 * (i % 6 + 1)}",
            f"event_count('purchase', '30d', category = '{_CATS[i % 20]}') >= 1",
            "event_count('add_to_cart', '7d') >= 1 AND event_count('purchase', '7d') = 0",
            f"last_seen('app_open') < now() - INTERVAL '{7 * (i % 4 + 1)} days'",
            f"event_count('page_view', '{i % 4 + 1}d') >= 3 AND country = '{_COUNTRIES[i % 10]}'"][i % 6]


def _clock(i: int) -> str:
    return [f"last_seen < now() - INTERVAL '{14 * (i % 3 + 1)} days' AND is_subscriber",
            f"signup_ts >= now() - INTERVAL '{30 * (i % 6 + 1)} days'"][i % 2]


def segment_mix(n: int) -> list[tuple[str, str, str]]:
    """(name, kind, where) for n segments; `derived` ones read earlier segments."""
    out: list[tuple[str, str, str]] = []
    for i in range(n):
        kind = _PATTERN[i % 10]
        r = i // 10 + i
        if kind == "derived":
            attr = next(nm for nm, k, _ in reversed(out) if k == "attr")
            event = next(nm for nm, k, _ in reversed(out) if k == "event")
            where = [f"in_segment('{attr}') AND is_subscriber",
                     f"NOT in_segment('{event}') AND country = 'US'",
                     f"in_segment('{attr}') OR in_segment('{event}')"][(i // 10) % 3]
        else:
            where = {"attr": _attr, "tag": _tag, "event": _event, "clock": _clock}[kind](r)
        out.append((f"seg{i:03d}_{kind}", kind, where))
    return out


# ---- helpers ----------------------------------------------------------------------------------

def load_avg() -> str:
    return "load %.2f %.2f %.2f" % os.getloadavg()


def log(msg: str) -> None:
    print(msg, file=sys.stderr, flush=True)


def make_store(shards: int) -> tuple[Store, list[float]]:
    t = [REF_NOW_S]
    store = Store(shards=shards, clock=lambda: t[0], segment_refresh_s=None)
    store.define_fields(sample.SCHEMA)
    return store, t


def load(store: Store, n: int, events_per_profile: float, seed: int) -> dict[str, float]:
    t0 = time.perf_counter()
    for ids, cols in sample.batches(n, 1_000_000, seed=seed):
        store.upsert_columns(ids, cols)
    t1 = time.perf_counter()
    events = 0
    if events_per_profile > 0:
        for part in sample.event_batches(n, events_per_profile, seed=seed, batch_size=1_000_000,
                                         dict_ids=True):
            events += store.track_columns(**part).accepted
    t2 = time.perf_counter()
    return {"profiles": n, "profile_load_s": t1 - t0, "events": events, "event_load_s": t2 - t1}


def _random_ids(all_ids: np.ndarray, k: int, rng: np.random.Generator) -> list[str]:
    return all_ids[rng.choice(len(all_ids), size=k, replace=False)].tolist()


def make_batches(n: int, batch: int, rounds: int, phases: int, seed: int,
                 events_per_profile: float) -> list[dict[str, list]]:
    """Per phase, `rounds` batches of each kind, generated before anything is timed."""
    rng = np.random.default_rng(seed)
    all_ids = np.array(sample.make_ids(n), dtype=object)
    # recent events of the same profiles: the last batches of a time-ordered stream
    need = phases * rounds + 1
    per = max(1.0, 1.5 * need * batch / n)
    chunks = sample.event_batches(n, per, seed=seed + 1, batch_size=batch, chunk=int(n * per) + 1,
                                  dict_ids=True)
    events = [c for c in chunks if len(c["ids"]) == batch][-need:]
    if len(events) < need:
        raise SystemExit(f"only {len(events)} full event batches; raise --events-per-profile")
    out, new_start = [], n
    for p in range(phases):
        kinds: dict[str, list] = {k: [] for k in KINDS}
        for r in range(rounds):
            s = seed + 100 * p + r
            _, cols = sample.generate_columns(batch, seed=s, start=(p * rounds + r) * batch)
            kinds["update"].append((_random_ids(all_ids, batch, rng), cols))
            kinds["update3"].append((_random_ids(all_ids, batch, rng),
                                     {f: cols[f] for f in PARTIAL_FIELDS}))
            kinds["new"].append(sample.generate_columns(batch, seed=s, start=new_start))
            new_start += batch
            kinds["events"].append(events[p * rounds + r])
        out.append(kinds)
    out.append({"warmup": [events[-1]]})
    return out


def run_batch(store: Store, kind: str, data: Any) -> float:
    t0 = time.perf_counter()
    if kind == "events":
        res = store.track_columns(**data)
    else:
        res = store.upsert_columns(*data)
    dt = time.perf_counter() - t0
    if res.errors:
        log(f"!! {kind}: {len(res.errors)} errors: {res.errors[:2]}")
    return dt


def run_phase(store: Store, batches: dict[str, list]) -> dict[str, dict[str, float]]:
    """Round-robin over the kinds, so load drift hits every kind alike."""
    seconds: dict[str, list[float]] = defaultdict(list)
    rows: dict[str, int] = defaultdict(int)
    for r in range(len(batches["update"])):
        for kind in KINDS:
            data = batches[kind][r]
            seconds[kind].append(run_batch(store, kind, data))
            rows[kind] += len(data["ids"]) if kind == "events" else len(data[0])
    # the median batch is the figure: one batch may pay a one-off column capacity doubling
    # (≈ 1 s at 5M rows per shard), which would dominate a total over a few batches
    n = {k: rows[k] / len(seconds[k]) for k in KINDS}
    return {k: {"rows_per_s": n[k] / statistics.median(seconds[k]), "total_rows_per_s": rows[k] / sum(seconds[k]),
                "median_ms": 1e3 * statistics.median(seconds[k]), "max_ms": 1e3 * max(seconds[k])} for k in KINDS}


def set_segments(store: Store, mix: list[tuple[str, str, str]], k: int) -> list[dict[str, Any]]:
    """Bring the store to the first k segments of `mix` (creating or deleting); returns creation timings."""
    have = [s.name for s in store.list_segments()]
    for name in reversed(have[k:]):
        store.delete_segment(name)
    made = []
    for name, kind, where in mix[len(have):k]:
        t0 = time.perf_counter()
        info = store.create_segment(name, where)
        made.append({"name": name, "kind": kind, "ms": 1e3 * (time.perf_counter() - t0), "size": info.size,
                     "time_dependent": info.time_dependent})
    return made


# ---- latency ------------------------------------------------------------------------------------

LAT_SEGMENTS = [("x", "country = 'JP' AND age BETWEEN 25 AND 34"),
                ("big", "is_subscriber OR has(interests, 'travel')")]
LAT_QUERIES = [("count x", "count", "in_segment('x')", "country = 'JP' AND age BETWEEN 25 AND 34"),
               ("count big", "count", "in_segment('big')", "is_subscriber OR has(interests, 'travel')"),
               ("mixed x", "count", "in_segment('x') AND has(interests, 'golf') AND NOT is_subscriber",
                "country = 'JP' AND age BETWEEN 25 AND 34 AND has(interests, 'golf') AND NOT is_subscriber"),
               # never unknown: every live profile outside x (NOT of the condition would drop nulls)
               ("not x", "count", "NOT in_segment('x')",
                "NOT (country = 'JP' AND age BETWEEN 25 AND 34) OR country IS NULL OR age IS NULL"),
               ("group x", "query", "SELECT plan, count(*) FROM profiles WHERE in_segment('x') GROUP BY plan",
                "SELECT plan, count(*) FROM profiles WHERE country = 'JP' AND age BETWEEN 25 AND 34 "
                "GROUP BY plan")]


def latency(store: Store, repeat: int) -> dict[str, Any]:
    out: dict[str, Any] = {"create_ms": {}}
    for name, where in LAT_SEGMENTS:
        if name not in store.segment_catalog.names():
            t0 = time.perf_counter()
            store.create_segment(name, where)
            out["create_ms"][name] = 1e3 * (time.perf_counter() - t0)
    for label, how, seg_sql, fresh_sql in LAT_QUERIES:
        run = (lambda q: (lambda: store.count(q))) if how == "count" else (lambda q: (lambda: store.query(q).rows))
        a, b = time_it(run(seg_sql), repeat, warmup=2), time_it(run(fresh_sql), max(3, repeat // 5), warmup=1)
        same = a.result == b.result
        out[label] = {"sql": seg_sql, "median_ms": a.median, "p95_ms": a.p95, "fresh_median_ms": b.median,
                      "same_answer": same}
    return out


def watcher_latency(store: Store, samples: int) -> dict[str, float]:
    """Acknowledged upsert → change in a thread blocked in poll(); one profile toggled."""
    if "lat" not in store.segment_catalog.names():
        store.create_segment("lat", "orders_count >= 1000000")
    w = store.watch_segment("lat", initial=False)
    got: list[float] = []
    done = threading.Event()

    def reader() -> None:
        while not done.is_set() and len(got) < samples:
            for _ in w.poll(timeout=0.5):
                got.append(time.perf_counter())

    th = threading.Thread(target=reader, daemon=True)
    th.start()
    acks = []
    for i in range(samples):
        n = len(got)
        store.upsert_columns(["watch-probe"], {"orders_count": np.array([1_000_000 if i % 2 == 0 else 0])})
        acks.append(time.perf_counter())
        deadline = time.perf_counter() + 2
        while len(got) <= n and time.perf_counter() < deadline:
            time.sleep(0.0002)
    done.set()
    th.join(2)
    ms = [1e3 * (g - a) for a, g in zip(acks, got)]
    return {"samples": len(ms), "median_ms": statistics.median(ms), "p95_ms": float(np.percentile(ms, 95)),
            "max_ms": max(ms)}


# ---- where the maintenance time goes ------------------------------------------------------------

def recheck_costs(store: Store, batches: dict[str, list], kinds: dict[str, str]) -> dict[str, Any]:
    """Per segment, the time of Memberships._recheck per batch (all shards, run one after
    the other through the Store's private `_pool`, bench-only), per batch kind."""
    from cdpcore import membership
    orig = membership.Memberships._recheck
    acc: dict[str, float] = defaultdict(float)
    lock = threading.Lock()

    def timed(self, cands, state):
        t0 = time.perf_counter()
        try:
            return orig(self, cands, state)
        finally:
            with lock:
                acc[state.defn.name] += time.perf_counter() - t0

    out: dict[str, Any] = {}
    membership.Memberships._recheck = timed
    pool, store._pool = store._pool, None      # shards one after the other: no GIL waits in the timings
    try:
        for kind in KINDS:
            acc.clear()
            n = len(batches[kind])
            total = sum(run_batch(store, kind, d) for d in batches[kind])
            per_seg = {name: 1e3 * s / n for name, s in acc.items()}
            by_kind: dict[str, list[float]] = defaultdict(list)
            for name, ms in per_seg.items():
                by_kind[kinds.get(name, "?")].append(ms)
            out[kind] = {"batch_ms": 1e3 * total / n, "recheck_ms_total": sum(per_seg.values()),
                         "segments_rechecked": len(per_seg),
                         "by_kind_mean_ms": {k: statistics.mean(v) for k, v in sorted(by_kind.items())},
                         "by_kind_count": {k: len(v) for k, v in sorted(by_kind.items())},
                         "top": sorted(per_seg.items(), key=lambda kv: -kv[1])[:8]}
    finally:
        membership.Memberships._recheck = orig
        store._pool = pool
    return out


def cprofile_batches(store: Store, batches: dict[str, list], top: int = 14) -> dict[str, str]:
    """cProfile one batch of each kind, shards sequential (cProfile sees one thread only;
    uses the Store's private `_pool`, bench-only)."""
    pool, store._pool = store._pool, None
    out = {}
    try:
        for kind in KINDS:
            prof = cProfile.Profile()
            data = batches[kind][0]
            t0 = time.perf_counter()
            prof.runcall(run_batch, store, kind, data)
            ms = 1e3 * (time.perf_counter() - t0)
            buf = io.StringIO()
            st = pstats.Stats(prof, stream=buf)
            st.sort_stats("tottime").print_stats(top)
            st.sort_stats("cumulative").print_stats(top)
            text = "\n".join(ln for ln in buf.getvalue().splitlines() if ln.strip())
            out[kind] = (f"{ms:.1f} ms for one batch under cProfile, shards sequential\n"
                         f"{_breakdown(st)}\n{text}")
    finally:
        store._pool = pool
    return out


# The parts of segment upkeep (membership.after_write) and of the write around it.
_PARTS = [("after_write", "membership.py", "after_write"), ("  _recheck", "membership.py", "_recheck"),
          ("    CandidateRows.test (conditions, shared)", "candidates.py", "test"),
          ("      leaves", "candidates.py", "_leaf"),
          ("      event leaves", "executor.py", "filter_event_leaf"),
          ("        RowEvents._gather (scans)", "row_events.py", "_gather"),
          ("        EventLog.seal", "events.py", "seal"),
          ("    in_bitmap (was a member?)", "candidates.py", "in_bitmap"),
          ("  candidates (rows per segment)", "membership.py", "candidates"),
          ("  _log_moves (change log)", "membership.py", "_log_moves"),
          ("    id_bytes (ids kept as bytes)", "ids.py", "id_bytes"),
          ("    ChangeLog.append_many", "membership.py", "append_many"),
          ("Shard.upsert", "shard.py", "upsert"), ("Shard.track", "shard.py", "track")]


def _breakdown(st: pstats.Stats) -> str:
    """Cumulative ms and calls of the parts of segment maintenance, from a profile."""
    lines = ["part                                   cum ms   calls"]
    for label, file, func in _PARTS:
        hits = [(v[1], v[3]) for (f, _, fn), v in st.stats.items() if f.endswith(file) and fn == func]
        if hits:
            calls, cum = sum(h[0] for h in hits), sum(h[1] for h in hits)
            lines.append(f"{label:<36} {1e3 * cum:8.1f} {calls:7d}")
    return "\n".join(lines)


# ---- main ---------------------------------------------------------------------------------------

def refresh_times(store: Store, t: list[float], repeat: int = 3) -> dict[str, Any]:
    times, names = [], []
    for _ in range(repeat):
        t[0] += 86_400
        t0 = time.perf_counter()
        names = store.refresh_segments()
        times.append(1e3 * (time.perf_counter() - t0))
    t[0] = REF_NOW_S
    store.refresh_segments()
    return {"segments": len(names), "median_ms": statistics.median(times), "all_ms": times,
            "per_segment_ms": statistics.median(times) / max(1, len(names))}


def print_report(res: dict[str, Any]) -> None:
    p = print
    p(f"\n== saved segments bench: {res['setup']}")
    if "phases" in res:
        base = res["baseline"]
        p("\ningest throughput (rows or events per s from the median batch; ratio to the mean of the two "
          "0-segment phases; slowest batch in ms)")
        p(f"{'phase':>12} " + " ".join(f"{k + ' (max ms)':>24}" for k in KINDS) + "   load")
        for ph in res["phases"]:
            cells = [f"{ph['tput'][k]['rows_per_s']:>10,.0f} ({ph['tput'][k]['rows_per_s'] / base[k]:>4.0%}) "
                     f"{ph['tput'][k]['max_ms']:>5.0f}" for k in KINDS]
            p(f"{ph['segments']:>4} segs {'':>3} " + " ".join(f"{c:>24}" for c in cells) + f"   {ph['load']}")
        for k, need in TARGETS.items():
            ph = next((x for x in res["phases"] if x["segments"] == k), None)
            if ph is None:  # --segments without this count
                continue
            worst = min(ph["tput"][kd]["rows_per_s"] / base[kd] for kd in KINDS)
            verdict = "ok" if worst >= need else "FAIL"
            p(f"target {k} segments ≥ {need:.0%} of none: worst kind {worst:.0%} -> {verdict}")
        c = res["create"]
        p("\nsegment creation (ms): " + ", ".join(f"{k} median {v['median']:.1f} max {v['max']:.1f} (n={v['n']})"
                                               for k, v in c.items()))
        r = res["refresh"]
        p(f"refresh_segments(): {r['segments']} clock-dependent segments in {r['median_ms']:.0f} ms "
          f"({r['per_segment_ms']:.1f} ms each)")
    lat = res["latency"]
    p(f"\nin_segment latency at {res['setup']['profiles']:,} profiles (target ≤ {LATENCY_TARGET_MS} ms at 10M); "
      f"create: " + ", ".join(f"{k} {v:.0f} ms" for k, v in lat["create_ms"].items()))
    for label, v in lat.items():
        if label != "create_ms":
            p(f"  {label:<10} median {v['median_ms']:7.2f} ms  p95 {v['p95_ms']:7.2f}  "
              f"(condition afresh {v['fresh_median_ms']:7.2f} ms)"
              f"{'' if v['same_answer'] else '  MISMATCH'}  {v['sql']}")
    if "watch" in res:
        w = res["watch"]
        p(f"\nwatcher latency (ack → change): median {w['median_ms']:.2f} ms, p95 {w['p95_ms']:.2f}, "
          f"max {w['max_ms']:.2f} ({w['samples']} samples; target median ≤ {WATCH_TARGET_MS} ms)")
    if "recheck" in res:
        p("\nper-segment re-check time per batch (ms, both shards run one after the other; Memberships._recheck):")
        for kind, v in res["recheck"].items():
            p(f"  {kind}: batch {v['batch_ms']:.1f} ms, re-checks {v['recheck_ms_total']:.1f} ms over "
              f"{v['segments_rechecked']} segments; mean by segment kind: "
              + ", ".join(f"{k} {m:.2f} (n={v['by_kind_count'][k]})" for k, m in v["by_kind_mean_ms"].items()))
            p("     costliest: " + ", ".join(f"{n} {ms:.2f}" for n, ms in v["top"][:5]))
    for kind, text in res.get("cprofile", {}).items():
        p(f"\n--- cProfile, {kind} ---\n{text}")


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--profiles", type=int, default=1_000_000)
    ap.add_argument("--events-per-profile", type=float, default=3.0)
    ap.add_argument("--shards", type=int, default=2)
    ap.add_argument("--batch", type=int, default=10_000)
    ap.add_argument("--rounds", type=int, default=6)
    ap.add_argument("--segments", default="0,10,100")
    ap.add_argument("--repeat", type=int, default=50)
    ap.add_argument("--seed", type=int, default=42)
    ap.add_argument("--latency-only", action="store_true", help="load, then in_segment latency only")
    ap.add_argument("--maintenance-profile", action="store_true")
    ap.add_argument("--json", type=Path)
    args = ap.parse_args(argv)
    counts = [int(x) for x in args.segments.split(",")]
    res: dict[str, Any] = {"setup": {"profiles": args.profiles, "events_per_profile": args.events_per_profile,
                                     "shards": args.shards, "batch": args.batch, "rounds": args.rounds,
                                     "cpus": os.cpu_count()}}
    log(f"{load_avg()}; loading {args.profiles:,} profiles")
    store, t = make_store(args.shards)
    res["setup"]["load"] = load(store, args.profiles, args.events_per_profile, args.seed)
    log(f"loaded: {res['setup']['load']}; {load_avg()}")
    gc.collect()
    if not args.latency_only:
        phases = counts + [0]
        batches = make_batches(args.profiles, args.batch, args.rounds, len(phases), args.seed + 1,
                               args.events_per_profile)
        for data in batches[-1]["warmup"]:
            run_batch(store, "events", data)
        # the bench's own objects (1M id strings, the batches) must not make the cyclic GC's
        # full passes part of the engine's timings
        gc.collect()
        gc.freeze()
        mix = segment_mix(max(counts))
        kinds = {name: kind for name, kind, _ in mix}
        created, res["phases"] = [], []
        for i, k in enumerate(phases):
            created += set_segments(store, mix, k)
            before = load_avg()
            tput = run_phase(store, batches[i])
            res["phases"].append({"segments": k, "tput": tput, "load": f"{before} → {load_avg()}"})
            log(f"{k} segments: " + ", ".join(f"{kd} {v['rows_per_s']:,.0f}/s" for kd, v in tput.items())
                + f"; {load_avg()}")
        zeros = [ph["tput"] for ph in res["phases"] if ph["segments"] == 0]
        res["baseline"] = {kd: statistics.mean(z[kd]["rows_per_s"] for z in zeros) for kd in KINDS}
        by: dict[str, list[float]] = defaultdict(list)
        for c in created:
            by[c["kind"]].append(c["ms"])
        res["create"] = {k: {"median": statistics.median(v), "max": max(v), "n": len(v)} for k, v in by.items()}
        res["created"] = created
        set_segments(store, mix, max(counts))
        res["refresh"] = refresh_times(store, t)
        if args.maintenance_profile:
            extra = make_batches(args.profiles, args.batch, 3, 1, args.seed + 7, args.events_per_profile)[0]
            res["recheck"] = recheck_costs(store, extra, kinds)
            res["cprofile"] = cprofile_batches(store, extra)
        res["watch"] = watcher_latency(store, 200)
    res["latency"] = latency(store, args.repeat)
    res["setup"]["load_after"] = load_avg()
    store.close()
    print_report(res)
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(res, indent=1, default=str))


if __name__ == "__main__":
    main()
