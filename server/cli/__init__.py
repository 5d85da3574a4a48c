"""`cdp`: the command line. Subcommands live in sibling modules, one per user group.

A subcommand's module is imported only when that command runs (or help lists it):
`cdp shard` and `cdp router` are long-lived server processes, and importing every
client command into them (codecs, tqdm, the ingest readers, the demo's sample data) cost
each ~6 MiB of resident memory for code they never run.
"""
from __future__ import annotations

import importlib
from typing import Iterator

import click

# command name → "module:attribute" (module relative to this package)
COMMANDS: dict[str, str] = {
    "demo": "demo:demo", "serve": "serve:serve", "shard": "serve:shard", "router": "serve:router",
    "query": "data:query", "profile": "data:profile", "segment": "segments:segment",
    "cluster": "cluster:cluster", "ingest": "ingest:ingest",
}


class LazyCommands(dict):
    """`Group.commands` whose values are imported on first access; iterating the names
    (help, tests, docs) imports nothing."""

    def __init__(self, table: dict[str, str]) -> None:
        super().__init__(table)

    def __getitem__(self, name: str) -> click.Command:
        value = super().__getitem__(name)
        if isinstance(value, str):
            module, attr = value.split(":")
            value = getattr(importlib.import_module(f"{__name__}.{module}"), attr)
            super().__setitem__(name, value)
        return value

    def get(self, name: str, default: click.Command | None = None) -> click.Command | None:
        return self[name] if name in self else default

    def values(self) -> Iterator[click.Command]:  # type: ignore[override]
        return (self[name] for name in self)

    def items(self) -> Iterator[tuple[str, click.Command]]:  # type: ignore[override]
        return ((name, self[name]) for name in self)


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="cdpcore")
def cli() -> None:
    """cdpcore: an in-memory customer-profile store with SQL segments."""


cli.commands = LazyCommands(COMMANDS)


def main() -> None:
    cli(prog_name="cdp")
