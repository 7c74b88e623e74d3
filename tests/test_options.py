"""Shared command-line options: one declaration, so one help, one range, one refusal."""

import argparse

import pytest

from petseg_lib import app, compare, export, inference
from petseg_lib.cli import run_cli
from petseg_lib.evaluation.threshold import DEFAULT_THRESHOLD, MAX_THRESHOLD, MIN_THRESHOLD

COMMANDS = {"inference": inference.main, "app": app.main, "export": export.main,
            "compare": compare.main}
# (--amp, also in options.py, is inference's alone among these; train declares its own.)
SHARED = ("--model", "--device", "--image_size", "--threshold", "--tta", "--data_path",
          "--boundary", "--at_original_size")
WITH_THRESHOLD = ("inference", "app")
NEEDS_MODEL = ("inference", "app", "export")


class Built(Exception):
    """Raised in place of parsing: the parser a command built is recorded."""


@pytest.fixture
def parsers(monkeypatch) -> dict[str, argparse.ArgumentParser]:
    """The parser of each command, as its main builds it."""
    built = {}

    def record(parser, *args, **kwargs):
        built[current] = parser
        raise Built

    monkeypatch.setattr(argparse.ArgumentParser, "parse_args", record)
    for current, main in COMMANDS.items():  # noqa: B007  (record reads `current`)
        with pytest.raises(Built):
            main([])
    return built


def options(parser: argparse.ArgumentParser) -> dict[str, argparse.Action]:
    """Each long flag of PARSER and its action."""
    return {flag: action for action in parser._actions for flag in action.option_strings}


def test_a_flag_means_the_same_in_every_command_that_takes_it(parsers):
    for flag in SHARED:
        actions = {name: options(parser)[flag] for name, parser in parsers.items()
                   if flag in options(parser)}
        assert len(actions) >= 2, f"{flag} is shared by {sorted(actions)} only"
        first = next(iter(actions.values()))
        for name, action in actions.items():
            described = (type(action), action.type, action.choices, action.default, action.nargs)
            assert described == (type(first), first.type, first.choices, first.default,
                                 first.nargs), f"{flag} of {name}"
            if flag == "--image_size":  # the help ends with what the command's default is
                assert action.help.split("; by default")[0] == first.help.split("; by default")[0]
            else:
                assert action.help == first.help, f"{flag} of {name}"
    assert options(parsers["inference"])["--threshold"].default == DEFAULT_THRESHOLD


@pytest.mark.parametrize("value", ["0", "1.5", "0.001", "nan"])
@pytest.mark.parametrize("command", WITH_THRESHOLD)
def test_every_command_refuses_a_threshold_out_of_range_in_one_line(command, value, capsys,
                                                                    monkeypatch):
    monkeypatch.delenv("PETSEG_DEBUG", raising=False)
    with pytest.raises(SystemExit) as exit_info:
        run_cli(COMMANDS[command], ["--model", "x.pth", "--threshold", value])
    assert exit_info.value.code == 2
    error = capsys.readouterr().err
    assert error.count("\n") == 1 and error.startswith(
        f"error: --threshold must be between {MIN_THRESHOLD} and {MAX_THRESHOLD}, not")


@pytest.mark.parametrize("value, words", [("16", "--image_size must be at least 32, not 16"),
                                          ("100000", "--image_size must be at most 4096")])
@pytest.mark.parametrize("command", ["inference", "export", "compare"])
def test_every_command_refuses_an_image_size_out_of_range_in_one_line(command, value, words,
                                                                     capsys, monkeypatch):
    monkeypatch.delenv("PETSEG_DEBUG", raising=False)
    argv = ["--image_size", value] + (["--model", "x.pth", "--output", "x.onnx"]
                                      if command == "export" else [])
    with pytest.raises(SystemExit) as exit_info:
        run_cli(COMMANDS[command], argv)
    assert exit_info.value.code == 2
    error = capsys.readouterr().err
    assert error.count("\n") == 1 and words in error


def test_the_ends_of_the_range_are_accepted():
    for value in (MIN_THRESHOLD, MAX_THRESHOLD):
        args = inference.parse_args(["--model", "x.pth", "--threshold", str(value)])
        assert args.threshold == value
        assert app.parse_args(["--model", "x.pth", "--threshold", str(value)]).threshold == value
    assert inference.parse_args(["--model", "x.pth", "--image_size", "32"]).image_size == 32
