"""PXE for a real LAN: dnsmasq in proxy-DHCP mode plus its TFTP server, beside `distrokit serve`.

Proxy DHCP leaves addresses to the network's own DHCP server: dnsmasq only adds boot
information to the offers PXE clients get. Firmware PXE clients (no iPXE user class) are handed
an iPXE binary on TFTP, ``undionly.kpxe`` for BIOS and ``ipxe.efi`` for UEFI, both from Debian's
``ipxe`` package; iPXE clients (user class ``iPXE``, or option 175) the URL of the HTTP script.
distrokit writes dnsmasq's configuration into a state directory, starts dnsmasq in the
foreground with only that file, reports its log lines to a callback and stops it on close.
"""

from __future__ import annotations

import contextlib
import fcntl
import ipaddress
import os
import pwd
import shutil
import socket
import struct
import subprocess
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from distrokit.errors import DistrokitError, UsageError
from distrokit.host import Host, terminate

DNSMASQ = "dnsmasq"
IPXE_DIR = Path("/usr/lib/ipxe")
IPXE_PACKAGE = "ipxe"
BIOS_BOOT_FILE = "undionly.kpxe"
UEFI_BOOT_FILE = "ipxe.efi"
CONFIG_NAME = "dnsmasq.conf"

# ioctl numbers of <linux/sockios.h>
_SIOCGIFADDR = 0x8915
_SIOCGIFNETMASK = 0x891B


@dataclass(frozen=True, kw_only=True)
class PxeConfig:
    """One proxy-DHCP answerer: the interface and its IPv4 network, where the TFTP files are,
    and the URL iPXE clients are sent to."""

    interface: str
    network: ipaddress.IPv4Interface  # the interface's address with its prefix
    script_url: str
    tftp_root: Path
    lease_file: Path
    user: str = "root"


def interface_address(interface: str) -> ipaddress.IPv4Interface:
    """The first IPv4 address of `interface` with its netmask (no ``ip`` tool needed)."""
    if not interface or len(interface) > 15 or "/" in interface:
        raise UsageError(f"invalid interface name {interface!r}")
    request = struct.pack("256s", interface.encode())
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        try:
            addr = fcntl.ioctl(s.fileno(), _SIOCGIFADDR, request)
            mask = fcntl.ioctl(s.fileno(), _SIOCGIFNETMASK, request)
        except OSError as err:
            raise UsageError(
                f"interface {interface} has no IPv4 address ({err.strerror})",
                hint="PXE needs the interface facing the machines, with an address",
            ) from err
    address = socket.inet_ntoa(addr[20:24])
    netmask = socket.inet_ntoa(mask[20:24])
    return ipaddress.IPv4Interface(f"{address}/{netmask}")


def boot_files(ipxe_dir: Path = IPXE_DIR) -> dict[str, Path]:
    """The iPXE binaries PXE clients get, by TFTP name; names the package when one is absent."""
    files = {name: ipxe_dir / name for name in (BIOS_BOOT_FILE, UEFI_BOOT_FILE)}
    for path in files.values():
        if not path.is_file():
            raise DistrokitError(
                f"iPXE boot file {path} not found",
                hint=f"install it with: apt-get install {IPXE_PACKAGE}",
            )
    return files


