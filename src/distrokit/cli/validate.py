"""``distrokit validate FILE...``: check LinuxKit YAML files and report every problem at once.

Also holds the helpers `build` shares: loading inputs with ``@pkg:`` templates resolved to
the package's tag, and printing problems and warnings.
"""

from __future__ import annotations

import argparse
import sys

from distrokit.config.load import load_config
from distrokit.config.model import Config
from distrokit.errors import ConfigError
from distrokit.packages.tag import show_tag


def load_inputs(files: list[str], *, host_files: bool = False) -> Config:
    """Load and merge `files` ("-" = stdin); warnings go to stderr, problems raise."""
    config = load_config(files, stdin=sys.stdin, resolve_pkg=show_tag, host_files=host_files)
    for warning in config.warnings:
        print(f"warning: {warning}", file=sys.stderr)
    return config


def report_problems(err: ConfigError) -> int:
    """Print every problem, one per line, then a count; the exit code for bad input."""
    for problem in err.problems:
        print(problem, file=sys.stderr)
    count = len(err.problems)
    print(f"{count} problem{'s' if count != 1 else ''} found", file=sys.stderr)
    if err.hint:
        print(f"hint: {err.hint}", file=sys.stderr)
    return err.exit_code


def _run(args: argparse.Namespace) -> int:
    try:
        config = load_inputs(args.files, host_files=args.allow_host_files)
    except ConfigError as err:
        return report_problems(err)
    if not args.quiet:
        containers = len(config.onboot) + len(config.onshutdown) + len(config.services)
        noun = "container" if containers == 1 else "containers"
        print(f"{', '.join(args.files)}: ok ({containers} {noun})")
    return 0


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Add the ``validate`` command."""
    parser = subparsers.add_parser(
        "validate",
        help="check LinuxKit YAML files",
        description="Validate and merge LinuxKit YAML files; print every problem found.",
    )
    parser.add_argument("files", nargs="+", metavar="FILE", help="YAML file, '-' or URL")
    host_files_flag(parser)
    parser.set_defaults(func=_run)


def host_files_flag(parser: argparse.ArgumentParser) -> None:
    """``--allow-host-files``: let a YAML from stdin or a URL read host files."""
    parser.add_argument(
        "--allow-host-files",
        action="store_true",
        help="let a YAML read from stdin or a URL name host files (files: source:)",
    )
