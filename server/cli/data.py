"""Client commands for marketers and services: query, profile get/delete."""
from __future__ import annotations

import json

import click

from server import codec
from server.cli.client import Client, json_value, with_client
from server.cli.table import format_table
from server.pb.cdp.v1 import profile_store_pb2 as pb


@click.command()
@click.argument("sql")
@click.option("--json", "as_json", is_flag=True, help="Print {columns, rows, elapsed_ms, warnings} as JSON.")
@with_client
def query(client: Client, sql: str, as_json: bool) -> None:
    """Run a SELECT over profiles (or count a bare WHERE condition)."""
    reply = client.store.Query(pb.QueryRequest(sql=sql))
    rows = codec.query_result(reply).rows
    if as_json:
        doc = {"columns": list(reply.columns), "rows": [[json_value(v) for v in r] for r in rows],
               "elapsed_ms": round(reply.elapsed_ms, 3), "warnings": list(reply.warnings)}
        click.echo(json.dumps(doc))
        return
    click.echo(format_table(list(reply.columns), rows))
    click.echo(f"({len(rows)} rows, {reply.elapsed_ms:.2f} ms)")
    for warning in reply.warnings:
        click.secho(f"warning: {warning}", fg="yellow", err=True)


@click.group()
def profile() -> None:
    """Read or erase single profiles."""


@profile.command("get")
@click.argument("profile_id")
@click.option("--events", "events_limit", default=0, type=click.IntRange(min=0),
              help="Most recent events to show (default: the server's, 100).")
@click.option("--json", "as_json", is_flag=True, help="Print the profile as JSON (events under \"events\").")
@with_client
def profile_get(client: Client, profile_id: str, events_limit: int, as_json: bool) -> None:
    """Print one profile with all its fields and its most recent events."""
    reply = client.store.GetProfile(pb.GetProfileRequest(profile_id=profile_id, events_limit=events_limit))
    fields = {name: codec.python_of(v) for name, v in sorted(reply.profile.fields.items())}
    events = [codec.event_of_message(e) for e in reply.events]
    if as_json:
        click.echo(json.dumps({"profile_id": reply.profile.profile_id,
                               **{k: json_value(v) for k, v in fields.items()},
                               "events": [{k: json_value(v) for k, v in e.items()} for e in events]}))
        return
    click.echo(f"profile_id: {reply.profile.profile_id}")
    for name, value in fields.items():
        click.echo(f"{name}: {json_value(value)}")
    click.echo(f"events: {len(events)}{' (most recent first)' if events else ''}")
    for e in events:
        click.echo("  " + format_event(e))


def format_event(event: dict) -> str:
    """One event on one line: time, type, then its properties as name=value."""
    props = " ".join(f"{k}={json_value(v)}" for k, v in event.items() if k not in ("ts", "type"))
    return f"{json_value(event.get('ts', ''))}  {event['type']}" + (f"  {props}" if props else "")


@profile.command("delete")
@click.argument("profile_ids", nargs=-1, required=True)
@with_client
def profile_delete(client: Client, profile_ids: tuple[str, ...]) -> None:
    """Delete profiles by id; unknown ids are listed, not an error."""
    reply = client.store.DeleteProfiles(pb.DeleteProfilesRequest(profile_ids=list(profile_ids)))
    click.echo(f"deleted {reply.deleted}")
    for pid in reply.not_found:
        click.echo(f"not found: {pid}")
