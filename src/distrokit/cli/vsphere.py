"""The vSphere flags shared by ``push vcenter`` and ``run vcenter``, and their progress output.

Flags and environment variables follow LinuxKit's (``--url``/VCURL, ``--datacenter``/
VCDATACENTER, ``--datastore``/VCDATASTORE, ``--hostname``/VCHOST, ``--network``/VCNETWORK,
``--persistentSize``, ``--powerOn``, ``--waitForIP``); the differences are deliberate and
listed in docs/vsphere.md.
"""

from __future__ import annotations

import argparse
import logging
import os
import re
import sys
import time
from pathlib import Path
from typing import TYPE_CHECKING

from distrokit.errors import UsageError
from distrokit.host import Host

# pyVmomi takes a tenth of a second to import: only the vSphere commands themselves load it,
# not every `distrokit run` that merely registers their flags.
if TYPE_CHECKING:
    from distrokit.push.vcenter import Medium
    from distrokit.push.vsphere import Session, Target

log = logging.getLogger("distrokit")

_DS_PATH = re.compile(r"^\[(?P<ds>[^\]]+)\]\s*(?P<path>.+)$")


def add_connection_flags(p: argparse.ArgumentParser, *, with_host: bool) -> None:
    """--url, --datacenter, --datastore (and --hostname), --insecure, --cert-file."""
    env = os.environ.get
    p.add_argument(
        "--url", default=env("VCURL"), metavar="https://USER:PASS@HOST/sdk",
        help="vCenter or ESXi SDK URL (default $VCURL)",
    )  # fmt: skip
    p.add_argument(
        "--datacenter", default=env("VCDATACENTER"),
        help="datacenter (default $VCDATACENTER, or the only one)",
    )  # fmt: skip
    p.add_argument(
        "--datastore", default=env("VCDATASTORE"),
        help="datastore (default $VCDATASTORE, or the only one)",
    )  # fmt: skip
    if with_host:
        p.add_argument(
            "--hostname", default=env("VCHOST"),
            help="ESXi host the VM runs on (default $VCHOST, or the only one; never a random one)",
        )  # fmt: skip
    else:  # accepted for LinuxKit command lines; an upload goes to the datastore, not a host
        p.add_argument("--hostname", default=env("VCHOST"), help=argparse.SUPPRESS)
    tls = p.add_mutually_exclusive_group()
    tls.add_argument(
        "--cert-file", type=Path,
        help="trust this CA certificate (PEM) for the server, besides the system's",
    )  # fmt: skip
    tls.add_argument(
        "--insecure", action="store_true",
        help="do not verify the server's TLS certificate (warns: the password can be read)",
    )  # fmt: skip


def target_from_args(args: argparse.Namespace) -> Target:
    """The connection the flags ask for; warns when TLS verification is off."""
    from distrokit.push.vsphere import Target

    if not args.url:
        raise UsageError("no vCenter URL", hint="give --url https://USER:PASS@HOST/sdk or VCURL")
    if args.insecure:
        log.warning("warning: --insecure: the server's TLS certificate is not verified")
    return Target(
        url=args.url,
        datacenter=args.datacenter,
        datastore=args.datastore,
        hostname=args.hostname,
        insecure=args.insecure,
        cert_file=args.cert_file,
    )


def open_session(args: argparse.Namespace) -> Session:
    """Log in as the connection flags say."""
    from distrokit.push.vsphere import Session

    return Session(target_from_args(args))


def datastore_medium(session: Session, spec: str) -> Medium | None:
    """A ``[datastore] path`` argument as a medium already on the datastore, else None."""
    from distrokit.push.vcenter import Medium, is_iso

    m = _DS_PATH.match(spec)
    if m is None:
        return None
    if m["ds"] != session.datastore.name:
        raise UsageError(
            f"{spec} is on datastore {m['ds']}, but the VM goes to {session.datastore.name}",
            hint=f"add --datastore {m['ds']}",
        )
    kind = "iso" if is_iso(m["path"]) else "vmdk"
    if kind == "vmdk" and not m["path"].endswith(".vmdk"):
        raise UsageError(f"{spec}: a medium on a datastore must be an .iso or a .vmdk")
    return Medium(kind, f"[{m['ds']}] {m['path']}", "")


def upload(
    session: Session, path: Path, folder: str | None, args: argparse.Namespace, *, content_dir: bool
) -> Medium:
    """Push `path`; with `content_dir` and no folder, into ``NAME-SHA12/`` so a new build never
    overwrites a medium that running VMs still use."""
    from distrokit.push.vcenter import push, sha256_file

    digest = sha256_file(path)
    if folder is None and content_dir:
        folder = f"{path.name.rsplit('.', 1)[0]}-{digest[:12]}"
    return push(
        session,
        path,
        folder=folder,
        host=Host(debug=args.debug),
        progress=None if args.quiet else ProgressBar(),
        sha256=digest,
    )


class ProgressBar:
    """A one-line bar on a terminal; one line per file and phase otherwise."""

    def __init__(self) -> None:
        self.tty = sys.stderr.isatty()
        self.started: dict[tuple[str, str], float] = {}

    def __call__(self, name: str, done: int, total: int, phase: str) -> None:
        key = (name, phase)
        start = self.started.setdefault(key, time.monotonic())
        if self.tty:
            width = 30
            fill = width * done // total if total else width
            mib = done / (1 << 20)
            sys.stderr.write(
                f"\r{phase:6} {name} [{'#' * fill}{'.' * (width - fill)}] {mib:8.1f} MiB"
            )
            if done >= total:
                sys.stderr.write("\n")
            sys.stderr.flush()
        elif done >= total:
            secs = max(time.monotonic() - start, 1e-6)
            rate = total / secs / (1 << 20)
            print(
                f"{phase} {name}: {total / (1 << 20):.1f} MiB in {secs:.1f} s ({rate:.0f} MiB/s)",
                file=sys.stderr,
            )


def report(line: str) -> None:
    """Progress lines of the runner, as info messages."""
    log.info("%s", line)
