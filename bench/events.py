"""The behavioural-event half of the benchmarks (issue 4): event queries in cdpcore's
language with their DuckDB equivalents, loading the synthetic events of
`cdpcore.sample.iter_events` into a Store and into DuckDB, and the event figures.

DuckDB layout (its best shape for these questions): `events(pid INTEGER, type ENUM, ts
TIMESTAMP, amount DOUBLE, category ENUM)` in arrival order (roughly time-ordered, so
its zone maps skip by `ts`), where `pid` is the profile's number (`u00000042` → 42),
also a column of `profiles`. Joining on the integer rather than the VARCHAR id is the
faster form for DuckDB, so the comparison is against its better plan. Windows are
`now - N days <= ts <= now` with `now` = `cdpcore.sample.REF_NOW`, the instant the
Store's clock is pinned to (both ends inclusive, as cdpcore's windows).
"""
from __future__ import annotations

import sys
import time
from dataclasses import dataclass
from typing import Any, Callable

import numpy as np

from cdpcore import sample

DUCK_NOW = f"TIMESTAMP '{sample.REF_NOW.strftime('%Y-%m-%d %H:%M:%S')}'"


def _window(days: int) -> str:
    return f"ts >= {DUCK_NOW} - INTERVAL {days} DAY AND ts <= {DUCK_NOW}"


def _profiles_having(where: str, having: str) -> str:
    """The pids of profiles whose events matching `where` satisfy `having`."""
    return f"SELECT pid FROM events WHERE {where} GROUP BY pid HAVING {having}"


def _count(sub: str) -> str:
    return f"SELECT count(*) FROM ({sub})"


def _pids(event_type: str, days: int) -> str:
    return f"SELECT pid FROM events WHERE type = '{event_type}' AND {_window(days)}"


# Among equivalent DuckDB forms we use the fastest measured (DuckDB 2.0, 1M profiles +
# 10M events): EXCEPT for "carted, not bought" (≈ LEFT JOIN … IS NULL, 1.2x faster than
# GROUP BY … HAVING count FILTER), NOT IN for "no purchase" (3x faster than NOT EXISTS,
# 2x than LEFT JOIN; pid is never NULL, so NOT IN means the same), a join with the
# DISTINCT pids for the group-by (4x faster than IN).
_ABANDONED_7D = f"{_pids('add_to_cart', 7)} EXCEPT {_pids('purchase', 7)}"
_CART_ABANDON = "event_count('add_to_cart', '7d') >= 1 AND event_count('purchase', '7d') = 0"

# (name, cdpcore SQL, DuckDB SQL). WHERE conditions are timed with store.count().
EVENT_QUERIES: list[tuple[str, str, str]] = [
    ("ev_purchases_30d", "event_count('purchase', '30d') >= 2",
     _count(_profiles_having(f"type = 'purchase' AND {_window(30)}", "count(*) >= 2"))),
    ("ev_spend_90d", "event_sum('purchase', 'amount', '90d') > 100",
     _count(_profiles_having(f"type = 'purchase' AND {_window(90)}", "sum(amount) > 100"))),
    ("ev_shoes_90d", "event_sum('purchase', 'amount', '90d', category = 'shoes') > 100",
     _count(_profiles_having(f"type = 'purchase' AND {_window(90)} AND category = 'shoes'",
                             "sum(amount) > 100"))),
    ("ev_app_lapsed", "last_seen('app_open') < now() - INTERVAL '14 days'",
     _count(_profiles_having("type = 'app_open'", f"max(ts) < {DUCK_NOW} - INTERVAL 14 DAY"))),
    ("ev_cart_abandon", _CART_ABANDON, _count(_ABANDONED_7D)),
    ("ev_mix_attr3", f"country = 'US' AND age BETWEEN 25 AND 44 AND is_subscriber AND {_CART_ABANDON}",
     "SELECT count(*) FROM profiles WHERE country = 'US' AND age BETWEEN 25 AND 44 "
     f"AND is_subscriber AND pid IN ({_ABANDONED_7D})"),
    ("ev_sub_no_buy_90d", "is_subscriber AND event_count('purchase', '90d') = 0",
     f"SELECT count(*) FROM profiles WHERE is_subscriber AND pid NOT IN ({_pids('purchase', 90)})"),
    ("ev_group_country", "SELECT country, count(*) FROM profiles WHERE event_count('purchase', '30d') >= 1 "
                         "GROUP BY country ORDER BY count(*) DESC LIMIT 10",
     f"SELECT country, count(*) FROM profiles JOIN (SELECT DISTINCT pid FROM ({_pids('purchase', 30)})) "
     "USING (pid) GROUP BY country ORDER BY count(*) DESC LIMIT 10"),
]

