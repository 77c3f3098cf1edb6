"""LinuxKit's per-image filters (section 2.3) over a flattened image, under a prefix.

`image_entries` drops the names LinuxKit never copies, replaces ``etc/hosts`` and
``etc/resolv.conf``, appends the "ensured" entries and moves everything under a prefix. The
flattening itself (layers, whiteouts) is `distrokit.oci.flatten`.
"""

from __future__ import annotations

import tarfile
from collections.abc import Iterator

from distrokit.tarstream import Entry, Origin, directory, regular, set_origin, symlink

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
    ``/run/resolvconf/resolv.conf`` instead of LinuxKit's "no resolv.conf" file.
    """
    found: set[str] = set()
    for entry in entries:
        info = entry.info
        name = info.name
        if name in EXCLUDED:
            continue
        if name in ("etc/hosts", "etc/resolv.conf", "etc/mtab"):
            found.add(name)
            replaced = _replacement(name, prefix, origin, resolv_symlink, info)
            if replaced is not None:
                yield replaced
                continue
        if info.islnk():
            info.linkname = prefix + info.linkname
        if not info.isreg():
            info.size = 0
        yield _retag(entry, prefix + name, origin)
    yield from ensured_entries(prefix, origin, found, resolv_symlink)


def _replacement(
    name: str, prefix: str, origin: Origin, resolv_symlink: bool, image: tarfile.TarInfo | None
) -> Entry | None:
    """The replaced file; an image's own entry keeps its mode, owner and mtime (LinuxKit only
    swaps the contents)."""
    entry: Entry
    if name == "etc/hosts":
        entry = regular(prefix + name, HOSTS, origin, mode=0o644)
    elif name == "etc/resolv.conf" and resolv_symlink:
        entry = symlink(prefix + name, RESOLV_LINK, origin)
    elif name == "etc/resolv.conf":
        entry = regular(prefix + name, NO_RESOLV, origin, mode=0o644)
    else:
        return None  # etc/mtab from the image is kept as it is
    if image is not None:
        info = entry.info
        info.mtime, info.uid, info.gid = image.mtime, image.uid, image.gid
        info.uname, info.gname = image.uname, image.gname
        if info.isreg():
            info.mode = image.mode
    return entry


def ensured_entries(
    prefix: str, origin: Origin, found: set[str], resolv_symlink: bool
) -> Iterator[Entry]:
    """The directories and files LinuxKit appends after every image (2.3 "ensured").

    Directories are always appended (LinuxKit compares against names with a trailing slash that
    never match, so they appear twice); files only when the image lacks them.
    """
    for name in ENSURED_DIRS:
        yield directory(prefix + name, origin)
    if "etc/hosts" not in found:
        yield regular(prefix + "etc/hosts", HOSTS, origin)
    if "etc/mtab" not in found:
        yield symlink(prefix + "etc/mtab", "/proc/mounts", origin)
    if "etc/resolv.conf" not in found:
        replaced = _replacement("etc/resolv.conf", prefix, origin, resolv_symlink, None)
        assert replaced is not None
        yield replaced
    for name in ENSURED_TAIL_DIRS:
        yield directory(prefix + name, origin)


def prefix_dirs(prefix: str, origin: Origin) -> Iterator[Entry]:
    """One directory entry per component of `prefix` ("a/b/" -> a, a/b), as LinuxKit writes."""
    parts = [p for p in prefix.split("/") if p]
    for i in range(1, len(parts) + 1):
        yield directory("/".join(parts[:i]), origin)
