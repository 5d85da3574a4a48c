"""Segment query suite: cdpcore's embedded Store against DuckDB, same data, same run.

    python bench/query_suite.py                      # 10,000,000 profiles, 2 shards
    python bench/query_suite.py --profiles 1000000 --json bench/out/suite-1m.json
    python bench/query_suite.py --profiles 1000000 --events-per-profile 0   # no events

1. Generates `--profiles` synthetic profiles (cdpcore.sample, seeded) in batches and
   loads them with `Store.upsert_columns`, timing only the upsert calls (load
   throughput) and measuring memory per profile as process RSS growth (see
   `measure_rss`: the generator's arrays are freed before each reading).
2. Runs every query of `QUERIES` `--repeat` times (after one untimed warm-up run):
   WHERE conditions through `store.count(where)`, SELECTs through `store.query(sql)`;
   reports median and p95 in ms.
3. Loads the same batches (regenerated from the same seed) into an in-process DuckDB
   (threads=2, ENUM types for the string fields, interests as VARCHAR[]) and runs the
   same queries translated to DuckDB SQL (`to_duckdb`), checking that every answer
   equals ours: a difference prints a MISMATCH line (a correctness bug).
4. Prints per query: our median / p95, DuckDB's median, ours ÷ DuckDB; the totals of
   the medians; and the targets of issue 2 with pass / FAIL.
5. Events (issue 4; `--events-per-profile`, default 10, 0 skips): after the profiles,
   about that many synthetic events per profile (`cdpcore.sample.iter_events`, same
   seed) are tracked with `store.track_columns`, `--event-batch` events per call (only
   the calls timed: the embedded ingest rate); event memory is what the shards' event
   stores report (`shard.events.nbytes()` ÷ `len`), with RSS growth alongside. The
   event queries of `bench/events.py` then run like the others, and DuckDB answers them
   from an `events` table with GROUP BY / HAVING, joins and anti-joins (see there);
   counts must agree, else MISMATCH. Event figures and the targets of issue 4 are
   printed in their own section.

`now()` is pinned: the Store gets `clock=` returning `cdpcore.sample.REF_NOW` (the
instant the synthetic data is "as of"), and `now()` becomes the same TIMESTAMP literal
for DuckDB, so relative-time queries have one answer in both engines.
"""
from __future__ import annotations

import argparse
import gc
import json
import math
import os
import platform
import re
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterator

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench import events as ev  # noqa: E402
from bench.measure import Timing, measure_rss, peak_rss_bytes, time_it  # noqa: E402
from cdpcore import Store, sample  # noqa: E402
from cdpcore.batch import Categorical, TagSets  # noqa: E402

# ---- the queries ----------------------------------------------------------------------
# (name, SQL in cdpcore's language). A bare condition is timed with store.count(); a
# statement starting with SELECT with store.query(). Tag functions and now() are
# translated for DuckDB by `to_duckdb`; everything else is the same text.
QUERIES: list[tuple[str, str]] = [
    ("eq_country", "country = 'JP'"),
    ("in_country", "country IN ('US', 'GB', 'DE', 'FR', 'CA')"),
    ("range_age", "age BETWEEN 25 AND 34"),
    ("range_ltv", "lifetime_value >= 500 AND lifetime_value < 2000"),
    ("ts_signup", "signup_ts >= '2026-01-01'"),
    ("null_plan", "plan IS NULL"),
    ("null_mix", "last_seen IS NULL AND age IS NOT NULL"),
    ("tag_golf", "has(interests, 'golf')"),
    ("tag_any_not", "has_any(interests, 'tennis', 'ski') AND NOT has(interests, 'golf')"),
    ("like_san", "city LIKE 'San%'"),
    ("and3", "age BETWEEN 25 AND 34 AND country IN ('JP', 'US') AND NOT is_subscriber"),
    ("or4", "(country = 'US' AND plan = 'pro') OR (country = 'JP' AND orders_count >= 10)"),
    ("mix6", "gender = 'female' AND age >= 30 AND age < 50 AND has(interests, 'cooking') "
             "AND (plan IN ('pro', 'enterprise') OR lifetime_value > 1000) AND city != 'Tokyo'"),
    ("inactive_14d", "is_subscriber AND last_seen < now() - INTERVAL '14 days' "
                     "AND orders_count >= 1 AND NOT (city LIKE 'San%' OR plan IS NULL)"),
    ("group_country", "SELECT country, count(*) FROM profiles WHERE is_subscriber "
                      "GROUP BY country ORDER BY count(*) DESC LIMIT 10"),
    ("group_city", "SELECT city, count(*) FROM profiles WHERE has(interests, 'travel') "
                   "GROUP BY city ORDER BY count(*) DESC LIMIT 10"),
    ("avg_segment", "SELECT avg(lifetime_value), sum(orders_count), min(age), max(age) "
                    "FROM profiles WHERE country = 'US' AND is_subscriber AND age BETWEEN 25 AND 44"),
]

