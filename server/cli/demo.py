"""`cdp demo`: start a local cluster, load sample profiles, answer example segments.

The quick-start job: two shard processes and a router on free loopback ports, a
seeded synthetic dataset shaped like a real CDP's (cdpcore.sample) loaded over gRPC
with the columnar batch, then example questions with their answers and times.
`--embedded` runs the same on the in-process engine, without gRPC.
"""
from __future__ import annotations

import statistics
import time
from datetime import timedelta
from typing import Any

import click
import grpc
from tqdm import tqdm

from cdpcore import CdpError, Store
from cdpcore.sample import REF_NOW, SCHEMA, batches
from server import app, codec
from server.cli.client import Client
from server.cli.serve import start_shard_process, stop_processes
from server.cli.table import format_table
from server.pb.cdp.v1 import profile_store_pb2 as pb

# (title, SQL); `last_seen` is relative to the sample's fixed REF_NOW, not the clock.
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
@click.option("--shards", default=2, show_default=True, help="Shards (processes, or in-process with --embedded).")
@click.option("--repeat", default=5, show_default=True, help="Runs per query (median shown).")
@click.option("--embedded", is_flag=True, help="Use the in-process engine instead of a local cluster.")
@click.argument("sql", required=False)
def demo(profiles: int, shards: int, repeat: int, embedded: bool, sql: str | None) -> None:
    """Start a local cluster, load sample profiles and run example queries (or SQL)."""
    backend = EmbeddedBackend(shards) if embedded else ClusterBackend(shards)
    try:
        _load(backend, profiles)
        examples = [("your query", sql)] if sql else EXAMPLES
        ok = all([_run(backend, title, text, repeat) for title, text in examples])
    finally:
        backend.close()
    if not ok:
        raise SystemExit(1)


class EmbeddedBackend:
    def __init__(self, shards: int) -> None:
        self.store = Store(shards=shards)
        self.store.define_fields(SCHEMA)

    def load(self, ids: list[str], columns: dict[str, Any]) -> None:
        self.store.upsert_columns(ids, columns)

    def query(self, sql: str) -> tuple[list[str], list[tuple]]:
        result = self.store.query(sql)
        return result.columns, result.rows

    def count(self) -> int:
        return len(self.store)

    def close(self) -> None:
        self.store.close()


class ClusterBackend:
    """Shard processes plus a router in this process; every call goes over gRPC."""

    def __init__(self, shards: int) -> None:
        self.children = [start_shard_process("127.0.0.1") for _ in range(shards)]
        self.server, port, self.cluster = app.build_router([a for _, a in self.children], "127.0.0.1", 0)
        self.server.start()
        self.client = Client(f"127.0.0.1:{port}")
        self.stub = self.client.store
        self.stub.DefineFields(pb.DefineFieldsRequest(
            fields=[pb.FieldSpec(name=k, type=v) for k, v in SCHEMA.items()]))
        self.loaded = 0

    def load(self, ids: list[str], columns: dict[str, Any]) -> None:
        reply = self.stub.Upsert(pb.UpsertRequest(columns=codec.batch_from_columns(ids, columns)))
        self.loaded += reply.accepted

    def query(self, sql: str) -> tuple[list[str], list[tuple]]:
        reply = self.stub.Query(pb.QueryRequest(sql=sql))
        result = codec.query_result(reply)
        return result.columns, result.rows

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


def _run(backend: EmbeddedBackend | ClusterBackend, title: str, sql: str, repeat: int) -> bool:
    click.secho(f"-- {title}", fg="cyan")
    click.echo(sql)
    try:
        times = []
        for _ in range(max(1, repeat)):
            t = time.perf_counter()
            columns, rows = backend.query(sql)
            times.append((time.perf_counter() - t) * 1000)
    except CdpError as e:
        click.secho(f"error: {e}", fg="red")
        click.echo(e.highlight() if hasattr(e, "highlight") else "")
        return False
    except grpc.RpcError as e:
        click.secho(f"error: {e.code().name}: {e.details()}", fg="red")
        return False
    click.echo(format_table(columns, rows))
    click.echo(f"({len(rows)} rows, median {statistics.median(times):.2f} ms)\n")
    return True
