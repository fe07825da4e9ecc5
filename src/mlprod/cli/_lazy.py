"""A command group that imports a command's module only when that command runs.

Typer builds every registered command from its function's signature when the app starts,
so each command module (and whatever it imports at its top) would be paid by every
command, ``mlprod --help`` included. This group knows its commands by a table of names,
modules and one-line help instead: ``--help`` lists them from the table, and running a
command imports its module alone and builds it exactly as ``app.command()`` /
``app.add_typer`` would. `tests/cli/test_lazy.py` holds the table to the commands' help.
"""

from __future__ import annotations

import importlib
from collections.abc import Iterator, MutableMapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, ClassVar

import typer
import typer.main
from typer.core import DEFAULT_MARKUP_MODE, MarkupMode, TyperCommand, TyperGroup

if TYPE_CHECKING:
    # typer carries its own copy of click; its Context and HelpFormatter are these.
    from typer._click import Command, Context, HelpFormatter


@dataclass(frozen=True)
class Entry:
    """Where one command of the group lives, and its line in the group's help."""

    module: str
    attribute: str  # a command function, or a typer.Typer for a group of commands
    help: str  # the first paragraph of the command's help, as ``--help`` lists it


class LazyCommands(MutableMapping[str, "Command"]):
    """A group's commands by name: `entries` are built on first access, then kept.

    The names are there from the start, so whatever reads only the names (the "Did you
    mean ...?" of a mistyped command, the listing in ``--help``) imports nothing.
    """

    def __init__(self, entries: dict[str, Entry], markup: MarkupMode) -> None:
        self.entries = entries
        self.built: dict[str, Command] = {}
        self._markup = markup

    def __getitem__(self, name: str) -> Command:
        if name not in self.built:
            self.built[name] = build(name, self.entries[name], self._markup)
        return self.built[name]

    def __setitem__(self, name: str, command: Command) -> None:
        self.built[name] = command

    def __delitem__(self, name: str) -> None:
        del self.built[name]

    def __iter__(self) -> Iterator[str]:
        yield from self.entries
        yield from (name for name in self.built if name not in self.entries)

    def __len__(self) -> int:
        return len(self.entries) + sum(name not in self.entries for name in self.built)


class LazyGroup(TyperGroup):
    """A TyperGroup whose commands are `entries`, imported and built on first use.

    Subclasses set `entries`; their order is the order ``--help`` lists them in.
    """

    entries: ClassVar[dict[str, Entry]] = {}

    def __init__(self, **attrs: Any) -> None:
        super().__init__(**attrs)
        commands = LazyCommands(self.entries, self.rich_markup_mode)
        commands.update(self.commands)
        self.commands = self._lazy = commands
        self._listing = False

    def list_commands(self, ctx: Context) -> list[str]:
        return list(self.commands)

    def get_command(self, ctx: Context, cmd_name: str) -> Command | None:
        entry = self.entries.get(cmd_name)
        if self._listing and entry is not None and cmd_name not in self._lazy.built:
            # Only the name and the help line are read while the help is written.
            return TyperCommand(cmd_name, help=entry.help)
        return self.commands.get(cmd_name)

    def format_help(self, ctx: Context, formatter: HelpFormatter) -> None:
        self._listing = True
        try:
            super().format_help(ctx, formatter)
        finally:
            self._listing = False


def build(name: str, entry: Entry, markup: MarkupMode = DEFAULT_MARKUP_MODE) -> Command:
    """The click command of `entry`, built as registering it on the app would build it."""
    target = getattr(importlib.import_module(entry.module), entry.attribute)
    holder = typer.Typer(add_completion=False, rich_markup_mode=markup)
    if isinstance(target, typer.Typer):
        holder.add_typer(target, name=name)
    else:
        holder.command(name)(target)
    command: Command = typer.main.get_group(holder).commands[name]
    return command
