"""The CLI front door: exit codes and LinuxKit's single-dash long flags."""

from __future__ import annotations

import subprocess
import sys

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


def test_a_command_loads_only_its_own_module() -> None:
    # `distrokit run` starts VMs in benchmarks: it must not import the registry client or the
    # build engine on the way.
    code = (
        "import sys\n"
        "from distrokit.cli import main\n"
        "try:\n"
        "    main(['run', '--help'])\n"
        "except SystemExit:\n"
        "    pass\n"
        "print(sorted(m for m in ('requests', 'distrokit.pipeline', 'distrokit.cli.build')"
        " if m in sys.modules))\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True
    ).stdout
    assert out.strip().splitlines()[-1] == "[]"


def test_help_lists_every_command(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["--help"]) == 0
    out = capsys.readouterr().out
    for command in ("validate", "build", "cache", "run", "pkg"):
        assert command in out


_INTERRUPT_DURING_IMPORT = """
import importlib, os, signal, sys
real = importlib.import_module
def interrupted(name, *args):
    if name == "distrokit.cli.cache":
        os.kill(os.getpid(), signal.SIGINT)  # Ctrl-C while the command's modules load
    return real(name, *args)
importlib.import_module = interrupted
from distrokit.cli import main
sys.exit(main(["cache", "ls"]))
"""


def test_ctrl_c_while_modules_import_is_a_clean_interrupt() -> None:
    done = subprocess.run(
        [sys.executable, "-c", _INTERRUPT_DURING_IMPORT],
        capture_output=True, text=True, timeout=60, check=False,
    )  # fmt: skip
    assert (done.returncode, done.stderr) == (130, "interrupted\n")
