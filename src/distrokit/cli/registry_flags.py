"""Registry flags shared by ``build``, the ``cache`` commands and ``vm``."""

from __future__ import annotations

import argparse
import os
from pathlib import Path
from typing import Any

from distrokit.errors import UsageError
from distrokit.oci.endpoints import RegistryOptions, parse_mirrors


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


def registry_flags(p: argparse.ArgumentParser) -> None:
    """``--mirror``, ``--insecure-registry``, ``--cert-file``, ``--parallel``, ``--timeout``."""
    p.add_argument(
        "--mirror",
        action="append",
        default=[],
        metavar="[REGISTRY=]URL",
        help="registry mirror (repeatable; also LINUXKIT_MIRROR)",
    )
    p.add_argument(
        "--insecure-registry",
        action="append",
        default=[],
        metavar="HOST[:PORT]",
        help="allow plain http / unverified TLS for this registry (repeatable)",
    )
    p.add_argument(
        "--cert-file", action="append", default=[], type=Path, help="extra CA certificate file"
    )
    p.add_argument("--parallel", type=int, default=4, help="parallel blob transfers (default 4)")
    timeout_flag(p)


def registry_options(args: argparse.Namespace) -> dict[str, Any]:
    """The registry flags as keyword arguments of the pull and push options."""
    env = os.environ.get("LINUXKIT_MIRROR", "")
    # The command line wins over the environment, as in LinuxKit.
    specs = args.mirror or [s for s in env.replace(",", " ").split() if s]
    if args.parallel < 1:
        raise UsageError("--parallel must be at least 1")
    return {
        "timeout": positive_seconds(args),
        "mirrors": parse_mirrors(specs),
        "insecure_registries": frozenset(args.insecure_registry),
        "cert_files": tuple(args.cert_file),
        "max_parallel": args.parallel,
    }
