"""The kernel+erofs format: NAME-kernel, NAME-cmdline, NAME-erofs.img and the root finder initrd.

mkfs.erofs with a fixed ``-T`` timestamp and a UUID derived from the inputs; erofs sorts
directory entries itself. Owners are kept, as for squashfs. The image is attached as a disk and
found by ``root=/dev/sda`` like kernel+squashfs.
"""

from __future__ import annotations

from pathlib import Path

from distrokit.formats import rootfinder, staging
from distrokit.formats.bootable import bootable
from distrokit.formats.disk import BootFiles, derive_uuid
from distrokit.host import Host

TOOLS = ("mkfs.erofs",)
IMAGE_SUFFIX = "-erofs.img"


def write_rootfs_image(host: Host, boot: BootFiles, out: Path) -> None:
    """The erofs image of `boot.rootfs` (without ``boot/``) at `out`."""
    uid = derive_uuid(boot.seed(), "erofs uuid")
    with staging.staged_root(boot, out) as (root, tmp):
        host.run(
            ["mkfs.erofs", "--quiet", "-T", str(boot.epoch), "-U", str(uid), tmp, root],
            capture=True,
        )


bootable(
    "kernel+erofs",
    (*rootfinder.KERNEL_SUFFIXES, IMAGE_SUFFIX),
    rootfinder.beside_kernel(write_rootfs_image, IMAGE_SUFFIX),
    "kernel, root finder initrd, erofs root (NAME-erofs.img)",
    tools=TOOLS,
    files=rootfinder.HOST_FILES,
    root_on_medium=True,
)
