"""The qcow2-bios, qcow2-efi, vmdk, vhd and dynamic-vhd formats (declared at the end): a raw
disk (raw.py) converted with ``qemu-img``, made reproducible.

qcow2 output is deterministic as is. Two fields are not and are rewritten here from ids derived
from the system's inputs: the streamOptimized vmdk's descriptor ``CID`` (random) and, in the VHD
footer (at the end; a dynamic VHD also has a copy at the start), the creation timestamp and
the UUID; the footer checksum is then recomputed. qemu-img also writes the output's own file
name into the vmdk descriptor, so it converts to a fixed name (``out.vmdk``) inside a scratch
directory whatever the output is called.
"""

from __future__ import annotations

import re
import struct
from collections.abc import Mapping
from pathlib import Path

from distrokit.formats import raw as raw_disk
from distrokit.formats.bootable import Writer, bootable
from distrokit.formats.disk import (
    SECTOR,
    BootFiles,
    atomic_output,
    derive_u32,
    derive_uuid,
    scratch_dir,
)
from distrokit.formats.registry import BuildSettings
from distrokit.host import Host

TOOLS = ("qemu-img",)
VHD_EPOCH = 946684800  # VHD timestamps count seconds from 2000-01-01T00:00:00Z

# format name -> qemu-img output format and options
_TARGETS: dict[str, tuple[str, str]] = {
    "qcow2": ("qcow2", ""),
    "vmdk": ("vmdk", "subformat=streamOptimized,adapter_type=lsilogic,hwversion=6"),
    "vhd": ("vpc", "subformat=fixed,force_size=on"),
    "dynamic-vhd": ("vpc", "subformat=dynamic,force_size=on"),
}


def convert(
    host: Host, raw: Path, out: Path, kind: str, *, epoch: int, seed: bytes, name: str = "out"
) -> None:
    """Convert the raw disk `raw` to `out` as `kind` (qcow2, vmdk, vhd or dynamic-vhd); ids
    are derived from `seed` (the system's, not a hash of a possibly 25 GiB disk). `name` is
    the file name qemu-img sees (and writes into a vmdk descriptor)."""
    fmt, options = _TARGETS[kind]
    with scratch_dir(out) as scratch, atomic_output(out) as tmp:
        target = scratch / name
        opts = ["-o", options] if options else []
        host.run(["qemu-img", "convert", "-q", "-f", "raw", "-O", fmt, *opts, raw, target])
        if kind == "vmdk":
            _fix_vmdk(target, derive_u32(seed, "vmdk cid"))
        elif fmt == "vpc":
            _fix_vhd(target, derive_uuid(seed, "vhd uuid").bytes, epoch)
        target.replace(tmp)


def _fix_vmdk(path: Path, cid: int) -> None:
    with path.open("r+b") as f:
        header = f.read(SECTOR)
        desc_sector, desc_sectors = struct.unpack_from("<QQ", header, 28)
        f.seek(desc_sector * SECTOR)
        descriptor = f.read(desc_sectors * SECTOR)
        # qemu-img prints the random CID without zero padding, so it has 1 to 8 digits; ours
        # always has 8, and the descriptor's NUL padding absorbs the difference.
        fixed, count = re.subn(rb"\nCID=[0-9a-f]{1,8}\n", b"\nCID=%08x\n" % cid, descriptor)
        if count != 1:
            raise ValueError(f"{path}: no CID line in the vmdk descriptor")
        grown = len(fixed) - len(descriptor)
        if grown > 0:
            if fixed[-grown:].strip(b"\0"):
                raise ValueError(f"{path}: no room left in the vmdk descriptor")
            fixed = fixed[:-grown]
        f.seek(desc_sector * SECTOR)
        f.write(fixed)


def vhd_checksum(footer: bytes) -> int:
    """The VHD footer checksum: ones' complement of the byte sum, checksum field zeroed."""
    data = footer[:64] + b"\0\0\0\0" + footer[68:512]
    return ~sum(data) & 0xFFFFFFFF


def _patched_footer(footer: bytes, uid: bytes, epoch: int) -> bytes:
    out = bytearray(footer)
    out[24:28] = struct.pack(">I", max(epoch - VHD_EPOCH, 0))
    out[68:84] = uid
    out[64:68] = struct.pack(">I", vhd_checksum(bytes(out)))
    return bytes(out)


def _fix_vhd(path: Path, uid: bytes, epoch: int) -> None:
    size = path.stat().st_size
    with path.open("r+b") as f:
        f.seek(size - SECTOR)
        footer = f.read(SECTOR)
        if not footer.startswith(b"conectix"):
            raise ValueError(f"{path}: no VHD footer")
        fixed = _patched_footer(footer, uid, epoch)
        f.seek(size - SECTOR)
        f.write(fixed)
        f.seek(0)
        if f.read(8) == b"conectix":  # dynamic: the footer's copy at the start
            f.seek(0)
            f.write(fixed)


DYNAMIC_VHD_SIZE_MIB = 25 * 1024  # LinuxKit's dynamic-vhd is 25G (sparse)
SIZED = -1  # the disk takes --size


def _converted(kind: str, suffix: str, *, efi: bool, size: int | None) -> Writer:
    def write(
        host: Host, boot: BootFiles, out: Mapping[str, Path], scratch: Path, s: BuildSettings
    ) -> None:
        disk = scratch / "disk.raw"
        mib = s.size_mb if size == SIZED else size
        (raw_disk.write_raw_efi if efi else raw_disk.write_raw_bios)(host, boot, disk, mib)
        seed = boot.seed()
        convert(host, disk, out[suffix], kind, epoch=boot.epoch, seed=seed, name=f"out{suffix}")

    return write


_BIOS = ((*raw_disk.BIOS_TOOLS, *TOOLS), raw_disk.BIOS_FILES)
_EFI = ((*raw_disk.EFI_TOOLS, *TOOLS), raw_disk.EFI_FILES)
for _name, _kind, _suffix, _efi, _size, _help in (
    ("qcow2-bios", "qcow2", ".qcow2", False, SIZED,
     "raw-bios disk of --size as qcow2 (NAME.qcow2)"),
    ("qcow2-efi", "qcow2", "-efi.qcow2", True, None, "raw-efi disk as qcow2 (NAME-efi.qcow2)"),
    ("vmdk", "vmdk", ".vmdk", False, SIZED,
     "raw-bios disk of --size as stream-optimised vmdk (NAME.vmdk)"),
    ("vhd", "vhd", ".vhd", False, SIZED, "raw-bios disk of --size as fixed VHD (NAME.vhd)"),
    ("dynamic-vhd", "dynamic-vhd", ".vhd", False, DYNAMIC_VHD_SIZE_MIB,
     "25G raw-bios disk as dynamic VHD (NAME.vhd)"),
):  # fmt: skip
    _tools, _files = _EFI if _efi else _BIOS
    _write = _converted(_kind, _suffix, efi=_efi, size=_size)
    bootable(_name, (_suffix,), _write, _help, tools=_tools, files=_files)
