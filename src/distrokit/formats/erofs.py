"""kernel+erofs: NAME-kernel, NAME-cmdline, NAME-erofs.img and the root finder initrd.

mkfs.erofs with a fixed ``-T`` timestamp and a UUID derived from the inputs; erofs sorts
directory entries itself. Owners are kept, as for squashfs. The image is attached as a disk and
found by ``root=/dev/sda`` like kernel+squashfs.
"""

from __future__ import annotations

from pathlib import Path

from distrokit.formats import squashfs, staging
from distrokit.formats.disk import BootFiles, atomic_output, derive_uuid, scratch_dir
from distrokit.host import Host

TOOLS = ("mkfs.erofs",)


def write_rootfs_image(host: Host, boot: BootFiles, out: Path) -> None:
    """The erofs image of `boot.rootfs` (without ``boot/``) at `out`."""
    if boot.rootfs is None:
        raise ValueError("kernel+erofs needs the root file system tar")
    uid = derive_uuid(boot.seed(), "erofs uuid")
    with scratch_dir(out) as scratch, atomic_output(out) as tmp:
        root = scratch / "root"
        staging.unpack_rootfs(boot.rootfs, root, epoch=boot.epoch)
        host.run(
            ["mkfs.erofs", "--quiet", "-T", str(boot.epoch), "-U", str(uid), tmp, root],
            capture=True,
        )


def write_kernel_erofs(host: Host, boot: BootFiles, prefix: str) -> None:
    """The whole kernel+erofs output under `prefix`."""
    write_rootfs_image(host, boot, Path(f"{prefix}-erofs.img"))
    squashfs.write_kernel_files(boot, prefix)
