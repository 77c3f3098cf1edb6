"""Raw disk images that boot kernel + initrd from a FAT partition: the raw-bios, raw-efi and
aws formats (declared at the end), and the disks convert.py and gcp.py wrap.

raw-bios: an MBR (syslinux's mbr.bin) with one active FAT partition at sector 2048 holding
syslinux (ldlinux.sys installed by the mtools-based ``syslinux``), syslinux.cfg, the kernel and
initrd.img, as LinuxKit's mkimage-raw-bios. raw-efi: a GPT disk with one ESP (legacy-BIOS
bootable attribute, as LinuxKit) holding systemd-boot and a Type #1 entry. The partition is
built as its own file and copied behind the table, so nothing is ever loop-mounted. Without a
size the disk is just big enough for its contents.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

from distrokit.errors import UsageError
from distrokit.formats import efi, fat, partition
from distrokit.formats.bootable import bootable, one_file
from distrokit.formats.disk import (
    MIB,
    SECTOR,
    BootFiles,
    atomic_output,
    copy_into,
    derive_u32,
    derive_uuid,
    scratch_dir,
)
from distrokit.formats.registry import BuildSettings
from distrokit.host import Host

MBR_BIN = Path("/usr/lib/syslinux/mbr/mbr.bin")
PART_START = 2048  # sectors: 1 MiB alignment, as LinuxKit
BIOS_TOOLS = (*fat.TOOLS, "syslinux")
EFI_TOOLS = fat.TOOLS
BIOS_FILES = {MBR_BIN: "syslinux-common"}
EFI_FILES = {efi.SYSTEMD_BOOT: efi.SYSTEMD_BOOT_PACKAGE}
_GPT_TAIL = partition.GPT_ENTRY_SECTORS + 1


def syslinux_cfg(cmdline: str) -> bytes:
    """syslinux.cfg booting /kernel with /initrd.img at once, on the serial port too."""
    return (
        "SERIAL 0 115200\nDEFAULT linux\nPROMPT 0\nTIMEOUT 0\n"
        f"LABEL linux\n  KERNEL /kernel\n  INITRD /initrd.img\n  APPEND {cmdline}\n"
    ).encode()


def bios_files(boot: BootFiles) -> dict[str, Path | bytes]:
    """The FAT partition's contents for a syslinux boot."""
    return {
        "syslinux.cfg": syslinux_cfg(boot.cmdline),
        "kernel": boot.kernel,
        "initrd.img": boot.ram_initrd(),
    }


def _part_bytes(files: dict[str, Path | bytes], disk_mib: int | None, tail_sectors: int) -> int:
    if disk_mib is None:
        return fat.fat_size(files)
    size = disk_mib * MIB - PART_START * SECTOR - tail_sectors * SECTOR
    if size < fat.fat_size(files):
        raise UsageError(
            f"--size {disk_mib}M is too small for the boot files",
            hint=f"they need at least {fat.fat_size(files) // MIB + 2}M",
        )
    return size


def write_raw_bios(host: Host, boot: BootFiles, out: Path, size_mib: int | None = None) -> None:
    """An MBR disk with syslinux booting kernel + initrd (LinuxKit's raw-bios)."""
    seed = boot.seed()
    files = bios_files(boot)
    part_size = _part_bytes(files, size_mib, 0)
    with scratch_dir(out) as scratch, atomic_output(out) as tmp:
        part = scratch / "part.img"
        fat.make_fat(
            host,
            part,
            files,
            size=part_size,
            label="DISTROKIT",
            volume_id=derive_u32(seed, "fat volume id"),
            epoch=boot.epoch,
            scratch=scratch,
        )
        host.run(["syslinux", "--install", part], env={"SOURCE_DATE_EPOCH": str(boot.epoch)})
        sectors = part_size // SECTOR
        entry = partition.Partition(start=PART_START, sectors=sectors, bootable=True)
        table = partition.mbr(
            [entry],
            signature=derive_u32(seed, "mbr signature"),
            bootcode=MBR_BIN.read_bytes()[:440],
        )
        total = (size_mib * MIB) if size_mib else (PART_START + sectors) * SECTOR
        with tmp.open("wb") as f:
            f.write(table)
            f.truncate(total)
        copy_into(tmp, part, PART_START * SECTOR)


def write_raw_efi(host: Host, boot: BootFiles, out: Path, size_mib: int | None = None) -> None:
    """A GPT disk whose ESP boots kernel + initrd with systemd-boot (LinuxKit's raw-efi)."""
    seed = boot.seed()
    files = efi.esp_files(boot.kernel, boot.ram_initrd(), boot.cmdline)
    part_size = _part_bytes(files, size_mib, _GPT_TAIL)
    sectors = part_size // SECTOR
    total_sectors = (size_mib * MIB // SECTOR) if size_mib else PART_START + sectors + _GPT_TAIL
    esp = partition.Partition(
        start=PART_START,
        sectors=sectors,
        guid=derive_uuid(seed, "esp partition guid"),
        name="ESP",
        attributes=partition.LEGACY_BIOS_BOOTABLE,
    )
    layout = partition.gpt(
        [esp], total_sectors=total_sectors, disk_guid=derive_uuid(seed, "disk guid")
    )
    with scratch_dir(out) as scratch, atomic_output(out) as tmp:
        part = scratch / "esp.img"
        fat.make_fat(
            host,
            part,
            files,
            size=part_size,
            label="ESP",
            volume_id=derive_u32(seed, "esp volume id"),
            epoch=boot.epoch,
            scratch=scratch,
        )
        with tmp.open("wb") as f:
            f.write(layout.head)
            f.truncate(total_sectors * SECTOR)
            f.seek((total_sectors - _GPT_TAIL) * SECTOR)
            f.write(layout.tail)
        copy_into(tmp, part, PART_START * SECTOR)


def _aws(
    host: Host, boot: BootFiles, out: Mapping[str, Path], scratch: Path, s: BuildSettings
) -> None:
    write_raw_bios(host, boot, out[".raw"], s.size_mb)


for _name, _suffix, _writer, _help, _tools, _files in (
    ("raw-bios", "-bios.img", one_file(write_raw_bios, "-bios.img"),
     "MBR disk, syslinux, kernel+initrd (NAME-bios.img)", BIOS_TOOLS, BIOS_FILES),
    ("raw-efi", "-efi.img", one_file(write_raw_efi, "-efi.img"),
     "GPT disk, ESP with systemd-boot (NAME-efi.img)", EFI_TOOLS, EFI_FILES),
    ("aws", ".raw", _aws, "raw-bios disk of --size for AWS (NAME.raw)", BIOS_TOOLS, BIOS_FILES),
):  # fmt: skip
    bootable(_name, (_suffix,), _writer, _help, tools=_tools, files=_files)
