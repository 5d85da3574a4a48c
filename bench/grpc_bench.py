"""gRPC cluster benchmark: ingest throughput and query latency through the router,
against the embedded engine on the same data, in the same run (issue 3).

    python bench/grpc_bench.py                          # 10,000,000 profiles, 2 shard processes
    python bench/grpc_bench.py --profiles 1000000 --json bench/out/grpc-1m.json

Processes, as in production: this client; a router started as
`python -m server.cli router --shard A --shard B --port 0`; and `--shards` shard
processes (`server.cli.serve.start_shard_process`). All on loopback, on this machine.

1. *Idle memory*: once every process has printed READY (and one second later), the RSS
   of router + shards (psutil, else /proc/<pid>/statm) before any call from the client.
2. *Ingest* (the bench schema `cdpcore.sample.SCHEMA`, declared with DefineFields first),
   each path on its own fresh id range of `--ingest-profiles` profiles (fewer when
   `--profiles` is small: all phases together stay within `--profiles`):
     - UpsertStream, columnar batches of 1,000, then of 10,000 (one stream per path);
     - unary Upsert, batches of 100, columnar (`columns`) and row form (`profiles`),
       one call in flight at a time (a sequential client); then columnar again with
       `--inflight` calls outstanding (futures), a concurrent client, once per level
       given (default 4,8,16: the curve; the router merges concurrent writes to a shard
       into one Apply, so throughput grows with the calls in flight).
   Client-side message building (`codec.batch_from_columns`, `codec.profiles_from_records`)
   is EXCLUDED from the rates and reported separately ("encode"); the data generator is
   excluded too. Timed: from the call to its reply, so protobuf serialization by the
   gRPC stub, transport, the router's decode/validate/split/re-encode and the shards'
   Apply are all in. Rates are profiles ÷ that time. The CPU time the router and the
   shards used during each path (all threads, /proc/<pid>/task/*/schedstat) is reported
   per profile: with 2 cores, 2 s ÷ (CPU s per profile) bounds any client's rate.
3. *Bulk load* of the rest up to `--profiles` (unary Upsert, columnar, `--bulk-batch`
   per request; the call time only).
3b. *Event ingest* (issue 4; `--track-events` per path, 0 skips): synthetic events of
   the loaded profiles (`cdpcore.sample`, about 10 per profile, time-ordered with late
   arrivals) as columnar `EventBatch`es of `--track-batch` events: unary `Track` (one
   call at a time) with the ids as strings, then with the ids dictionary-encoded: unary
   `Track`, one `TrackStream`, and `Track` with the first `--inflight` level outstanding; encoding
   timed apart, as for profiles (see bench/grpc_events.py).
4. *Queries*: `QUERIES` from bench/query_suite.py. Through the router's Query RPC (a
   WHERE-only entry is sent as a bare condition, which the router counts), timed on the
   client from the call to the rows converted to Python values; and on an embedded
   `Store(shards=2, clock=REF_NOW)` in this process loaded with the same profiles
   (same seed, same ids; `store.count` / `store.query` as in query_suite). One untimed
   warm-up run, then `--repeat` timed runs each, router then embedded, query by query.
   `now()`: the router uses the wall clock, so in the text sent to the router `now()`
   becomes the literal `TIMESTAMP '<REF_NOW>'`; the embedded store runs the original
   text with its clock pinned to REF_NOW (so the answer check also checks the literal).
   Overhead = router median − embedded median; target ≤ 2 ms + 10% of the embedded
   median, per query. The router's own `elapsed_ms` (parse + fan-out + merge inside
   the router) is reported too, so the overhead splits into client↔router and
   router↔shards; and the CPU time per call summed over client, router and shards,
   against this process's CPU time per embedded call. Answers must be equal (counts
   exactly, floats to 1e-9 relative, group-by ties in any order): a difference prints
   MISMATCH and exits 1.
5. Every process started here is stopped at the end (try/finally).
"""
from __future__ import annotations

import argparse
import collections
import datetime as _dt
import json
import os
import platform
import re
import shlex
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Any, Iterator

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
# child processes (`python -m server.cli …`) must import `server` and `cdpcore` too
os.environ["PYTHONPATH"] = os.pathsep.join(p for p in (str(ROOT), os.environ.get("PYTHONPATH")) if p)

