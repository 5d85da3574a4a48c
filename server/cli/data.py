"""Client commands for marketers and services: query, profile get/delete, ingest."""
from __future__ import annotations

import json

import click

from server import codec
from server.cli.client import Client, json_value, with_client
from server.cli.table import format_table
from server.pb.cdp.v1 import profile_store_pb2 as pb


@click.command()
@click.argument("sql")
@click.option("--json", "as_json", is_flag=True, help="Print {columns, rows, elapsed_ms} as JSON.")
@with_client
def query(client: Client, sql: str, as_json: bool) -> None:
    """Run a SELECT over profiles (or count a bare WHERE condition)."""
    reply = client.store.Query(pb.QueryRequest(sql=sql))
    rows = codec.query_result(reply).rows
    if as_json:
        doc = {"columns": list(reply.columns), "rows": [[json_value(v) for v in r] for r in rows],
               "elapsed_ms": round(reply.elapsed_ms, 3)}
        click.echo(json.dumps(doc))
        return
    click.echo(format_table(list(reply.columns), rows))
    click.echo(f"({len(rows)} rows, {reply.elapsed_ms:.2f} ms)")


@click.group()
def profile() -> None:
    """Read or erase single profiles."""


@profile.command("get")
@click.argument("profile_id")
@click.option("--json", "as_json", is_flag=True, help="Print the profile as JSON.")
@with_client
def profile_get(client: Client, profile_id: str, as_json: bool) -> None:
    """Print one profile with all its fields."""
    reply = client.store.GetProfile(pb.GetProfileRequest(profile_id=profile_id))
    fields = {name: codec.python_of(v) for name, v in sorted(reply.profile.fields.items())}
    if as_json:
        click.echo(json.dumps({"profile_id": reply.profile.profile_id,
                               **{k: json_value(v) for k, v in fields.items()}}))
        return
    click.echo(f"profile_id: {reply.profile.profile_id}")
    for name, value in fields.items():
        click.echo(f"{name}: {json_value(value)}")


@profile.command("delete")
@click.argument("profile_ids", nargs=-1, required=True)
@with_client
def profile_delete(client: Client, profile_ids: tuple[str, ...]) -> None:
    """Delete profiles by id; unknown ids are listed, not an error."""
    reply = client.store.DeleteProfiles(pb.DeleteProfilesRequest(profile_ids=list(profile_ids)))
    click.echo(f"deleted {reply.deleted}")
    for pid in reply.not_found:
        click.echo(f"not found: {pid}")
