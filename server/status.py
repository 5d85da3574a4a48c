"""The one table from engine errors to gRPC status codes, applied by one decorator.

Every servicer method is wrapped in `@rpc`: a CdpError becomes its status code with the
error's message as details; anything else becomes INTERNAL (logged with its traceback)
and the process keeps serving. Servicers never call context.abort themselves: they
raise, so this module stays the only place that chooses a status.
"""
from __future__ import annotations

import functools
import inspect
import logging
from typing import Any, Callable

import grpc

from cdpcore.errors import (AlreadyExists, BatchError, CdpError, ChangesLost, FailedPrecondition,
                            NotFound, Overloaded,
                            QueryError, SchemaError, Unavailable)

log = logging.getLogger("cdp.server")

STATUS: dict[type[CdpError], grpc.StatusCode] = {
    QueryError: grpc.StatusCode.INVALID_ARGUMENT,
    SchemaError: grpc.StatusCode.INVALID_ARGUMENT,
    BatchError: grpc.StatusCode.INVALID_ARGUMENT,
    NotFound: grpc.StatusCode.NOT_FOUND,
    Overloaded: grpc.StatusCode.RESOURCE_EXHAUSTED,
    Unavailable: grpc.StatusCode.UNAVAILABLE,
    FailedPrecondition: grpc.StatusCode.FAILED_PRECONDITION,
    AlreadyExists: grpc.StatusCode.ALREADY_EXISTS,
    ChangesLost: grpc.StatusCode.OUT_OF_RANGE,
    CdpError: grpc.StatusCode.INTERNAL,
}


class RemoteError(CdpError):
    """A shard answered with a status; the router passes it on unchanged."""

    def __init__(self, code: grpc.StatusCode, details: str) -> None:
        super().__init__(details)
        self.code = code


def status_of(error: CdpError) -> grpc.StatusCode:
    if isinstance(error, RemoteError):
        return error.code
    for cls in type(error).__mro__:
        if cls in STATUS:
            return STATUS[cls]
    return grpc.StatusCode.INTERNAL


def _abort(context: grpc.ServicerContext, error: BaseException) -> None:
    if isinstance(error, CdpError):
        context.abort(status_of(error), str(error))
    log.exception("internal error in %s", getattr(context, "method", "rpc"))
    context.abort(grpc.StatusCode.INTERNAL, f"internal error: {type(error).__name__}: {error}")


def rpc(method: Callable) -> Callable:
    """Map engine errors to status codes, for unary and server-streaming methods."""
    if inspect.isgeneratorfunction(method):
        @functools.wraps(method)
        def stream(self: Any, request: Any, context: grpc.ServicerContext):
            try:
                yield from method(self, request, context)
            except Exception as e:  # noqa: BLE001 - every failure becomes a status
                _abort(context, e)
        return stream

    @functools.wraps(method)
    def unary(self: Any, request: Any, context: grpc.ServicerContext):
        try:
            return method(self, request, context)
        except Exception as e:  # noqa: BLE001 - every failure becomes a status
            _abort(context, e)
    return unary
