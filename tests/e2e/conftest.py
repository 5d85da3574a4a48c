"""Real `cdp` processes on free loopback ports; every process started is stopped in
teardown, even when the test fails."""
from __future__ import annotations

import contextlib
import os
import select
import signal
import subprocess
import sys
from typing import Iterator

import grpc
import pytest

from server.pb.cdp.v1 import admin_pb2_grpc, profile_store_pb2_grpc


class Running:
    def __init__(self, proc: subprocess.Popen, address: str) -> None:
        self.proc, self.address = proc, address
        self.channel = grpc.insecure_channel(address)
        self.store = profile_store_pb2_grpc.ProfileStoreStub(self.channel)
        self.admin = admin_pb2_grpc.AdminStub(self.channel)

    def cdp(self, *args: str, check: bool = True, stdin: str | None = None) -> subprocess.CompletedProcess:
        """Run a `cdp` client command against this cluster."""
        out = subprocess.run([sys.executable, "-m", "server.cli", *args, "--addr", self.address],
                             input=stdin, capture_output=True, text=True, timeout=120)
        if check and out.returncode != 0:
            raise AssertionError(f"cdp {' '.join(args)} failed: {out.stderr}{out.stdout}")
        return out


def start(*args: str, timeout: float = 60.0) -> tuple[subprocess.Popen, str]:
    """Start `python -m server.cli ARGS` and wait for its READY line (no sleeping)."""
    proc = subprocess.Popen([sys.executable, "-m", "server.cli", *args], stdout=subprocess.PIPE,
                            text=True, start_new_session=True)
    ready, _, _ = select.select([proc.stdout], [], [], timeout)
    line = proc.stdout.readline() if ready else ""
    if not line.startswith("READY "):
        stop(proc)
        raise RuntimeError(f"{args} did not start: {line!r}")
    return proc, line.split()[1]


def stop(proc: subprocess.Popen) -> None:
    """SIGTERM the process group (router and the shards it spawned), then make sure."""
    if proc.poll() is None:
        try:
            os.killpg(proc.pid, signal.SIGTERM)
            proc.wait(timeout=20)
        except (subprocess.TimeoutExpired, ProcessLookupError):
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()


@contextlib.contextmanager
def serving(*args: str) -> Iterator[Running]:
    """`cdp serve --port 0 ARGS` for the length of a with block."""
    proc, address = start("serve", "--port", "0", *args)
    running = Running(proc, address)
    try:
        yield running
    finally:
        running.channel.close()
        stop(proc)


@pytest.fixture
def local_cluster() -> Iterator[Running]:
    """`cdp serve --shards 2` on a free port."""
    with serving("--shards", "2") as running:
        yield running


@pytest.fixture
def three_shards() -> Iterator[tuple[Running, list[subprocess.Popen]]]:
    """Three separate `cdp shard` processes and a `cdp router` over them."""
    shards = [start("shard", "--port", "0") for _ in range(3)]
    procs = [p for p, _ in shards]
    try:
        args = [a for _, addr in shards for a in ("--shard", addr)]
        router, address = start("router", *args, "--port", "0")
        procs.append(router)
        running = Running(router, address)
        yield running, procs
        running.channel.close()
    finally:
        for p in procs:
            stop(p)


@pytest.fixture(params=[1, 3], ids=lambda n: f"{n}-shards")
def sharded_cluster(request) -> Iterator[Running]:
    """`cdp serve --shards N` for N in 1 and 3: answers must not depend on N."""
    proc, address = start("serve", "--shards", str(request.param), "--port", "0")
    running = Running(proc, address)
    try:
        yield running
    finally:
        running.channel.close()
        stop(proc)
