"""The UEFI boot loader: systemd-boot from Debian's systemd-boot-efi with a Type #1 entry.

systemd-boot is a single signed-off binary that needs no generated code (GRUB would need
grub-mkimage and a memdisk), reads its configuration from plain files on the ESP and hands the
kernel (an EFI stub) its initrd and command line. With ``timeout 0`` it boots the one entry at
once. Its binary is copied as is, so the ESP's bytes depend only on the inputs.
"""

from __future__ import annotations

from pathlib import Path

SYSTEMD_BOOT = Path("/usr/lib/systemd/boot/efi/systemd-bootx64.efi")
SYSTEMD_BOOT_PACKAGE = "systemd-boot-efi"
ENTRY = "distrokit.conf"


def loader_conf() -> bytes:
    """loader/loader.conf: boot the distrokit entry at once, never show a menu."""
    return f"timeout 0\ndefault {ENTRY}\neditor no\nrandom-seed-mode off\n".encode()


def loader_entry(cmdline: str, *, initrd: bool = True) -> bytes:
    """loader/entries/distrokit.conf (Boot Loader Specification Type #1)."""
    lines = ["title distrokit", "linux /kernel"]
    if initrd:
        lines.append("initrd /initrd.img")
    lines.append(f"options {cmdline}".rstrip())
    return ("\n".join(lines) + "\n").encode()


def esp_files(kernel: Path, initrd: Path, cmdline: str) -> dict[str, Path | bytes]:
    """Everything an ESP needs to boot `kernel` + `initrd` with `cmdline` via systemd-boot."""
    return {
        "EFI/BOOT/BOOTX64.EFI": SYSTEMD_BOOT,
        "loader/loader.conf": loader_conf(),
        f"loader/entries/{ENTRY}": loader_entry(cmdline),
        "kernel": kernel,
        "initrd.img": initrd,
    }
