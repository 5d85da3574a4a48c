"""`cdp ingest`: load profiles (or, with --events, events) from a JSON Lines or CSV file
over one UpsertStream (TrackStream).

Records are read and checked here (JSON syntax and shape; CSV cells converted by the
field's declared type, or by a type inferred from the whole column), sent in batches
through one client-streaming `UpsertStream`, and the server's per-record errors, which
index records across the stream, are mapped back to file line numbers. The engine
judges values; this package only turns text into values.

- `files`: the input file (format, opening, line count)
- `batch`: what the readers yield (Batch, Rejection)
- `jsonl`, `csv_reader`: reading JSON Lines; reading and typing CSV
- `requests`: batches as UpsertRequests (columnar or rows), stream index → file line
- `events`: the same for events (TrackRequests, event property types)
"""
from __future__ import annotations

import contextlib
import heapq
import itertools
import sys
import time
from typing import IO, Callable, ContextManager, Iterator

import click

from server.cli.client import Client, with_client
from server.pb.cdp.v1 import profile_store_pb2 as pb

from .batch import Batch, Rejection
from .csv_reader import column_parsers, csv_batches, open_csv, read_header
from .events import EventLoad, event_batch_reader, fetch_event_properties
from .files import format_of, line_count, open_file
from .jsonl import jsonl_batches
from .requests import COLUMNAR_MIN, Load, split_records

__all__ = ["COLUMNAR_MIN", "Batch", "Load", "Rejection", "csv_batches", "ingest", "jsonl_batches",
           "split_records"]

SHOWN = 20                 # rejections listed in the summary


@click.command()
@click.argument("file")
@click.option("--events", "events", is_flag=True,
              help="FILE holds events (profile_id, type, ts, properties), one per line or row.")
@click.option("--format", "fmt", type=click.Choice(["jsonl", "csv"]),
              help="File format; default from the extension (.jsonl/.ndjson/.json, .csv).")
@click.option("--batch", "batch_size", default=5000, show_default=True, type=click.IntRange(min=1),
              help="Records per streamed request.")
@with_client
def ingest(client: Client, file: str, events: bool, fmt: str | None, batch_size: int) -> None:
    """Load profiles, or events with --events, from FILE (JSON Lines or CSV; - reads
    JSON Lines from stdin)."""
    fmt = format_of(file, fmt)
    if events:
        schema = fetch_event_properties(client)
        read_batches = event_batch_reader(file, fmt, batch_size, schema)
        kind: type[Load] = EventLoad
    else:
        schema = fetch_schema(client)
        read_batches = batch_reader(file, fmt, batch_size, schema)
        kind = Load
    with open_input(file, fmt) as stream:
        load = kind(None if file == "-" else line_count(file) - (1 if fmt == "csv" else 0), schema)
        started = time.perf_counter()
        reply = load.run(client, read_batches(stream))
    report(reply, load, time.perf_counter() - started)


def batch_reader(file: str, fmt: str, size: int, schema: dict[str, str]) -> Callable[[IO], Iterator[Batch]]:
    """How to read the opened file in batches; for CSV, the header is checked and every
    column's type settled (declared in the schema, or inferred) before anything is sent."""
    if fmt == "jsonl":
        return lambda stream: jsonl_batches(stream, size)
    header = read_header(file)
    parsers = column_parsers(file, header, schema)
    return lambda stream: csv_batches(stream, header, parsers, size)


def open_input(path: str, fmt: str) -> ContextManager[IO]:
    if path == "-":
        return contextlib.nullcontext(sys.stdin.buffer)
    return open_file(path, "rb") if fmt == "jsonl" else open_csv(path)


def fetch_schema(client: Client) -> dict[str, str]:
    reply = client.store.GetSchema(pb.GetSchemaRequest())
    return {f.name: f.type for f in reply.fields}


def report(reply: pb.UpsertResponse | pb.TrackResponse, load: Load, elapsed: float) -> None:
    """Print the summary; exit 1 when records were read but none was accepted."""
    rejected = len(load.rejected) + len(reply.errors)
    seen = reply.accepted + rejected
    click.echo(f"accepted {reply.accepted}, rejected {rejected} "
               f"in {elapsed:.2f} s ({seen / max(elapsed, 1e-9):,.0f} {load.unit}/s)")
    server = (Rejection(load.lines[e.index], e.field, e.reason) for e in reply.errors)
    for r in heapq.nsmallest(SHOWN, itertools.chain(load.rejected, server)):
        click.echo(f"  {r}")
    if rejected > SHOWN:
        click.echo(f"  ... and {rejected - SHOWN} more")
    if load.failure is not None:
        raise click.ClickException(f"reading stopped early: {load.failure}")
    if seen and not reply.accepted:
        raise SystemExit(1)
