"""What the user asked a runner for: frozen dataclasses and the parsers of LinuxKit's run flags.

Parsing happens here, at the edge; everything past this module works on typed values. The flag
syntax follows `linuxkit run`: ``--disk [file=]path[,size=N[G|M]][,format=F]`` (a bare size is
GiB), ``--publish host:guest[/tcp|udp]`` and ``--networking user|tap,IF|bridge,BR|none``.
"""

from __future__ import annotations

import enum
import re
import urllib.parse
from dataclasses import dataclass, field
from pathlib import Path

from distrokit.errors import UsageError


class BootMode(enum.Enum):
    """How the system is started: which LinuxKit output it is."""

    KERNEL = "kernel"  # NAME-kernel + NAME-initrd.img + NAME-cmdline
    SQUASHFS = "squashfs"  # NAME-kernel + NAME-squashfs.img or NAME-erofs.img (+ initrd, cmdline)
    ISO = "iso"  # NAME.iso, or kernel+iso: NAME-kernel + NAME-initrd.img + NAME-cmdline + NAME.iso
    DISK = "disk"  # a bootable disk image (raw, qcow2, vmdk, vhd, vhdx)
    NETWORK = "network"  # nothing local: the NIC's iPXE boots from the network (--netboot)


@dataclass(frozen=True, kw_only=True)
class BootSource:
    """The files a boot uses, found from the path or prefix given on the command line."""

    mode: BootMode
    prefix: str
    kernel: Path | None = None
    initrd: Path | None = None
    cmdline: str = ""
    squashfs: Path | None = None  # the root image: squashfs or erofs
    iso: Path | None = None
    disk: Path | None = None
    disk_format: str | None = None


@dataclass(frozen=True, kw_only=True)
class DiskSpec:
    """One ``--disk``: a path (None = allocate in the state dir), size in MiB, qemu format."""

    path: Path | None = None
    size_mb: int | None = None
    format: str | None = None


@dataclass(frozen=True, kw_only=True)
class Publish:
    """One ``--publish``: forward a host port to a guest port (user networking only)."""

    host_port: int
    guest_port: int
    protocol: str = "tcp"


class NetMode(enum.Enum):
    USER = "user"
    TAP = "tap"
    BRIDGE = "bridge"
    NONE = "none"


@dataclass(frozen=True, kw_only=True)
class Networking:
    """``--networking``: the mode and, for tap and bridge, the interface or bridge name."""

    mode: NetMode = NetMode.USER
    name: str | None = None


@dataclass(frozen=True, kw_only=True)
class Console:
    """Where the guest's serial console goes: ``stdio``, ``file`` (with a path) or ``none``."""

    kind: str = "stdio"
    path: Path | None = None


@dataclass(frozen=True, kw_only=True)
class RunConfig:
    """Everything the user asked for one VM. Disks are resolved (paths and formats filled in,
    missing ones created) by `state.resolve_disks` before the argv is built. `data` is the
    metadata for the ``cidata`` CD, written to ``<state>/data.iso``."""

    source: BootSource
    state_dir: Path
    arch: str = "x86_64"
    cpus: int = 1
    mem_mb: int = 1024
    disks: tuple[DiskSpec, ...] = ()
    data: bytes | None = None
    publish: tuple[Publish, ...] = ()
    networking: Networking = field(default_factory=Networking)
    accel: str = "auto"  # kvm | tcg | auto
    qemu: str | None = None
    append: tuple[str, ...] = ()
    console: Console = field(default_factory=Console)
    machine: str = "auto"  # auto | microvm | q35
    pvh: bool = True  # boot the extracted ELF kernel via PVH when the kernel has the note
    uefi: bool = False
    firmware: Path | None = None
    detach: bool = False
    devices: tuple[str, ...] = ()  # extra ``-device`` arguments, passed through
    netboot_url: str | None = None  # the iPXE script a network boot chains to (user networking)
    # With --netboot: try the first --disk before the network, as a provisioned server does
    # (an empty disk falls through to the network; once written, the disk boots).
    disk_first: bool = False
    reboot: bool = False  # a guest reboot restarts the VM instead of ending it (-no-reboot)
    qmp: Path | None = None  # a QMP server on this unix socket (system_powerdown, query-status)


_SIZE = re.compile(r"^(\d+)([GgMm]?)$")


def parse_size_mb(text: str) -> int:
    """LinuxKit's disk size: ``N`` and ``NG`` are GiB, ``NM`` is MiB. Returns MiB."""
    match = _SIZE.match(text.strip())
    if match is None:
        raise UsageError(f"invalid disk size {text!r}", hint="use N, NG or NM (a bare N is GiB)")
    number, unit = int(match.group(1)), match.group(2).upper()
    return number if unit == "M" else number * 1024


