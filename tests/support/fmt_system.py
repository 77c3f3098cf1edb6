"""One small example system for the format tests: the host's Debian kernel, a busybox root.

`make_system` writes NAME-kernel, NAME-initrd.img (RAM root: busybox, virtio modules, an /init
that prints the marker) and NAME-rootfs.tar (LinuxKit's layout: boot/kernel and boot/cmdline,
busybox, an /init that prints the marker and the root's file system type, the root medium's
modules with modules.dep under lib/modules). Both inits print `MARKER`, then power off.
"""

from __future__ import annotations

import io
import tarfile
from pathlib import Path

import guest

from distrokit.formats import rootfinder
from distrokit.formats.bootable import write_from_files
from distrokit.formats.disk import DEFAULT_EPOCH, BootFiles, parse_size_mib
from distrokit.formats.registry import BuildSettings
from distrokit.host import Host

MARKER = "DISTROKIT-FORMAT-UP"
CMDLINE = "console=ttyS0 panic=-1"
INIT = f"""#!/bin/busybox sh
/bin/busybox mount -t proc proc /proc
fstype=$(/bin/busybox awk '$2 == "/" {{ t = $3 }} END {{ print t }}' /proc/mounts)
echo "{MARKER} root=$fstype"
/bin/busybox poweroff -f
"""


def _add(
    tar: tarfile.TarFile, name: str, data: bytes = b"", mode: int = 0o644, **kw: object
) -> None:
    info = tarfile.TarInfo(name)
    info.mtime = DEFAULT_EPOCH
    info.mode = mode
    for key, value in kw.items():
        setattr(info, key, value)
    if info.isreg():
        info.size = len(data)
        tar.addfile(info, io.BytesIO(data))
    else:
        tar.addfile(info)


def rootfs_tar(path: Path) -> None:
    """The example system's root file system tar (see module docstring)."""
    kernel, release = guest.host_kernel()
    mods = guest.module_order(release, rootfinder.ROOT_MODULES)
    base = Path("/lib/modules") / release
    dirs = {
        "boot",
        "bin",
        "sbin",
        "dev",
        "proc",
        "sys",
        "lib",
        "lib/modules",
        f"lib/modules/{release}",
    }
    for mod in mods:
        parts = Path(f"lib/modules/{release}/{mod}").parent.parts
        dirs.update("/".join(parts[:i]) for i in range(1, len(parts) + 1))
    with tarfile.open(path, "w", format=tarfile.PAX_FORMAT) as tar:
        for d in sorted(dirs):
            _add(tar, d, mode=0o755, type=tarfile.DIRTYPE)
        _add(tar, "boot/kernel", kernel.read_bytes())
        _add(tar, "boot/cmdline", CMDLINE.encode())
        _add(tar, "bin/busybox", guest.BUSYBOX.read_bytes(), 0o755)
        _add(tar, "bin/sh", mode=0o777, type=tarfile.SYMTYPE, linkname="busybox")
        _add(tar, "sbin/init", mode=0o777, type=tarfile.SYMTYPE, linkname="/bin/busybox")
        _add(tar, "init", INIT.encode(), 0o755)
        _add(tar, f"lib/modules/{release}/modules.dep", (base / "modules.dep").read_bytes())
        for mod in mods:
            _add(tar, f"lib/modules/{release}/{mod}", (base / mod).read_bytes())


def make_system(directory: Path, name: str = "example") -> BootFiles:
    """Write the example system's files into `directory` and describe them."""
    body = f'echo "{MARKER} root=$(awk \'$2 == "/" {{ t = $3 }} END {{ print t }}\' /proc/mounts)"'
    prefix = guest.make_guest(directory, name, body=body)
    tar = directory / f"{name}-rootfs.tar"
    rootfs_tar(tar)
    return BootFiles(
        kernel=Path(f"{prefix}-kernel"),
        initrd=Path(f"{prefix}-initrd.img"),
        cmdline=CMDLINE,
        rootfs=tar,
    )


def build(name: str, boot: BootFiles, directory: Path, size: str = "1024M") -> dict[str, Path]:
    """Build format `name` of the example system into `directory` (created)."""
    directory.mkdir(parents=True, exist_ok=True)
    settings = BuildSettings(size_mb=parse_size_mib(size))
    return write_from_files(name, Host(), boot, directory, settings)
