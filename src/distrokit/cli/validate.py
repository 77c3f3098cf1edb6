"""``distrokit validate FILE...``: check LinuxKit YAML files and report every problem at once.

Also holds the helpers `build` shares: loading inputs with ``@pkg:`` templates resolved by the
package layer when it is installed, and printing problems and warnings.
"""

from __future__ import annotations

import argparse
import importlib
import sys
from pathlib import Path
from typing import Any

from distrokit.config.load import load_config
from distrokit.config.model import Config
from distrokit.config.nodes import PkgResolver
from distrokit.errors import ConfigError


def pkg_resolver() -> PkgResolver | None:
    """`distrokit.pkg.tag.show_tag` if the package layer is importable, else None."""
    try:
        module: Any = importlib.import_module("distrokit.pkg.tag")
    except ImportError:
        return None
    show_tag = getattr(module, "show_tag", None)
    if show_tag is None:
        return None

    def resolve(path: Path) -> str:
        return str(show_tag(path))

    return resolve


def load_inputs(files: list[str]) -> Config:
    """Load and merge `files` ("-" = stdin); warnings go to stderr, problems raise."""
    config = load_config(files, stdin=sys.stdin, resolve_pkg=pkg_resolver())
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
        config = load_inputs(args.files)
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
    parser.set_defaults(func=_run)
