"""`cdp cluster …`: what operators look at."""
from __future__ import annotations

import click

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
    rows = [[s.address, "up" if s.healthy else f"DOWN: {s.error}", s.slots_owned,
             ",".join(f"{r.first}-{r.last}" for r in s.slot_ranges), f"{s.profiles:,}",
             f"{s.memory_bytes / 2**20:,.0f} MiB", _durability(s)] for s in reply.shards]
    click.echo(format_table(["shard", "health", "slots", "ranges", "profiles", "memory", "durability"], rows))
    click.echo(f"slot map epoch {reply.slot_map_epoch}; {reply.profiles:,} profiles; "
               f"{reply.segments} saved segments")
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
