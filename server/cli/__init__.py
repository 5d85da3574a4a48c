"""`cdp`: the command line. Subcommands live in sibling modules, one per user group."""
from __future__ import annotations

import click

from .cluster import cluster
from .data import profile, query
from .demo import demo
from .ingest import ingest
from .segments import segment
from .serve import router, serve, shard


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="cdpcore")
def cli() -> None:
    """cdpcore: an in-memory customer-profile store with SQL segments."""


for command in (demo, serve, shard, router, query, profile, segment, cluster, ingest):
    cli.add_command(command)


def main() -> None:
    cli(prog_name="cdp")
