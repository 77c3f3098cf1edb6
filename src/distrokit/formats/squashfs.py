"""The kernel+squashfs format: NAME-kernel, NAME-cmdline, NAME-squashfs.img and the root finder
initrd.

The squashfs holds the root file system without ``boot/`` (as LinuxKit's mkimage-squashfs) and
is made reproducible by mksquashfs's ``-reproducible`` with fixed ``-mkfs-time``/``-all-time``.
Owners are kept (not ``-all-root``): container root file systems may own files by other uids.
The kernel boots with ``root=/dev/sda`` (appended by ``run qemu``); since Debian's kernel has
squashfs and the disk drivers as modules, NAME-initrd.img is the root finder.
"""

from __future__ import annotations

from pathlib import Path

from distrokit.formats import rootfinder, staging
from distrokit.formats.bootable import bootable
from distrokit.formats.disk import BootFiles
from distrokit.host import Host

TOOLS = ("mksquashfs",)
IMAGE_SUFFIX = "-squashfs.img"


def write_rootfs_image(host: Host, boot: BootFiles, out: Path) -> None:
    """The squashfs image of `boot.rootfs` (without ``boot/``) at `out`."""
    epoch = str(boot.epoch)
    with staging.staged_root(boot, out) as (root, tmp):
        host.run(
            [
                *("mksquashfs", root, tmp, "-noappend", "-no-progress", "-quiet"),
                *("-reproducible", "-mkfs-time", epoch, "-all-time", epoch, "-comp", "gzip"),
            ],
            capture=True,
        )


bootable(
    "kernel+squashfs",
    (*rootfinder.KERNEL_SUFFIXES, IMAGE_SUFFIX),
    rootfinder.beside_kernel(write_rootfs_image, IMAGE_SUFFIX),
    "kernel, root finder initrd, squashfs root (NAME-squashfs.img)",
    tools=TOOLS,
    files=rootfinder.HOST_FILES,
    root_on_medium=True,
)
