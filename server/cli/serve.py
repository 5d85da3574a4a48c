"""`cdp serve`, `cdp shard`, `cdp router`: run cluster processes (operators)."""
from __future__ import annotations

import select
import subprocess
import sys
from pathlib import Path

import click

from cdpcore.durability import RecoveryError, check_layout
from cdpcore.errors import CdpError
from cdpcore.membership import DEFAULT_RETAINED
from cdpcore.segments import DEFAULT_REFRESH_S
from cdpcore.wal import FsyncPolicy
from server.migration import BATCH_SLOTS
from server import app

STOP_GRACE_S = 60.0  # a shard's final snapshot is written after SIGTERM: give it time

retained_option = click.option(
    "--retained-changes", "retained", default=DEFAULT_RETAINED, show_default=True,
    type=click.IntRange(min=1),
    help="Segment changes each shard keeps per segment, for watchers that reconnect.")
refresh_option = click.option(
    "--segment-refresh", "refresh", default=DEFAULT_REFRESH_S, show_default=True,
    type=click.FloatRange(min=0),
    help="Seconds between re-evaluations of time-dependent segments (now(), event windows); 0: never.")


def _fsync_policy(ctx: click.Context, param: click.Parameter, value: str | None) -> str | None:
    if value is None:
        return None
    try:
        return str(FsyncPolicy.parse(value))
    except ValueError as e:
        raise click.BadParameter(str(e)) from None


data_option = click.option(
    "--data", "data_dir", type=click.Path(file_okay=False, path_type=Path), default=None,
    help="Data directory: a write-ahead log and snapshots, recovered at start (default: memory only).")
fsync_option = click.option(
    "--fsync", default=None, callback=_fsync_policy, metavar="always|interval=MS|never",
    help="When the write-ahead log reaches the disk (with --data; default always: before each reply).")


def _check_fsync(data_dir: Path | None, fsync: str | None) -> str:
    if fsync is not None and data_dir is None:
        raise click.UsageError("--fsync needs --data (without a data directory nothing is written)")
    return fsync or "always"


@click.command()
@click.option("--host", default="127.0.0.1", show_default=True)
@click.option("--port", default=0, show_default=True, help="0 picks a free port.")
@retained_option
@data_option
@fsync_option
def shard(host: str, port: int, retained: int, data_dir: Path | None, fsync: str | None) -> None:
    """Run one shard process (it may live on another host than the router)."""
    fsync = _check_fsync(data_dir, fsync)
    try:
        server, bound, service = app.build_shard(host, port, retained, data_dir, fsync)
    except (CdpError, OSError) as e:  # a data directory in use, damaged beyond recovery, ...
        raise click.ClickException(str(e)) from None
    if service.recovery is not None:
        click.echo(f"recovered {data_dir}: {service.recovery.summary()}", err=True)
    try:
        app.run_until_signalled(server, lambda: _ready(f"{host}:{bound}"))
    finally:
        service.close()


@click.command()
@click.option("--shard", "shards", multiple=True, help="Shard address host:port (repeat).")
@click.option("--state", "state_path", type=click.Path(dir_okay=False, path_type=Path), default=None,
              help="The router's state file (shards and slot map): read at start if it exists, "
                   "rewritten at every change. Without it the map lives in memory only.")
@click.option("--host", default="127.0.0.1", show_default=True)
@click.option("--port", default=7070, show_default=True)
@click.option("--move-batch", default=BATCH_SLOTS, show_default=True, type=click.IntRange(1, 16384),
              help="Slots moved per step when shards are added or removed.")
@refresh_option
def router(shards: tuple[str, ...], state_path: Path | None, host: str, port: int, move_batch: int,
           refresh: float) -> None:
    """Run a router over shards that are already running."""
    if not shards and (state_path is None or not state_path.exists()):
        raise click.UsageError("give the shards (--shard HOST:PORT ...) or an existing --state file")
    try:
        server, bound, cluster = app.build_router(list(shards), host, port, segment_refresh_s=refresh or None,
                                                  state_path=state_path, move_batch=move_batch)
    except CdpError as e:
        raise click.ClickException(str(e)) from None
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
@data_option
@fsync_option
def serve(n_shards: int, host: str, port: int, refresh: float, retained: int,
          data_dir: Path | None, fsync: str | None) -> None:
    """Start N shard processes and a router in front of them (a local cluster); with
    --data DIR, shard i keeps its data in DIR/shard-i and the router its state in
    DIR/router.json (shards added later with `cdp cluster add-shard` are listed there)."""
    fsync = _check_fsync(data_dir, fsync)
    if data_dir is not None:
        try:  # ids are placed by the shard count: the same DIR needs the same --shards
            check_layout(data_dir, n_shards)
        except RecoveryError as e:
            raise click.ClickException(str(e)) from None
    children = []
    try:
        for i in range(n_shards):
            shard_dir = None if data_dir is None else data_dir / f"shard-{i}"
            children.append(start_shard_process(host, retained=retained, data_dir=shard_dir, fsync=fsync))
        addresses = [address for _, address in children]
        state = None if data_dir is None else data_dir / "router.json"
        server, bound, cluster = app.build_router(addresses, host, port, segment_refresh_s=refresh or None,
                                                  state_path=state)
        click.echo(f"shards: {', '.join(addresses)}", err=True)
        app.run_until_signalled(server, lambda: _ready(f"{host}:{bound}"))
        cluster.close()
    finally:
        stop_processes([p for p, _ in children], grace=STOP_GRACE_S)


def start_shard_process(host: str, timeout: float = 30.0, retained: int = DEFAULT_RETAINED,
                        data_dir: Path | None = None, fsync: str = "always"
                        ) -> tuple[subprocess.Popen, str]:
    """Start `cdp shard` on a free port; returns (process, address) once it is ready
    (with `data_dir`, after it recovered: the timeout does not count recovery)."""
    args = [sys.executable, "-m", "server.cli", "shard", "--host", host, "--port", "0",
            "--retained-changes", str(retained)]
    if data_dir is not None:
        args += ["--data", str(data_dir), "--fsync", fsync]
    proc = subprocess.Popen(args, stdout=subprocess.PIPE, text=True)
    line = _ready_line(proc, timeout if data_dir is None else None)
    if not line.startswith("READY "):
        proc.kill()
        proc.wait()
        raise click.ClickException(f"shard process did not start (said {line.strip()!r})")
    return proc, line.split()[1]


def _ready_line(proc: subprocess.Popen, timeout: float | None) -> str:
    """The shard's first line, waited for up to `timeout` seconds (None: until it comes
    or the process exits; recovering a large shard takes as long as it takes)."""
    ready, _, _ = select.select([proc.stdout], [], [], timeout)
    return proc.stdout.readline() if ready else ""


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