TARGETS = {"query_ms": 60.0, "bytes_per_event": 14.0, "embedded_events_per_s": 1_000_000,
           "grpc_events_per_s": 200_000}


# ---- loading into the Store --------------------------------------------------------------

@dataclass
class EventLoadStats:
    events: int               # events generated and passed to track_columns
    seconds: float            # time inside track_columns only
    calls: int
    errors: int
    held: int | None          # events the shards' event stores hold (len), if exposed
    nbytes: int | None        # bytes those stores report (nbytes()), if exposed
    rss_growth: int           # process RSS growth over the whole event load
    gen_seconds: float = 0.0  # time in the generator (not in the rate)

    @property
    def rate(self) -> float:
        return self.events / self.seconds if self.seconds else float("inf")

    @property
    def bytes_per_event(self) -> float | None:
        return self.nbytes / self.held if self.nbytes is not None and self.held else None

    @property
    def rss_bytes_per_event(self) -> float:
        return self.rss_growth / self.events if self.events else 0.0

    def as_json(self) -> dict[str, Any]:
        return {**self.__dict__, "events_per_s": self.rate, "bytes_per_event": self.bytes_per_event,
                "rss_bytes_per_event": self.rss_bytes_per_event}


def event_store_size(store) -> tuple[int | None, int | None]:
    """(events held, bytes held) summed over the shards' `events` stores, or None when a
    shard has no `events.nbytes()` (the engine's EventStore API)."""
    held = nbytes = 0
    for shard in store.shards:
        ev = getattr(shard, "events", None)
        if ev is None or not hasattr(ev, "nbytes"):
            return None, None
        held += len(ev)
        nbytes += int(ev.nbytes())
    return held, nbytes


def load_events(store, n: int, per_profile: float, seed: int, batch: int, chunk: int,
                measure_rss: Callable[[], int], progress: bool = True,
                dict_ids: bool = False) -> EventLoadStats:
    """Track the events of `sample.event_batches(n, per_profile, seed, batch, chunk=chunk)`
    with `store.track_columns`, one call per batch; only the calls are timed. Ids are
    strings, or dictionary-encoded per batch with `dict_ids`."""
    before = measure_rss()
    seconds = gen_seconds = 0.0
    events = calls = errors = 0
    t_gen = time.perf_counter()
    for part in sample.event_batches(n, per_profile, seed, batch_size=batch, chunk=chunk,
                                     dict_ids=dict_ids):
        gen_seconds += time.perf_counter() - t_gen
        k = len(part["ids"])
        t0 = time.perf_counter()
        res = store.track_columns(**part)
        seconds += time.perf_counter() - t0
        calls += 1
        errors += len(res.errors)
        if res.accepted != k:
            print(f"\n!! track_columns accepted {res.accepted} of {k}: {res.errors[:3]}", file=sys.stderr)
        events += k
        del part, res
        if progress:
            print(f"\r  tracked {events:,} events ({events / seconds:,.0f}/s)", end="", file=sys.stderr)
        t_gen = time.perf_counter()
    if progress:
        print(file=sys.stderr)
    held, nbytes = event_store_size(store)
    return EventLoadStats(events, seconds, calls, errors, held, nbytes, measure_rss() - before,
                          gen_seconds)


# ---- loading into DuckDB -----------------------------------------------------------------

def _enum(values: list[str]) -> str:
    return ", ".join("'" + v.replace("'", "''") + "'" for v in values)


def duck_create_events(con) -> None:
    con.execute(f"CREATE TYPE event_type_t AS ENUM ({_enum(sample.EVENT_TYPES)})")
    con.execute(f"CREATE TYPE event_category_t AS ENUM ({_enum(sample.EVENT_CATEGORIES)})")
    con.execute("CREATE TABLE events (pid INTEGER, type event_type_t, ts TIMESTAMP, "
                "amount DOUBLE, category event_category_t)")


def load_duck_events(con, n: int, per_profile: float, seed: int, chunk: int) -> tuple[int, float]:
    """Insert the same events as `load_events` (same generator arguments); (events, s)."""
    types = f"[{_enum(sample.EVENT_TYPES)}]"
    cats = f"[{_enum(sample.EVENT_CATEGORIES)}]"
    events, seconds = 0, 0.0
    for raw in sample.iter_event_arrays(n, per_profile, seed, chunk):
        t0 = time.perf_counter()
        cat = raw["category"]
        frame = {"pid": raw["profile"], "type": raw["type"], "ts": raw["ts"], "amount": raw["amount"],
                 "category": np.ma.MaskedArray(cat, mask=cat < 0)}
        con.register("event_frame", frame)
        con.execute(f"INSERT INTO events SELECT pid, CAST(list_extract({types}, type + 1) AS event_type_t), "
                    f"ts, amount, CAST(list_extract({cats}, category + 1) AS event_category_t) "
                    "FROM event_frame")
        con.unregister("event_frame")
        seconds += time.perf_counter() - t0
        events += len(raw["profile"])
    return events, seconds


