"""Every ``changehub`` command explains itself with --help, and bad usage exits 2."""

from __future__ import annotations

import click
import pytest
from click.testing import CliRunner

from hub.cli import cli

COMMANDS = sorted(cli.commands)


def test_the_design_commands_are_all_there() -> None:
    assert {"run", "validate", "status", "topics", "tail", "offsets", "reset", "export",
            "reindex", "snapshot", "doctor", "demo"} <= set(COMMANDS)


@pytest.mark.parametrize("name", COMMANDS)
def test_every_command_has_help_text(name: str) -> None:
    result = CliRunner().invoke(cli, [name, "--help"])
    assert result.exit_code == 0, result.output
    assert f"Usage: cli {name}" in result.output or f"Usage: changehub {name}" in result.output
    command = cli.commands[name]
    assert command.help and len(command.help.split()) >= 5, f"{name} has no real help text"
    for param in command.params:  # arguments are explained in the command's own text
        if isinstance(param, click.Option) and param.name != "help":
            assert param.help, f"{name}: option {param.name} has no help"


@pytest.mark.parametrize("args", [["run"], ["reset", "files"], ["tail"], ["frobnicate"],
                                  ["topics", "--bogus"]])
def test_bad_usage_exits_2(args: list[str]) -> None:
    assert CliRunner().invoke(cli, args).exit_code == 2
