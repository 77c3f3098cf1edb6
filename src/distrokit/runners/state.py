"""A VM's state directory (``--state``, default ``<prefix>-state``), as `linuxkit run` keeps it.

It holds ``qemu.pid``, ``mac-addr`` (a random locally administered MAC, kept across runs so the
guest keeps its DHCP lease), disks created for ``--disk`` without a path (``disk.img``,
``disk1.img``, ...), the metadata CD ``data.iso`` and, for UEFI boots, a writable copy of the
OVMF variable store.
"""

from __future__ import annotations

import io
import os
import secrets
import shutil
import tempfile
from dataclasses import replace
from pathlib import Path

from distrokit.errors import RunError, UsageError
from distrokit.host import Host
from distrokit.runners.config import DiskSpec
from distrokit.runners.source import detect_disk_format

PID_FILE = "qemu.pid"
MAC_FILE = "mac-addr"
DATA_ISO = "data.iso"
OVMF_CODE = Path("/usr/share/OVMF/OVMF_CODE.fd")
OVMF_VARS = Path("/usr/share/OVMF/OVMF_VARS.fd")


def _atomic_write(path: Path, data: bytes) -> None:
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}-")
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
        Path(tmp).replace(path)
    finally:
        Path(tmp).unlink(missing_ok=True)


def ensure_state_dir(path: Path) -> Path:
    """Create the state directory if needed and return its absolute path (QEMU's -daemonize
    changes directory, and the paths it is given should not depend on where it runs)."""
    try:
        path.mkdir(parents=True, exist_ok=True)
    except OSError as err:
        raise RunError(f"cannot create state directory {path}: {err}") from err
    return path.resolve()


def random_mac() -> str:
    """A random unicast, locally administered MAC address."""
    octets = bytearray(secrets.token_bytes(6))
    octets[0] = (octets[0] & 0xFC) | 0x02
    return ":".join(f"{b:02x}" for b in octets)


def mac_address(state: Path) -> str:
    """The VM's MAC address: read from ``mac-addr``, or made up and saved on first use."""
    path = state / MAC_FILE
    if path.is_file():
        mac = path.read_text().strip()
        if len(mac.split(":")) == 6:
            return mac
    mac = random_mac()
    _atomic_write(path, (mac + "\n").encode())
    return mac


def resolve_disks(host: Host, state: Path, disks: tuple[DiskSpec, ...]) -> tuple[DiskSpec, ...]:
    """Give every disk a path and a format, creating missing ones with ``qemu-img create``.

    Disks without a path become ``disk.img``, ``disk1.img``, ... in the state directory, as in
    LinuxKit. New disks are qcow2 unless a format is given; existing ones keep theirs."""
    out: list[DiskSpec] = []
    for index, disk in enumerate(disks):
        path = disk.path or state / ("disk.img" if index == 0 else f"disk{index}.img")
        if path.exists():
            fmt = disk.format or detect_disk_format(path)
            out.append(replace(disk, path=path, format=fmt))
            continue
        if disk.size_mb is None:
            raise UsageError(f"disk {path} does not exist and no size was given to create it")
        fmt = disk.format or "qcow2"
        path.parent.mkdir(parents=True, exist_ok=True)
        host.run(["qemu-img", "create", "-q", "-f", fmt, str(path), f"{disk.size_mb}M"])
        out.append(replace(disk, path=path, format=fmt))
    return tuple(out)


def write_data_iso(state: Path, data: bytes) -> Path:
    """The metadata CD LinuxKit attaches for ``--data``: ISO 9660, volume id ``cidata``, the
    data in a file ``config`` at the root (what the LinuxKit metadata package reads)."""
    import pycdlib  # only metadata runs pay for importing it

    iso = pycdlib.PyCdlib()
    iso.new(interchange_level=1, vol_ident="cidata", rock_ridge="1.09")
    iso.add_fp(io.BytesIO(data), len(data), "/CONFIG.;1", rr_name="config", file_mode=0o100644)
    buffer = io.BytesIO()
    iso.write_fp(buffer)
    iso.close()
    path = state / DATA_ISO
    _atomic_write(path, buffer.getvalue())
    return path


def ovmf_vars(state: Path, template: Path = OVMF_VARS) -> Path:
    """A writable copy of the UEFI variable store in the state directory (copied once)."""
    path = state / "OVMF_VARS.fd"
    if not path.is_file():
        if not template.is_file():
            raise RunError(f"UEFI variable store {template} not found", hint="apt-get install ovmf")
        fd, tmp = tempfile.mkstemp(dir=state, prefix=".OVMF_VARS-")
        os.close(fd)
        shutil.copyfile(template, tmp)
        Path(tmp).replace(path)
    return path


def read_pid(state: Path) -> int | None:
    """The pid QEMU recorded in ``qemu.pid``, if any."""
    try:
        return int((state / PID_FILE).read_text().strip())
    except (OSError, ValueError):
        return None


def running_pid(state: Path) -> int | None:
    """The pid in ``qemu.pid`` if that process is alive and is a QEMU, else None."""
    pid = read_pid(state)
    if pid is None:
        return None
    try:
        cmdline = Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return None
    return pid if b"qemu" in cmdline.split(b"\0", 1)[0] else None