_FORMATS = ("raw", "qcow2", "vmdk", "vpc", "vhdx", "vdi", "qed")


def parse_disk(text: str) -> DiskSpec:
    """Parse ``[file=]path[,size=N[G|M]][,format=F]``."""
    path: Path | None = None
    size: int | None = None
    fmt: str | None = None
    for item in (p for p in text.split(",") if p):
        key, sep, value = item.partition("=")
        if not sep:
            key, value = "file", item
        if key == "file":
            path = Path(value) if value else None
        elif key == "size":
            size = parse_size_mb(value)
        elif key == "format":
            fmt = "vpc" if value == "vhd" else value
            if fmt not in _FORMATS:
                raise UsageError(f"--disk {text!r}: unknown format {value!r}")
        else:
            raise UsageError(f"--disk {text!r}: unknown key {key!r} (file, size, format)")
    return DiskSpec(path=path, size_mb=size, format=fmt)


def parse_publish(text: str) -> Publish:
    """Parse ``host:guest[/tcp|udp]``."""
    ports, _, proto = text.partition("/")
    proto = proto or "tcp"
    host, sep, guest = ports.partition(":")
    if not sep or not host.isdigit() or not guest.isdigit() or proto not in ("tcp", "udp"):
        raise UsageError(f"invalid --publish {text!r}", hint="use HOST:GUEST[/tcp|udp]")
    for port in (int(host), int(guest)):
        if not 0 < port < 65536:
            raise UsageError(f"invalid --publish {text!r}: port {port} out of range")
    return Publish(host_port=int(host), guest_port=int(guest), protocol=proto)


def parse_networking(text: str) -> Networking:
    """Parse ``user``, ``tap,IFNAME``, ``bridge,BRIDGE`` or ``none``."""
    kind, _, name = text.partition(",")
    try:
        mode = NetMode(kind)
    except ValueError:
        raise UsageError(
            f"invalid --networking {text!r}", hint="use user, tap,IFNAME, bridge,BRIDGE or none"
        ) from None
    needs_name = mode in (NetMode.TAP, NetMode.BRIDGE)
    if needs_name and not name:
        raise UsageError(f"--networking {kind} needs a name: {kind},NAME")
    if not needs_name and name:
        raise UsageError(f"--networking {kind} takes no name")
    return Networking(mode=mode, name=name or None)


def parse_console(text: str) -> Console:
    """Parse ``stdio``, ``file:PATH`` or ``none``."""
    kind, _, rest = text.partition(":")
    if kind in ("stdio", "none") and not rest:
        return Console(kind=kind)
    if kind == "file" and rest:
        return Console(kind="file", path=Path(rest))
    raise UsageError(f"invalid --console {text!r}", hint="use stdio, file:PATH or none")


# How a guest on QEMU's user network reaches the host's loopback address.
USER_NET_HOST = "10.0.2.2"


def parse_netboot_url(text: str, networking: Networking) -> str | None:
    """``--netboot [URL]``: the script URL as the guest sees it. With user networking a URL is
    required, and a loopback host (what ``distrokit serve`` prints) becomes 10.0.2.2; on a tap
    or bridge there is none (the LAN's PXE service answers the NIC)."""
    if networking.mode is NetMode.NONE:
        raise UsageError("--netboot needs a network", hint="use --networking user, tap or bridge")
    if not text:
        if networking.mode is NetMode.USER:
            raise UsageError(
                "--netboot with user networking needs the script's URL",
                hint="e.g. --netboot http://127.0.0.1:8080/boot.ipxe (from distrokit serve)",
            )
        return None
    if networking.mode is not NetMode.USER:
        raise UsageError(
            f"--netboot URL only works with user networking, not {networking.mode.value}",
            hint="on a tap or bridge the LAN's PXE service (distrokit serve --pxe) answers",
        )
    parts = urllib.parse.urlsplit(text)
    if parts.scheme not in ("http", "https", "tftp") or not parts.hostname or " " in text:
        raise UsageError(f"invalid --netboot URL {text!r}", hint="use http://HOST:PORT/NAME.ipxe")
    if parts.hostname in ("127.0.0.1", "localhost", "::1"):
        netloc = USER_NET_HOST + (f":{parts.port}" if parts.port else "")
        text = urllib.parse.urlunsplit(parts._replace(netloc=netloc))
    return text