def dnsmasq_config(config: PxeConfig) -> str:
    """dnsmasq's whole configuration for `config` (no DNS, proxy DHCP, TFTP)."""
    net = config.network
    url = config.script_url
    if any(c.isspace() or c in '",#' for c in url):
        raise UsageError(f"script URL {url!r} cannot go into dnsmasq's configuration")
    label = "distrokit"
    return "\n".join(
        [
            "# dnsmasq for distrokit serve --pxe: proxy DHCP and TFTP only",
            "port=0",  # no DNS
            f"interface={config.interface}",
            "bind-interfaces",  # share port 67 with the site's DHCP server on this host
            f"user={config.user}",
            f"dhcp-leasefile={config.lease_file}",
            f"dhcp-range={net.network.network_address},proxy,{net.netmask}",
            # iPXE says who it is with its user class and option 175
            "dhcp-userclass=set:ipxe,iPXE",
            "dhcp-match=set:ipxe,175",
            f'pxe-prompt="{label}",0',
            f'pxe-service=tag:!ipxe,x86PC,"{label} (BIOS)",{BIOS_BOOT_FILE}',
            f'pxe-service=tag:!ipxe,X86-64_EFI,"{label} (UEFI)",{UEFI_BOOT_FILE}',
            f'pxe-service=tag:!ipxe,BC_EFI,"{label} (UEFI)",{UEFI_BOOT_FILE}',
            f'pxe-service=tag:ipxe,x86PC,"{label}",{url}',
            f'pxe-service=tag:ipxe,X86-64_EFI,"{label}",{url}',
            f'pxe-service=tag:ipxe,BC_EFI,"{label}",{url}',
            "enable-tftp",
            f"tftp-root={config.tftp_root}",
            "log-dhcp",
            "log-facility=-",
            "",
        ]
    )


def current_user() -> str:
    """The user dnsmasq keeps running as (it drops root to 'nobody' by default, which could
    not read a private TFTP directory)."""
    return pwd.getpwuid(os.getuid()).pw_name


def prepare(
    interface: str, script_url: str, state_dir: Path, ipxe_dir: Path = IPXE_DIR
) -> PxeConfig:
    """Copy the iPXE binaries into ``state_dir/tftp``, write ``state_dir/dnsmasq.conf``."""
    files = boot_files(ipxe_dir)
    network = interface_address(interface)
    tftp = state_dir / "tftp"
    tftp.mkdir(parents=True, exist_ok=True)
    for name, source in files.items():
        shutil.copyfile(source, tftp / name)
    config = PxeConfig(
        interface=interface,
        network=network,
        script_url=script_url,
        tftp_root=tftp,
        lease_file=state_dir / "leases",
        user=current_user(),
    )
    path = state_dir / CONFIG_NAME
    path.write_text(dnsmasq_config(config))
    return config


class PxeServer:
    """A running dnsmasq for one `PxeConfig`; its log lines go to `on_log`."""

    def __init__(
        self,
        host: Host,
        config_file: Path,
        on_log: Callable[[str], None] | None = None,
    ) -> None:
        self._host = host
        self._config_file = config_file
        self._on_log = on_log
        self._proc: subprocess.Popen[bytes] | None = None
        self._reader: threading.Thread | None = None
        self._ready = threading.Event()
        self._lines: list[str] = []

    def start(self, timeout: float = 10.0) -> None:
        """Start dnsmasq and wait until it says it is listening; a `DistrokitError` with its
        own message when it exits instead."""
        self._host.which(DNSMASQ)  # names dnsmasq-base when it is missing
        argv = [DNSMASQ, "--keep-in-foreground", f"--conf-file={self._config_file}"]
        self._proc = self._host.popen(
            argv, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE
        )
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()
        deadline = time.monotonic() + timeout
        while not self._ready.wait(0.05):
            if self._proc.poll() is not None or time.monotonic() > deadline:
                self._reader.join(timeout=1)
                self.close()
                detail = "; ".join(self._lines[-5:]) or "no output"
                raise DistrokitError(f"dnsmasq did not start: {detail}")

    def _read(self) -> None:
        assert self._proc is not None and self._proc.stderr is not None
        for raw in self._proc.stderr:
            line = raw.decode(errors="replace").rstrip()
            self._lines.append(line)
            del self._lines[:-20]
            if "TFTP root is" in line:
                self._ready.set()
            if self._on_log is not None:
                self._on_log(line)

    @property
    def pid(self) -> int | None:
        """dnsmasq's process id while it runs."""
        return self._proc.pid if self._proc is not None else None

    def close(self) -> None:
        """Stop dnsmasq (SIGTERM, then SIGKILL after 5 s); idempotent."""
        proc, self._proc = self._proc, None
        if proc is None:
            return
        terminate(proc, 5)
        if self._reader is not None:
            self._reader.join(timeout=2)
        if proc.stderr is not None:
            with contextlib.suppress(OSError):
                proc.stderr.close()

    def __enter__(self) -> PxeServer:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
