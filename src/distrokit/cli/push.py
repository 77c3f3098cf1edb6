"""``distrokit push TARGET [flags] PATH``: upload a built system (CLI front of `push`).

The targets and their help come from `distrokit.push.PUSH_TARGETS`.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

from distrokit.cli import _Parser
from distrokit.cli import vsphere as vs
from distrokit.errors import UsageError
from distrokit.push import PUSH_TARGETS


def register(subparsers: Any) -> None:
    """Add ``push`` and one sub-command per registered target."""
    parser = subparsers.add_parser(
        "push",
        help="upload a built system to where it runs",
        description="Upload a built system to where it runs.",
    )
    targets = parser.add_subparsers(dest="target", metavar="TARGET", parser_class=_Parser)
    for target in PUSH_TARGETS.values():
        _FLAGS[target.name](targets.add_parser(target.name, help=target.summary))
    parser.set_defaults(func=lambda _args: _usage(parser))


def _usage(parser: argparse.ArgumentParser) -> int:
    parser.print_help(sys.stderr)
    return 2


def _add_vcenter(p: argparse.ArgumentParser) -> None:
    p.description = (
        "Upload an ISO, or a disk image converted to the NAME.vmdk + NAME-flat.vmdk pair, to "
        "[datastore] FOLDER/. Verified by reading it back; a file already there with the same "
        "bytes is not sent again; an interrupted upload is restarted by running it again."
    )
    p.add_argument("path", type=Path, help="an .iso, or a disk image (vmdk, raw, qcow2)")
    vs.add_connection_flags(p, with_host=False)
    p.add_argument("--folder", help="datastore folder (default: PATH's name without suffix)")
    p.set_defaults(func=push_vcenter)


_FLAGS: dict[str, Callable[[argparse.ArgumentParser], None]] = {"vcenter": _add_vcenter}


def push_vcenter(args: argparse.Namespace) -> int:
    """``distrokit push vcenter``."""
    if not args.path.is_file():
        raise UsageError(f"{args.path}: no such file")
    with vs.open_session(args) as session:
        medium = vs.upload(session, args.path, args.folder, args, content_dir=False)
    print(medium.path)
    return 0
