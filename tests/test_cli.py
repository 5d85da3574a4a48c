"""The `cdp` command line, driven in-process through click's CliRunner."""
from click.testing import CliRunner

from server.cli import cli


def test_demo_starts_a_cluster_loads_and_answers_examples():
    result = CliRunner().invoke(cli, ["demo", "--profiles", "3000", "--repeat", "1"])
    assert result.exit_code == 0, result.output
    assert "loaded 3,000 profiles" in result.output
    assert "COUNT(*)" in result.output
    assert "error" not in result.output.lower()


def test_embedded_demo_loads_and_answers_examples():
    result = CliRunner().invoke(cli, ["demo", "--embedded", "--profiles", "3000", "--repeat", "1"])
    assert result.exit_code == 0, result.output
    assert "loaded 3,000 profiles" in result.output
    assert "COUNT(*)" in result.output
    assert "error" not in result.output.lower()


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
