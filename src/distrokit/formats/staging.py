"""The system's root file system tar unpacked into a staging directory, safely and repeatably.

mksquashfs, mkfs.erofs and xorriso read a directory tree (the Debian versions cannot read a tar),
so the formats whose root lives on the medium unpack the rootfs tar first. Entries under
``boot/`` are left out (LinuxKit's squashfs and ISO roots do not carry the kernel). Nothing is
written through a symlink (an image may hold ``etc -> /etc``; following it while extracting as
root would write on the host), and every mtime, directories included, is set afterwards so the
tree looks the same on every build.
"""

from __future__ import annotations

import errno
import os
import shutil
import tarfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path, PurePosixPath

from distrokit.errors import BuildError
from distrokit.formats.disk import BootFiles, atomic_output, scratch_dir


def _safe_name(name: str) -> str | None:
    path = PurePosixPath(name.lstrip("/"))
    if ".." in path.parts:
        raise BuildError(f"rootfs tar entry {name!r} leaves the root")
    text = str(path)
    return None if text in (".", "") else text


def _check_parents(root: Path, name: str) -> None:
    current = root
    for part in PurePosixPath(name).parts[:-1]:
        current = current / part
        if current.is_symlink():
            raise BuildError(f"rootfs tar entry {name!r} lies below the symlink {part!r}")


def _skip(name: str, skip_boot: bool) -> bool:
    return skip_boot and (name == "boot" or name.startswith("boot/"))


def unpack_rootfs(tar_path: Path, root: Path, *, epoch: int, skip_boot: bool = True) -> None:
    """Unpack `tar_path` into the empty directory `root` (owners, modes, links and device
    nodes kept; needs root for owners and devices). Directories the tar does not list get
    mtime `epoch`."""
    root.mkdir(parents=True, exist_ok=True)
    dir_times: dict[str, int] = {}
    with tarfile.open(tar_path, "r:*") as tar:
        for member in tar:
            name = _safe_name(member.name)
            if name is None or _skip(name, skip_boot):
                continue
            _check_parents(root, name)
            if member.islnk():
                link = _safe_name(member.linkname)
                if link is None:
                    raise BuildError(f"rootfs tar hard link {member.name!r} has no target")
                _check_parents(root, link + "/x")
                if not os.path.lexists(root / link) or (root / link).is_dir():
                    raise BuildError(
                        f"rootfs tar hard link {member.name!r} points at {link!r}, "
                        "which is not an entry written before it"
                    )
                member.linkname = link
            member.name = name
            _extract(tar, member, root)
            if member.isdir():
                dir_times[name] = int(member.mtime)
            elif member.issym():
                # tarfile leaves a symlink's own time at "now"
                os.utime(root / name, (member.mtime, member.mtime), follow_symlinks=False)
    _fix_dir_times(root, dir_times, epoch)


def _extract(tar: tarfile.TarFile, member: tarfile.TarInfo, root: Path) -> None:
    """Extract `member`; a later entry replaces what an earlier one left at its name, as an
    unpacked tar or initrd would (a file over a directory included)."""
    target = root / member.name
    try:
        if target.is_symlink() or (target.exists() and not target.is_dir()):
            target.unlink()
        elif target.is_dir() and not member.isdir():
            shutil.rmtree(target)
        tar.extract(member, root, set_attrs=True, filter="fully_trusted")
    except (OSError, tarfile.TarError) as err:
        reason = err.strerror if isinstance(err, OSError) and err.strerror else str(err)
        raise BuildError(
            f"cannot stage rootfs tar entry {member.name[:200]!r}: {reason}",
            hint="names of more than 255 bytes (one part) or 4096 (the path) do not fit a "
            "file system"
            if isinstance(err, OSError) and err.errno == errno.ENAMETOOLONG
            else None,
        ) from err


def _fix_dir_times(root: Path, known: dict[str, int], epoch: int) -> None:
    # Children first: setting a directory's time never changes its parent's.
    for dirpath, _dirs, _files in sorted(os.walk(root), key=lambda w: w[0], reverse=True):
        rel = os.path.relpath(dirpath, root)
        when = known.get(rel, epoch)
        os.utime(dirpath, (when, when), follow_symlinks=False)


@contextmanager
def staged_root(boot: BootFiles, out: Path) -> Iterator[tuple[Path, Path]]:
    """(root, tmp): the system's root file system unpacked into a scratch directory next to
    `out`, and the temporary file that becomes `out` when the block succeeds."""
    with scratch_dir(out) as scratch, atomic_output(out) as tmp:
        root = scratch / "root"
        unpack_rootfs(boot.root_tar(), root, epoch=boot.epoch)
        yield root, tmp
