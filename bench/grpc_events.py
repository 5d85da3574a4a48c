"""Event ingest over gRPC for bench/grpc_bench.py: `Track` (unary) and `TrackStream`
with the columnar `EventBatch` (`server.codec.event_batch_from_columns`), the events
of the profiles already in the cluster (`cdpcore.sample.event_batches`, seeded).

As for profiles, building the request messages on the client ("encode") is timed
apart from the calls and excluded from the rate; a call is timed from the stub call to
its reply (serialization, transport, the router's decode/validate/split/re-encode and
the shards' apply are all in).
"""
from __future__ import annotations

import collections
import itertools
import sys
import time
from typing import Any, Iterator

from cdpcore import sample
from server import codec
from server.pb.cdp.v1 import profile_store_pb2 as pb

TARGET_EVENTS_PER_S = 200_000
GEN_BATCH = 1 << 18          # events generated (and encoded) at a time before sending


class TrackPhase:
    def __init__(self, label: str, path: str, batch: int, events: int, dict_ids: bool = False) -> None:
        self.label, self.path, self.batch, self.target = label, path, batch, events
        self.dict_ids = dict_ids  # ids sent dictionary-encoded (profile_id_dict)
        self.n = 0                # events sent
        self.seconds = 0.0
        self.encode_seconds = 0.0
        self.requests = 0
        self.accepted = 0
        self.errors = 0
        self.wire_bytes = 0
        self.cpu: dict[str, float] = {}

    @property
    def rate(self) -> float:
        return self.n / self.seconds if self.seconds else float("inf")

    def check(self, reply: pb.TrackResponse) -> None:
        self.accepted += reply.accepted
        self.errors += len(reply.errors)
        if reply.errors:
            print(f"!! {self.label}: {len(reply.errors)} event errors, first {reply.errors[0]}",
                  file=sys.stderr)

    def as_json(self) -> dict[str, Any]:
        return {"label": self.label, "path": self.path, "batch": self.batch, "events": self.n,
                "requests": self.requests, "seconds": self.seconds, "events_per_s": self.rate,
                "encode_seconds": self.encode_seconds,
                "encode_events_per_s": self.n / self.encode_seconds if self.encode_seconds else None,
                "end_to_end_events_per_s": self.n / (self.seconds + self.encode_seconds),
                "wire_bytes": self.wire_bytes, "accepted": self.accepted, "errors": self.errors,
                "server_cpu_seconds": self.cpu,
                "server_cpu_us_per_event": {k: v / self.n * 1e6 for k, v in self.cpu.items()}}


def requests_of(phase: TrackPhase, n_profiles: int, seed: int) -> Iterator[list[pb.TrackRequest]]:
    """Lists of TrackRequests of `phase.batch` events, about GEN_BATCH events per list
    (with dictionary-encoded ids, one dictionary per request)."""
    batches = sample.event_batches(n_profiles, phase.target / n_profiles, seed,
                                   batch_size=phase.batch, dict_ids=phase.dict_ids)
    while parts := list(itertools.islice(batches, max(1, GEN_BATCH // phase.batch))):
        t0 = time.perf_counter()
        reqs = [pb.TrackRequest(columns=codec.event_batch_from_columns(p["ids"], p["types"], p["ts"],
                                                                       p["properties"])) for p in parts]
        phase.encode_seconds += time.perf_counter() - t0
        phase.wire_bytes += sum(r.ByteSize() for r in reqs)
        phase.n += sum(len(p["ids"]) for p in parts)
        yield reqs


def run_track(stub, phase: TrackPhase, n_profiles: int, seed: int, inflight: int = 1) -> TrackPhase:
    """Unary Track calls, `inflight` outstanding at a time."""
    for reqs in requests_of(phase, n_profiles, seed):
        pending: collections.deque = collections.deque()
        t0 = time.perf_counter()
        for req in reqs:
            if len(pending) >= inflight:
                phase.check(pending.popleft().result())
            pending.append(stub.Track.future(req, timeout=600))
        while pending:
            phase.check(pending.popleft().result())
        phase.seconds += time.perf_counter() - t0
        phase.requests += len(reqs)
        print(f"\r  {phase.label}: {phase.n:,} ({phase.rate:,.0f}/s)", end="", file=sys.stderr)
    print(file=sys.stderr)
    return phase


def run_track_stream(stub, phase: TrackPhase, n_profiles: int, seed: int) -> TrackPhase:
    """One TrackStream over all the events; every request is built before the call."""
    reqs = [r for part in requests_of(phase, n_profiles, seed) for r in part]
    phase.requests = len(reqs)
    t0 = time.perf_counter()
    reply = stub.TrackStream(iter(reqs), timeout=3600)
    phase.seconds = time.perf_counter() - t0
    phase.check(reply)
    return phase


def print_track(phases: list[TrackPhase]) -> None:
    if not phases:
        return
    head = (f"{'event ingest path':<46}{'batch':>7}{'events':>11}{'reqs':>7}{'events/s':>12}"
            f"{'encode/s':>12}{'e2e/s':>11}{'B/event':>8}{'CPU µs/ev rtr+shards':>22}")
    print("\n" + head + "\n" + "-" * len(head))
    for p in phases:
        j = p.as_json()
        enc = f"{j['encode_events_per_s']:,.0f}" if j["encode_events_per_s"] else "-"
        cpu = "-"
        if p.cpu and p.n:
            r = p.cpu.get("router", 0.0) / p.n * 1e6
            sh = sum(v for k, v in p.cpu.items() if k.startswith("shard")) / p.n * 1e6
            cpu = f"{r:.1f} + {sh:.1f}"
        print(f"{p.label:<46}{p.batch:>7,}{p.n:>11,}{p.requests:>7,}{p.rate:>12,.0f}{enc:>12}"
              f"{j['end_to_end_events_per_s']:>11,.0f}{p.wire_bytes / max(p.n, 1):>8.1f}{cpu:>22}")
    print("(events/s: RPC time only; encode/s: client-side EventBatch building alone; e2e/s: both)")


def track_targets(phases: list[TrackPhase]) -> list[tuple[str, bool, str]]:
    return [(f"{p.label}, batches of {p.batch:,} ≥ 200k events/s", p.rate >= TARGET_EVENTS_PER_S,
             f"{p.rate:,.0f}/s") for p in phases]
