"""Registry flags shared by ``build`` and the ``cache`` commands."""

from __future__ import annotations

import argparse

from distrokit.errors import UsageError
from distrokit.oci.endpoints import RegistryOptions


def positive_seconds(args: argparse.Namespace) -> float:
    """``--timeout``, checked: a positive, finite number of seconds."""
    if not 0 < args.timeout < 1e6:  # also refuses nan and inf
        raise UsageError("--timeout must be a positive number of seconds")
    return float(args.timeout)


def timeout_flag(p: argparse.ArgumentParser) -> None:
    """``--timeout``: how long a registry may stay silent or crawl before a request fails
    (shared by the cache commands and build)."""
    p.add_argument(
        "--timeout",
        type=float,
        default=RegistryOptions().timeout,
        metavar="SECONDS",
        help="give up on a registry that sends nothing, or less than 1 kB/s, for this long "
        "(default %(default)g)",
    )
