"""`cdp segment …` against a real cluster: in-process through CliRunner, and `watch` as a
real process reading changes as they happen."""
from __future__ import annotations

import json
import select
import subprocess
import sys

import numpy as np
import pytest
from click.testing import CliRunner

from server import codec
from server.cli import cli
from server.pb.cdp.v1 import profile_store_pb2 as pb

from .conftest import Running, serving
from .test_segments import WHERE, count, list_ids, load

pytestmark = pytest.mark.e2e


def cdp(running: Running, *args: str):
    return CliRunner().invoke(cli, [*args, "--addr", running.address])


def upsert(running: Running, records: list[dict]) -> None:
    running.store.Upsert(pb.UpsertRequest(profiles=codec.profiles_from_records(records)))


def test_cli_create_list_show_delete(local_cluster):
    load(local_cluster, 500)
    size = count(local_cluster, WHERE["loyal"])
    result = cdp(local_cluster, "segment", "create", "loyal", WHERE["loyal"])
    assert result.exit_code == 0, result.output
    assert result.stdout.strip() == f"created segment loyal: {size:,} profiles"
    assert cdp(local_cluster, "segment", "create", "loyal_jp", WHERE["loyal_jp"]).exit_code == 0
    listed = cdp(local_cluster, "segment", "list")
    assert listed.exit_code == 0 and "loyal_jp" in listed.stdout and "(2 segments)" in listed.stdout
    docs = json.loads(cdp(local_cluster, "segment", "list", "--json").stdout)
    assert [(d["name"], d["size"], d["depends_on"]) for d in docs] == \
        [("loyal", size, []), ("loyal_jp", docs[1]["size"], ["loyal"])]
    shown = cdp(local_cluster, "segment", "show", "loyal_jp")
    assert "where: in_segment('loyal') AND country = 'JP'" in shown.stdout and "depends_on: loyal" in shown.stdout
    refused = cdp(local_cluster, "segment", "delete", "loyal")
    assert refused.exit_code == 1 and "FAILED_PRECONDITION" in refused.output and "loyal_jp" in refused.output
    assert cdp(local_cluster, "segment", "delete", "loyal_jp").stdout.strip() == "deleted segment loyal_jp"
    missing = cdp(local_cluster, "segment", "show", "loyal_jp")
    assert missing.exit_code == 1 and "NOT_FOUND" in missing.output
    status = cdp(local_cluster, "cluster", "status")
    assert "1 saved segments" in status.stdout


def test_cli_create_shows_where_a_condition_is_wrong(local_cluster):
    load(local_cluster, 10)
    result = cdp(local_cluster, "segment", "create", "x", "age > 3 AND cuntry = 'JP'")
    assert result.exit_code == 1
    assert "INVALID_ARGUMENT" in result.output and "cuntry" in result.output
    assert "  age > 3 AND cuntry = 'JP'\n              ^" in result.output


def test_cli_export_writes_json_lines(local_cluster, tmp_path):
    load(local_cluster, 800)
    cdp(local_cluster, "segment", "create", "loyal", WHERE["loyal"])
    out = tmp_path / "loyal.jsonl"
    result = cdp(local_cluster, "segment", "export", "loyal", "--out", str(out), "--fields", "age,interests,signup_ts",
                 "--batch", "100")
    assert result.exit_code == 0, result.output
    lines = [json.loads(line) for line in out.read_text().splitlines()]
    assert {d["profile_id"] for d in lines} == list_ids(local_cluster, WHERE["loyal"])
    assert f"exported {len(lines):,} profiles to {out}" in result.stderr
    sample = lines[0]
    profile = local_cluster.store.GetProfile(pb.GetProfileRequest(profile_id=sample["profile_id"])).profile
    assert sample["age"] == (profile.fields["age"].int_value if "age" in profile.fields else None)
    assert set(sample) == {"profile_id", "age", "interests", "signup_ts"}
    assert any(isinstance(d["signup_ts"], str) and d["signup_ts"].endswith("Z") for d in lines)
    plain = cdp(local_cluster, "segment", "export", "loyal")
    assert sorted(json.loads(line)["profile_id"] for line in plain.stdout.splitlines()) == \
        sorted(d["profile_id"] for d in lines)


def test_cli_watch_prints_changes_as_they_happen(local_cluster):
    load(local_cluster, 300)
    cdp(local_cluster, "segment", "create", "loyal", WHERE["loyal"])
    size = count(local_cluster, WHERE["loyal"])
    initial = cdp(local_cluster, "segment", "watch", "loyal", "--initial", "--json", "--count", str(size))
    docs = [json.loads(line) for line in initial.stdout.splitlines()]
    assert len(docs) == size and all(d["initial"] and d["entered"] for d in docs)
    proc = subprocess.Popen([sys.executable, "-m", "server.cli", "segment", "watch", "loyal", "--count", "3",
                             "--addr", local_cluster.address], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True)
    try:
        assert select.select([proc.stderr], [], [], 30)[0] and "watching segment loyal" in proc.stderr.readline()
        for orders in (7, 0, 5):             # one profile, so one shard: its changes come in order
            upsert(local_cluster, [{"profile_id": "w1", "orders_count": orders}, {"profile_id": "w2", "orders_count": 1}])
        out, _ = proc.communicate(timeout=30)
    finally:
        proc.kill()
    assert out.splitlines() == ["+ w1", "- w1", "+ w1"]
    assert proc.returncode == 0


def test_cli_watch_explains_changes_no_longer_retained():
    with serving("--shards", "1", "--retained-changes", "2") as running:
        load(running, 50)
        cdp(running, "segment", "create", "loyal", WHERE["loyal"])
        for orders in (9, 0, 9):
            batch = codec.batch_from_columns(["flip"], {"orders_count": np.array([orders])})
            running.store.Upsert(pb.UpsertRequest(columns=batch))
        result = cdp(running, "segment", "watch", "loyal", "--after", "0:0")
        assert result.exit_code == 1
        assert "no longer retained" in result.output and "cdp segment export loyal" in result.output
        resumed = cdp(running, "segment", "watch", "loyal", "--after", "0:1", "--json", "--count", "2")
        assert [json.loads(line)["seq"] for line in resumed.stdout.splitlines()] == [2, 3]
        bad = cdp(running, "segment", "watch", "loyal", "--after", "zero")
        assert bad.exit_code == 2 and "SHARD:SEQ" in bad.output
