"""The ISO formats (declared at the end): iso-bios (hybrid ISOLINUX), iso-efi, iso-efi-initrd,
and kernel+iso (a root file system ISO beside the kernel and the root finder initrd).

xorriso writes them; with ``SOURCE_DATE_EPOCH`` set it fixes the volume dates, the volume UUID
and the dates of every file, and the staged tree's own mtimes are fixed too, so the output
is reproducible (pycdlib was the alternative, but it stamps directory records with the
current time and offers no way to override it). Rock Ridge keeps owners, modes and symlinks:
for iso-bios, iso-efi and kernel+iso the ISO 9660 tree IS the root file system (LinuxKit),
mounted by the root finder from ``root=/dev/sr0``. The EFI El Torito image is a FAT file
holding systemd-boot, the kernel and an initrd (the root finder, or the system's initrd for
iso-efi-initrd), since systemd-boot loads files from the partition it started from.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path

from distrokit.formats import efi, fat, rootfinder, staging
from distrokit.formats.bootable import bootable, one_file
from distrokit.formats.disk import (
    BootFiles,
    atomic_output,
    derive_u32,
    scratch_dir,
)
from distrokit.host import Host

TOOLS = ("xorriso",)
ISOLINUX_BIN = Path("/usr/lib/ISOLINUX/isolinux.bin")
ISOHDPFX = Path("/usr/lib/ISOLINUX/isohdpfx.bin")
LDLINUX_C32 = Path("/usr/lib/syslinux/modules/bios/ldlinux.c32")
BIOS_FILES = {ISOLINUX_BIN: "isolinux", ISOHDPFX: "isolinux", LDLINUX_C32: "syslinux-common"}
EFI_FILES = {efi.SYSTEMD_BOOT: efi.SYSTEMD_BOOT_PACKAGE}
VOLUME_ID = "DISTROKIT"
EFI_IMAGE = "boot/efiboot.img"


ROOT_LABEL = f"LABEL={VOLUME_ID}"


def with_root(cmdline: str, root: str = ROOT_LABEL) -> str:
    """`cmdline` plus ``root=`` unless it names one. LinuxKit adds root=/dev/sr0; the root
    finder looks the ISO up by its volume id instead, so a hybrid ISO written to a disk (where
    it is /dev/sda or /dev/vda) finds its root too."""
    return rootfinder.with_root(cmdline, root)


def isolinux_cfg(cmdline: str) -> bytes:
    """isolinux.cfg booting /boot/kernel with the root finder at once."""
    return (
        "SERIAL 0 115200\nDEFAULT linux\nPROMPT 0\nTIMEOUT 0\nLABEL linux\n"
        f"  KERNEL /boot/kernel\n  INITRD /boot/initrd.img\n  APPEND {cmdline}\n"
    ).encode()


def _stage_file(root: Path, name: str, source: Path | bytes, epoch: int) -> None:
    path = root / name
    path.parent.mkdir(parents=True, exist_ok=True)
    if isinstance(source, bytes):
        path.write_bytes(source)
    else:
        shutil.copyfile(source, path)
    path.chmod(0o644)
    os.utime(path, (epoch, epoch))


def _stage_dirs(root: Path, epoch: int) -> None:
    for dirpath, _dirs, _files in os.walk(root):
        os.utime(dirpath, (epoch, epoch))


def _efi_image(
    host: Host, boot: BootFiles, initrd: Path, cmdline: str, *, out: Path, scratch: Path
) -> None:
    files = efi.esp_files(boot.kernel, initrd, cmdline)
    fat.make_fat(
        host,
        out,
        files,
        size=fat.fat_size(files),
        label="EFIBOOT",
        volume_id=derive_u32(boot.seed(), "iso efi volume id"),
        epoch=boot.epoch,
        scratch=scratch,
    )


def _xorriso(host: Host, root: Path, out: Path, epoch: int, boot_args: list[str]) -> None:
    argv: list[str | os.PathLike[str]] = ["xorriso", "-as", "mkisofs", "-quiet", "-o", out]
    # atime and ctime of the staged files are "now": record every date as the file's mtime
    argv += ["-R", "-V", VOLUME_ID, "--set_all_file_dates", "set_to_mtime"]
    host.run([*argv, *boot_args, root], env={"SOURCE_DATE_EPOCH": str(epoch)}, capture=True)


def write_iso_bios(host: Host, boot: BootFiles, out: Path) -> None:
    """iso-bios: the root file system with ISOLINUX, hybrid (boots as CD or as disk)."""
    cmdline = with_root(boot.cmdline)
    with staging.staged_root(boot, out) as (root, tmp):
        finder = rootfinder.rootfinder_initrd(boot.root_tar(), epoch=boot.epoch)
        for name, source in (
            ("boot/kernel", boot.kernel),
            ("boot/initrd.img", finder),
            ("isolinux/isolinux.bin", ISOLINUX_BIN),
            ("isolinux/ldlinux.c32", LDLINUX_C32),
            ("isolinux/isolinux.cfg", isolinux_cfg(cmdline)),
        ):
            _stage_file(root, name, source, boot.epoch)
        _stage_dirs(root / "isolinux", boot.epoch)
        _stage_dirs(root / "boot", boot.epoch)
        os.utime(root, (boot.epoch, boot.epoch))
        bios = ["-b", "isolinux/isolinux.bin", "-c", "isolinux/boot.cat", "-no-emul-boot"]
        bios += ["-boot-load-size", "4", "-boot-info-table", "-isohybrid-mbr", str(ISOHDPFX)]
        _xorriso(host, root, tmp, boot.epoch, bios)


def _write_efi_iso(host: Host, boot: BootFiles, out: Path, *, initrd_root: bool) -> None:
    with scratch_dir(out) as scratch, atomic_output(out) as tmp:
        root = scratch / "root"
        if initrd_root:
            root.mkdir()
            initrd, cmdline = boot.ram_initrd(), boot.cmdline
            _stage_file(root, "kernel", boot.kernel, boot.epoch)
            _stage_file(root, "initrd.img", initrd, boot.epoch)
        else:
            staging.unpack_rootfs(boot.root_tar(), root, epoch=boot.epoch)
            initrd, cmdline = scratch / "rootfinder.img", with_root(boot.cmdline)
            initrd.write_bytes(rootfinder.rootfinder_initrd(boot.root_tar(), epoch=boot.epoch))
        (root / "boot").mkdir(exist_ok=True)
        _efi_image(host, boot, initrd, cmdline, out=root / EFI_IMAGE, scratch=scratch)
        os.utime(root / EFI_IMAGE, (boot.epoch, boot.epoch))
        _stage_dirs(root / "boot", boot.epoch)
        os.utime(root, (boot.epoch, boot.epoch))
        _xorriso(host, root, tmp, boot.epoch, ["-e", EFI_IMAGE, "-no-emul-boot"])


def write_iso_efi(host: Host, boot: BootFiles, out: Path) -> None:
    """iso-efi: the root file system with an EFI El Torito image (systemd-boot)."""
    _write_efi_iso(host, boot, out, initrd_root=False)


def write_iso_efi_initrd(host: Host, boot: BootFiles, out: Path) -> None:
    """iso-efi-initrd: kernel + initrd (RAM root) with an EFI El Torito image."""
    _write_efi_iso(host, boot, out, initrd_root=True)


def write_root_iso(host: Host, boot: BootFiles, out: Path) -> None:
    """kernel+iso's ISO: the root file system only, not bootable by itself."""
    with staging.staged_root(boot, out) as (root, tmp):
        _xorriso(host, root, tmp, boot.epoch, [])