NOW_US = int(sample.REF_NOW.timestamp()) * 1_000_000
DUCK_NOW = ev.DUCK_NOW
STRING_FIELDS = [f for f, t in sample.SCHEMA.items() if t == "string"]

_HAS = re.compile(r"\bhas(_any|_all)?\(\s*(\w+)\s*,\s*([^()]*)\)", re.IGNORECASE)
_NOW = re.compile(r"\bnow\(\)", re.IGNORECASE)
_STR_LIT = re.compile(r"'(?:[^']|'')*'")


def is_select(sql: str) -> bool:
    return sql.lstrip().upper().startswith("SELECT")


def to_duckdb(sql: str) -> str:
    """Our SQL → DuckDB SQL over the table `profiles` built by `duck_load`."""
    def tags(m: re.Match) -> str:
        kind, name = (m.group(1) or "").lower(), m.group(2)
        tests = [f"list_contains({name}, {lit})" for lit in _STR_LIT.findall(m.group(3))]
        if len(tests) == 1:
            return tests[0]
        # list_has_any / list_has_all give the same answers (NULL for a NULL list) but
        # are ~3x slower in DuckDB 2.0 than OR/AND of list_contains; use the fast form.
        return "(" + (" OR " if kind == "_any" else " AND ").join(tests) + ")"

    out = _NOW.sub(DUCK_NOW, _HAS.sub(tags, sql))
    return out if is_select(out) else f"SELECT count(*) FROM profiles WHERE {out}"


# ---- loading --------------------------------------------------------------------------------

def make_store(shards: int) -> Store:
    """A Store whose now() is REF_NOW (falls back to the wall clock if `clock=` is gone)."""
    try:
        store = Store(shards=shards, clock=lambda: NOW_US / 1e6)
    except TypeError:
        print("warning: Store(clock=...) unsupported; now() is the wall clock, "
              "inactive_14d may mismatch DuckDB", file=sys.stderr)
        store = Store(shards=shards)
    store.define_fields(sample.SCHEMA)
    return store


@dataclass
class LoadStats:
    profiles: int
    seconds: float            # time inside the load calls only
    rss_growth: int           # bytes
    peak_rss: int
    errors: int = 0

    @property
    def rate(self) -> float:
        return self.profiles / self.seconds if self.seconds else float("inf")

    @property
    def bytes_per_profile(self) -> float:
        return self.rss_growth / self.profiles if self.profiles else 0.0


def batch_ranges(n: int, batch: int) -> Iterator[tuple[int, int]]:
    for lo in range(0, n, batch):
        yield lo, min(batch, n - lo)


def warm_up(shards: int) -> None:
    """Load 1,000 profiles (and their events) into a throwaway Store, so that one-time costs of the first
    use (lazy imports, thread pools: ~10 MiB) count neither as per-profile memory nor as
    load time of the measured store."""
    store = make_store(shards)
    store.upsert_columns(*sample.generate_columns(1000, seed=1, start=0))
    if hasattr(store, "track_columns"):
        store.track_columns(**sample.generate_events(1000, 10, seed=1))
    store.close()
    del store
    gc.collect()


