"""Shared plumbing of the client commands: one channel to the router, errors shown as
`error: CODE: details` with exit status 1."""
from __future__ import annotations

import contextlib
import datetime as dt
import functools
import os
from typing import Any, Callable, Iterator

import click
import grpc

from server.pb.cdp.v1 import admin_pb2_grpc, profile_store_pb2_grpc

DEFAULT_ADDR = os.environ.get("CDP_ADDR", "127.0.0.1:7070")
addr_option = click.option("--addr", default=DEFAULT_ADDR, show_default=True,
                           help="Router address (env CDP_ADDR).")


class Client:
    def __init__(self, addr: str) -> None:
        self.channel = grpc.insecure_channel(addr, options=[("grpc.max_send_message_length", 64 << 20),
                                                            ("grpc.max_receive_message_length", 256 << 20)])
        self.store = profile_store_pb2_grpc.ProfileStoreStub(self.channel)
        self.admin = admin_pb2_grpc.AdminStub(self.channel)


@contextlib.contextmanager
def connect(addr: str) -> Iterator[Client]:
    client = Client(addr)
    try:
        yield client
    except grpc.RpcError as e:
        raise click.ClickException(f"{e.code().name}: {e.details()}") from None
    finally:
        client.channel.close()


def json_value(v: Any) -> Any:
    """Result values as JSON: timestamps as ISO-8601 text."""
    if isinstance(v, dt.datetime):
        return v.isoformat().replace("+00:00", "Z")
    return v


def with_client(fn: Callable) -> Callable:
    """Give a command a connected Client as its first argument."""
    @functools.wraps(fn)
    def wrapper(addr: str, *args: Any, **kwargs: Any) -> Any:
        with connect(addr) as client:
            return fn(client, *args, **kwargs)
    return addr_option(wrapper)
