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
from server.cli.ingest import COLUMNAR_MIN, jsonl_batches, split_records
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


def read_batches(path: Path, size: int) -> list:
    with path.open("rb") as f:
        return list(jsonl_batches(f, size))


def test_jsonl_key_sets_keep_absent_apart_from_null(local_cluster, tmp_path):
    """Records naming `plan: null` clear it; records not naming `plan` keep it. Both key
    sets are big enough to go as ColumnBatches, beside a few rows, in one stream; the
    rejections of each part name their own lines."""
    define_schema(local_cluster)
    base = [{"profile_id": f"k{i}", "plan": "pro", "age": 40, "last_seen": "2026-01-01T00:00:00"}
            for i in range(600)]
    first = tmp_path / "base.jsonl"
    write_jsonl(first, base, {})
    assert counts(local_cluster.cdp("ingest", str(first)).stdout) == (600, 0)

    nulls = [{"profile_id": f"k{i}", "plan": None, "age": 50, "signup_ts": 1_700_000_000 + i}
             for i in range(300)]                                   # epoch seconds, as ints
    absent = [{"profile_id": f"k{i}", "age": 60, "last_seen": f"2026-02-{1 + i % 28:02d}T12:00:00"}
              for i in range(300, 600)]
    fresh = [{"profile_id": f"n{i}", "plan": None} for i in range(5)]
    rows = [r for pair in zip(nulls, absent) for r in pair] + fresh
    bad = {7: '{"profile_id": "", "plan": null, "age": 50, "signup_ts": 1700000000}',   # server, columnar
           300: '{"profile_id": "k-bad", "age": 60, "last_seen": "2026-13-45"}',        # server, columnar
           301: '{"profile_id": "n-bad", "age": "old"}',                                 # server, a row
           450: '{"profile_id": "k1", "plan": nul'}                                      # here
    second = tmp_path / "mixed.jsonl"
    write_jsonl(second, rows, bad)

    first_batch = read_batches(second, 400)[0]      # the two key sets go columnar
    row_positions, groups = split_records(first_batch.records, dict(SCHEMA))
    assert len(groups) == 2 and all(len(p) >= COLUMNAR_MIN for p, _ in groups)
    assert [first_batch.records[i]["profile_id"] for i in row_positions] == ["n-bad"]

    out = local_cluster.cdp("ingest", str(second), "--batch", "400").stdout
    assert counts(out) == (605, 4), out
    assert "line 7: profile_id: profile_id must not be empty" in out
    assert "line 300: last_seen: not an ISO-8601 timestamp: '2026-13-45'" in out
    assert "line 301: age: expected int, got str 'old'" in out
    assert "line 450: invalid JSON" in out

    def count(where: str) -> int:
        return json.loads(local_cluster.cdp("query", "--json", f"SELECT count(*) FROM profiles WHERE {where}")
                          .stdout)["rows"][0][0]
    assert count("plan = 'pro'") == 300                   # not named: kept
    assert count("plan IS NULL AND age = 50") == 300      # named as null: cleared
    assert count("plan = 'pro' AND age = 60 AND last_seen >= '2026-02-01'") == 300
    store = embedded(base)
    assert store.upsert(rows).accepted == len(rows)
    assert_same_answers(local_cluster, store)
    sql = ("SELECT plan, count(*), avg(age), min(signup_ts), max(signup_ts), max(last_seen) "
           "FROM profiles GROUP BY plan ORDER BY plan")
    got = json.loads(local_cluster.cdp("query", "--json", sql).stdout)["rows"]
    assert got == json.loads(json.dumps([[json_value(v) for v in row] for row in store.query(sql).rows]))


def test_jsonl_split_only_when_order_cannot_matter():
    """Key-set groups go columnar only when sending them one after another gives what one
    call with every record would; otherwise the batch goes as rows."""
    a = [{"profile_id": f"a{i}", "x": i} for i in range(150)]
    b = [{"profile_id": f"b{i}", "x": i, "y": "v"} for i in range(150)]
    rows, groups = split_records(a + b, {})
    assert rows == [] and [p for p, _ in groups] == [list(range(150)), list(range(150, 300))]
    few = [{"profile_id": f"c{i}", "z": 1} for i in range(3)]
    assert split_records(a + few + b, {})[0] == [150, 151, 152]
    all_rows = (list(range(301)), [])
    # the same id in two groups, or in a group and the rows: later records must win
    assert split_records(a + b + [{"profile_id": "a0", "x": 1, "y": "w"}], {}) == all_rows
    assert split_records(a + b + [{"profile_id": "a0", "z": 1}], {}) == all_rows
    # a new field given ints in one group and floats in another: its type is the first value's
    b_floats = [{**r, "x": 0.5} for r in b]
    assert split_records(a + b_floats, {}) == (list(range(300)), [])
    assert len(split_records(a + b_floats, {"x": "float"})[1]) == 2
    # values a column would be read differently from rows: an int field given bools
    bools = [{"profile_id": f"c{i}", "age": i % 2 == 0} for i in range(150)]
    assert split_records(bools, {"age": "int"}) == (list(range(150)), [])
    assert len(split_records(bools, {})[1]) == 1
    # an int past int64 has no wire form: rows, where it is rejected by line
    big = [{"profile_id": f"d{i}", "n": 2 ** 64 if i == 7 else i} for i in range(150)]
    assert split_records(big, {}) == (list(range(150)), [])


def test_csv_timestamps_as_epoch_seconds_or_zoned_text_and_ints_past_int64(local_cluster, tmp_path):
    """A CSV batch goes as one ColumnBatch: timestamps that are not plain ISO text are
    converted here to µs by the engine's rules; an int the wire cannot carry rejects its line."""
    define_schema(local_cluster)
    cells = ["1700000000", "1700000000.25", "2026-03-01T10:00:00+02:00", "2026-03-01", ""]
    lines = [f"p{i},{i},{cells[i % len(cells)]}" for i in range(500)]
    lines.insert(99, "big,99999999999999999999,1")           # file line 101
    path = tmp_path / "ts.csv"
    path.write_text("profile_id,age,signup_ts\n" + "\n".join(lines) + "\n")
    out = local_cluster.cdp("ingest", str(path)).stdout
    assert counts(out) == (500, 1)
    assert "line 101: age: int out of range for int64: 99999999999999999999" in out
    values: list[Any] = [1700000000, 1700000000.25, "2026-03-01T10:00:00+02:00", "2026-03-01", None]
    store = embedded([{"profile_id": f"p{i}", "age": i, "signup_ts": values[i % len(values)]}
                      for i in range(500)])
    for sql, want in [
        ("SELECT min(signup_ts), max(signup_ts), count(signup_ts) FROM profiles",
         [["2023-11-14T22:13:20Z", "2026-03-01T08:00:00Z", 400]]),
        ("SELECT count(*) FROM profiles WHERE signup_ts > '2023-11-14T22:13:20'", [[300]]),   # .25 s later
        ("SELECT sum(age) FROM profiles WHERE signup_ts = '2026-03-01T08:00:00Z'", [[sum(range(2, 500, 5))]]),
        ("SELECT sum(age) FROM profiles WHERE signup_ts IS NULL", [[sum(range(4, 500, 5))]]),
    ]:
        got = json.loads(local_cluster.cdp("query", "--json", sql).stdout)["rows"]
        assert got == want == json.loads(json.dumps([[json_value(v) for v in row]
                                                     for row in store.query(sql).rows])), sql
