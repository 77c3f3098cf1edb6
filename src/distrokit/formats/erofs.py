"""The kernel+erofs format: NAME-kernel, NAME-cmdline, NAME-erofs.img and the root finder initrd.

mkfs.erofs with a fixed ``-T`` timestamp and a UUID derived from the inputs; erofs sorts
directory entries itself. Owners are kept, as for squashfs. The image is attached as a disk and
found by ``root=/dev/sda`` like kernel+squashfs.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

from distrokit.formats import rootfinder, staging
from distrokit.formats.bootable import bootable
from distrokit.formats.disk import BootFiles, atomic_output, derive_uuid, scratch_dir
from distrokit.formats.registry import BuildSettings
from distrokit.host import Host

TOOLS = ("mkfs.erofs",)
IMAGE_SUFFIX = "-erofs.img"


def write_rootfs_image(host: Host, boot: BootFiles, out: Path) -> None:
    """The erofs image of `boot.rootfs` (without ``boot/``) at `out`."""
    uid = derive_uuid(boot.seed(), "erofs uuid")
    with scratch_dir(out) as scratch, atomic_output(out) as tmp:
        root = scratch / "root"
        staging.unpack_rootfs(boot.root_tar(), root, epoch=boot.epoch)
        host.run(
            ["mkfs.erofs", "--quiet", "-T", str(boot.epoch), "-U", str(uid), tmp, root],
            capture=True,
        )


def _kernel_erofs(
    host: Host, boot: BootFiles, out: Mapping[str, Path], scratch: Path, s: BuildSettings
) -> None:
    write_rootfs_image(host, boot, out[IMAGE_SUFFIX])
    rootfinder.write_kernel_files(boot, out)


bootable(
    "kernel+erofs",
    (*rootfinder.KERNEL_SUFFIXES, IMAGE_SUFFIX),
    _kernel_erofs,
    "kernel, root finder initrd, erofs root (NAME-erofs.img)",
    tools=TOOLS,
    files=rootfinder.HOST_FILES,
    root_on_medium=True,
)
