"""ShardClient: a typed wrapper over one shard's ShardStore stub.

One long-lived channel per shard (never one per call); every call has a deadline; a
transport failure becomes Unavailable naming the shard, and a status the shard chose
is passed on unchanged (RemoteError), so the router never invents a partial answer.
"""
from __future__ import annotations

from typing import Any, Callable, Iterator

import grpc

from cdpcore.errors import Unavailable
from server.pb.cdp.v1 import shard_pb2 as pb
from server.pb.cdp.v1 import shard_pb2_grpc
from server.status import RemoteError

MAX_MESSAGE = 256 * 1024 * 1024
CHANNEL_OPTIONS = [("grpc.max_send_message_length", MAX_MESSAGE),
                   ("grpc.max_receive_message_length", MAX_MESSAGE)]
NO_DEADLINE = 1e9           # seconds: a remaining time beyond this is no deadline at all
_TRANSPORT = (grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.CANCELLED)


class ShardClient:
    def __init__(self, address: str, timeout: float = 60.0) -> None:
        self.address = address
        self.timeout = timeout
        self.channel = grpc.insecure_channel(address, options=CHANNEL_OPTIONS)
        self.stub = shard_pb2_grpc.ShardStoreStub(self.channel)

    def close(self) -> None:
        self.channel.close()

    def call(self, method: str, request: Any, timeout: float | None = None) -> Any:
        """One unary call; `timeout` is the caller's remaining deadline, if it has one."""
        limit = self.timeout if timeout is None else min(timeout, self.timeout)
        return self._guard(lambda: getattr(self.stub, method)(request, timeout=limit))

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
            return Unavailable(f"shard {self.address} is unavailable: {details or code.name}")
        if code == grpc.StatusCode.DEADLINE_EXCEEDED:
            return RemoteError(code, f"deadline exceeded waiting for shard {self.address}")
        return RemoteError(code, details)

    def ping(self, timeout: float = 2.0) -> pb.ShardStatusResponse:
        return self.call("Status", pb.ShardStatusRequest(), timeout=timeout)
