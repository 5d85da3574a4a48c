"""`cdp segment …`: saved segments for marketers and activation systems: create, list,
show, delete, export (JSON Lines) and watch (enter/exit changes as they happen)."""
from __future__ import annotations

import contextlib
import json
import re
import sys
import time
from typing import IO, Any, Iterator

import click
import grpc
from tqdm import tqdm

from cdpcore.schema import ID_FIELD
from cdpcore.segments import SegmentInfo
from server import codec
from server.cli.client import Client, json_value, with_client
from server.cli.table import format_table
from server.pb.cdp.v1 import profile_store_pb2 as pb

PROGRESS_MIN = 50_000       # exports at least this big show a progress bar on stderr
_POSITION = re.compile(r"\(line (\d+), col (\d+)\)$")


@click.group()
def segment() -> None:
    """Saved segments: conditions whose members are kept current by every write."""


@segment.command("create")
@click.argument("name")
@click.argument("where")
@click.option("--json", "as_json", is_flag=True, help="Print the new segment as JSON.")
@with_client
def create(client: Client, name: str, where: str, as_json: bool) -> None:
    """Save WHERE as segment NAME; its members are computed now and kept current."""
    try:
        reply = client.store.CreateSegment(pb.CreateSegmentRequest(name=name, where=where))
    except grpc.RpcError as e:
        raise click.ClickException(f"{e.code().name}: {e.details()}{underline(where, e)}") from None
    info = codec.segment_info_of(reply)
    if as_json:
        click.echo(json.dumps(info_doc(info)))
        return
    note = " (time-dependent: re-evaluated on the server's refresh timer)" if info.time_dependent else ""
    click.echo(f"created segment {info.name}: {info.size:,} profiles{note}")


@segment.command("list")
@click.option("--json", "as_json", is_flag=True, help="Print a JSON list of segments.")
@with_client
def list_segments(client: Client, as_json: bool) -> None:
    """Every saved segment with its size, in creation order."""
    infos = [codec.segment_info_of(s) for s in client.store.ListSegments(pb.ListSegmentsRequest()).segments]
    if as_json:
        click.echo(json.dumps([info_doc(i) for i in infos]))
        return
    rows = [[i.name, f"{i.size:,}", "yes" if i.time_dependent else "no", ", ".join(i.depends_on),
             json_value(i.refreshed_at), i.where] for i in infos]
    click.echo(format_table(["name", "size", "time-dependent", "depends on", "refreshed", "where"], rows))
    click.echo(f"({len(infos)} segments)")


@segment.command("show")
@click.argument("name")
@click.option("--json", "as_json", is_flag=True, help="Print the segment as JSON.")
@with_client
def show(client: Client, name: str, as_json: bool) -> None:
    """One segment: its condition, size, dependencies and when it was last refreshed."""
    info = codec.segment_info_of(client.store.GetSegment(pb.GetSegmentRequest(name=name)))
    doc = info_doc(info)
    if as_json:
        click.echo(json.dumps(doc))
        return
    for key, value in doc.items():
        click.echo(f"{key}: {', '.join(value) if isinstance(value, list) else value}")


@segment.command("delete")
@click.argument("name")
@with_client
def delete(client: Client, name: str) -> None:
    """Delete a segment (refused while other segments use it in in_segment)."""
    client.store.DeleteSegment(pb.DeleteSegmentRequest(name=name))
    click.echo(f"deleted segment {name}")


@segment.command("export")
@click.argument("name")
@click.option("--out", "out", type=click.Path(dir_okay=False, writable=True),
              help="Write here instead of stdout.")
@click.option("--fields", default="", help="Comma-separated fields to include with each profile_id.")
@click.option("--batch", "batch_size", default=10_000, show_default=True, type=click.IntRange(min=1),
              help="Members per streamed message.")
@with_client
def export(client: Client, name: str, out: str | None, fields: str, batch_size: int) -> None:
    """Every member as JSON Lines: {"profile_id": …, <field>: <value>, …} per line."""
    wanted = [f.strip() for f in fields.split(",") if f.strip()]
    total = client.store.GetSegment(pb.GetSegmentRequest(name=name)).size
    request = pb.ExportSegmentRequest(name=name, fields=wanted, batch_size=batch_size)
    started, written = time.perf_counter(), 0
    bar = tqdm(total=total, unit="profiles", unit_scale=True, desc="export", file=sys.stderr,
               disable=total < PROGRESS_MIN)
    with open_output(out) as sink, bar:
        for reply in client.store.ExportSegment(request):
            written += write_lines(sink, reply.members)
            bar.update(len(reply.members.ids))
    elapsed = time.perf_counter() - started
    click.echo(f"exported {written:,} profiles{f' to {out}' if out else ''} in {elapsed:.2f} s", err=True)


