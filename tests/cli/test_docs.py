"""Every command is documented and has --help; every lint code is documented."""

from __future__ import annotations

import re

import click
from click.testing import CliRunner

from automations.cli import cli
from automations.formats import RULES
from tests.cli.conftest import REPO


def test_every_command_is_documented_and_has_help() -> None:
    doc = (REPO / "docs" / "cli.md").read_text()
    readme = (REPO / "README.md").read_text()
    runner = CliRunner()
    names = cli.list_commands(None)  # type: ignore[arg-type]
    assert len(names) == 15
    for name in names:
        assert f"## automations {name}\n" in doc, name
        assert re.search(rf"\b{name}\b", readme), name
        result = runner.invoke(cli, [name, "--help"])
        assert result.exit_code == 0, name
        assert "Usage:" in result.output


def test_every_lint_code_is_documented() -> None:
    doc = (REPO / "docs" / "lint.md").read_text()
    assert set(re.findall(r"^## ([A-Z]+\d+)$", doc, re.M)) == set(RULES)


def test_schema_command_prints_the_schema_file() -> None:
    result = CliRunner().invoke(cli, ["schema"])
    import json

    assert json.loads(result.output) == json.loads(
        (REPO / "schemas/recipe.schema.json").read_text()
    )


def test_every_subcommand_is_documented_and_has_help() -> None:
    # a command group (``automations db``) counts once above: each of its commands is covered here
    doc = (REPO / "docs" / "cli.md").read_text()
    runner = CliRunner()
    ctx = click.Context(cli)
    for name in cli.list_commands(ctx):
        group = cli.get_command(ctx, name)
        if not isinstance(group, click.Group):
            continue
        for sub in group.list_commands(ctx):
            assert f"automations {name} {sub}" in doc, (name, sub)
            result = runner.invoke(cli, [name, sub, "--help"])
            assert result.exit_code == 0, (name, sub, result.output)
            assert "Usage:" in result.output
