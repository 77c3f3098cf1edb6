"""LinuxKit's per-image filters (section 2.3) over a flattened image, under a prefix.

`image_entries` drops the names LinuxKit never copies, replaces ``etc/hosts`` and
``etc/resolv.conf``, appends the "ensured" entries and moves everything under a prefix. The
flattening itself (layers, whiteouts) is `distrokit.oci.flatten`.
"""

from __future__ import annotations

import io
import tarfile
from collections.abc import Iterator

from distrokit.tarstream import (
    Entry,
    Origin,
    directory,
    generated_mtime,
    regular,
    set_origin,
    symlink,
)

# Section 2.3: names never copied out of an image.
EXCLUDED = frozenset(
    {".dockerenv", "Dockerfile", "dev/console", "dev/pts", "dev/shm", "etc/hostname"}
)
HOSTS = (
    b"127.0.0.1       localhost\n"
    b"::1     localhost ip6-localhost ip6-loopback\n"
    b"fe00::0 ip6-localnet\n"
    b"ff00::0 ip6-mcastprefix\n"
    b"ff02::1 ip6-allnodes\n"
    b"ff02::2 ip6-allrouters\n"
)
NO_RESOLV = b"\n# no resolv.conf configured\n"
RESOLV_LINK = "/run/resolvconf/resolv.conf"
ENSURED_DIRS = ("dev", "dev/pts", "dev/shm", "etc")
ENSURED_TAIL_DIRS = ("proc", "sys")


def _retag(entry: Entry, name: str, origin: Origin) -> Entry:
    info = entry.info
    info.name = name
    set_origin(info, origin)
    return Entry(info, entry.data)


def image_entries(
    entries: Iterator[Entry],
    prefix: str,
    origin: Origin,
    *,
    resolv_symlink: bool,
) -> Iterator[Entry]:
    """Apply section 2.3 to a flattened image and move it under `prefix` ("" or "a/b/").

    `resolv_symlink` (init images and volumes) turns ``etc/resolv.conf`` into a symlink to
    ``/run/resolvconf/resolv.conf`` instead of LinuxKit's "no resolv.conf" file. As LinuxKit
    does, an image's own ``etc/hosts`` and ``etc/resolv.conf`` are replaced where they stand
    and the generated ones are appended again after the image (the later entry wins).
    """
    found: set[str] = set()
    for entry in entries:
        info = entry.info
        name = info.name
        if name in EXCLUDED:
            continue
        if name in ("etc/hosts", "etc/resolv.conf"):
            yield _replaced(entry, prefix + name, origin, resolv_symlink)
            continue
        if name == "etc/mtab":
            found.add(name)
            info.mtime = generated_mtime()
        if info.islnk():
            info.linkname = prefix + info.linkname
        if not info.isreg():
            info.size = 0
        yield _retag(entry, prefix + name, origin)
    yield from ensured_entries(prefix, origin, found, resolv_symlink)


def _replaced(entry: Entry, name: str, origin: Origin, resolv_symlink: bool) -> Entry:
    """An image's own hosts/resolv.conf: LinuxKit keeps its header (mode, owner, records),
    swaps the contents and gives it the generated mtime."""
    info = entry.info
    info.mtime = generated_mtime()
    info.linkname = ""
    if name.endswith("resolv.conf") and resolv_symlink:
        info.type = tarfile.SYMTYPE
        info.linkname = RESOLV_LINK
        info.size = 0
        return _retag(Entry(info), name, origin)
    content = HOSTS if name.endswith("hosts") else NO_RESOLV
    # LinuxKit fails on a link or directory here; a regular file is what it means to write.
    info.type = tarfile.REGTYPE
    info.size = len(content)
    return _retag(Entry(info, io.BytesIO(content)), name, origin)


def ensured_entries(
    prefix: str, origin: Origin, found: set[str], resolv_symlink: bool
) -> Iterator[Entry]:
    """The directories and files LinuxKit appends after every image (2.3 "ensured").

    Directories are always appended (LinuxKit compares against names with a trailing slash that
    never match, so they appear twice), and so are ``etc/hosts`` and ``etc/resolv.conf`` (an
    image's own were replaced, not counted); ``etc/mtab`` only when the image lacks it. The
    symlinks carry LinuxKit's modes: 0755 for ``etc/mtab``, 0644 for ``etc/resolv.conf``.
    """
    for name in ENSURED_DIRS:
        yield directory(prefix + name, origin)
    yield regular(prefix + "etc/hosts", HOSTS, origin)
    if "etc/mtab" not in found:
        yield symlink(prefix + "etc/mtab", "/proc/mounts", origin, mode=0o755)
    if resolv_symlink:
        yield symlink(prefix + "etc/resolv.conf", RESOLV_LINK, origin, mode=0o644)
    else:
        yield regular(prefix + "etc/resolv.conf", NO_RESOLV, origin)
    for name in ENSURED_TAIL_DIRS:
        yield directory(prefix + name, origin)


def prefix_dirs(prefix: str, origin: Origin) -> Iterator[Entry]:
    """One directory entry per component of `prefix` ("a/b/" -> a, a/b), as LinuxKit writes."""
    parts = [p for p in prefix.split("/") if p]
    for i in range(1, len(parts) + 1):
        yield directory("/".join(parts[:i]), origin)
