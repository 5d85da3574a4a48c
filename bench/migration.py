"""Online shard add / remove under load: migration rate and query latency (issue 7).

    python bench/migration.py                              # 5,000,000 profiles + ~15M events
    python bench/migration.py --profiles 500000 --json bench/out/migration-500k.json

Processes, as in production, all on loopback on this machine: this client; 2 shard
processes (`server.cli.serve.start_shard_process`) and a router over them started as
`python -m server.cli router --shard A --shard B --state DIR/router.json`; a third,
spare shard process started empty.

1. *Load*: the bench schema (`cdpcore.sample.SCHEMA`, DefineFields), `--profiles`
   profiles as columnar unary Upserts of `--bulk-batch` (bench/grpc_bench.py's
   `run_unary`), then about `--events-per-profile` synthetic events each as columnar
   `Track` calls with dictionary-encoded ids (bench/grpc_events.py's `run_track`).
   Rates are reported, no target.
2. *At rest*: one client thread sends the query mix (`MIX`: five of query_suite's
   `QUERIES` and one of bench/events.py's `EVENT_QUERIES`) round-robin through the
   router's Query RPC for `--rest-seconds`: p50 / p95 / max per query and overall. The
   first answer of each query is its reference.
3. *Add*: `AddShard(spare)` while the same query loop runs AND a writer thread sends,
   round after round, a unary Upsert of 100 new profiles plus a Track of one event for
   each of them. ClusterStatus is polled every 0.2 s until the migration is no longer
   running. Reported: the migration's own profiles_copied / seconds (and events), wall
   time from the AddShard call to the poll that saw it done, slots moved, query
   latency during the move, writes acknowledged, and every failed request of either
   thread (with its message).
   Before the AddShard, the two threads run `--writes-seconds` without a move
   (phase "writes", reported, no target): how much the writer alone moves latency.
4. *Remove*: `RemoveShard` of the first original shard, the same way.
5. *Checks* after each move (any difference prints MISMATCH, exit status 1):
   - `SELECT count(*) FROM profiles` = profiles loaded + the writer's acknowledged ones;
   - the writer's profiles and events are all there, once: `country = 'ZZ'` counts the
     acknowledged profiles, `event_count('mig_write') >= 1` the acknowledged events;
   - every answer of the query loop, at rest and DURING the moves, equals the query's
     reference answer. The writer cannot change them: its profiles have ids `w…` (no
     collision with the dataset's `u…`), only `age = 5` and `country = 'ZZ'` set (no
     query of the mix matches a null or those values), and its events have their own
     type `mig_write`; so a profile missed or counted twice during a flip shows.
   - the slot map ends balanced (5462/5461/5461 after the add, 8192/8192 after the
     remove).
6. Targets, PASS/FAIL: migration ≥ 200k profiles/s (events included in the copy);
   query p95 during each move ≤ 2× the p95 at rest; zero failed client requests.

Why only one event query: the router's `now()` is the wall clock. `now()` in the text
is replaced by the REF_NOW literal (`router_sql`), but a window such as '30d' is taken
back from the router's clock, so a windowed answer drifts while the bench runs (about
one event a second leaves a 30-day window today) and could not be compared across
phases; `ev_app_lapsed` has no window.

CPU seconds used by each process (router, each shard, this client) during each move
are reported, to see who limits the rate. Every process started here is stopped at the
end (try/finally).
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import select
import shlex
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

# bench.grpc_bench puts ROOT on the children's PYTHONPATH too
from bench import grpc_events  # noqa: E402
from bench.events import EVENT_QUERIES  # noqa: E402
from bench.grpc_bench import (CLIENT_MAX_MESSAGE, SEED, CpuMeter, Phase, memory_of,  # noqa: E402
                              router_sql, run_unary)
from bench.query_suite import QUERIES, compare, is_select, show  # noqa: E402
from cdpcore import sample  # noqa: E402
from server import codec  # noqa: E402
from server.cli.serve import start_shard_process, stop_processes  # noqa: E402
from server.pb.cdp.v1 import admin_pb2, admin_pb2_grpc  # noqa: E402
from server.pb.cdp.v1 import profile_store_pb2 as pb  # noqa: E402
from server.pb.cdp.v1 import profile_store_pb2_grpc  # noqa: E402

import grpc  # noqa: E402

_ALL_QUERIES = dict(QUERIES) | {name: sql for name, sql, _ in EVENT_QUERIES}
MIX_NAMES = ["eq_country", "range_ltv", "tag_golf", "mix6", "group_country", "ev_app_lapsed"]
MIX = [(name, router_sql(_ALL_QUERIES[name])) for name in MIX_NAMES]

WRITER_PREFIX = "w"              # the dataset's ids are u00000000…
WRITER_BATCH = 100
WRITER_RECORD = {"age": 5, "country": "ZZ"}   # matched by no query of MIX
WRITER_EVENT = "mig_write"
POLL_S = 0.2
CALL_TIMEOUT_S = 120.0
TARGETS = {"profiles_per_s": 200_000, "p95_ratio": 2.0, "failures": 0}


# ---- processes ----------------------------------------------------------------------

def start_router(shards: list[str], state: Path, move_batch: int | None,
                 timeout: float = 60.0) -> tuple[subprocess.Popen, str]:
    """`python -m server.cli router --state …` on a free port (grpc_bench.start_router
    takes no options); (process, address) once it printed READY."""
    cmd = [sys.executable, "-m", "server.cli", "router", "--host", "127.0.0.1", "--port", "0",
           "--state", str(state)]
    for s in shards:
        cmd += ["--shard", s]
    if move_batch:
        cmd += ["--move-batch", str(move_batch)]
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, text=True)
    ready, _, _ = select.select([proc.stdout], [], [], timeout)
    line = proc.stdout.readline() if ready else ""
    if not line.startswith("READY "):
        proc.kill()
        proc.wait()
        raise RuntimeError(f"router did not start (said {line.strip()!r})")
    return proc, line.split()[1]


# ---- load ---------------------------------------------------------------------------

def load(stub, a: argparse.Namespace) -> dict[str, Any]:
    """Profiles, then their events, through the router; rates of the calls alone."""
    stub.DefineFields(pb.DefineFieldsRequest(
        fields=[pb.FieldSpec(name=k, type=v) for k, v in sample.SCHEMA.items()]), timeout=30)
    print(f"loading {a.profiles:,} profiles (Upsert columnar, batches of {a.bulk_batch:,})…", file=sys.stderr)
    profiles = run_unary(stub, Phase("Upsert columnar", "columns", a.bulk_batch, 0, a.profiles), rows=False)
    out = {"profiles": profiles.as_json()}
    if a.events_per_profile > 0:
        events = grpc_events.TrackPhase("Track columnar, dict ids", "unary", a.track_batch,
                                        int(a.profiles * a.events_per_profile), dict_ids=True)
        print(f"loading ~{events.target:,} events (Track, batches of {a.track_batch:,})…", file=sys.stderr)
        grpc_events.run_track(stub, events, a.profiles, SEED + 100, inflight=a.track_inflight)
        out["events"] = events.as_json()
    return out


# ---- the query loop and the writer -----------------------------------------------------

@dataclass
class Failure:
    phase: str
    who: str               # query name, "upsert" or "track"
    message: str


@dataclass
class Recorder:
    """What the client threads saw, per phase ("rest", "add", "remove")."""
    phase: str = "rest"
    times: dict[str, dict[str, list[float]]] = field(default_factory=dict)   # phase → query → ms
    reference: dict[str, Any] = field(default_factory=dict)                   # query → answer at rest
    answers: dict[str, int] = field(default_factory=dict)                     # phase → answers checked
    mismatches: list[tuple[str, str, str, str]] = field(default_factory=list)
    failures: list[Failure] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def fail(self, who: str, e: Exception) -> None:
        msg = f"{e.code().name}: {e.details()}" if isinstance(e, grpc.RpcError) else repr(e)
        with self.lock:
            self.failures.append(Failure(self.phase, who, msg))
        print(f"\n!! {self.phase}: {who} failed: {msg}", file=sys.stderr)

    def failed(self, phase: str) -> list[Failure]:
        return [f for f in self.failures if f.phase == phase]


def ask(stub, sql: str) -> Any:
    """The answer as Python values: an int for a bare condition, rows for a SELECT."""
    rows = codec.query_result(stub.Query(pb.QueryRequest(sql=sql), timeout=CALL_TIMEOUT_S)).rows
    return [tuple(r) for r in rows] if is_select(sql) else rows[0][0]


def same(sql: str, reference: Any, got: Any) -> bool:
    """query_suite.compare (floats to 1e-9 relative, group-by ties in any order) for
    answers of `ask`."""
    return compare(sql, reference, [(got,)] if isinstance(got, int) else got)[0]


def query_loop(stub, rec: Recorder, stop: threading.Event, seconds: float | None = None) -> None:
    """The mix round-robin until `stop` (or for `seconds`), timing each call and
    checking each answer against the reference (the first answer at rest)."""
    end = None if seconds is None else time.monotonic() + seconds
    i = 0
    while not stop.is_set() and (end is None or time.monotonic() < end):
        name, sql = MIX[i % len(MIX)]
        i += 1
        t0 = time.perf_counter()
        try:
            got = ask(stub, sql)
        except grpc.RpcError as e:
            rec.fail(name, e)
            time.sleep(0.05)
            continue
        ms = (time.perf_counter() - t0) * 1e3
        phase = rec.phase
        rec.times.setdefault(phase, {}).setdefault(name, []).append(ms)
        rec.answers[phase] = rec.answers.get(phase, 0) + 1
        ref = rec.reference.setdefault(name, got)
        if not same(sql, ref, got):
            rec.mismatches.append((phase, name, show(ref), show(got)))
            print(f"\n!!! MISMATCH {phase} {name}: reference {show(ref)}, got {show(got)}", file=sys.stderr)


@dataclass
class Writer:
    """New profiles `w%09d`, 100 per unary Upsert, then a Track of one event each."""
    next_id: int = 0
    rounds: int = 0
    profiles_acked: int = 0
    profiles_sent: int = 0        # acknowledged or not (a failed call may have applied)
    events_acked: int = 0
    events_sent: int = 0
    upsert_ms: list[float] = field(default_factory=list)
    track_ms: list[float] = field(default_factory=list)

    def run(self, stub, rec: Recorder, stop: threading.Event) -> None:
        while not stop.is_set():
            ids = [f"{WRITER_PREFIX}{i:09d}" for i in range(self.next_id, self.next_id + WRITER_BATCH)]
            self.next_id += WRITER_BATCH
            if self._upsert(stub, rec, ids):
                self._track(stub, rec, ids)
            self.rounds += 1

    def _upsert(self, stub, rec: Recorder, ids: list[str]) -> bool:
        req = pb.UpsertRequest(profiles=codec.profiles_from_records(
            [{"profile_id": i, **WRITER_RECORD} for i in ids]))
        self.profiles_sent += len(ids)
        t0 = time.perf_counter()
        try:
            reply = stub.Upsert(req, timeout=CALL_TIMEOUT_S)
        except grpc.RpcError as e:
            rec.fail("upsert", e)
            return False
        self.upsert_ms.append((time.perf_counter() - t0) * 1e3)
        self.profiles_acked += reply.accepted
        if reply.errors or reply.accepted != len(ids):
            rec.fail("upsert", RuntimeError(f"accepted {reply.accepted}/{len(ids)}, {list(reply.errors)[:1]}"))
            return False
        return True

    def _track(self, stub, rec: Recorder, ids: list[str]) -> None:
        ts = int(time.time())
        req = pb.TrackRequest(events=codec.events_from_records(
            [{"profile_id": i, "type": WRITER_EVENT, "ts": ts} for i in ids]))
        self.events_sent += len(ids)
        t0 = time.perf_counter()
        try:
            reply = stub.Track(req, timeout=CALL_TIMEOUT_S)
        except grpc.RpcError as e:
            rec.fail("track", e)
            return
        self.track_ms.append((time.perf_counter() - t0) * 1e3)
        self.events_acked += reply.accepted
        if reply.errors or reply.accepted != len(ids):
            rec.fail("track", RuntimeError(f"accepted {reply.accepted}/{len(ids)}, {list(reply.errors)[:1]}"))


# ---- one move ---------------------------------------------------------------------------

def machine_cpu_seconds() -> float:
    """CPU time the whole machine spent busy since boot (all cores; /proc/stat): minus
    what our processes used, it shows how much other work shared the cores."""
    with open("/proc/stat") as f:
        user, nice, system, _idle, _iowait, irq, softirq, steal = map(int, f.readline().split()[1:9])
    return (user + nice + system + irq + softirq + steal) / os.sysconf("SC_CLK_TCK")


def run_move(kind: str, address: str, stub, admin, rec: Recorder, writer: Writer,
             procs: dict[str, subprocess.Popen], timeout: float,
             before: tuple[str, float] = ("", 1.0)) -> dict[str, Any]:
    """AddShard / RemoveShard of `address` under the query loop and the writer; polls
    ClusterStatus until the migration is no longer running. The threads run `before`
    = (phase label, seconds) first: into their stride, and writes without a move."""
    rec.phase = before[0] or f"{kind}-start"
    stop = threading.Event()
    w0 = (writer.rounds, writer.profiles_acked, writer.events_acked)
    threads = [threading.Thread(target=query_loop, args=(stub, rec, stop), name="queries"),
               threading.Thread(target=writer.run, args=(stub, rec, stop), name="writer")]
    for t in threads:
        t.start()
    time.sleep(before[1])
    rec.phase = kind
    meter, machine = CpuMeter(procs), machine_cpu_seconds()
    polls: list[dict[str, Any]] = []
    t0 = time.perf_counter()
    try:
        if kind == "add":
            admin.AddShard(admin_pb2.AddShardRequest(address=address), timeout=60)
        else:
            admin.RemoveShard(admin_pb2.RemoveShardRequest(address=address), timeout=60)
        m = _wait(admin, rec, polls, t0, timeout)
        wall = time.perf_counter() - t0
        cpu = meter.used()
        others = machine_cpu_seconds() - machine - sum(cpu.values())
    finally:
        stop.set()
        for t in threads:
            t.join()
    print(file=sys.stderr)
    return {"kind": kind, "address": address, "state": m.state, "error": m.error,
            "slots_total": m.slots_total, "slots_moved": m.slots_moved,
            "profiles_copied": m.profiles_copied, "events_copied": m.events_copied,
            "seconds": m.seconds, "wall_seconds": wall,
            "profiles_per_s": m.profiles_copied / m.seconds if m.seconds else 0.0,
            "events_per_s": m.events_copied / m.seconds if m.seconds else 0.0,
            "status_profiles_per_s": m.profiles_per_second,
            "writer_rounds": writer.rounds - w0[0], "writer_profiles_acked": writer.profiles_acked - w0[1],
            "writer_events_acked": writer.events_acked - w0[2],
            "cpu_seconds": cpu, "other_cpu_seconds": max(0.0, others), "polls": polls}


def _wait(admin, rec: Recorder, polls: list[dict[str, Any]], t0: float,
          timeout: float) -> admin_pb2.MigrationStatus:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            m = admin.ClusterStatus(admin_pb2.ClusterStatusRequest(), timeout=30).migration
        except grpc.RpcError as e:
            rec.fail("ClusterStatus", e)
            time.sleep(POLL_S)
            continue
        polls.append({"t": time.perf_counter() - t0, "slots_moved": m.slots_moved,
                      "profiles_copied": m.profiles_copied, "events_copied": m.events_copied})
        if sys.stderr.isatty() or len(polls) % 25 == 1 or m.state != "running":   # a line per 5 s in a log
            print(f"\r  {m.kind} {m.state}: {m.slots_moved:,}/{m.slots_total:,} slots, "
                  f"{m.profiles_copied:,} profiles, {m.events_copied:,} events in {m.seconds:.1f} s "
                  f"({m.profiles_per_second:,.0f}/s)", end="" if sys.stderr.isatty() else "\n", file=sys.stderr)
        if m.state != "running":
            return m
        time.sleep(POLL_S)
    raise RuntimeError(f"the migration was still running after {timeout:.0f} s")


# ---- checks ---------------------------------------------------------------------------

def check_after(label: str, stub, admin, rec: Recorder, writer: Writer, n_profiles: int,
                slots: list[int]) -> list[str]:
    """Exact counts after a move; returns the problems found (each printed as MISMATCH)."""
    problems = []
    total = ask(stub, "SELECT count(*) FROM profiles")[0][0]
    lo, hi = n_profiles + writer.profiles_acked, n_profiles + writer.profiles_sent
    if not lo <= total <= hi or (lo == hi and total != lo):
        problems.append(f"count(*) = {total:,}, expected {lo:,}" + (f"..{hi:,}" if hi != lo else ""))
    mine = ask(stub, f"country = '{WRITER_RECORD['country']}'")
    if not writer.profiles_acked <= mine <= writer.profiles_sent:
        problems.append(f"writer profiles = {mine:,}, expected {writer.profiles_acked:,}")
    tracked = ask(stub, f"event_count('{WRITER_EVENT}') >= 1")
    if not writer.events_acked <= tracked <= writer.events_sent:
        problems.append(f"profiles with writer events = {tracked:,}, expected {writer.events_acked:,}")
    for name, sql in MIX:
        got = ask(stub, sql)
        if not same(sql, rec.reference[name], got):
            problems.append(f"{name}: {show(got)}, at rest {show(rec.reference[name])}")
    status = admin.ClusterStatus(admin_pb2.ClusterStatusRequest(), timeout=30)
    owned = sorted((s.slots_owned for s in status.shards), reverse=True)
    if owned != slots:
        problems.append(f"slots owned {owned}, expected {slots}")
    if status.profiles != total:
        problems.append(f"ClusterStatus.profiles = {status.profiles:,}, count(*) = {total:,}")
    for p in problems:
        print(f"!!! MISMATCH after {label}: {p}", file=sys.stderr)
    print(f"checked after {label}: count(*) {total:,} ({n_profiles:,} + {writer.profiles_acked:,} "
          f"written), slots {owned}: {'ok' if not problems else f'{len(problems)} problems'}", file=sys.stderr)
    return problems


# ---- figures ----------------------------------------------------------------------------

def latency(times: list[float]) -> dict[str, float]:
    if not times:
        return {"n": 0, "p50": float("nan"), "p95": float("nan"), "max": float("nan")}
    t = np.asarray(times)
    return {"n": len(t), "p50": float(np.percentile(t, 50)), "p95": float(np.percentile(t, 95)),
            "max": float(t.max())}


def latencies(rec: Recorder, phase: str) -> dict[str, dict[str, float]]:
    per = rec.times.get(phase, {})
    out = {name: latency(per.get(name, [])) for name, _ in MIX}
    out["overall"] = latency([x for v in per.values() for x in v])
    return out


def targets(rep: dict[str, Any]) -> list[tuple[str, bool, str]]:
    out = []
    rest = rep["latency"]["rest"]["overall"]["p95"]
    for mv in rep["moves"]:
        k = mv["kind"]
        rate = mv["profiles_per_s"]
        out.append((f"{k}: migration ≥ 200k profiles/s (with events)",
                    mv["state"] == "done" and rate >= TARGETS["profiles_per_s"],
                    f"{rate:,.0f} profiles/s, {mv['events_per_s']:,.0f} events/s ({mv['state']})"))
        p95 = rep["latency"][k]["overall"]["p95"]
        extra = ""
        if "writes" in rep["latency"]:   # not the target: how much of the rise the writer alone causes
            w = rep["latency"]["writes"]["overall"]["p95"]
            extra = f"; {p95 / w:.2f}× the {w:.1f} ms with the writer alone, no move"
        out.append((f"{k}: query p95 during the move ≤ 2× p95 at rest", p95 <= TARGETS["p95_ratio"] * rest,
                    f"{p95:.1f} ms vs {rest:.1f} ms at rest ({p95 / rest:.2f}×){extra}"))
    n = len(rep["failures"])
    out.append(("zero failed client requests", n == 0, f"{n} failed"))
    out.append(("answers and counts exact at rest, during and after the moves", not rep["mismatches"],
                f"{len(rep['mismatches'])} mismatches; {sum(rep['answers_checked'].values()):,} answers checked"))
    return out


def print_report(rep: dict[str, Any]) -> None:
    a = rep["args"]
    la = rep["loadavg"]
    print(f"\ncdpcore migration bench: {a['profiles']:,} profiles, ~{a['events_per_profile']} events each; "
          f"2 shards + router, then add a 3rd, then remove the 1st; load average {la['start'][0]:.2f} at "
          f"start, {la['end'][0]:.2f} at end")
    ld = rep["load"]
    line = f"\nload: profiles {ld['profiles']['profiles_per_s']:,.0f}/s ({ld['profiles']['seconds']:.1f} s)"
    if "events" in ld:
        line += f"; events {ld['events']['events']:,} at {ld['events']['events_per_s']:,.0f}/s " \
                f"({ld['events']['seconds']:.1f} s)"
    print(line)
    head = f"{'move':<8}{'slots':>7}{'profiles':>11}{'events':>12}{'mig s':>8}{'wall s':>8}" \
           f"{'profiles/s':>12}{'events/s':>12}{'writes acked':>14}  CPU s (ours; others' on this machine)"
    print("\n" + head + "\n" + "-" * len(head))
    for mv in rep["moves"]:
        cpu = ", ".join(f"{k} {v:.1f}" for k, v in mv["cpu_seconds"].items())
        print(f"{mv['kind']:<8}{mv['slots_moved']:>7,}{mv['profiles_copied']:>11,}{mv['events_copied']:>12,}"
              f"{mv['seconds']:>8.1f}{mv['wall_seconds']:>8.1f}{mv['profiles_per_s']:>12,.0f}"
              f"{mv['events_per_s']:>12,.0f}{mv['writer_profiles_acked']:>14,}  {cpu}; "
              f"other processes {mv['other_cpu_seconds']:.1f}")
    phases = [p for p in ("rest", "writes", "add", "remove") if p in rep["latency"]]
    head = f"{'query':<16}" + "".join(f"{p + ' ' + s:>14}" for p in phases for s in ("p50", "p95", "max"))
    print("\n" + head + "\n" + "-" * len(head))
    for name in [n for n, _ in MIX] + ["overall"]:
        print(f"{name:<16}" + "".join(f"{rep['latency'][p][name][s]:>14.1f}" for p in phases
                                      for s in ("p50", "p95", "max")))
    print("(ms, client-side, one query thread; calls: "
          + ", ".join(f"{p} {rep['latency'][p]['overall']['n']:,}" for p in phases) + ")")
    w = rep["writer"]
    print(f"\nwriter: {w['rounds']:,} rounds, {w['profiles_acked']:,} profiles and {w['events_acked']:,} "
          f"events acknowledged; Upsert p50/p95 {w['upsert']['p50']:.1f}/{w['upsert']['p95']:.1f} ms, "
          f"Track {w['track']['p50']:.1f}/{w['track']['p95']:.1f} ms")
    for f in rep["failures"][:20]:
        print(f"  failed: [{f['phase']}] {f['who']}: {f['message']}")
    print("\ntargets (issue 7):")
    for label, ok, detail in targets(rep):
        print(f"  [{'PASS' if ok else 'FAIL'}] {label}: {detail}")


# ---- main -------------------------------------------------------------------------------

def parse_args(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--profiles", type=int, default=5_000_000, help="profiles loaded (5,000,000)")
    p.add_argument("--events-per-profile", type=float, default=3.0, help="synthetic events per profile (3)")
    p.add_argument("--rest-seconds", type=float, default=20.0, help="query loop at rest (20)")
    p.add_argument("--writes-seconds", type=float, default=10.0,
                   help="queries + writer without a move, before the add (10; 0 skips)")
    p.add_argument("--bulk-batch", type=int, default=100_000, help="profiles per Upsert of the load")
    p.add_argument("--track-batch", type=int, default=100_000, help="events per Track of the load")
    p.add_argument("--track-inflight", type=int, default=2, help="Track calls in flight during the load (2)")
    p.add_argument("--move-batch", type=int, default=None, help="the router's --move-batch (its default)")
    p.add_argument("--move-timeout", type=float, default=1200.0, help="give up on a move after (1200 s)")
    p.add_argument("--json", metavar="OUT", help="also write the figures as JSON to OUT")
    return p.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    a = parse_args(argv)
    rep: dict[str, Any] = {
        "command": " ".join(shlex.quote(x) for x in [sys.executable, *sys.argv]),
        "when": time.strftime("%Y-%m-%dT%H:%M:%S%z"), "args": vars(a),
        "host": {"python": platform.python_version(), "cpus": os.cpu_count(), "grpc": grpc.__version__,
                 "numpy": np.__version__},
        "mix": dict(MIX), "loadavg": {"start": list(os.getloadavg())}}
    print(f"load average at start: {rep['loadavg']['start']}", file=sys.stderr)
    procs: dict[str, subprocess.Popen] = {}
    rec, writer = Recorder(), Writer()
    problems: list[str] = []
    channel = None
    tmp = tempfile.TemporaryDirectory(prefix="cdp-migration-")
    try:
        shards = []
        for name in ("shard0", "shard1", "spare"):
            proc, address = start_shard_process("127.0.0.1")
            procs[name] = proc
            shards.append(address)
        procs["router"], address = start_router(shards[:2], Path(tmp.name) / "router.json", a.move_batch)
        print(f"router {address} over {shards[0]}, {shards[1]}; spare {shards[2]}", file=sys.stderr)
        channel = grpc.insecure_channel(address, options=[
            ("grpc.max_send_message_length", CLIENT_MAX_MESSAGE),
            ("grpc.max_receive_message_length", CLIENT_MAX_MESSAGE)])
        stub = profile_store_pb2_grpc.ProfileStoreStub(channel)
        admin = admin_pb2_grpc.AdminStub(channel)

        rep["load"] = load(stub, a)
        rep["loaded_memory"] = memory_of(procs)
        print(f"queries at rest for {a.rest_seconds:.0f} s…", file=sys.stderr)
        query_loop(stub, rec, threading.Event(), a.rest_seconds)
        rep["moves"] = []
        for kind, target, slots in (("add", shards[2], [5462, 5461, 5461]), ("remove", shards[0], [8192, 8192])):
            print(f"{kind} {target} under queries and writes…", file=sys.stderr)
            before = ("writes", a.writes_seconds) if kind == "add" and a.writes_seconds else ("", 1.0)
            rep["moves"].append(run_move(kind, target, stub, admin, rec, writer, procs, a.move_timeout, before))
            problems += [f"after {kind}: {p}" for p in
                         check_after(kind, stub, admin, rec, writer, a.profiles, slots)]
        rep["final_memory"] = memory_of(procs)
    finally:
        if channel is not None:
            channel.close()
        stop_processes(list(procs.values()))
        tmp.cleanup()

    rep["loadavg"]["end"] = list(os.getloadavg())
    rep["latency"] = {p: latencies(rec, p) for p in rec.times if not p.endswith("-start")}
    rep["writer"] = {"rounds": writer.rounds, "profiles_acked": writer.profiles_acked,
                     "profiles_sent": writer.profiles_sent, "events_acked": writer.events_acked,
                     "events_sent": writer.events_sent, "upsert": latency(writer.upsert_ms),
                     "track": latency(writer.track_ms)}
    rep["failures"] = [vars(f) for f in rec.failures]
    rep["mismatches"] = [list(m) for m in rec.mismatches] + problems
    rep["answers_checked"] = rec.answers
    rep["reference"] = {k: v if isinstance(v, int) else [list(r) for r in v] for k, v in rec.reference.items()}
    print_report(rep)
    rep["targets"] = [{"target": t, "pass": ok, "detail": d} for t, ok, d in targets(rep)]
    if a.json:
        Path(a.json).parent.mkdir(parents=True, exist_ok=True)
        Path(a.json).write_text(json.dumps(rep, indent=2, default=str))
        print(f"\nwrote {a.json}")
    if rep["mismatches"]:
        print(f"MISMATCH: {len(rep['mismatches'])} differences (see above)")
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
