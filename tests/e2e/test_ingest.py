"""`cdp ingest` end to end: files written here, loaded by the real CLI into a real
cluster, answers compared with an embedded Store holding the same valid records.

Both sides get `SCHEMA` declared first (DefineFields on the cluster, define_fields on
the Store) rather than relying on inference: with inference the JSON Lines timestamps
(ISO text) and the CSV tags ('a|b' text) would become plain `string` fields, so the
comparison would no longer exercise the typed paths (timestamp parsing, string_set
splitting, bool words) that ingest exists to get right.
"""
from __future__ import annotations

import csv
import json
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from cdpcore import Store
from cdpcore.sample import SCHEMA, generate_rows
from server.cli.client import json_value
from server.pb.cdp.v1 import profile_store_pb2 as pb

pytestmark = pytest.mark.e2e

QUERIES = [
    "SELECT count(*) FROM profiles",
    "SELECT country, count(*) AS n FROM profiles GROUP BY country ORDER BY n DESC, country",
    "SELECT avg(lifetime_value), sum(orders_count), min(signup_ts), max(last_seen) FROM profiles",
    "SELECT count(*) FROM profiles WHERE has(interests, 'golf') AND age >= 30 AND NOT is_subscriber",
    "SELECT count(*) FROM profiles WHERE interests IS NULL OR age IS NULL OR last_seen IS NULL",
    "SELECT plan, avg(lifetime_value) FROM profiles WHERE is_subscriber GROUP BY plan ORDER BY plan",
]
SUMMARY = re.compile(r"accepted (\d+), rejected (\d+)")


def define_schema(running) -> None:
    running.store.DefineFields(pb.DefineFieldsRequest(
        fields=[pb.FieldSpec(name=k, type=v) for k, v in SCHEMA.items()]))


def embedded(records: list[dict[str, Any]]) -> Store:
    store = Store(shards=1)
    store.define_fields(SCHEMA)
    result = store.upsert(records)
    assert result.accepted == len(records) and not result.errors
    return store


def counts(out: str) -> tuple[int, int]:
    match = SUMMARY.search(out)
    assert match, out
    return int(match[1]), int(match[2])


def assert_same_answers(running, store: Store) -> None:
    for sql in QUERIES:
        got = json.loads(running.cdp("query", "--json", sql).stdout)
        want = store.query(sql)
        rows = json.loads(json.dumps([[json_value(v) for v in row] for row in want.rows]))
        assert got["columns"] == want.columns, sql
        assert got["rows"] == [[pytest.approx(v, rel=1e-9) if isinstance(v, float) else v for v in row]
                               for row in rows], sql


def cdp(*args: str, stdin: str | None = None) -> subprocess.CompletedProcess:
    """`cdp` with no cluster fixture (the fixture's helper always appends its --addr)."""
    return subprocess.run([sys.executable, "-m", "server.cli", *args], input=stdin,
                          capture_output=True, text=True, timeout=120)


def write_jsonl(path: Path, rows: list[dict[str, Any]], bad: dict[int, str]) -> None:
    """The rows one per line, with `bad[n]` placed as line n."""
    lines = [json.dumps(r) for r in rows]
    for number in sorted(bad):
        lines.insert(number - 1, bad[number])
    path.write_text("\n".join(lines) + "\n")


def test_jsonl_loads_valid_lines_and_names_bad_ones(local_cluster, tmp_path):
    define_schema(local_cluster)
    rows = generate_rows(3000)
    bad = {12: '{"profile_id": "broken", "age": ', 1500: '{"age": 3, "city": "Oslo"}',
           2999: '{"profile_id": "bad-age", "age": "x"}'}
    path = tmp_path / "profiles.jsonl"
    write_jsonl(path, rows, bad)
    out = local_cluster.cdp("ingest", str(path), "--batch", "700").stdout
    assert counts(out) == (3000, 3)
    assert "line 12: invalid JSON" in out
    assert "line 1500: profile_id: missing" in out
    assert "line 2999: age: expected int" in out
    assert_same_answers(local_cluster, embedded(rows))


