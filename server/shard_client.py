"""ShardClient: a typed wrapper over one shard's ShardStore stub.

One long-lived channel per shard (never one per call); every call has a deadline; a
transport failure becomes Unavailable naming the shard, and a status the shard chose
is passed on unchanged (RemoteError), so the router never invents a partial answer.

A shard that was unavailable may come back as a new process (restarted, with its data
recovered from its directory but no slots): after an Unavailable the client is marked
stale, and its next call first runs `resync` (the router gives the shard its slots and
schema again). The channel reconnects with a short backoff, so a restarted shard is
back within about a second, not the gRPC default of up to two minutes.
"""
from __future__ import annotations

import threading
from typing import Any, Callable, Iterator

import grpc

from cdpcore.errors import Unavailable
from server.pb.cdp.v1 import shard_pb2 as pb
from server.pb.cdp.v1 import shard_pb2_grpc
from server.status import RemoteError

MAX_MESSAGE = 256 * 1024 * 1024
CHANNEL_OPTIONS = [("grpc.max_send_message_length", MAX_MESSAGE),
                   ("grpc.max_receive_message_length", MAX_MESSAGE),
                   ("grpc.initial_reconnect_backoff_ms", 100),
                   ("grpc.min_reconnect_backoff_ms", 100),
                   ("grpc.max_reconnect_backoff_ms", 1000)]
NO_DEADLINE = 1e9           # seconds: a remaining time beyond this is no deadline at all
_TRANSPORT = (grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.CANCELLED)


class ShardClient:
    def __init__(self, address: str, timeout: float = 60.0,
                 resync: Callable[[ShardClient], None] | None = None) -> None:
        """`resync(client)`: brings the shard up to date after it was unavailable."""
        self.address = address
        self.timeout = timeout
        self.channel = grpc.insecure_channel(address, options=CHANNEL_OPTIONS)
        self.stub = shard_pb2_grpc.ShardStoreStub(self.channel)
        self.resync = resync
        self.stale = False
        self._resync_lock = threading.Lock()
        self._resyncing: int | None = None  # the thread running `resync`

    def close(self) -> None:
        self.channel.close()

    def call(self, method: str, request: Any, timeout: float | None = None) -> Any:
        """One unary call; `timeout` is the caller's remaining deadline, if it has one."""
        self._resync_if_stale()
        limit = self.timeout if timeout is None else min(timeout, self.timeout)
        return self._guard(lambda: getattr(self.stub, method)(request, timeout=limit))

    def _resync_if_stale(self) -> None:
        """Run `resync` once after the shard was unavailable; if it fails the client stays
        stale (and the error is raised). Other callers wait for it; the resync's own calls
        go straight through (another caller may mark the client stale meanwhile: then the
        next call resyncs again, which is harmless)."""
        if not self.stale or self.resync is None or self._resyncing == threading.get_ident():
            return
        with self._resync_lock:
            if not self.stale:
                return
            self.stale = False
            self._resyncing = threading.get_ident()
            try:
                self.resync(self)
            except Exception:
                self.stale = True
                raise
            finally:
                self._resyncing = None

    def stream(self, method: str, request: Any, timeout: float | None = -1.0) -> Iterator[Any]:
        """A server stream; `timeout` bounds the whole stream (-1: this client's default,
        None: no deadline). Closing the iterator early cancels the shard's stream."""
        responses = self.open_stream(method, request, self.timeout if timeout == -1.0 else timeout)
        try:
            while True:
                item = self._guard(lambda: next(responses, None))
                if item is None:
                    return
                yield item
        finally:
            responses.cancel()

    def open_stream(self, method: str, request: Any, timeout: float | None) -> Any:
        """The raw call of a server stream: iterate it, `cancel()` it (see `error_of`)."""
        if timeout is not None and timeout > NO_DEADLINE:
            timeout = None  # a caller without a deadline has ~2**63 µs "remaining"
        self._resync_if_stale()
        return self._guard(lambda: getattr(self.stub, method)(request, timeout=timeout))

    def _guard(self, fn: Callable[[], Any]) -> Any:
        try:
            return fn()
        except grpc.RpcError as e:
            raise self.error_of(e) from None

    def error_of(self, e: grpc.RpcError) -> Exception:
        """A failed call as the error the router passes on."""
        code, details = e.code(), e.details() or ""
        if code in _TRANSPORT:
            if code == grpc.StatusCode.UNAVAILABLE:  # CANCELLED: often our own cancel()
                self.stale = True
            return Unavailable(f"shard {self.address} is unavailable: {details or code.name}")
        if code == grpc.StatusCode.DEADLINE_EXCEEDED:
            return RemoteError(code, f"deadline exceeded waiting for shard {self.address}")
        return RemoteError(code, details)

    def ping(self, timeout: float = 2.0) -> pb.ShardStatusResponse:
        return self.call("Status", pb.ShardStatusRequest(), timeout=timeout)