def load_store(store: Store, n: int, batch: int, seed: int, progress: bool = True) -> LoadStats:
    """Generate and upsert_columns `n` profiles; RSS growth excludes the generator.

    Method: RSS is read (after GC + malloc_trim) before the first batch is generated and
    after the last batch has been loaded and deleted. Each batch is generated, handed to
    the store, then dropped, so at the second reading no generator array is alive and the
    difference is what the store keeps (plus allocator fragmentation it caused). Time is
    counted only inside `upsert_columns`, not in the generator.
    """
    before = measure_rss()
    seconds = 0.0
    errors = 0
    done = 0
    for lo, k in batch_ranges(n, batch):
        ids, cols = sample.generate_columns(k, seed, lo)
        t0 = time.perf_counter()
        res = store.upsert_columns(ids, cols)
        seconds += time.perf_counter() - t0
        errors += len(res.errors)
        if res.accepted != k:
            print(f"!! upsert_columns accepted {res.accepted} of {k}: {res.errors[:3]}",
                  file=sys.stderr)
        del ids, cols, res
        done += k
        if progress:
            print(f"\r  loaded {done:,}/{n:,} ({done / seconds:,.0f}/s)", end="", file=sys.stderr)
    if progress:
        print(file=sys.stderr)
    return LoadStats(n, seconds, measure_rss() - before, peak_rss_bytes(), errors)


def _sql_list(values: list[str]) -> str:
    return "[" + ", ".join("'" + v.replace("'", "''") + "'" for v in values) + "]"


def duck_connect(threads: int, events: bool = False):
    import duckdb
    con = duckdb.connect(config={"threads": threads})
    for name in STRING_FIELDS:
        cats = _categories(name)
        con.execute(f"CREATE TYPE {name}_t AS ENUM ({_sql_list(cats)[1:-1]})")
    cols = []
    duck_type = {"int": "BIGINT", "float": "DOUBLE", "bool": "BOOLEAN",
                 "timestamp": "TIMESTAMP", "string_set": "VARCHAR[]"}
    for name, ftype in sample.SCHEMA.items():
        cols.append(f"{name} {name + '_t' if ftype == 'string' else duck_type[ftype]}")
    # pid: the profile's number (u00000042 → 42), the join key of the events table
    con.execute(f"CREATE TABLE profiles (profile_id VARCHAR, pid INTEGER, {', '.join(cols)})")
    if events:
        ev.duck_create_events(con)
    return con


def _categories(name: str) -> list[str]:
    return {"gender": sample.GENDERS, "country": sample.COUNTRIES, "city": sample.CITIES,
            "plan": sample.PLANS}[name]


def duck_frame(ids: list[str], cols: dict[str, object]) -> tuple[dict[str, np.ndarray], str]:
    """(dict of numpy arrays DuckDB can scan, SELECT list turning it into `profiles` rows).

    No pandas/pyarrow: DuckDB scans a dict of numpy arrays (masked = NULL). String fields
    travel as int codes and are mapped to their ENUM in SQL; a tag set travels as up to
    five string columns (its tags left-packed) plus a null flag, and becomes a list with
    list_slice.
    """
    frame: dict[str, np.ndarray] = {"profile_id": np.array(ids, dtype=object)}
    select = ["profile_id"]
    for name, col in cols.items():
        if isinstance(col, Categorical):
            codes = np.asarray(col.codes)
            frame[name] = np.ma.MaskedArray(codes.astype(np.int32), mask=codes < 0)
            select.append(f"CAST(list_extract({_sql_list(list(col.categories))}, {name} + 1) "
                          f"AS {name}_t) AS {name}")
        elif isinstance(col, TagSets):
            lengths = np.diff(col.offsets)
            width = max(1, int(lengths.max()) if lengths.size else 1)
            pos = np.arange(len(col.codes)) - np.repeat(col.offsets[:-1], lengths)
            mat = np.full((len(lengths), width), -1, dtype=np.int64)
            mat[np.repeat(np.arange(len(lengths)), lengths), pos] = col.codes
            names = np.array(list(col.categories) + [None], dtype=object)
            parts = []
            for j in range(width):
                frame[f"{name}__{j}"] = names[mat[:, j]]
                parts.append(f"{name}__{j}")
            frame[f"{name}__n"] = lengths
            null = col.null if col.null is not None else np.zeros(len(lengths), dtype=bool)
            frame[f"{name}__null"] = null
            select.append(f"CASE WHEN {name}__null THEN NULL ELSE list_slice([{', '.join(parts)}], "
                          f"1, {name}__n) END AS {name}")
        else:
            frame[name] = col
            select.append(name)
    return frame, ", ".join(select)


