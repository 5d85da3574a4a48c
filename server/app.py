"""Process assembly: build a shard or router gRPC server (health checking and
reflection on), bind it (port 0 picks a free port, for tests) and serve until
SIGTERM/SIGINT, then stop gracefully.

Each builder imports its own role's modules: a shard process never loads the router's
(cluster, codecs, query compilation) nor a router the shard's (engine storage, WAL), so
neither holds the other's code in memory.
"""
from __future__ import annotations

import ctypes
import gc
import logging
import signal
import threading
import time
from concurrent import futures
from pathlib import Path
from typing import TYPE_CHECKING, Callable

import grpc
from grpc_health.v1 import health, health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection

from cdpcore.membership import DEFAULT_RETAINED
from cdpcore.segments import DEFAULT_REFRESH_S
from server.watch import MAX_WATCHES

if TYPE_CHECKING:
    from server.cluster import Cluster
    from server.shard_service import ShardService

log = logging.getLogger("cdp.server")

_M_ARENA_MAX = -8                      # glibc mallopt parameter
MAX_REQUEST_BYTES = 64 * 1024 * 1024   # larger requests get RESOURCE_EXHAUSTED
INTERNAL_MESSAGE_BYTES = 256 * 1024 * 1024


def _server(max_receive: int, workers: int) -> grpc.Server:
    options = [("grpc.max_receive_message_length", max_receive),
               ("grpc.max_send_message_length", INTERNAL_MESSAGE_BYTES),
               ("grpc.so_reuseport", 0)]
    return grpc.server(futures.ThreadPoolExecutor(max_workers=workers), options=options)


def _finish(server: grpc.Server, address: str, services: list[str]) -> int:
    """Health + reflection, then bind; returns the bound port."""
    checker = health.HealthServicer()
    health_pb2_grpc.add_HealthServicer_to_server(checker, server)
    for name in services + [""]:
        checker.set(name, health_pb2.HealthCheckResponse.SERVING)
    reflection.enable_server_reflection(services + [reflection.SERVICE_NAME, health.SERVICE_NAME], server)
    port = server.add_insecure_port(address)
    if port == 0:
        raise OSError(f"cannot bind {address}")
    return port


def limit_malloc_arenas() -> None:
    """One glibc malloc arena for the whole process. gRPC runs each call on one of many
    worker threads; with an arena per thread, every query's large numpy temporaries
    were returned to the kernel and faulted in again (~4,500 page faults and ~11 ms of
    system time per heavy query at 10M rows; measured in bench/grpc_bench.py)."""
    try:
        ctypes.CDLL("libc.so.6").mallopt(_M_ARENA_MAX, 1)
    except (OSError, AttributeError):  # not glibc: nothing to tune
        pass


def release_free_memory() -> None:
    """Hand the memory freed after start-up back to the kernel. Importing and compiling
    modules leaves freed blocks all over the C heap, which glibc keeps resident until
    told otherwise; an idle process should not hold them."""
    gc.collect()
    try:
        ctypes.CDLL("libc.so.6").malloc_trim(0)
    except (OSError, AttributeError):  # not glibc
        pass


def build_shard(host: str = "127.0.0.1", port: int = 0, retained_changes: int = DEFAULT_RETAINED,
                data_dir: str | None = None, fsync: str = "always") -> tuple[grpc.Server, int, ShardService]:
    """`retained_changes`: segment changes kept per segment for watchers to resume from;
    `data_dir`: persist there (recovered before the server is built; None: memory only).
    The caller closes the service after the server stopped (the final snapshot)."""
    from server.pb.cdp.v1 import shard_pb2, shard_pb2_grpc
    from server.shard_service import ShardService
    limit_malloc_arenas()
    service = ShardService(retained_changes, data_dir, fsync)
    # watch streams hold a worker each for their whole life: room for them on top
    server = _server(INTERNAL_MESSAGE_BYTES, workers=16 + MAX_WATCHES)
    shard_pb2_grpc.add_ShardStoreServicer_to_server(service, server)
    name = shard_pb2.DESCRIPTOR.services_by_name["ShardStore"].full_name
    return server, _finish(server, f"{host}:{port}", [name]), service


def build_router(shards: list[str], host: str = "127.0.0.1", port: int = 0,
                 clock: Callable[[], float] = time.time,
                 segment_refresh_s: float | None = DEFAULT_REFRESH_S,
                 state_path: Path | None = None, move_batch: int | None = None
                 ) -> tuple[grpc.Server, int, Cluster]:
    """`clock` is the router's now() for queries and for events tracked without a time
    (the demo pins it to its sample data's reference date); `segment_refresh_s` how often
    time-dependent segments are re-evaluated (None: never); `state_path` the router's
    state file (shards and slot map; None: in memory only); `move_batch` the slots moved
    per step when shards are added or removed (None: the default)."""
    from server.cluster import Cluster
    from server.pb.cdp.v1 import admin_pb2, admin_pb2_grpc, profile_store_pb2, profile_store_pb2_grpc
    from server.router_service import AdminService, ProfileStoreService
    cluster = Cluster(shards, clock, segment_refresh_s, state_path, move_batch)
    cluster.connect()
    server = _server(MAX_REQUEST_BYTES, workers=32 + MAX_WATCHES)
    profile_store_pb2_grpc.add_ProfileStoreServicer_to_server(ProfileStoreService(cluster), server)
    admin_pb2_grpc.add_AdminServicer_to_server(AdminService(cluster), server)
    names = [profile_store_pb2.DESCRIPTOR.services_by_name["ProfileStore"].full_name,
             admin_pb2.DESCRIPTOR.services_by_name["Admin"].full_name]
    return server, _finish(server, f"{host}:{port}", names), cluster


def run_until_signalled(server: grpc.Server, ready: Callable[[], None], grace: float = 5.0) -> None:
    """Start, announce readiness, block; SIGTERM or SIGINT stops accepting calls and
    lets running ones finish for up to `grace` seconds. The handlers are in place
    before `ready` runs, so a signal sent right after the announcement is graceful too."""
    stopped = threading.Event()

    def stop(signum, frame) -> None:
        log.info("signal %s: stopping (grace %.0fs)", signum, grace)
        stopped.set()
    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    server.start()
    release_free_memory()
    ready()
    stopped.wait()
    server.stop(grace).wait()
