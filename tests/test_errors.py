"""The error contract: every engine error class has a deliberate gRPC status."""
import grpc
import pytest

from cdpcore import errors
from server.status import STATUS, RemoteError, status_of


def all_subclasses(cls):
    for sub in cls.__subclasses__():
        yield sub
        yield from all_subclasses(sub)


ENGINE_ERRORS = [c for c in all_subclasses(errors.CdpError) if c.__module__ == "cdpcore.errors"]


@pytest.mark.parametrize("cls", ENGINE_ERRORS, ids=lambda c: c.__name__)
def test_every_engine_error_maps_to_a_status_other_than_internal(cls):
    error = cls.__new__(cls)
    Exception.__init__(error, "x")
    assert any(base in STATUS for base in cls.__mro__ if base is not errors.CdpError), cls
    assert status_of(error) != grpc.StatusCode.INTERNAL


def test_expected_codes():
    assert status_of(errors.QueryError("bad", "x", 0, 1)) == grpc.StatusCode.INVALID_ARGUMENT
    assert status_of(errors.ProfileNotFound("u")) == grpc.StatusCode.NOT_FOUND
    assert status_of(errors.Overloaded("busy")) == grpc.StatusCode.RESOURCE_EXHAUSTED
    assert status_of(errors.Unavailable("shard down")) == grpc.StatusCode.UNAVAILABLE
    assert status_of(RemoteError(grpc.StatusCode.DEADLINE_EXCEEDED, "late")) == grpc.StatusCode.DEADLINE_EXCEEDED
