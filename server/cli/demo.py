"""`cdp demo`: load sample profiles into an embedded store and answer example segments.

This is the quick-start job: it needs no server and shows what the engine does and
how fast, on synthetic data shaped like a real CDP's (see cdpcore.sample).
"""
from __future__ import annotations

import statistics
import time
from datetime import timedelta

import click
from tqdm import tqdm

from cdpcore import CdpError, Store
from cdpcore.sample import REF_NOW, SCHEMA, batches

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
@click.option("--shards", default=2, show_default=True, help="In-process shards.")
@click.option("--repeat", default=5, show_default=True, help="Runs per query (median shown).")
@click.argument("sql", required=False)
def demo(profiles: int, shards: int, repeat: int, sql: str | None) -> None:
    """Load sample profiles into an embedded store and run example queries (or SQL)."""
    store = Store(shards=shards)
    store.define_fields(SCHEMA)
    _load(store, profiles)
    examples = [("your query", sql)] if sql else EXAMPLES
    ok = all([_run(store, title, text, repeat) for title, text in examples])
    store.close()
    if not ok:
        raise SystemExit(1)


def _load(store: Store, profiles: int) -> None:
    started = time.perf_counter()
    with tqdm(total=profiles, unit="profiles", unit_scale=True, desc="loading") as bar:
        for ids, columns in batches(profiles, batch_size=250_000):
            store.upsert_columns(ids, columns)
            bar.update(len(ids))
    took = time.perf_counter() - started
    click.echo(f"loaded {len(store):,} profiles in {took:.1f} s ({len(store) / took:,.0f}/s)\n")


def _run(store: Store, title: str, sql: str, repeat: int) -> bool:
    click.secho(f"-- {title}", fg="cyan")
    click.echo(sql)
    try:
        times = []
        for _ in range(max(1, repeat)):
            t = time.perf_counter()
            result = store.query(sql)
            times.append((time.perf_counter() - t) * 1000)
    except CdpError as e:
        click.secho(f"error: {e}", fg="red")
        if hasattr(e, "highlight"):
            click.echo(e.highlight())
        return False
    click.echo(format_table(result.columns, result.rows))
    click.echo(f"({len(result.rows)} rows, median {statistics.median(times):.2f} ms)\n")
    return True


def format_table(columns: list[str], rows: list[tuple]) -> str:
    cells = [[_cell(v) for v in row] for row in rows]
    widths = [max([len(c)] + [len(r[i]) for r in cells]) for i, c in enumerate(columns)]
    line = lambda vals: " | ".join(v.ljust(w) for v, w in zip(vals, widths))
    return "\n".join([line(columns), "-+-".join("-" * w for w in widths)] + [line(r) for r in cells])


def _cell(v: object) -> str:
    if v is None:
        return "NULL"
    if isinstance(v, float):
        return f"{v:,.2f}"
    if hasattr(v, "isoformat"):
        return v.isoformat()
    return str(v)