import grpc  # noqa: E402

from bench import grpc_events  # noqa: E402
from bench.query_suite import (QUERIES, compare, is_select, make_store, show,  # noqa: E402
                               time_it)
from cdpcore import sample  # noqa: E402
from cdpcore.batch import Categorical, TagSets  # noqa: E402
from server import codec  # noqa: E402
from server.cli.serve import start_shard_process, stop_processes  # noqa: E402
from server.pb.cdp.v1 import admin_pb2, admin_pb2_grpc  # noqa: E402
from server.pb.cdp.v1 import profile_store_pb2 as pb  # noqa: E402
from server.pb.cdp.v1 import profile_store_pb2_grpc  # noqa: E402

SEED = 42
GEN_CHUNK = 1 << 17          # profiles generated at a time before slicing into requests
CLIENT_MAX_MESSAGE = 64 * 1024 * 1024
REF_NOW_LITERAL = f"TIMESTAMP '{sample.REF_NOW.strftime('%Y-%m-%dT%H:%M:%SZ')}'"
_NOW = re.compile(r"\bnow\(\)", re.IGNORECASE)
TIMESTAMP_FIELDS = [f for f, t in sample.SCHEMA.items() if t == "timestamp"]

TARGETS = {"stream": 250_000, "unary100": 50_000, "idle_rss_mib": 150,
           "overhead_ms": 2.0, "overhead_frac": 0.10}


# ---- processes ----------------------------------------------------------------------

def start_router(shards: list[str], timeout: float = 60.0) -> tuple[subprocess.Popen, str]:
    """`python -m server.cli router` on a free port; (process, address) once READY."""
    cmd = [sys.executable, "-m", "server.cli", "router", "--host", "127.0.0.1", "--port", "0"]
    for s in shards:
        cmd += ["--shard", s]
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, text=True)
    deadline = time.monotonic() + timeout
    line = proc.stdout.readline()
    if not line.startswith("READY ") or time.monotonic() > deadline:
        proc.kill()
        raise RuntimeError(f"router did not start (said {line.strip()!r})")
    return proc, line.split()[1]


def rss_of(pid: int) -> int:
    try:
        import psutil
        return psutil.Process(pid).memory_info().rss
    except ImportError:
        with open(f"/proc/{pid}/statm") as f:
            return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