# ---- report -------------------------------------------------------------------------------

def print_event_load(ld: EventLoadStats, batch: int, duck: tuple[int, float] | None,
                     dict_ids: bool = False) -> None:
    mem = (f"event store {ld.nbytes / 2**20:,.0f} MiB for {ld.held:,} events = "
           f"{ld.bytes_per_event:.2f} B/event" if ld.bytes_per_event is not None
           else "event store size not exposed (shard.events.nbytes())")
    form = "dictionary-encoded" if dict_ids else "string"
    print(f"events (track_columns, {ld.calls} calls of ≤ {batch:,}, {form} ids): {ld.events:,} events in "
          f"{ld.seconds:.2f} s = {ld.rate:,.0f} events/s (generator {ld.gen_seconds:.1f} s, "
          f"not counted); {mem}; RSS +{ld.rss_growth / 2**20:,.0f} MiB = "
          f"{ld.rss_bytes_per_event:.1f} B/event")
    if duck:
        print(f"DuckDB events load: {duck[0]:,} events in {duck[1]:.2f} s "
              f"= {duck[0] / duck[1]:,.0f} events/s")


def event_targets(queries: list, load: EventLoadStats | None) -> list[tuple[str, bool, str]]:
    """(label, ok, detail) for the targets of issue 4 that this run measured."""
    checks: list[tuple[str, bool, str]] = []
    qs = [q for q in queries if q.ours]
    if qs and all(q.duck for q in qs):
        slower = [f"{q.name} ({q.ours.median:.1f} vs {q.duck.median:.1f})" for q in qs
                  if q.ours.median > q.duck.median]
        checks.append(("every event query median ≤ DuckDB's", not slower,
                       "slower: " + ", ".join(slower) if slower else "all"))
        bad = [q.name for q in qs if q.match is False]
        checks.append(("event answers equal DuckDB's", not bad, ", ".join(bad) if bad else "all"))
    if qs:
        worst = max(qs, key=lambda q: q.ours.median)
        checks.append((f"slowest event query ≤ {TARGETS['query_ms']:.0f} ms (target at 10M + 75M)",
                       worst.ours.median <= TARGETS["query_ms"], f"{worst.name} {worst.ours.median:.1f} ms"))
    if load is not None:
        checks.append(("track_columns ≥ 1M events/s", load.rate >= TARGETS["embedded_events_per_s"],
                       f"{load.rate:,.0f}/s"))
        if load.bytes_per_event is not None:
            checks.append(("event memory ≤ 14 B/event", load.bytes_per_event <= TARGETS["bytes_per_event"],
                           f"{load.bytes_per_event:.2f} B (nbytes); RSS {load.rss_bytes_per_event:.1f} B"))
    failed = [q.name for q in queries if q.error]
    if failed:
        checks.append(("every event query runs", False, "errors: " + ", ".join(failed)))
    return checks


# ---- where the time goes ----------------------------------------------------------------------

def profile_queries(store, specs: list[tuple[str, str]], runs: int = 3, top: int = 8) -> dict[str, str]:
    """cProfile each query (`runs` runs) with the shards run one after the other in this
    thread (cProfile sees only its own thread); returns name → the top functions by own
    time. Sequential shards make the total ~shards× the parallel time; the split is what
    counts. Uses the Store's private `_pool` (bench-only: no public switch exists)."""
    import cProfile
    import io
    import pstats
    pool, store._pool = store._pool, None
    out = {}
    try:
        for name, sql in specs:
            run = (lambda: store.query(sql).rows) if sql.lstrip().upper().startswith("SELECT") \
                else (lambda: store.count(sql))
            run()
            prof = cProfile.Profile()
            t0 = time.perf_counter()
            prof.runcall(lambda: [run() for _ in range(runs)])
            ms = (time.perf_counter() - t0) * 1e3 / runs
            buf = io.StringIO()
            pstats.Stats(prof, stream=buf).sort_stats("tottime").print_stats(top)
            lines = [ln for ln in buf.getvalue().splitlines() if ln.strip()]
            start = next(i for i, ln in enumerate(lines) if ln.lstrip().startswith("ncalls"))
            out[name] = f"{ms:.1f} ms per run, shards sequential, under cProfile\n" + \
                "\n".join(lines[start:start + top + 1])
    finally:
        store._pool = pool
    return out
