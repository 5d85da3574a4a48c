"""`cdp demo`: start a local cluster, load sample profiles and events, answer example
segments.

The quick-start job: two shard processes and a router on free loopback ports, a
seeded synthetic dataset shaped like a real CDP's (cdpcore.sample: profiles, and
about ten behavioural events each over the year before the sample's reference date)
loaded over gRPC with the columnar batches, then example questions with their answers
and times. `--embedded` runs the same on the in-process engine, without gRPC.

The clock (now() in queries, event windows) is pinned to the sample's reference date,
so "in the last 30 days" means the same data whenever the demo runs.
"""
from __future__ import annotations

import statistics
import time
from datetime import timedelta
from typing import Any

import click
import grpc
from tqdm import tqdm

from cdpcore import CdpError, QueryResult, Store
from cdpcore.sample import REF_NOW, SCHEMA, batches, event_batches
from server import app, codec
from server.cli.client import Client
from server.cli.serve import start_shard_process, stop_processes
from server.cli.table import format_table
from server.pb.cdp.v1 import profile_store_pb2 as pb

EVENT_BATCH = 200_000      # events per Track request (about 6 MB on the wire)

# (title, SQL); times are relative to the sample's REF_NOW, which is also the demo's clock.
EXAMPLES: list[tuple[str, str]] = [
    ("Japanese or US adults 25-34, not subscribed",
     "SELECT count(*) FROM profiles WHERE age BETWEEN 25 AND 34 "
     "AND country IN ('JP', 'US') AND NOT is_subscriber"),
    ("'San…' cities or no plan",
     "SELECT count(*) FROM profiles WHERE city LIKE 'San%' OR plan IS NULL"),
    ("golf fans who also ski or play tennis",
     "SELECT count(*) FROM profiles WHERE has(interests, 'golf') "
     "AND has_any(interests, 'tennis', 'ski')"),
    ("lapsed for 14+ days (sample clock)",
     f"SELECT count(*) FROM profiles WHERE last_seen < '{(REF_NOW - timedelta(days=14)).date()}'"),
    ("bought at least twice in the last 30 days",
     "SELECT count(*) FROM profiles WHERE event_count('purchase', '30d') >= 2"),
    ("spent over 100 on shoes in 90 days, aged 25-44",
     "SELECT count(*) FROM profiles WHERE event_sum('purchase', 'amount', '90d', category = 'shoes') > 100 "
     "AND age BETWEEN 25 AND 44"),
    ("app users who have not opened the app for 14 days",
     "SELECT count(*) FROM profiles WHERE last_seen('app_open') < now() - INTERVAL '14 days'"),
    ("biggest spenders of the last week",
     "SELECT profile_id, country, event_sum('purchase', 'amount', '7d') AS spent FROM profiles "
     "WHERE event_count('purchase', '7d') >= 1 ORDER BY spent DESC LIMIT 3"),
    ("top countries among subscribers",
     "SELECT country, count(*) AS n FROM profiles WHERE is_subscriber "
     "GROUP BY country ORDER BY count(*) DESC LIMIT 5"),
    ("value of premium plans",
     "SELECT avg(lifetime_value), sum(orders_count), min(age), max(age) FROM profiles "
     "WHERE plan IN ('pro', 'enterprise')"),
    ("a few high spenders in Tokyo",
     "SELECT profile_id, age, city, lifetime_value FROM profiles WHERE city = 'Tokyo' "
     "ORDER BY lifetime_value DESC LIMIT 3"),
]


@click.command()
@click.option("--profiles", default=1_000_000, show_default=True, help="Sample profiles to load.")
@click.option("--events", "events_per_profile", default=10.0, show_default=True,
              help="Sample events per profile (0: none).")
@click.option("--shards", default=2, show_default=True, help="Shards (processes, or in-process with --embedded).")
@click.option("--repeat", default=5, show_default=True, help="Runs per query (median shown).")
@click.option("--embedded", is_flag=True, help="Use the in-process engine instead of a local cluster.")
@click.argument("sql", required=False)
def demo(profiles: int, events_per_profile: float, shards: int, repeat: int, embedded: bool,
         sql: str | None) -> None:
    """Start a local cluster, load sample profiles and events, run example queries (or SQL)."""
    backend = EmbeddedBackend(shards) if embedded else ClusterBackend(shards)
    try:
        _load(backend, profiles)
        _load_events(backend, profiles, events_per_profile)
        examples = [("your query", sql)] if sql else EXAMPLES
        ok = all([_run(backend, title, text, repeat) for title, text in examples])
    finally:
        backend.close()
    if not ok:
        raise SystemExit(1)


