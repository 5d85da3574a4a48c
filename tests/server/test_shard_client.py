"""ShardClient after its shard was unavailable: the next call runs `resync` first, once,
and the resync's own calls go straight through (in process, real sockets on port 0)."""
from __future__ import annotations

import socket
import threading
import time

import pytest

from cdpcore.errors import Unavailable
from server import app
from server.pb.cdp.v1 import shard_pb2 as pb
from server.shard_client import ShardClient


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def call_until_up(client: ShardClient) -> pb.ShardStatusResponse:
    """The channel reconnects with a backoff (at most 1 s): calls fail fast until then."""
    for _ in range(100):
        try:
            return client.call("Status", pb.ShardStatusRequest(), timeout=10)
        except Unavailable:
            time.sleep(0.05)
    raise AssertionError("the shard did not come back")


def test_a_call_after_unavailable_resyncs_first_once(tmp_path):
    port = free_port()
    resyncs: list[int] = []

    def resync(client: ShardClient) -> None:
        client.stale = True  # another caller failing meanwhile must not deadlock this one
        reply = client.call("Assign", pb.ShardAssignRequest(slots=[1, 2], epoch=1), timeout=5)
        resyncs.append(reply.epoch)

    client = ShardClient(f"127.0.0.1:{port}", timeout=5, resync=resync)
    with pytest.raises(Unavailable):
        client.call("Status", pb.ShardStatusRequest())
    assert client.stale and resyncs == []
    server, _, service = app.build_shard("127.0.0.1", port, data_dir=str(tmp_path / "s"))
    server.start()
    try:
        done = threading.Event()
        result: list = []
        worker = threading.Thread(target=lambda: (result.append(call_until_up(client)), done.set()), daemon=True)
        worker.start()
        assert done.wait(20), "the resync deadlocked"
        assert resyncs == [1] and list(result[0].slots) == [1, 2] and result[0].fsync == "always"
        assert "replayed 0 WAL records" in result[0].recovery
        client.stale = False
        client.call("Status", pb.ShardStatusRequest())
        assert resyncs == [1]  # not stale: no resync
    finally:
        client.close()
        server.stop(0).wait()
        service.close()
