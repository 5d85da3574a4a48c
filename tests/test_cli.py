"""The `cdp` command line, driven in-process through click's CliRunner."""
from click.testing import CliRunner

from server.cli import cli


def example_answers(output: str) -> dict[str, str]:
    """Each example's SQL → the first line of its answer table."""
    lines = output.splitlines()
    return {lines[i + 1]: lines[i + 4] for i, line in enumerate(lines) if line.startswith("-- ")}


def test_demo_starts_a_cluster_loads_and_answers_examples():
    result = CliRunner().invoke(cli, ["demo", "--profiles", "3000", "--repeat", "1"])
    assert result.exit_code == 0, result.output
    assert "loaded 3,000 profiles" in result.output
    assert "tracked " in result.output and " events in " in result.output
    assert "COUNT(*)" in result.output
    assert "error" not in result.output.lower() and "warning" not in result.output.lower()


def test_embedded_demo_loads_and_answers_examples_as_the_cluster_does():
    result = CliRunner().invoke(cli, ["demo", "--embedded", "--profiles", "3000", "--repeat", "1"])
    assert result.exit_code == 0, result.output
    assert "loaded 3,000 profiles" in result.output
    assert "COUNT(*)" in result.output
    assert "error" not in result.output.lower() and "warning" not in result.output.lower()
    answers = example_answers(result.output)
    purchases = "SELECT count(*) FROM profiles WHERE event_count('purchase', '30d') >= 2"
    assert int(answers[purchases]) > 0      # the sample clock puts the events' last month in the window
    cluster = CliRunner().invoke(cli, ["demo", "--profiles", "3000", "--repeat", "1"])
    assert example_answers(cluster.output) == answers


def test_demo_without_events():
    result = CliRunner().invoke(cli, ["demo", "--embedded", "--profiles", "500", "--events", "0", "--repeat", "1",
                                      "SELECT count(*) FROM profiles WHERE event_count('purchase') >= 1"])
    assert result.exit_code == 0, result.output
    assert " events in " not in result.output and "warning: event type 'purchase'" in result.output


def test_demo_runs_a_given_query():
    sql = "SELECT gender, count(*) AS n FROM profiles GROUP BY gender ORDER BY gender"
    result = CliRunner().invoke(cli, ["demo", "--embedded", "--profiles", "2000", "--repeat", "1", sql])
    assert result.exit_code == 0, result.output
    lines = result.output.splitlines()
    header = next(i for i, line in enumerate(lines) if line.startswith("gender"))
    counts = [int(line.split("|")[1]) for line in lines[header + 2:] if "|" in line]
    assert sum(counts) == 2000


def test_demo_reports_query_errors_with_position():
    result = CliRunner().invoke(cli, ["demo", "--embedded", "--profiles", "100", "--repeat", "1",
                                      "SELECT count(*) FROM profiles WHERE agee > 3"])
    assert result.exit_code == 1
    assert "unknown field" in result.output and "agee" in result.output
    assert "^^^^" in result.output


def test_cluster_demo_reports_query_errors_with_the_status_code():
    result = CliRunner().invoke(cli, ["demo", "--profiles", "100", "--repeat", "1",
                                      "SELECT count(*) FROM profiles WHERE agee > 3"])
    assert result.exit_code == 1
    assert "INVALID_ARGUMENT" in result.output and "agee" in result.output


def test_segment_commands_are_all_there():
    result = CliRunner().invoke(cli, ["segment", "--help"])
    assert result.exit_code == 0
    for command in ("create", "list", "show", "delete", "export", "watch"):
        assert f"  {command} " in result.output


def test_fsync_and_data_options_are_checked_before_anything_starts(tmp_path):
    bad = CliRunner().invoke(cli, ["shard", "--data", str(tmp_path), "--fsync", "sometimes"])
    assert bad.exit_code == 2 and "interval=MS" in bad.output
    alone = CliRunner().invoke(cli, ["serve", "--fsync", "never"])
    assert alone.exit_code == 2 and "--fsync needs --data" in alone.output
    assert not any(tmp_path.iterdir())
    names = set(CliRunner().invoke(cli, ["cluster", "--help"]).output.split())
    assert {"status", "snapshot"} <= names