def load_duck(con, n: int, batch: int, seed: int) -> LoadStats:
    before = measure_rss()
    seconds = 0.0
    for lo, k in batch_ranges(n, batch):
        ids, cols = sample.generate_columns(k, seed, lo)
        t0 = time.perf_counter()
        frame, select = duck_frame(ids, cols)
        frame["pid"] = np.arange(lo, lo + k, dtype=np.int32)
        select = select.replace("profile_id", "profile_id, pid", 1)
        con.register("batch_frame", frame)
        con.execute(f"INSERT INTO profiles SELECT {select} FROM batch_frame")
        con.unregister("batch_frame")
        seconds += time.perf_counter() - t0
        del ids, cols, frame
    return LoadStats(n, seconds, measure_rss() - before, peak_rss_bytes())


# ---- comparing answers ---------------------------------------------------------------------

def _same_value(a: Any, b: Any) -> bool:
    if isinstance(a, float) or isinstance(b, float):
        if a is None or b is None:
            return a is b
        return math.isclose(float(a), float(b), rel_tol=1e-9, abs_tol=1e-9)
    return a == b


def _same_rows(a: list[tuple], b: list[tuple]) -> bool:
    return len(a) == len(b) and all(
        len(x) == len(y) and all(_same_value(u, v) for u, v in zip(x, y)) for x, y in zip(a, b))


def compare(sql: str, ours: Any, duck: Any) -> tuple[bool, str]:
    """(equal, note). Group-by top-k answers may differ only in the order and choice of
    groups tied on the count (DuckDB breaks ties arbitrarily)."""
    if not is_select(sql):
        return ours == duck[0][0], ""
    ours = [tuple(r) for r in ours]
    duck = [tuple(r) for r in duck]
    if _same_rows(ours, duck):
        return True, ""
    if "GROUP BY" in sql.upper() and len(ours) == len(duck) and ours:
        counts_o = [r[-1] for r in ours]
        if counts_o == [r[-1] for r in duck]:
            last = counts_o[-1]
            if {r for r in ours if r[-1] != last} == {r for r in duck if r[-1] != last}:
                return True, "tie order"
    return False, ""


def show(result: Any) -> str:
    if isinstance(result, int):
        return f"{result:,}"
    rows = list(result)
    text = ", ".join(str(tuple(_round(v) for v in r)) for r in rows[:3])
    return text + (f" … ({len(rows)} rows)" if len(rows) > 3 else "")


def _round(v: Any) -> Any:
    return round(v, 3) if isinstance(v, float) else v


# ---- the run --------------------------------------------------------------------------------

@dataclass
class QueryReport:
    name: str
    sql: str
    duck_sql: str
    ours: Timing | None = None
    duck: Timing | None = None
    match: bool | None = None
    note: str = ""
    error: str = ""


def query_specs(names: set[str] | None, events: bool) -> list[tuple[str, str, str]]:
    """(name, our SQL, DuckDB SQL) of the queries to run."""
    specs = [(n, s, to_duckdb(s)) for n, s in QUERIES]
    if events:
        specs += ev.EVENT_QUERIES
    return [q for q in specs if not names or q[0] in names]