_EFI_TOOLS = (*TOOLS, *fat.TOOLS)
bootable(
    "iso-bios",
    (".iso",),
    one_file(write_iso_bios, ".iso"),
    "hybrid ISOLINUX ISO, root file system on the ISO (NAME.iso)",
    tools=TOOLS,
    files={**BIOS_FILES, **rootfinder.HOST_FILES},
    root_on_medium=True,
)
bootable(
    "iso-efi",
    ("-efi.iso",),
    one_file(write_iso_efi, "-efi.iso"),
    "EFI ISO, root file system on the ISO (NAME-efi.iso)",
    tools=_EFI_TOOLS,
    files={**EFI_FILES, **rootfinder.HOST_FILES},
    root_on_medium=True,
)
bootable(
    "iso-efi-initrd",
    ("-efi-initrd.iso",),
    one_file(write_iso_efi_initrd, "-efi-initrd.iso"),
    "EFI ISO booting kernel+initrd (NAME-efi-initrd.iso)",
    tools=_EFI_TOOLS,
    files=EFI_FILES,
)
bootable(
    "kernel+iso",
    (*rootfinder.KERNEL_SUFFIXES, ".iso"),
    rootfinder.beside_kernel(write_root_iso, ".iso", root=ROOT_LABEL),
    "kernel, root finder initrd, root file system ISO (NAME.iso)",
    tools=TOOLS,
    files=rootfinder.HOST_FILES,
    root_on_medium=True,
)