def test_jsonl_from_stdin_and_all_rejected_exits_1(local_cluster):
    define_schema(local_cluster)
    ok = cdp("ingest", "-", "--addr", local_cluster.address,
             stdin='{"profile_id": "s1", "age": 30}\n\n{"profile_id": "s2", "age": 31}\n')
    assert ok.returncode == 0 and counts(ok.stdout) == (2, 0)
    bad = cdp("ingest", "-", "--addr", local_cluster.address,
              stdin='[1]\n{"profile_id": "s3", "age": "old"}\n')
    assert bad.returncode == 1 and counts(bad.stdout) == (0, 2)
    assert "line 1: expected a JSON object" in bad.stdout and "line 2: age:" in bad.stdout


def csv_cell(value: Any, row: int) -> str:
    if value is None:
        return ""
    if isinstance(value, bool):      # every spelling the bool parser takes
        return [("false", "true"), ("0", "1"), ("No", "Yes")][row % 3][value]
    if isinstance(value, list):
        return "|".join(value)
    return str(value)


def test_csv_converts_cells_by_the_declared_types(local_cluster, tmp_path):
    define_schema(local_cluster)
    rows = generate_rows(3000, seed=3)
    names = ["profile_id", *SCHEMA]
    path = tmp_path / "profiles.csv"
    with path.open("w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(names)
        for i, r in enumerate(rows):
            writer.writerow([csv_cell(r[n], i) for n in names])
            if i == 99:      # file line 102 (header + 100 rows + this)
                writer.writerow(["bad1", "x"] + [""] * (len(names) - 2))
            if i == 1999:    # line 2003
                writer.writerow(["bad2", "40"] + [""] * (len(names) - 3) + ["2026-13-45"])
    out = local_cluster.cdp("ingest", str(path)).stdout
    assert counts(out) == (3000, 2)
    assert "line 102: age: expected int, got 'x'" in out
    assert "line 2003: last_seen: not an ISO-8601 timestamp" in out
    # an empty cell is a null: an empty tag list written as '' comes back as a null set
    expected = [{k: (None if v == [] else v) for k, v in r.items()} for r in rows]
    assert_same_answers(local_cluster, embedded(expected))


def test_csv_infers_undeclared_columns_from_the_whole_column(local_cluster, tmp_path):
    path = tmp_path / "extra.csv"
    body = "".join(f"p{i},{i},{i if i < 9000 else i + 0.5},{'true' if i % 2 else 'false'},v{i % 3}\n"
                   for i in range(10_000))
    path.write_text("profile_id,visits,score,vip,segment\n" + body)
    out = local_cluster.cdp("ingest", str(path)).stdout
    assert counts(out) == (10_000, 0)
    schema = local_cluster.store.GetSchema(pb.GetSchemaRequest())
    assert {f.name: f.type for f in schema.fields} == {
        "visits": "int", "score": "float", "vip": "bool", "segment": "string"}
    got = json.loads(local_cluster.cdp("query", "--json", "SELECT sum(score) FROM profiles WHERE vip").stdout)
    assert got["rows"] == [[sum(i + 0.5 * (i >= 9000) for i in range(1, 10_000, 2))]]


def test_missing_file_and_unreachable_cluster_exit_1(tmp_path):
    missing = cdp("ingest", str(tmp_path / "nope.jsonl"))
    assert missing.returncode == 1 and "cannot read" in missing.stderr and "nope.jsonl" in missing.stderr
    path = tmp_path / "one.jsonl"
    path.write_text('{"profile_id": "u1"}\n')
    down = cdp("ingest", str(path), "--addr", "127.0.0.1:1")
    assert down.returncode == 1 and "UNAVAILABLE" in down.stderr
