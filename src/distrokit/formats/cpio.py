"""newc cpio records, the one encoder of the project: the system initrd (`initrd.py`) streams
tar entries through `CpioEncoder`, the root finder (`rootfinder.py`) writes its few files with
`cpio_header`.

The records follow LinuxKit's ``initrd.CopySplitTar`` (section 2.6): inode numbers from 721,
nlink 1 (2 for directories), dev 3/1, hard links turned into relative symlinks, fields in
lower-case hex as LinuxKit's writer spells them.
"""

from __future__ import annotations

import posixpath
import stat
import tarfile

from distrokit.errors import BuildError

FIRST_INODE = 721
TRAILER = "TRAILER!!!"

_TYPE_BITS = {
    tarfile.REGTYPE: stat.S_IFREG,
    tarfile.AREGTYPE: stat.S_IFREG,
    tarfile.DIRTYPE: stat.S_IFDIR,
    tarfile.SYMTYPE: stat.S_IFLNK,
    tarfile.LNKTYPE: stat.S_IFLNK,
    tarfile.CHRTYPE: stat.S_IFCHR,
    tarfile.BLKTYPE: stat.S_IFBLK,
    tarfile.FIFOTYPE: stat.S_IFIFO,
}


def _field(value: int) -> bytes:
    # Lower-case hex, as LinuxKit's cpio writer (and the kernel's reader accepts either).
    return b"%08x" % (value & 0xFFFFFFFF)


def pad4(length: int) -> bytes:
    return b"\0" * (-length % 4)


def cpio_header(
    name: str,
    mode: int,
    *,
    ino: int,
    uid: int = 0,
    gid: int = 0,
    nlink: int = 1,
    mtime: int = 0,
    size: int = 0,
    rdev: tuple[int, int] = (0, 0),
) -> bytes:
    """One newc header with its NUL-terminated, 4-byte padded name."""
    encoded = name.encode("utf-8", "surrogateescape") + b"\0"
    fields = (
        ino,
        mode,
        uid,
        gid,
        nlink,
        max(0, mtime),
        size,
        3,
        1,
        rdev[0],
        rdev[1],
        len(encoded),
        0,
    )
    head = b"070701" + b"".join(_field(f) for f in fields) + encoded
    return head + pad4(len(head))


def trailer(ino: int = 0, mtime: int = 0) -> bytes:
    """The ``TRAILER!!!`` record."""
    return cpio_header(TRAILER, 0, ino=ino, nlink=1, mtime=mtime)


class CpioEncoder:
    """Turns tar entries into newc records; keeps the running inode number."""

    def __init__(self, first_inode: int = FIRST_INODE) -> None:
        self.inode = first_inode

    def header(self, info: tarfile.TarInfo) -> tuple[bytes, bytes | None]:
        """The record header for `info` and, for links, the link target as data."""
        kind = _TYPE_BITS.get(info.type)
        if kind is None:
            raise BuildError(
                f"cannot convert tar file: {info.name} has unsupported type {info.type!r}"
            )
        link: bytes | None = None
        size = info.size if kind == stat.S_IFREG else 0
        if info.type == tarfile.LNKTYPE:
            # As LinuxKit: a hard link becomes a symlink relative to the link's directory.
            rel = posixpath.relpath(info.linkname, posixpath.dirname(info.name) or ".")
            link = rel.encode("utf-8", "surrogateescape")
        elif info.type == tarfile.SYMTYPE:
            link = info.linkname.encode("utf-8", "surrogateescape")
        if link is not None:
            size = len(link)
        head = cpio_header(
            # Names as the tar has them (a directory may end in "/"), as LinuxKit copies them.
            info.name or ".",
            kind | (info.mode & 0o7777),
            ino=self.inode,
            uid=info.uid,
            gid=info.gid,
            nlink=2 if kind == stat.S_IFDIR else 1,
            mtime=int(info.mtime),
            size=size,
            rdev=(info.devmajor, info.devminor) if kind in (stat.S_IFCHR, stat.S_IFBLK) else (0, 0),
        )
        self.inode += 1
        return head, link
