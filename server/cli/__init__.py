"""`cdp`: the command line. Subcommands live in sibling modules, one per user group."""
from __future__ import annotations

import click

from .demo import demo


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="cdpcore")
def cli() -> None:
    """cdpcore: an in-memory customer-profile store with SQL segments."""


cli.add_command(demo)


def main() -> None:
    cli(prog_name="cdp")