@dataclass
class Report:
    args: dict[str, Any]
    load: LoadStats | None = None
    duck_load: LoadStats | None = None
    queries: list[QueryReport] = field(default_factory=list)
    loadavg: tuple[float, float] = (0.0, 0.0)   # 1-minute load average at start and end
    events: ev.EventLoadStats | None = None
    profiles: dict[str, str] = field(default_factory=dict)   # query name → cProfile top
    duck_events: tuple[int, float] | None = None   # (events, seconds)

    @property
    def event_queries(self) -> list[QueryReport]:
        return [q for q in self.queries if q.name in _EVENT_NAMES]

    @property
    def profile_queries(self) -> list[QueryReport]:
        return [q for q in self.queries if q.name not in _EVENT_NAMES]


_EVENT_NAMES = {n for n, _, _ in ev.EVENT_QUERIES}


def run_ours(store: Store, repeat: int, specs: list[tuple[str, str, str]]) -> list[QueryReport]:
    out = []
    for name, sql, duck_sql in specs:
        rep = QueryReport(name, sql, duck_sql)
        out.append(rep)
        try:
            if is_select(sql):
                rep.ours = time_it(lambda: store.query(sql).rows, repeat)
            else:
                rep.ours = time_it(lambda: store.count(sql), repeat)
        except Exception as e:  # report and go on: one broken query must not hide the rest
            rep.error = f"cdpcore: {type(e).__name__}: {e}"
            print(f"!!! ERROR {name}: {rep.error}\n    ours: {sql}")
            continue
        print(f"  {name:<17} {rep.ours.median:9.2f} ms  → {show(rep.ours.result)}", file=sys.stderr)
    return out


def run_duck(con, reports: list[QueryReport], repeat: int) -> None:
    for rep in reports:
        try:
            rep.duck = time_it(lambda: con.execute(rep.duck_sql).fetchall(), repeat)
        except Exception as e:
            rep.error += f" duckdb: {type(e).__name__}: {e}"
            print(f"!!! ERROR {rep.name} (DuckDB): {e}\n    duckdb: {rep.duck_sql}")
            continue
        print(f"  {rep.name:<17} {rep.duck.median:9.2f} ms  → {show(rep.duck.result)}", file=sys.stderr)
        if rep.ours is not None:
            rep.match, rep.note = compare(rep.sql, rep.ours.result, rep.duck.result)
            if not rep.match:
                print(f"!!! MISMATCH {rep.name}: ours {show(rep.ours.result)} "
                      f"vs DuckDB {show(rep.duck.result)}\n    ours:   {rep.sql}\n"
                      f"    duckdb: {rep.duck_sql}")


def print_report(rep: Report) -> None:
    a = rep.args
    print(f"\ncdpcore query suite — {a['profiles']:,} profiles, {a['shards']} shards, "
          f"repeat {a['repeat']} (+1 warm-up), DuckDB threads={a['threads']}; "
          f"load average {rep.loadavg[0]:.1f} at start, {rep.loadavg[1]:.1f} at end")
    if rep.load:
        ld = rep.load
        print(f"load (upsert_columns, batches of {a['batch']:,}): {ld.seconds:.2f} s, "
              f"{ld.rate:,.0f} profiles/s; memory: RSS +{ld.rss_growth / 2**20:,.0f} MiB = "
              f"{ld.bytes_per_profile:.1f} B/profile; peak RSS {ld.peak_rss / 2**20:,.0f} MiB")
    if rep.duck_load:
        dl = rep.duck_load
        print(f"DuckDB load (numpy scan + INSERT): {dl.seconds:.2f} s, {dl.rate:,.0f} profiles/s; "
              f"RSS +{dl.rss_growth / 2**20:,.0f} MiB = {dl.bytes_per_profile:.1f} B/profile")
    if rep.profile_queries:
        tot_o, tot_d = _print_table(rep.profile_queries)
        _print_targets(rep, tot_o, tot_d)
    if rep.events or rep.event_queries:
        print(f"\nevents — {a['events_per_profile']:g} per profile requested")
        if rep.events:
            ev.print_event_load(rep.events, a["event_batch"], rep.duck_events, a["event_dict_ids"])
        if rep.event_queries:
            _print_table(rep.event_queries)
        _print_checks("targets (issue 4)", ev.event_targets(rep.event_queries, rep.events))


