"""The README and the language reference stay true to the code (STYLE practice 18)."""
from pathlib import Path

import pytest

from cdpcore.query.functions import FUNCTIONS
from cdpcore.schema import FieldType
from server.cli import cli

ROOT = Path(__file__).resolve().parent.parent
README = (ROOT / "README.md").read_text()
LANGUAGE = (ROOT / "docs" / "query-language.md").read_text()


@pytest.mark.parametrize("name", sorted(FUNCTIONS))
def test_every_query_function_is_documented(name):
    assert f"{name}(" in README and f"{name}(" in LANGUAGE


@pytest.mark.parametrize("ftype", [t.value for t in FieldType])
def test_every_field_type_is_documented(ftype):
    assert f"`{ftype}`" in README and f"`{ftype}`" in LANGUAGE


@pytest.mark.parametrize("command", sorted(cli.commands))
def test_every_cli_command_is_in_the_readme(command):
    assert f"cdp {command}" in README


def test_quick_start_is_exactly_two_commands():
    section = README.split("## Quick start", 1)[1].split("\n## ", 1)[0]
    blocks = section.split("```bash")[1:]
    commands = [b.split("```", 1)[0].strip() for b in blocks]
    assert len(commands) == 2 and all("\n" not in c for c in commands)
    ci = (ROOT / ".ci" / "run").read_text()
    assert commands[1] in ci, "CI must run the README's test command"
