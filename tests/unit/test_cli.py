"""The CLI front door: exit codes and LinuxKit's single-dash long flags."""

from __future__ import annotations

import pytest

from distrokit.cli import main, normalise_single_dash


def test_single_dash_long_flags_are_rewritten() -> None:
    known = {"--format", "--name", "--o"}
    argv = ["build", "-format", "iso-bios", "-name=demo", "-o", "-", "-f", "x", "-v", "m.yml"]
    assert normalise_single_dash(argv, known) == [
        "build",
        "--format",
        "iso-bios",
        "--name=demo",
        "-o",
        "-",
        "-f",
        "x",
        "-v",
        "m.yml",
    ]


def test_double_dash_stops_rewriting() -> None:
    assert normalise_single_dash(["--", "-format"], {"--format"}) == ["--", "-format"]


def test_no_command_is_a_usage_error(capsys: pytest.CaptureFixture[str]) -> None:
    assert main([]) == 2


def test_unknown_option_is_a_usage_error(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["--no-such-flag"]) == 2
    assert "unrecognized arguments" in capsys.readouterr().err


def test_version(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["--version"]) == 0
    assert "distrokit" in capsys.readouterr().out
