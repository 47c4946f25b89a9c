"""Every registered command and option documents itself in --help, including commands
other modules add to canarylab.cli.COMMANDS later: the test walks the argparse tree."""

from __future__ import annotations

import argparse
from collections.abc import Iterator

import pytest

from canarylab.cli import COMMANDS, build_parser, main


def _subparsers(
    parser: argparse.ArgumentParser,
) -> Iterator[argparse._SubParsersAction[argparse.ArgumentParser]]:
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            yield action


def walk(
    parser: argparse.ArgumentParser, path: tuple[str, ...] = ()
) -> Iterator[tuple[tuple[str, ...], argparse.ArgumentParser, str | None]]:
    """(command path, its parser, the help line its parent shows for it) for every (sub)command."""
    for sub in _subparsers(parser):
        helps = {choice.dest: choice.help for choice in sub._choices_actions}
        for name, child in sub.choices.items():
            yield (*path, name), child, helps.get(name)
            yield from walk(child, (*path, name))


def _options(parser: argparse.ArgumentParser) -> Iterator[argparse.Action]:
    for action in parser._actions:
        if isinstance(action, argparse._HelpAction | argparse._SubParsersAction):
            continue
        yield action


COMMAND_PATHS = [path for path, _, _ in walk(build_parser())]


def test_every_module_registers_at_least_one_command() -> None:
    assert len(COMMAND_PATHS) >= len(COMMANDS)
    for expected in ("doctor", "up", "provision", "status", "down", "destroy"):
        assert (expected,) in COMMAND_PATHS


@pytest.mark.parametrize("path", COMMAND_PATHS, ids=" ".join)
def test_command_and_options_have_help(path: tuple[str, ...]) -> None:
    found = {p: (parser, line) for p, parser, line in walk(build_parser())}
    parser, line = found[path]
    has_help = bool(line and line.strip()) and line != argparse.SUPPRESS
    assert has_help, f"`canarylab {' '.join(path)}` has no help line"
    missing = [
        "/".join(action.option_strings) or action.dest
        for action in _options(parser)
        if not action.help or not action.help.strip() or action.help == argparse.SUPPRESS
    ]
    assert not missing, f"`canarylab {' '.join(path)}`: options without help: {', '.join(missing)}"


@pytest.mark.parametrize("path", COMMAND_PATHS, ids=" ".join)
def test_help_prints_and_exits_zero(path: tuple[str, ...], capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as info:
        main([*path, "--help"])
    assert info.value.code == 0
    out = capsys.readouterr().out
    assert out.startswith(f"usage: canarylab {' '.join(path)}")


def test_top_level_options_have_help() -> None:
    parser = build_parser()
    assert all(action.help for action in _options(parser))