def pss_of(pid: int) -> int | None:
    """Proportional set size (shared pages split between the processes mapping them)."""
    try:
        with open(f"/proc/{pid}/smaps_rollup") as f:
            for line in f:
                if line.startswith("Pss:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    return None


class CpuMeter:
    """CPU seconds used by each process (all its threads) between two readings.

    Read from /proc/<pid>/task/*/schedstat (nanoseconds on CPU per thread), since the
    10 ms tick of utime/stime is too coarse for a few millisecond-long calls; threads that
    end between the readings are not counted (gRPC and executor threads are long-lived).
    """

    def __init__(self, procs: dict[str, subprocess.Popen], client: bool = True) -> None:
        self.pids = {name: p.pid for name, p in procs.items()}
        if client:
            self.pids["client"] = os.getpid()
        self.start = self.read()

    def read(self) -> dict[str, dict[str, int]]:
        out: dict[str, dict[str, int]] = {}
        for name, pid in self.pids.items():
            threads: dict[str, int] = {}
            try:
                for tid in os.listdir(f"/proc/{pid}/task"):
                    try:
                        with open(f"/proc/{pid}/task/{tid}/schedstat") as f:
                            threads[tid] = int(f.read().split()[0])
                    except (OSError, ValueError, IndexError):
                        pass
            except OSError:
                pass
            out[name] = threads
        return out

    def used(self) -> dict[str, float]:
        now = self.read()
        return {name: sum(ns - self.start[name].get(tid, 0) for tid, ns in threads.items()) / 1e9
                for name, threads in now.items()}


def memory_of(procs: dict[str, subprocess.Popen]) -> dict[str, dict[str, int | None]]:
    return {name: {"rss": rss_of(p.pid), "pss": pss_of(p.pid)} for name, p in procs.items()}


# ---- data -----------------------------------------------------------------------------

def slice_columns(cols: dict[str, object], a: int, b: int) -> dict[str, object]:
    """Rows [a, b) of `generate_columns` output (same forms)."""
    out: dict[str, object] = {}
    for name, col in cols.items():
        if isinstance(col, Categorical):
            out[name] = Categorical(col.codes[a:b], col.categories)
        elif isinstance(col, TagSets):
            lo, hi = int(col.offsets[a]), int(col.offsets[b])
            out[name] = TagSets(col.offsets[a:b + 1] - lo, col.codes[lo:hi], col.categories,
                                None if col.null is None else col.null[a:b])
        else:
            out[name] = col[a:b]
    return out


Chunk = tuple[int, list[str], dict[str, object], list[tuple[int, int]]]


def chunks(start: int, n: int, batch: int) -> Iterator[Chunk]:
    """Generate [start, start + n) GEN_CHUNK profiles at a time (whole requests per chunk);
    yields (chunk start, ids, columns, [(a, b) request slices within the chunk])."""
    per = max(batch, (GEN_CHUNK // batch) * batch)
    for lo in range(start, start + n, per):
        k = min(per, start + n - lo)
        ids, cols = sample.generate_columns(k, SEED, lo)
        yield lo, ids, cols, [(a, min(a + batch, k)) for a in range(0, k, batch)]


def rows_of(ids: list[str], cols: dict[str, object]) -> list[dict[str, Any]]:
    """Dicts for the row form: None for nulls, lists for tags, datetimes for timestamps
    (so they travel as typed `timestamp_us` Values, as a typed client would send them)."""
    rows = sample.columns_to_rows(ids, cols)
    for r in rows:
        for f in TIMESTAMP_FIELDS:
            v = r[f]
            if v is not None:
                r[f] = _dt.datetime.fromisoformat(v).replace(tzinfo=_dt.timezone.utc)
    return rows


# ---- ingest -----------------------------------------------------------------------------

class Phase:
    def __init__(self, label: str, path: str, batch: int, start: int, n: int) -> None:
        self.label, self.path, self.batch, self.start, self.n = label, path, batch, start, n
        self.seconds = 0.0        # inside the RPCs
        self.encode_seconds = 0.0  # building the request messages on the client
        self.requests = 0
        self.accepted = 0
        self.errors = 0
        self.wire_bytes = 0
        self.cpu: dict[str, float] = {}   # CPU seconds per process during the phase (servers)

    @property
    def rate(self) -> float:
        return self.n / self.seconds if self.seconds else float("inf")

    def as_json(self) -> dict[str, Any]:
        return {"label": self.label, "path": self.path, "batch": self.batch,
                "id_range": [self.start, self.start + self.n], "profiles": self.n,
                "requests": self.requests, "seconds": self.seconds, "profiles_per_s": self.rate,
                "encode_seconds": self.encode_seconds,
                "encode_profiles_per_s": self.n / self.encode_seconds if self.encode_seconds else None,
                "end_to_end_profiles_per_s": self.n / (self.seconds + self.encode_seconds),
                "wire_bytes": self.wire_bytes, "accepted": self.accepted, "errors": self.errors,
                "server_cpu_seconds": self.cpu,
                "server_cpu_us_per_profile": {k: v / self.n * 1e6 for k, v in self.cpu.items()}}


def _check(phase: Phase, reply: pb.UpsertResponse) -> None:
    phase.accepted += reply.accepted
    phase.errors += len(reply.errors)
    if reply.errors:
        print(f"!! {phase.label}: {len(reply.errors)} record errors, first {reply.errors[0]}",
              file=sys.stderr)


def encode_requests(phase: Phase, ids: list[str], cols: dict[str, object],
                    slices: list[tuple[int, int]], rows: bool) -> list[pb.UpsertRequest]:
    if rows:
        # dict building is generator-side (not timed); profiles_from_records is the encoding
        records = rows_of(ids, cols)
        t0 = time.perf_counter()
        out = [pb.UpsertRequest(profiles=codec.profiles_from_records(records[a:b])) for a, b in slices]
    else:
        parts = [(ids[a:b], slice_columns(cols, a, b)) for a, b in slices]
        t0 = time.perf_counter()
        out = [pb.UpsertRequest(columns=codec.batch_from_columns(i, c)) for i, c in parts]
    phase.encode_seconds += time.perf_counter() - t0
    phase.wire_bytes += sum(r.ByteSize() for r in out)
    return out


def run_stream(stub, phase: Phase) -> Phase:
    """One UpsertStream over the whole range; every request is built before the call."""
    requests: list[pb.UpsertRequest] = []
    for _, ids, cols, slices in chunks(phase.start, phase.n, phase.batch):
        requests += encode_requests(phase, ids, cols, slices, rows=False)
        del ids, cols
    phase.requests = len(requests)
    t0 = time.perf_counter()
    reply = stub.UpsertStream(iter(requests), timeout=3600)
    phase.seconds = time.perf_counter() - t0
    _check(phase, reply)
    return phase


def run_unary(stub, phase: Phase, rows: bool, inflight: int = 1) -> Phase:
    """Unary Upserts, `inflight` calls outstanding at a time (1: a sequential client);
    requests are built a chunk at a time, untimed, then the chunk is sent and timed."""
    for _, ids, cols, slices in chunks(phase.start, phase.n, phase.batch):
        requests = encode_requests(phase, ids, cols, slices, rows)
        del ids, cols
        if inflight <= 1:
            for req in requests:
                t0 = time.perf_counter()
                reply = stub.Upsert(req, timeout=600)
                phase.seconds += time.perf_counter() - t0
                _check(phase, reply)
        else:
            pending: collections.deque = collections.deque()
            t0 = time.perf_counter()
            for req in requests:
                if len(pending) >= inflight:
                    _check(phase, pending.popleft().result())
                pending.append(stub.Upsert.future(req, timeout=600))
            while pending:
                _check(phase, pending.popleft().result())
            phase.seconds += time.perf_counter() - t0
        phase.requests += len(requests)
        done = phase.accepted + phase.errors
        print(f"\r  {phase.label}: {done:,}/{phase.n:,} ({done / phase.seconds:,.0f}/s)",
              end="", file=sys.stderr)
    print(file=sys.stderr)
    return phase


# ---- queries -------------------------------------------------------------------------------

def router_sql(sql: str) -> str:
    return _NOW.sub(REF_NOW_LITERAL, sql)


class QueryRow:
    def __init__(self, name: str, sql: str) -> None:
        self.name, self.sql, self.router_sql = name, sql, router_sql(sql)
        self.router: Any = None       # query_suite.Timing
        self.router_internal: list[float] = []   # router's own elapsed_ms per timed call
        self.embedded: Any = None
        self.match: bool | None = None
        self.note = ""
        self.router_cpu: dict[str, float] = {}   # CPU ms per call, per process (client included)
        self.embedded_cpu = 0.0                  # CPU ms per call of this process

    @property
    def overhead(self) -> float:
        return self.router.median - self.embedded.median

    @property
    def allowed(self) -> float:
        return TARGETS["overhead_ms"] + TARGETS["overhead_frac"] * self.embedded.median

    @property
    def ok(self) -> bool:
        return self.overhead <= self.allowed

    def as_json(self) -> dict[str, Any]:
        def t(x: Any) -> dict[str, Any]:
            return {"median_ms": x.median, "p95_ms": x.p95, "times_ms": x.times_ms}
        res = self.embedded.result
        return {"name": self.name, "sql": self.sql, "router_sql": self.router_sql,
                "router": t(self.router), "embedded": t(self.embedded),
                "router_internal_median_ms": statistics.median(self.router_internal),
                "overhead_ms": self.overhead, "allowed_ms": self.allowed, "ok": self.ok,
                "match": self.match, "note": self.note,
                "router_cpu_ms_per_call": self.router_cpu, "embedded_cpu_ms_per_call": self.embedded_cpu,
                "result": res if isinstance(res, int) else [list(r) for r in res]}


def run_queries(stub, store, repeat: int, procs: dict[str, subprocess.Popen]) -> list[QueryRow]:
    out = []
    for name, sql in QUERIES:
        q = QueryRow(name, sql)
        internal: list[float] = []

        def via_router() -> list[tuple]:
            reply = stub.Query(pb.QueryRequest(sql=q.router_sql), timeout=120)
            internal.append(reply.elapsed_ms)
            return codec.query_result(reply).rows

        calls = repeat + 1
        meter = CpuMeter(procs)
        q.router = time_it(via_router, repeat)
        q.router_cpu = {k: v / calls * 1e3 for k, v in meter.used().items()}
        q.router_internal = internal[1:]    # drop the warm-up run
        meter = CpuMeter({})
        if is_select(sql):
            q.embedded = time_it(lambda: store.query(sql).rows, repeat)
        else:
            q.embedded = time_it(lambda: store.count(sql), repeat)
        q.embedded_cpu = meter.used()["client"] / calls * 1e3
        q.match, q.note = compare(sql, q.embedded.result, q.router.result)
        if not q.match:
            print(f"!!! MISMATCH {name}: embedded {show(q.embedded.result)} vs router "
                  f"{show(q.router.result)}", file=sys.stderr)
        print(f"  {name:<14} router {q.router.median:8.2f} ms  embedded {q.embedded.median:8.2f} ms  "
              f"→ {show(q.embedded.result)}", file=sys.stderr)
        out.append(q)
    return out


# ---- report ----------------------------------------------------------------------------------

def mib(b: float | None) -> str:
    return "-" if b is None else f"{b / 2**20:,.1f}"


def print_report(rep: dict[str, Any], phases: list[Phase], queries: list[QueryRow],
                 track: list[grpc_events.TrackPhase] = ()) -> None:
    a = rep["args"]
    print(f"\ncdpcore gRPC bench — {a['profiles']:,} profiles, {a['shards']} shard processes + router "
          f"(separate processes), repeat {a['repeat']} (+1 warm-up); load average "
          f"{rep['loadavg'][0]:.2f} at start, {rep['loadavg'][1]:.2f} at end")
    idle = rep["idle_memory"]
    print("\nidle memory before data (MiB):  " + ",  ".join(
        f"{k} RSS {mib(v['rss'])} (PSS {mib(v['pss'])})" for k, v in idle.items())
        + f";  total RSS {mib(rep['idle_rss_total'])}, PSS {mib(rep['idle_pss_total'])}")

    head = (f"{'ingest path':<34}{'batch':>7}{'profiles':>11}{'reqs':>7}{'profiles/s':>12}{'encode/s':>12}"
            f"{'e2e/s':>11}{'B/prof':>8}{'CPU µs/prof rtr+shards':>24}")
    print("\n" + head + "\n" + "-" * len(head))
    for p in phases:
        j = p.as_json()
        enc = f"{j['encode_profiles_per_s']:,.0f}" if j["encode_profiles_per_s"] else "-"
        print(f"{p.label:<34}{p.batch:>7,}{p.n:>11,}{p.requests:>7,}{p.rate:>12,.0f}{enc:>12}"
              f"{j['end_to_end_profiles_per_s']:>11,.0f}{p.wire_bytes / p.n:>8.1f}"
              f"{_cpu_split(p.cpu, p.n / 1e6):>24}")
    print("(profiles/s: RPC time only; encode/s: client-side message building alone; e2e/s: both;\n"
          " CPU: router + all shards, user+system, during the phase, per profile)")
    if rep.get("embedded_load"):
        e = rep["embedded_load"]
        print(f"embedded Store(shards=2) upsert_columns, batches of 1M: "
              f"{e['profiles_per_s']:,.0f} profiles/s")
    if rep.get("loaded_memory"):
        print("after load (MiB):  " + ",  ".join(
            f"{k} RSS {mib(v['rss'])}" for k, v in rep["loaded_memory"].items()))
    grpc_events.print_track(list(track))

    head = (f"{'query':<15}{'rtr med':>9}{'rtr p95':>9}{'emb med':>9}{'emb p95':>9}{'overhd':>9}"
            f"{'allowed':>9}{'in-rtr':>9}{'rtr CPU':>9}{'emb CPU':>9}  check")
    print("\n" + head + "\n" + "-" * len(head))
    for q in queries:
        print(f"{q.name:<15}{q.router.median:9.2f}{q.router.p95:9.2f}{q.embedded.median:9.2f}"
              f"{q.embedded.p95:9.2f}{q.overhead:9.2f}{q.allowed:9.2f}"
              f"{statistics.median(q.router_internal):9.2f}{sum(q.router_cpu.values()):9.2f}"
              f"{q.embedded_cpu:9.2f}"
              f"  {'ok' if q.ok else 'OVER'}"
              f"{'' if q.match else ' MISMATCH'}{f' ({q.note})' if q.note else ''}")
    if queries:
        tr = sum(q.router.median for q in queries)
        te = sum(q.embedded.median for q in queries)
        print("-" * len(head))
        print(f"{'total (medians)':<15}{tr:9.2f}{'':>9}{te:9.2f}{'':>9}{tr - te:9.2f}")
        print(f"median overhead across queries: {statistics.median(q.overhead for q in queries):.2f} ms")
    print("(ms; overhd = router − embedded medians; allowed = 2 ms + 10% of embedded; in-rtr = the "
          "router's own elapsed_ms: parse + fan-out to shards + merge;\n rtr CPU = CPU time per call "
          "summed over client, router and shards; emb CPU = this process's CPU time per embedded call)")

    print("\ntargets (issue 3):")
    for label, ok, detail in targets(rep, phases, queries):
        print(f"  [{'pass' if ok else 'FAIL'}] {label}: {detail}")
    if track:
        print("\ntargets (issue 4):")
        for label, ok, detail in grpc_events.track_targets(list(track)):
            print(f"  [{'pass' if ok else 'FAIL'}] {label}: {detail}")


def _cpu_split(cpu: dict[str, float], per: float) -> str:
    """'router + shards' CPU per unit (µs per profile when per = profiles / 1e6)."""
    if not cpu or not per:
        return "-"
    r = cpu.get("router", 0.0) / per
    sh = sum(v for k, v in cpu.items() if k.startswith("shard")) / per
    return f"{r:.1f} + {sh:.1f}"


def targets(rep: dict[str, Any], phases: list[Phase], queries: list[QueryRow]) -> list[tuple[str, bool, str]]:
    out = []
    for p in phases:
        if p.path == "stream":
            out.append((f"UpsertStream, batches of {p.batch:,} ≥ 250k profiles/s",
                        p.rate >= TARGETS["stream"], f"{p.rate:,.0f}/s"))
        elif p.batch == 100:
            how = p.path + (", " + p.label.split(", ")[1] if "in flight" in p.label else ", sequential")
            out.append((f"unary Upsert, batches of 100 ({how}) ≥ 50k profiles/s",
                        p.rate >= TARGETS["unary100"], f"{p.rate:,.0f}/s"))
    if queries:
        over = [f"{q.name} +{q.overhead:.2f} (allowed {q.allowed:.2f})" for q in queries if not q.ok]
        out.append(("query overhead ≤ 2 ms + 10% per query", not over,
                    f"{len(queries) - len(over)}/{len(queries)} within"
                    + (f"; over: {', '.join(over)}" if over else "")))
        bad = [q.name for q in queries if not q.match]
        out.append(("router answers equal embedded answers", not bad, ", ".join(bad) if bad else "all"))
    total = rep["idle_rss_total"]
    out.append(("router + shards idle ≤ 150 MB RSS before data",
                total <= TARGETS["idle_rss_mib"] * 1e6,
                f"{total / 1e6:,.1f} MB ({mib(total)} MiB) RSS; PSS {rep['idle_pss_total'] / 1e6:,.1f} MB"))
    return out


def run_track_phases(stub, a: argparse.Namespace,
                     procs: dict[str, subprocess.Popen]) -> list[grpc_events.TrackPhase]:
    """Track, TrackStream (and Track with calls in flight) of the loaded profiles' events."""
    plan = [("Track unary columnar", "unary", 1, False), ("Track unary columnar, dict ids", "unary", 1, True),
            ("TrackStream columnar, dict ids", "stream", 1, True)]
    if a.inflight[0] > 1:
        plan.append((f"Track unary columnar, dict ids, {a.inflight[0]} in flight", "unary", a.inflight[0], True))
    out = []
    for i, (label, path, inflight, dict_ids) in enumerate(plan):
        phase = grpc_events.TrackPhase(label, path, a.track_batch, a.track_events, dict_ids)
        print(f"{label}, batches of {a.track_batch:,}: ~{a.track_events:,} events…", file=sys.stderr)
        meter = CpuMeter(procs, client=False)
        if path == "stream":
            grpc_events.run_track_stream(stub, phase, a.profiles, SEED + 100 + i)
        else:
            grpc_events.run_track(stub, phase, a.profiles, SEED + 100 + i, inflight)
        phase.cpu = meter.used()
        print(f"  {phase.rate:,.0f} events/s ({phase.seconds:.2f} s in RPCs, "
              f"{phase.encode_seconds:.2f} s encoding)", file=sys.stderr)
        out.append(phase)
    return out


# ---- main ------------------------------------------------------------------------------------

def _levels(text: str) -> list[int]:
    """'4,8,16' → [4, 8, 16] (calls in flight per timed phase)."""
    return [int(x) for x in text.split(",") if x.strip()]


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--profiles", type=int, default=10_000_000,
                   help="profiles in the cluster and the embedded store (10,000,000)")
    p.add_argument("--ingest-profiles", type=int, default=1_000_000,
                   help="profiles per timed ingest path (capped at --profiles ÷ number of paths)")
    p.add_argument("--repeat", type=int, default=9, help="timed runs per query (9)")
    p.add_argument("--shards", type=int, default=2, help="shard processes (2)")
    p.add_argument("--bulk-batch", type=int, default=100_000, help="profiles per request of the bulk load")
    p.add_argument("--inflight", type=_levels, default=[4, 8, 16],
                   help="also time unary Upserts of 100 with this many calls in flight, per "
                        "comma-separated level (4,8,16; 1 = skip)")
    p.add_argument("--track-events", type=int, default=1_000_000,
                   help="events per Track path, about (1,000,000; 0 skips)")
    p.add_argument("--track-batch", type=int, default=10_000, help="events per Track request (10,000)")
    p.add_argument("--no-queries", action="store_true", help="ingest and memory only")
    p.add_argument("--json", metavar="OUT", help="also write the results as JSON to OUT")
    a = p.parse_args(argv)

    levels = [n for n in a.inflight if n > 1]
    per_path = min(a.ingest_profiles, a.profiles // (4 + len(levels)))
    plan = [("UpsertStream columnar", "stream", 1_000), ("UpsertStream columnar", "stream", 10_000),
            ("Upsert unary columnar", "columns", 100), ("Upsert unary rows (profiles)", "rows", 100)]
    for n in levels:
        plan.append((f"Upsert unary columnar, {n} in flight", "columns", 100))
    rep: dict[str, Any] = {
        "command": " ".join(shlex.quote(x) for x in [sys.executable, *sys.argv]),
        "when": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        "host": {"python": platform.python_version(), "machine": platform.machine(),
                 "cpus": os.cpu_count(), "grpc": grpc.__version__, "numpy": np.__version__},
        "args": {**vars(a), "ingest_per_path": per_path},
    }
    load_start = os.getloadavg()
    print(f"load average at start: {load_start}", file=sys.stderr)
    procs: dict[str, subprocess.Popen] = {}
    channel = None
    store = None
    phases: list[Phase] = []
    track: list[grpc_events.TrackPhase] = []
    queries: list[QueryRow] = []
    try:
        shards = []
        for i in range(a.shards):
            shards.append(start_shard_process("127.0.0.1"))
            procs[f"shard{i}"] = shards[-1][0]
        router, address = start_router([addr for _, addr in shards])
        procs["router"] = router
        print(f"router {address} over shards {', '.join(x for _, x in shards)}", file=sys.stderr)
        time.sleep(1.0)
        rep["idle_memory"] = memory_of(procs)
        rep["idle_rss_total"] = sum(v["rss"] for v in rep["idle_memory"].values())
        rep["idle_pss_total"] = sum(v["pss"] or 0 for v in rep["idle_memory"].values())
        print(f"idle RSS total {rep['idle_rss_total'] / 2**20:.1f} MiB", file=sys.stderr)

        channel = grpc.insecure_channel(address, options=[
            ("grpc.max_send_message_length", CLIENT_MAX_MESSAGE),
            ("grpc.max_receive_message_length", CLIENT_MAX_MESSAGE)])
        stub = profile_store_pb2_grpc.ProfileStoreStub(channel)
        stub.DefineFields(pb.DefineFieldsRequest(
            fields=[pb.FieldSpec(name=k, type=v) for k, v in sample.SCHEMA.items()]), timeout=30)

        start = 0
        for label, path, batch in plan:
            phase = Phase(label, path, batch, start, per_path)
            print(f"{label}, batches of {batch:,}: ids [{start:,}, {start + per_path:,})…", file=sys.stderr)
            meter = CpuMeter(procs, client=False)
            if path == "stream":
                run_stream(stub, phase)
            else:
                run_unary(stub, phase, rows=(path == "rows"),
                          inflight=int(label.split(", ")[1].split()[0]) if "in flight" in label else 1)
            phase.cpu = meter.used()
            print(f"  {phase.rate:,.0f} profiles/s ({phase.seconds:.2f} s in RPCs, "
                  f"{phase.encode_seconds:.2f} s encoding)", file=sys.stderr)
            phases.append(phase)
            start += per_path

        if start < a.profiles:
            bulk = Phase("Upsert unary columnar (bulk load)", "columns", a.bulk_batch, start,
                         a.profiles - start)
            print(f"bulk load of ids [{start:,}, {a.profiles:,})…", file=sys.stderr)
            meter = CpuMeter(procs, client=False)
            run_unary(stub, bulk, rows=False)
            bulk.cpu = meter.used()
            phases.append(bulk)
        if a.track_events:
            track = run_track_phases(stub, a, procs)
        rep["loaded_memory"] = memory_of(procs)
        status = admin_pb2_grpc.AdminStub(channel).ClusterStatus(admin_pb2.ClusterStatusRequest(), timeout=30)
        rep["cluster_profiles"] = status.profiles
        if status.profiles != a.profiles:
            print(f"!!! the cluster holds {status.profiles:,} profiles, expected {a.profiles:,}",
                  file=sys.stderr)

        if not a.no_queries:
            print(f"embedded Store(shards=2): loading {a.profiles:,} profiles…", file=sys.stderr)
            store = make_store(2)
            secs = 0.0
            for lo in range(0, a.profiles, 1_000_000):
                ids, cols = sample.generate_columns(min(1_000_000, a.profiles - lo), SEED, lo)
                t0 = time.perf_counter()
                store.upsert_columns(ids, cols)
                secs += time.perf_counter() - t0
                del ids, cols
            rep["embedded_load"] = {"profiles": a.profiles, "seconds": secs,
                                    "profiles_per_s": a.profiles / secs}
            assert len(store) == a.profiles, (len(store), a.profiles)
            print(f"running {len(QUERIES)} queries × {a.repeat} (router, then embedded)…", file=sys.stderr)
            queries = run_queries(stub, store, a.repeat, procs)
    finally:
        if channel is not None:
            channel.close()
        stop_processes(list(procs.values()))
        if store is not None:
            store.close()

    rep["loadavg"] = (load_start[0], os.getloadavg()[0])
    rep["loadavg_start_1_5_15"] = list(load_start)
    rep["loadavg_end_1_5_15"] = list(os.getloadavg())
    print_report(rep, phases, queries, track)
    if a.json:
        rep["ingest"] = [ph.as_json() for ph in phases]
        rep["track"] = [ph.as_json() for ph in track]
        rep["queries"] = [q.as_json() for q in queries]
        rep["targets"] = [{"target": t, "pass": ok, "detail": d}
                          for t, ok, d in targets(rep, phases, queries)]
        Path(a.json).parent.mkdir(parents=True, exist_ok=True)
        Path(a.json).write_text(json.dumps(rep, indent=2, default=str))
        print(f"\nwrote {a.json}")
    return 1 if any(not q.match for q in queries) else 0


if __name__ == "__main__":
    sys.exit(main())
