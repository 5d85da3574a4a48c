"""`cdp serve`, `cdp shard`, `cdp router`: run cluster processes (operators)."""
from __future__ import annotations

import select
import subprocess
import sys

import click

from cdpcore.membership import DEFAULT_RETAINED
from cdpcore.segments import DEFAULT_REFRESH_S
from server import app

retained_option = click.option(
    "--retained-changes", "retained", default=DEFAULT_RETAINED, show_default=True,
    type=click.IntRange(min=1),
    help="Segment changes each shard keeps per segment, for watchers that reconnect.")
refresh_option = click.option(
    "--segment-refresh", "refresh", default=DEFAULT_REFRESH_S, show_default=True,
    type=click.FloatRange(min=0),
    help="Seconds between re-evaluations of time-dependent segments (now(), event windows); 0: never.")


@click.command()
@click.option("--host", default="127.0.0.1", show_default=True)
@click.option("--port", default=0, show_default=True, help="0 picks a free port.")
@retained_option
def shard(host: str, port: int, retained: int) -> None:
    """Run one shard process (it may live on another host than the router)."""
    server, bound, _ = app.build_shard(host, port, retained)
    app.run_until_signalled(server, lambda: _ready(f"{host}:{bound}"))


@click.command()
@click.option("--shard", "shards", multiple=True, required=True, help="Shard address host:port (repeat).")
@click.option("--host", default="127.0.0.1", show_default=True)
@click.option("--port", default=7070, show_default=True)
@refresh_option
def router(shards: tuple[str, ...], host: str, port: int, refresh: float) -> None:
    """Run a router over shards that are already running."""
    server, bound, cluster = app.build_router(list(shards), host, port, segment_refresh_s=refresh or None)
    try:
        app.run_until_signalled(server, lambda: _ready(f"{host}:{bound}"))
    finally:
        cluster.close()


@click.command()
@click.option("--shards", "n_shards", default=2, show_default=True, help="Shard processes to start.")
@click.option("--host", default="127.0.0.1", show_default=True)
@click.option("--port", default=7070, show_default=True)
@refresh_option
@retained_option
def serve(n_shards: int, host: str, port: int, refresh: float, retained: int) -> None:
    """Start N shard processes and a router in front of them (a local cluster)."""
    children = [start_shard_process(host, retained=retained) for _ in range(n_shards)]
    try:
        addresses = [address for _, address in children]
        server, bound, cluster = app.build_router(addresses, host, port, segment_refresh_s=refresh or None)
        click.echo(f"shards: {', '.join(addresses)}", err=True)
        app.run_until_signalled(server, lambda: _ready(f"{host}:{bound}"))
        cluster.close()
    finally:
        stop_processes([p for p, _ in children])


def start_shard_process(host: str, timeout: float = 30.0, retained: int = DEFAULT_RETAINED
                        ) -> tuple[subprocess.Popen, str]:
    """Start `cdp shard` on a free port; returns (process, address) once it is ready."""
    proc = subprocess.Popen([sys.executable, "-m", "server.cli", "shard", "--host", host, "--port", "0",
                             "--retained-changes", str(retained)], stdout=subprocess.PIPE, text=True)
    ready, _, _ = select.select([proc.stdout], [], [], timeout)  # wait for READY, not a sleep
    line = proc.stdout.readline() if ready else ""
    if not line.startswith("READY "):
        proc.kill()
        proc.wait()
        raise click.ClickException(f"shard process did not start within {timeout:.0f} s (said {line.strip()!r})")
    return proc, line.split()[1]


def stop_processes(procs: list[subprocess.Popen], grace: float = 10.0) -> None:
    for p in procs:
        if p.poll() is None:
            p.terminate()
    for p in procs:
        try:
            p.wait(timeout=grace)
        except subprocess.TimeoutExpired:
            p.kill()
            p.wait()


def _ready(address: str) -> None:
    """The line launchers and tests wait for, instead of sleeping."""
    click.echo(f"READY {address}", nl=True)
    sys.stdout.flush()