def _print_table(queries: list[QueryReport]) -> tuple[float, float]:
    """Per-query medians, p95s, ratio and check; returns the totals of the medians."""
    w = max(15, max(len(q.name) for q in queries) + 1)
    head = f"{'query':<{w}}{'ours med':>10}{'ours p95':>10}{'duck med':>10}{'duck p95':>10}{'ours/duck':>10}  check"
    print("\n" + head + "\n" + "-" * len(head))
    tot_o = tot_d = 0.0
    for q in queries:
        om = q.ours.median if q.ours else None
        dm = q.duck.median if q.duck else None
        tot_o += om or 0.0
        tot_d += dm or 0.0
        ratio = f"{om / dm:10.2f}" if om is not None and dm else f"{'':>10}"
        check = "" if q.match is None else ("ok" if q.match else "MISMATCH")
        if q.note:
            check += f" ({q.note})"
        if q.error:
            check += " ERROR"
        print(f"{q.name:<{w}}{_ms(om)}{_ms(q.ours.p95 if q.ours else None)}{_ms(dm)}"
              f"{_ms(q.duck.p95 if q.duck else None)}{ratio}  {check}")
    print("-" * len(head))
    ratio = f"{tot_o / tot_d:10.2f}" if tot_o and tot_d else f"{'':>10}"
    print(f"{'total (medians)':<{w}}{_ms(tot_o or None)}{'':>10}{_ms(tot_d or None)}{'':>10}{ratio}")
    print("(times in ms)")
    return tot_o, tot_d


def _ms(v: float | None) -> str:
    return f"{v:10.2f}" if v is not None else f"{'-':>10}"


def _print_targets(rep: Report, tot_o: float, tot_d: float) -> None:
    checks = []
    qs = [q for q in rep.profile_queries if q.ours]
    if qs and all(q.duck for q in qs):
        slower = [q.name for q in qs if q.ours.median > q.duck.median]
        checks.append(("every query median ≤ DuckDB's", not slower,
                       f"slower: {', '.join(slower)}" if slower else "all"))
        checks.append(("suite total ≤ 1/5 of DuckDB's", tot_o <= tot_d / 5,
                       f"{tot_o:.1f} vs {tot_d:.1f} ms ({tot_o / tot_d:.2f}×)"))
        bad = [q.name for q in qs if q.match is False]
        checks.append(("answers equal DuckDB's", not bad, ", ".join(bad) if bad else "all"))
    if qs:
        worst = max(qs, key=lambda q: q.ours.median)
        checks.append(("slowest query ≤ 40 ms (target at 10M)", worst.ours.median <= 40,
                       f"{worst.name} {worst.ours.median:.1f} ms"))
    if rep.load:
        checks.append(("upsert_columns ≥ 1M profiles/s", rep.load.rate >= 1e6, f"{rep.load.rate:,.0f}/s"))
        checks.append(("memory ≤ 120 B/profile", rep.load.bytes_per_profile <= 120,
                       f"{rep.load.bytes_per_profile:.1f} B"))
    _print_checks("targets (issue 2)", checks)


def _print_checks(title: str, checks: list[tuple[str, bool, str]]) -> None:
    if checks:
        print(f"\n{title}:")
        for label, ok, detail in checks:
            print(f"  [{'pass' if ok else 'FAIL'}] {label}: {detail}")