@segment.command("watch")
@click.argument("name")
@click.option("--json", "as_json", is_flag=True,
              help="One JSON object per change: profile_id, entered, shard, seq, initial.")
@click.option("--initial", is_flag=True, help="Start with the current members (as + lines).")
@click.option("--after", "after", default="",
              help="Resume: SHARD:SEQ,… the last seq seen per shard (from --json output).")
@click.option("--count", "limit", type=click.IntRange(min=1), help="Stop after this many changes.")
@with_client
def watch(client: Client, name: str, as_json: bool, initial: bool, after: str, limit: int | None) -> None:
    """Print members entering (`+ id`) and leaving (`- id`) as it happens, until Ctrl-C."""
    request = pb.WatchSegmentRequest(name=name, after=parse_after(after), initial=initial)
    seen = 0
    stream = client.store.WatchSegment(request)
    try:
        for reply in stream:
            if reply.initial_done:
                click.echo(f"watching segment {name} (Ctrl-C to stop)", err=True)
            for change in reply.changes:
                click.echo(json.dumps(change_doc(change)) if as_json
                           else f"{'+' if change.entered else '-'} {change.profile_id}")
                seen += 1
                if limit is not None and seen >= limit:
                    return
            sys.stdout.flush()
    except grpc.RpcError as e:
        if e.code() != grpc.StatusCode.OUT_OF_RANGE:
            raise
        raise click.ClickException(
            f"the changes to resume from are no longer retained by the server ({e.details()}); "
            f"re-read the segment (cdp segment export {name}) and watch again without --after") from None
    except KeyboardInterrupt:
        pass
    finally:
        stream.cancel()


# ---- helpers --------------------------------------------------------------------------------
def info_doc(info: SegmentInfo) -> dict[str, Any]:
    return {"name": info.name, "where": info.where, "size": info.size,
            "time_dependent": info.time_dependent, "depends_on": list(info.depends_on),
            "created_at": json_value(info.created_at), "refreshed_at": json_value(info.refreshed_at)}


def change_doc(change: pb.SegmentChange) -> dict[str, Any]:
    return {"profile_id": change.profile_id, "entered": change.entered, "shard": change.shard,
            "seq": change.seq, "initial": change.initial}


def parse_after(text: str) -> dict[int, int]:
    """'0:15,1:7' → {0: 15, 1: 7}."""
    out = {}
    for part in filter(None, (p.strip() for p in text.split(","))):
        shard, sep, seq = part.partition(":")
        if not (sep and shard.isdigit() and seq.isdigit()):
            raise click.BadParameter(f"{part!r}: expected SHARD:SEQ", param_hint="--after")
        out[int(shard)] = int(seq)
    return out


def underline(where: str, error: grpc.RpcError) -> str:
    """For an error at a position in the condition: that line with a caret under it."""
    found = _POSITION.search(error.details() or "")
    if error.code() != grpc.StatusCode.INVALID_ARGUMENT or found is None:
        return ""
    line, col = int(found.group(1)), int(found.group(2))
    lines = where.splitlines() or [""]
    if not 1 <= line <= len(lines):
        return ""
    return f"\n  {lines[line - 1]}\n  {' ' * (col - 1)}^"


@contextlib.contextmanager
def open_output(path: str | None) -> Iterator[IO[str]]:
    if path is None:
        yield sys.stdout
        sys.stdout.flush()
        return
    with open(path, "w", encoding="utf-8") as f:
        yield f


def write_lines(sink: IO[str], members: pb.ColumnBatch) -> int:
    """One JSON object per member; returns how many."""
    columns = {name: [json_value(v) for v in values]
               for name, values in codec.export_columns(members).items()}
    names = list(columns)
    lines = [json.dumps({ID_FIELD: pid, **{n: columns[n][i] for n in names}})
             for i, pid in enumerate(members.ids)]
    if lines:
        sink.write("\n".join(lines) + "\n")
    return len(lines)
