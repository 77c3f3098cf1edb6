"""``distrokit serve``: serve a build directory over HTTP for network boots, and with ``--pxe``
answer PXE clients on a LAN (dnsmasq proxy DHCP + TFTP) beside the network's DHCP server.

Prints where each kernel+initrd build's iPXE script is and how big its files are (what goes
over the wire), then one line per request with the bytes sent and the time taken. Ctrl-C or
SIGTERM stops the server (and dnsmasq) cleanly, with exit status 0.
"""

from __future__ import annotations

import argparse
import contextlib
import logging
import signal
import tempfile
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from distrokit.errors import UsageError
from distrokit.host import Host
from distrokit.netboot import ipxe, pxe
from distrokit.netboot.http import HttpServer, RequestLog, ServeConfig

log = logging.getLogger("distrokit.serve")


def register(subparsers: Any) -> None:
    """Add ``serve``."""
    p = subparsers.add_parser(
        "serve",
        help="serve build outputs over HTTP (and PXE) for network boots",
        description="Serve a directory of kernel+initrd builds over HTTP: NAME.ipxe is the iPXE "
        "script of NAME, boot.ipxe that of the only (or --name) build. With --pxe, also answer "
        "PXE clients on --interface through dnsmasq (proxy DHCP and TFTP).",
    )
    p.add_argument("--port", type=int, default=8080, help="TCP port (default 8080)")
    p.add_argument("--directory", type=Path, default=Path(), help="what to serve (default .)")
    p.add_argument("--address", default="0.0.0.0", help="address to listen on (default all)")
    p.add_argument("--name", help="the build /boot.ipxe boots (default: the only one)")
    p.add_argument(
        "--kernel-param", action="append", default=[], metavar="PARAM",
        help="kernel parameter put before each build's command line in its script (repeatable)",
    )  # fmt: skip
    p.add_argument("--pxe", action="store_true", help="answer PXE clients (needs --interface)")
    p.add_argument("--interface", help="the LAN interface PXE clients are on")
    p.add_argument("--state", type=Path, help="where dnsmasq's files go (default: a temp dir)")
    p.set_defaults(func=serve)


def _size(n: int) -> str:
    return f"{n / (1 << 20):.1f} MiB" if n >= 1 << 20 else f"{n / 1024:.0f} KiB"


def _describe(directory: Path, url: str, default: str | None) -> None:
    systems = ipxe.find_systems(directory)
    if not systems:
        log.warning("no kernel+initrd build (NAME-kernel + NAME-initrd.img) in %s", directory)
    for system in systems:
        kernel, initrd = system.kernel.stat().st_size, system.initrd.stat().st_size
        log.info(
            "%s/%s  kernel %s, initrd %s, %s on the wire",
            url, system.script_name, _size(kernel), _size(initrd), _size(kernel + initrd),
        )  # fmt: skip
    names = [s.name for s in systems]
    if default is not None and default not in names:
        raise UsageError(f"--name {default}: no {default}-kernel + {default}-initrd.img here")
    if default is not None or len(systems) == 1:
        log.info("%s/%s  boots %s", url, ipxe.DEFAULT_SCRIPT, default or names[0])


@contextlib.contextmanager
def _stop_on_sigterm() -> Iterator[None]:
    """SIGTERM ends the server like Ctrl-C does."""

    def interrupt(signum: int, frame: object) -> None:
        raise KeyboardInterrupt

    if threading.current_thread() is not threading.main_thread():
        yield
        return
    previous = signal.signal(signal.SIGTERM, interrupt)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


def _log_request(entry: RequestLog) -> None:
    log.info("%s", entry.line())


def serve(args: argparse.Namespace) -> int:
    """``distrokit serve``: answer until Ctrl-C or SIGTERM."""
    if not 0 <= args.port < 65536:
        raise UsageError(f"--port {args.port} out of range")
    if args.pxe and not args.interface:
        raise UsageError("--pxe needs --interface IF (the LAN the machines boot on)")
    if args.interface and not args.pxe:
        raise UsageError("--interface is for --pxe")
    directory: Path = args.directory
    config = ServeConfig(
        directory=directory,
        address=args.address,
        port=args.port,
        default=args.name,
        params=tuple(args.kernel_param),
    )
    host = Host(debug=args.debug)
    with contextlib.ExitStack() as stack:
        stack.enter_context(_stop_on_sigterm())
        server = stack.enter_context(HttpServer(config, _log_request))
        shown = "127.0.0.1" if args.address in ("0.0.0.0", "::") else None
        url = server.url(shown)
        if args.pxe:
            network = pxe.interface_address(args.interface)
            url = server.url(str(network.ip))
            state = args.state or Path(stack.enter_context(tempfile.TemporaryDirectory()))
            pxe_config = pxe.prepare(args.interface, f"{url}/{ipxe.DEFAULT_SCRIPT}", state)
            dnsmasq = stack.enter_context(
                pxe.PxeServer(host, state / pxe.CONFIG_NAME, lambda line: log.info("%s", line))
            )
            dnsmasq.start()
            log.info(
                "PXE: proxy DHCP on %s (%s), TFTP %s, dnsmasq pid %s",
                args.interface, pxe_config.network.network, pxe_config.tftp_root, dnsmasq.pid,
            )  # fmt: skip
        _describe(directory, url, args.name)
        log.info("serving %s on %s/ (Ctrl-C stops)", directory, url)
        try:
            server.serve_forever()
        except KeyboardInterrupt:
            log.info("stopped")
    return 0
