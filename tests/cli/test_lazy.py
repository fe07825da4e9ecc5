"""The command table of `mlprod.cli` says what the commands themselves say.

`mlprod --help` lists the commands from the table without importing them; running one
builds it from its module. These tests build every command and hold the table to it, so
the help cannot drift from the docstrings, and the listing stays the one the commands
would print themselves.
"""

from __future__ import annotations

import copy
import inspect
from typing import TYPE_CHECKING

import typer.main
from typer.testing import CliRunner

from mlprod.cli import COMMANDS, app
from mlprod.cli._lazy import LazyGroup, build

if TYPE_CHECKING:
    from typer._click import Context, HelpFormatter

RUNNER = CliRunner()
ENV = {"COLUMNS": "100", "NO_COLOR": "1"}


def _first_paragraph(text: str | None) -> str:
    return inspect.cleandoc(text or "").split("\n\n")[0]


def test_every_entry_builds_the_command_its_help_line_describes() -> None:
    for name, entry in COMMANDS.items():
        command = build(name, entry)
        assert command.name == name
        assert _first_paragraph(command.help) == entry.help, name


def test_groups_hold_their_commands_from_every_module() -> None:
    # `features` and `data` are _experiments' groups with _features' commands joined.
    features = build("features", COMMANDS["features"])
    data = build("data", COMMANDS["data"])
    assert list(features.commands) == ["rank", "materialize", "stream", "skew"]  # type: ignore[attr-defined]
    assert list(data.commands) == ["profile", "cache"]  # type: ignore[attr-defined]


class _BuiltFirst(LazyGroup):
    """The same group, but every command is built before the help is written."""

    entries = COMMANDS

    def format_help(self, ctx: Context, formatter: HelpFormatter) -> None:
        for name in self.entries:
            self.commands[name]  # building it is the point
        super().format_help(ctx, formatter)


def test_the_listing_from_the_table_is_the_listing_of_the_built_commands() -> None:
    eager = copy.copy(app)
    eager.info = copy.copy(app.info)
    eager.info.cls = _BuiltFirst
    lazy = RUNNER.invoke(app, ["--help"], env=ENV)
    built = RUNNER.invoke(eager, ["--help"], env=ENV)
    assert lazy.exit_code == built.exit_code == 0
    assert lazy.output == built.output
    for name, entry in COMMANDS.items():
        assert f" {name} " in lazy.output
        assert entry.help.split()[0] in lazy.output


def test_a_mistyped_command_is_matched_against_the_table() -> None:
    result = RUNNER.invoke(app, ["modls", "show"], env=ENV)
    assert result.exit_code == 2
    assert "Did you mean 'models'?" in result.output


def test_an_unknown_command_is_not_found() -> None:
    group = typer.main.get_command(app)
    context = group.make_context("mlprod", ["models"])
    assert group.get_command(context, "nothing") is None  # type: ignore[attr-defined]
