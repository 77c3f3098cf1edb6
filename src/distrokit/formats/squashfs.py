"""kernel+squashfs: NAME-kernel, NAME-cmdline, NAME-squashfs.img and the root finder initrd.

The squashfs holds the root file system without ``boot/`` (as LinuxKit's mkimage-squashfs) and
is made reproducible by mksquashfs's ``-reproducible`` with fixed ``-mkfs-time``/``-all-time``.
Owners are kept (not ``-all-root``): container root file systems may own files by other uids.
The kernel boots with ``root=/dev/sda`` (appended by ``run qemu``); since Debian's kernel has
squashfs and the disk drivers as modules, NAME-initrd.img is the root finder.
"""

from __future__ import annotations

import shutil
from pathlib import Path

from distrokit.formats import iso, rootfinder, staging
from distrokit.formats.disk import BootFiles, atomic_output, scratch_dir
from distrokit.host import Host

TOOLS = ("mksquashfs",)


def write_rootfs_image(host: Host, boot: BootFiles, out: Path) -> None:
    """The squashfs image of `boot.rootfs` (without ``boot/``) at `out`."""
    if boot.rootfs is None:
        raise ValueError("kernel+squashfs needs the root file system tar")
    epoch = str(boot.epoch)
    with scratch_dir(out) as scratch, atomic_output(out) as tmp:
        root = scratch / "root"
        staging.unpack_rootfs(boot.rootfs, root, epoch=boot.epoch)
        host.run(
            [
                *("mksquashfs", root, tmp, "-noappend", "-no-progress", "-quiet"),
                *("-reproducible", "-mkfs-time", epoch, "-all-time", epoch, "-comp", "gzip"),
            ],
            capture=True,
        )


def write_kernel_files(boot: BootFiles, prefix: str, *, root: str | None = None) -> None:
    """NAME-kernel, NAME-cmdline and NAME-initrd.img (the root finder) for a medium root."""
    if boot.rootfs is None:
        raise ValueError("a medium root needs the root file system tar")
    cmdline = boot.cmdline if root is None else iso.with_root(boot.cmdline, root)
    with atomic_output(Path(f"{prefix}-kernel")) as tmp:
        shutil.copyfile(boot.kernel, tmp)
    with atomic_output(Path(f"{prefix}-cmdline")) as tmp:
        tmp.write_text(cmdline + "\n")
    with atomic_output(Path(f"{prefix}-initrd.img")) as tmp:
        tmp.write_bytes(rootfinder.rootfinder_initrd(boot.rootfs, epoch=boot.epoch))


def write_kernel_squashfs(host: Host, boot: BootFiles, prefix: str) -> None:
    """The whole kernel+squashfs output under `prefix`."""
    write_rootfs_image(host, boot, Path(f"{prefix}-squashfs.img"))
    write_kernel_files(boot, prefix)
