"""docs/deploy.md names only commands and options that exist: every ``scim-bridge ...`` line of
its code blocks is resolved against the CLI and run with ``--help``. Commands that land with
the delivery outbox in parallel are allowed while they are missing, and checked once they exist.
"""

from __future__ import annotations

import re
import shlex
from pathlib import Path

import click
import pytest
from click.testing import CliRunner

from scim_bridge.cli import main

ROOT = Path(__file__).resolve().parents[1]
GUIDE = ROOT / "docs" / "deploy.md"
#: Described by the delivery issue, merged separately: (command path, option).
LANDING_WITH_THE_OUTBOX = {("worker",), ("serve", "--no-worker")}
_SEPARATORS = {"&&", "||", ";", "|"}
_ASSIGNMENT = re.compile(r"^[A-Z_][A-Z0-9_]*=")


def guide_commands() -> list[list[str]]:
    """The words of every ``scim-bridge`` invocation in the guide's fenced code blocks."""
    blocks = re.findall(r"^```[^\n]*\n(.*?)^```", GUIDE.read_text(), re.M | re.S)
    commands: list[list[str]] = []
    for line in "\n".join(blocks).splitlines():
        words: list[str] = []
        for word in [*shlex.split(line, comments=True), ";"]:
            if word not in _SEPARATORS:
                words.append(word)
                continue
            while words and _ASSIGNMENT.match(words[0]):
                words.pop(0)
            if words and words[0] == "scim-bridge":
                commands.append(words[1:])
            words = []
    return commands


def _resolve(words: list[str]) -> tuple[list[str], click.Command, list[str]]:
    """The subcommand path, the command it names, and the options the line passes to it."""
    path: list[str] = []
    command: click.Command = main
    rest = list(words)
    while isinstance(command, click.Group) and rest and not rest[0].startswith("-"):
        name = rest.pop(0)
        found = command.get_command(click.Context(command), name)
        if found is None:
            raise LookupError((*path, name))
        path.append(name)
        command = found
    options = [word.split("=", 1)[0] for word in rest if word.startswith("--")]
    return path, command, options


def test_the_readme_links_the_guide():
    assert "(docs/deploy.md)" in (ROOT / "README.md").read_text()


def test_the_guide_shows_the_operations_it_promises():
    commands = guide_commands()
    shown = {" ".join(words[:2]) for words in commands}
    assert {"db backup", "db restore", "db upgrade", "keys rotate"} <= shown
    assert ["worker"] in commands
    assert any(words[0] == "serve" and "--no-worker" in words for words in commands)


@pytest.mark.parametrize("words", guide_commands(), ids=" ".join)
def test_every_command_in_the_guide_exists(words):
    try:
        path, command, options = _resolve(words)
    except LookupError as missing:
        if tuple(missing.args[0]) in LANDING_WITH_THE_OUTBOX:
            pytest.skip(f"'scim-bridge {' '.join(missing.args[0])}' lands with the outbox")
        raise AssertionError(f"docs/deploy.md names a missing command: {missing}") from None
    known = {opt for param in command.params for opt in (*param.opts, *param.secondary_opts)}
    for option in options:
        if option not in known and (*path, option) in LANDING_WITH_THE_OUTBOX:
            continue
        assert option in known, f"'scim-bridge {' '.join(path)}' has no option {option}"
    result = CliRunner().invoke(main, [*path, "--help"])
    assert result.exit_code == 0, result.output
