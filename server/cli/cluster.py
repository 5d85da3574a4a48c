"""`cdp cluster …`: what operators look at."""
from __future__ import annotations

import sys
import time

import click
from tqdm import tqdm

from server.cli.client import Client, with_client
from server.cli.table import format_table
from server.pb.cdp.v1 import admin_pb2


@click.group()
def cluster() -> None:
    """Cluster status and operations."""


@cluster.command("status")
@with_client
def status(client: Client) -> None:
    """Shards, their addresses, slots, profiles, memory and health."""
    reply = client.admin.ClusterStatus(admin_pb2.ClusterStatusRequest())
    rows = [[s.shard_id, s.address, "up" if s.healthy else f"DOWN: {s.error}", s.slots_owned,
             ",".join(f"{r.first}-{r.last}" for r in s.slot_ranges), f"{s.profiles:,}",
             f"{s.memory_bytes / 2**20:,.0f} MiB", _durability(s)] for s in reply.shards]
    click.echo(format_table(["id", "shard", "health", "slots", "ranges", "profiles", "memory", "durability"], rows))
    click.echo(f"slot map epoch {reply.slot_map_epoch}; {reply.profiles:,} profiles; "
               f"{reply.segments} saved segments")
    if reply.HasField("migration"):
        click.echo(describe(reply.migration))
    for s in reply.shards:
        if s.recovery:
            click.echo(f"{s.address} recovered {s.data_dir}: {s.recovery}")


def _durability(s: admin_pb2.ShardStatus) -> str:
    if not s.healthy:
        return "?"
    return f"fsync {s.fsync}" if s.fsync else "memory only"


@cluster.command("snapshot")
@with_client
def snapshot(client: Client) -> None:
    """Every shard writes a snapshot of its data now (shards started with --data)."""
    reply = client.admin.Snapshot(admin_pb2.SnapshotRequest())
    rows = [[s.address, s.file, f"{s.lsn:,}", f"{s.seconds:.2f} s"] for s in reply.shards]
    click.echo(format_table(["shard", "snapshot", "lsn", "took"], rows))


@cluster.command("add-shard")
@click.argument("address")
@click.option("--no-wait", is_flag=True, help="Return once the migration started.")
@with_client
def add_shard(client: Client, address: str, no_wait: bool) -> None:
    """Add a running, empty shard (HOST:PORT) and move it an even share of the slots;
    clients keep writing and querying meanwhile. Run again to resume an interrupted add."""
    started = client.admin.AddShard(admin_pb2.AddShardRequest(address=address))
    _follow(client, started, no_wait)


@cluster.command("remove-shard")
@click.argument("address")
@click.option("--no-wait", is_flag=True, help="Return once the migration started.")
@with_client
def remove_shard(client: Client, address: str, no_wait: bool) -> None:
    """Move a shard's slots to the others, then drop it from the cluster (stop its
    process afterwards)."""
    started = client.admin.RemoveShard(admin_pb2.RemoveShardRequest(address=address))
    _follow(client, started, no_wait)


def _follow(client: Client, started: admin_pb2.MigrationStatus, no_wait: bool) -> None:
    """A progress bar over the slots moved, until the migration is done or failed."""
    click.echo(f"{started.kind} {started.shard}: {started.slots_total:,} slots to move", err=True)
    if no_wait:
        return
    m = started
    with tqdm(total=started.slots_total, unit="slots", desc=started.kind, file=sys.stderr) as bar:
        while True:
            m = client.admin.ClusterStatus(admin_pb2.ClusterStatusRequest()).migration
            bar.update(m.slots_moved - bar.n)
            bar.set_postfix_str(f"{m.profiles_copied:,} profiles, {m.profiles_per_second:,.0f}/s")
            if m.state != "running":
                break
            time.sleep(0.2)
    click.echo(describe(m))
    if m.state == "failed":
        raise click.ClickException(f"{m.kind} {m.shard} failed: {m.error}")


def describe(m: admin_pb2.MigrationStatus) -> str:
    line = (f"migration: {m.kind} {m.shard} {m.state}: {m.slots_moved:,}/{m.slots_total:,} slots moved"
            f"{f' ({m.slots_moving} moving)' if m.slots_moving else ''}, {m.profiles_copied:,} profiles "
            f"and {m.events_copied:,} events copied in {m.seconds:.1f} s ({m.profiles_per_second:,.0f} profiles/s)")
    return line + (f"; error: {m.error}" if m.error else "")