def print_scaling(rep: Report, base: dict[str, Any]) -> None:
    """Our medians now ÷ our medians in an earlier (smaller) run, per query and total."""
    before = {q["name"]: q["ours"]["median_ms"] for q in base["queries"] if q.get("ours")}
    pairs = [(q.name, q.ours.median, before[q.name]) for q in rep.queries
             if q.ours and q.name in before]
    if not pairs:
        return
    n0, n1 = base["args"]["profiles"], rep.args["profiles"]
    print(f"\nscaling of our medians: {n1:,} vs {n0:,} profiles ({n1 / n0:g}× the data)")
    for name, now, then in pairs:
        print(f"  {name:<15}{then:10.2f} →{now:10.2f} ms  ×{now / then:6.1f}")
    t0, t1 = sum(p[2] for p in pairs), sum(p[1] for p in pairs)
    print(f"  {'total':<15}{t0:10.2f} →{t1:10.2f} ms  ×{t1 / t0:6.1f}")
    if n1 == 10 * n0:
        print(f"  [{'pass' if t1 <= 12 * t0 else 'FAIL'}] 10× data: suite total ≤ 12× (issue 2)")


def to_json(rep: Report) -> dict[str, Any]:
    def load(ld: LoadStats | None) -> dict[str, Any] | None:
        if ld is None:
            return None
        return {"profiles": ld.profiles, "seconds": ld.seconds, "profiles_per_s": ld.rate,
                "rss_growth_bytes": ld.rss_growth, "bytes_per_profile": ld.bytes_per_profile,
                "peak_rss_bytes": ld.peak_rss, "errors": ld.errors}

    def timing(t: Timing | None) -> dict[str, Any] | None:
        return None if t is None else {"median_ms": t.median, "p95_ms": t.p95, "times_ms": t.times_ms}

    def result(t: Timing | None) -> Any:
        if t is None:
            return None
        return t.result if isinstance(t.result, int) else [list(r) for r in t.result]

    return {
        "when": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        "host": {"python": platform.python_version(), "machine": platform.machine(),
                 "cpus": os.cpu_count(), "numpy": np.__version__},
        "args": rep.args,
        "loadavg_1min": list(rep.loadavg),
        "load": load(rep.load),
        "duckdb_load": load(rep.duck_load),
        "events": rep.events.as_json() if rep.events else None,
        "event_query_profiles": rep.profiles,
        "duckdb_events": {"events": rep.duck_events[0], "seconds": rep.duck_events[1]}
        if rep.duck_events else None,
        "queries": [{"name": q.name, "sql": q.sql, "duckdb_sql": q.duck_sql,
                     "ours": timing(q.ours), "duckdb": timing(q.duck),
                     "ratio": (q.ours.median / q.duck.median) if q.ours and q.duck else None,
                     "match": q.match, "note": q.note, "error": q.error,
                     "result": result(q.ours or q.duck)}
                    for q in rep.queries],
        "total_ms": {"ours": sum(q.ours.median for q in rep.profile_queries if q.ours),
                     "duckdb": sum(q.duck.median for q in rep.profile_queries if q.duck)},
    }


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--profiles", type=int, default=10_000_000, help="profiles to load (10,000,000)")
    p.add_argument("--shards", type=int, default=2, help="in-process shards of the Store (2)")
    p.add_argument("--repeat", type=int, default=9, help="timed runs per query (9)")
    p.add_argument("--batch", type=int, default=1_000_000, help="profiles per load batch (1,000,000)")
    p.add_argument("--events-per-profile", type=float, default=10.0,
                   help="synthetic events per profile, on average (10; 0 = no events)")
    p.add_argument("--event-batch", type=int, default=1_000_000,
                   help="events per track_columns call (1,000,000)")
    p.add_argument("--event-chunk", type=int, default=sample.EVENT_CHUNK,
                   help=f"events generated at a time ({sample.EVENT_CHUNK:,})")
    p.add_argument("--event-dict-ids", action="store_true",
                   help="pass event ids dictionary-encoded (Categorical) instead of as strings")
    p.add_argument("--seed", type=int, default=42)
    p.add_argument("--threads", type=int, default=2, help="DuckDB threads (2)")
    p.add_argument("--only", help="comma-separated query names to run")
    p.add_argument("--no-duckdb", action="store_true", help="skip DuckDB")
    p.add_argument("--no-ours", action="store_true", help="skip cdpcore (developing the DuckDB half)")
    p.add_argument("--profile-events", action="store_true",
                   help="after timing, cProfile each event query and print where its time goes")
    p.add_argument("--json", metavar="OUT", help="also write the results as JSON to OUT")
    p.add_argument("--scale-from", metavar="JSON",
                   help="a smaller run's --json output: print how our times grew from it")
    a = p.parse_args(argv)
    events = a.events_per_profile > 0
    names = set(a.only.split(",")) if a.only else None
    known = {n for n, _ in QUERIES} | (_EVENT_NAMES if events else set())
    if names and (unknown := names - known):
        p.error(f"unknown query names: {', '.join(sorted(unknown))}")
    specs = query_specs(names, events)
    rep = Report({k: getattr(a, k) for k in ("profiles", "shards", "repeat", "batch", "seed", "threads",
                                             "events_per_profile", "event_batch", "event_chunk",
                                             "event_dict_ids")})

    load_start = os.getloadavg()[0]
    store = None
    if not a.no_ours:
        store = load_ours(a, rep)
        print(f"running {len(specs)} queries × {a.repeat}…", file=sys.stderr)
        reports = run_ours(store, a.repeat, specs)
        if a.profile_events and events:
            rep.profiles = ev.profile_queries(store, [(n, s) for n, s, _ in specs if n in _EVENT_NAMES])
    else:
        reports = [QueryReport(*q) for q in specs]

    if not a.no_duckdb:
        print(f"DuckDB: loading {a.profiles:,} profiles…", file=sys.stderr)
        con = duck_connect(a.threads, events)
        rep.duck_load = load_duck(con, a.profiles, a.batch, a.seed)
        print(f"  {rep.duck_load.rate:,.0f} profiles/s", file=sys.stderr)
        if events:
            rep.duck_events = ev.load_duck_events(con, a.profiles, a.events_per_profile, a.seed,
                                                  a.event_chunk)
            print(f"  {rep.duck_events[0]:,} events, {rep.duck_events[0] / rep.duck_events[1]:,.0f}/s",
                  file=sys.stderr)
        print("  running queries…", file=sys.stderr)
        run_duck(con, reports, a.repeat)
        con.close()

    rep.queries = reports
    rep.loadavg = (load_start, os.getloadavg()[0])
    print_report(rep)
    for name, text in rep.profiles.items():
        print(f"\nprofile of {name}: {text}")
    if a.scale_from:
        print_scaling(rep, json.loads(Path(a.scale_from).read_text()))
    if a.json:
        Path(a.json).parent.mkdir(parents=True, exist_ok=True)
        Path(a.json).write_text(json.dumps(to_json(rep), indent=2, default=str))
        print(f"\nwrote {a.json}")
    if store is not None:
        store.close()
    return 1 if any(q.match is False or q.error for q in reports) else 0


