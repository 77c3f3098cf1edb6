"""The command-line interface: argument parsing, logging, exit codes and tracebacks.

Each command group lives in its own module in this package and exposes
``register(subparsers)``, which adds its parsers and sets ``func`` (``args -> int``) on them.
The library below never prints or exits; this package does both.

Exit codes: 0 ok, 1 failure, 2 bad input or usage, 130 interrupted.
"""

from __future__ import annotations

import argparse
import importlib
import logging
import sys
from collections.abc import Sequence

from distrokit import __version__
from distrokit.errors import DistrokitError

# Command modules, in the order their commands appear in --help. One per line: each command
# group adds its own.
COMMAND_MODULES: tuple[str, ...] = (
    "validate",
    "build",
    "run",
    "push",
    "vcenter",
    "serve",
    "pkg",
    "cache",
    "vm",
)

log = logging.getLogger("distrokit")


class _Parser(argparse.ArgumentParser):
    """argparse that exits with 2 through our own path instead of printing and calling exit."""

    def error(self, message: str) -> None:  # type: ignore[override]
        raise _UsageExit(f"{self.prog}: {message}")


class _UsageExit(Exception):
    pass


def build_parser(only: str | None = None) -> argparse.ArgumentParser:
    """The parser with every command group registered, or just `only` when it names one.

    Registering one group imports only its module: ``distrokit run`` should not pay for the
    registry client and the build engine at every start.
    """
    parser = _Parser(
        prog="distrokit",
        description="Build small, immutable Linux systems from OCI images described in YAML.",
    )
    parser.add_argument("--version", action="version", version=f"distrokit {__version__}")
    parser.add_argument("-q", "--quiet", action="store_true", help="only print errors")
    parser.add_argument(
        "-v", "--verbose", action="count", default=0, help="more output (repeat for debug)"
    )
    parser.add_argument("--debug", action="store_true", help="debug output and tracebacks")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=_Parser)
    for name in [only] if only in COMMAND_MODULES else COMMAND_MODULES:
        module = importlib.import_module(f"distrokit.cli.{name}")
        module.register(sub)
    return parser


def _long_options(parser: argparse.ArgumentParser) -> set[str]:
    found: set[str] = set()
    for action in parser._actions:
        found.update(o for o in action.option_strings if o.startswith("--"))
        if isinstance(action, argparse._SubParsersAction):
            for child in action.choices.values():
                found |= _long_options(child)
    return found


def normalise_single_dash(argv: Sequence[str], long_options: set[str]) -> list[str]:
    """Accept LinuxKit's Go-style flags: ``-format iso-bios`` means ``--format iso-bios``.

    Only tokens whose double-dash form is a known long option are rewritten, so short flags,
    negative numbers and file names such as ``-`` pass through untouched.
    """
    out: list[str] = []
    for i, token in enumerate(argv):
        if token == "--":
            out.extend(argv[i:])
            break
        if token.startswith("-") and not token.startswith("--") and len(token) > 2:
            name = token.split("=", 1)[0]
            if "-" + name in long_options:
                token = "-" + token
        out.append(token)
    return out


def _command_name(argv: Sequence[str]) -> str | None:
    """The command word of `argv`: its first token that is not a (global, valueless) option."""
    return next((token for token in argv if not token.startswith("-")), None)


def _configure_logging(args: argparse.Namespace) -> None:
    if args.debug or args.verbose >= 2:
        level = logging.DEBUG
    elif args.quiet:
        level = logging.ERROR
    else:
        level = logging.INFO
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(logging.Formatter("%(message)s"))
    root = logging.getLogger("distrokit")
    root.handlers[:] = [handler]
    root.setLevel(level)
    root.propagate = False


def main(argv: Sequence[str] | None = None) -> int:
    """Run distrokit with `argv` (default: sys.argv[1:]) and return the exit code."""
    try:
        return _main(list(sys.argv[1:] if argv is None else argv))
    except KeyboardInterrupt:
        # Also while the command's modules are still being imported.
        print("interrupted", file=sys.stderr)
        return 130


def _main(argv: list[str]) -> int:
    parser = build_parser(_command_name(argv))
    try:
        args = parser.parse_args(normalise_single_dash(argv, _long_options(parser)))
    except _UsageExit as err:
        print(err, file=sys.stderr)
        return 2
    except SystemExit as err:  # --help and --version
        return int(err.code or 0)
    _configure_logging(args)
    func = getattr(args, "func", None)
    if func is None:
        parser.print_help(sys.stderr)
        return 2
    try:
        return int(func(args))
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
    except DistrokitError as err:
        if args.debug:
            log.exception("error")
        print(f"error: {err}", file=sys.stderr)
        if err.hint:
            print(f"hint: {err.hint}", file=sys.stderr)
        return err.exit_code
    except _UsageExit as err:
        print(err, file=sys.stderr)
        return 2


def run() -> None:
    """Console-script entry point."""
    sys.exit(main())