def sample_clock() -> float:
    return REF_NOW.timestamp()


class EmbeddedBackend:
    def __init__(self, shards: int) -> None:
        self.store = Store(shards=shards, clock=sample_clock)
        self.store.define_fields(SCHEMA)

    def load(self, ids: list[str], columns: dict[str, Any]) -> None:
        self.store.upsert_columns(ids, columns)

    def track(self, events: dict[str, Any]) -> int:
        return self.store.track_columns(**events).accepted

    def query(self, sql: str) -> QueryResult:
        return self.store.query(sql)

    def count(self) -> int:
        return len(self.store)

    def close(self) -> None:
        self.store.close()


class ClusterBackend:
    """Shard processes plus a router in this process; every call goes over gRPC."""

    def __init__(self, shards: int) -> None:
        self.children = [start_shard_process("127.0.0.1") for _ in range(shards)]
        self.server, port, self.cluster = app.build_router([a for _, a in self.children], "127.0.0.1", 0,
                                                           clock=sample_clock)
        self.server.start()
        self.client = Client(f"127.0.0.1:{port}")
        self.stub = self.client.store
        self.stub.DefineFields(pb.DefineFieldsRequest(
            fields=[pb.FieldSpec(name=k, type=v) for k, v in SCHEMA.items()]))
        self.loaded = 0

    def load(self, ids: list[str], columns: dict[str, Any]) -> None:
        reply = self.stub.Upsert(pb.UpsertRequest(columns=codec.batch_from_columns(ids, columns)))
        self.loaded += reply.accepted

    def track(self, events: dict[str, Any]) -> int:
        batch = codec.event_batch_from_columns(events["ids"], events["types"], events["ts"], events["properties"])
        return self.stub.Track(pb.TrackRequest(columns=batch)).accepted

    def query(self, sql: str) -> QueryResult:
        return codec.query_result(self.stub.Query(pb.QueryRequest(sql=sql)))

    def count(self) -> int:
        return self.loaded

    def close(self) -> None:
        self.client.channel.close()
        self.server.stop(1).wait()
        self.cluster.close()
        stop_processes([p for p, _ in self.children])


def _load(backend: EmbeddedBackend | ClusterBackend, profiles: int) -> None:
    started = time.perf_counter()
    with tqdm(total=profiles, unit="profiles", unit_scale=True, desc="loading") as bar:
        for ids, columns in batches(profiles, batch_size=100_000):
            backend.load(ids, columns)
            bar.update(len(ids))
    took = time.perf_counter() - started
    click.echo(f"loaded {backend.count():,} profiles in {took:.1f} s ({backend.count() / took:,.0f}/s)\n")


def _load_events(backend: EmbeddedBackend | ClusterBackend, profiles: int, per_profile: float) -> None:
    if not profiles or per_profile <= 0:
        return
    started, accepted = time.perf_counter(), 0
    with tqdm(total=round(profiles * per_profile), unit="events", unit_scale=True, desc="events") as bar:
        for events in event_batches(profiles, per_profile, seed=0, batch_size=EVENT_BATCH):
            accepted += backend.track(events)
            bar.total = max(bar.total, bar.n + len(events["ids"]))   # the count is a Poisson draw
            bar.update(len(events["ids"]))
    took = time.perf_counter() - started
    click.echo(f"tracked {accepted:,} events in {took:.1f} s ({accepted / took:,.0f}/s)\n")


def _run(backend: EmbeddedBackend | ClusterBackend, title: str, sql: str, repeat: int) -> bool:
    click.secho(f"-- {title}", fg="cyan")
    click.echo(sql)
    try:
        times = []
        for _ in range(max(1, repeat)):
            t = time.perf_counter()
            result = backend.query(sql)
            times.append((time.perf_counter() - t) * 1000)
    except CdpError as e:
        click.secho(f"error: {e}", fg="red")
        click.echo(e.highlight() if hasattr(e, "highlight") else "")
        return False
    except grpc.RpcError as e:
        click.secho(f"error: {e.code().name}: {e.details()}", fg="red")
        return False
    click.echo(format_table(result.columns, result.rows))
    for warning in result.warnings:
        click.secho(f"warning: {warning}", fg="yellow")
    click.echo(f"({len(result.rows)} rows, median {statistics.median(times):.2f} ms)\n")
    return True