def load_ours(a: argparse.Namespace, rep: Report) -> Store:
    """A Store loaded with the profiles (and events) of the run; fills rep.load / rep.events."""
    print(f"cdpcore: loading {a.profiles:,} profiles into Store(shards={a.shards})…", file=sys.stderr)
    warm_up(a.shards)
    store = make_store(a.shards)
    rep.load = load_store(store, a.profiles, a.batch, a.seed)
    print(f"  {rep.load.rate:,.0f} profiles/s, {rep.load.bytes_per_profile:.1f} B/profile", file=sys.stderr)
    if a.events_per_profile > 0:
        print(f"cdpcore: tracking ~{a.events_per_profile:g} events per profile…", file=sys.stderr)
        rep.events = ev.load_events(store, a.profiles, a.events_per_profile, a.seed, a.event_batch,
                                    a.event_chunk, measure_rss, dict_ids=a.event_dict_ids)
        held = f"{rep.events.held:,} held" if rep.events.held is not None else "size not exposed"
        print(f"  {rep.events.rate:,.0f} events/s; {held}", file=sys.stderr)
        if rep.events.held is not None and rep.events.held != rep.events.events:
            print(f"!!! event store holds {rep.events.held:,} events, {rep.events.events:,} were tracked")
    return store


if __name__ == "__main__":
    sys.exit(main())
