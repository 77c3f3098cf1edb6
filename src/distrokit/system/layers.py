"""Flatten an image's layers into one entry stream, then LinuxKit's per-image filters (2.3).

`flatten` reads the layers top-down in a single pass, the way go-containerregistry's extract
(which LinuxKit uses) does: an entry is emitted the first time its path is seen, so the top
layer wins and a directory already seen is not repeated. Whiteouts (``.wh.<name>``) hide the
name and everything below it in lower layers; opaque markers (``.wh..wh..opq``) hide the
directory's contents in lower layers (go-containerregistry ignores these; we apply them, see
docs/compatibility.md). Only names are remembered, never contents.

`image_entries` applies the filters of section 2.3 and moves entries under a prefix.
"""

from __future__ import annotations

import posixpath
import tarfile
from collections.abc import Callable, Generator, Iterator
from contextlib import closing
from typing import IO

from distrokit.errors import BuildError
from distrokit.oci.image import LayerStream
from distrokit.tarstream import Entry, Origin, directory, regular, set_origin, symlink

WHITEOUT = ".wh."
OPAQUE = ".wh..wh..opq"

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

# Larger buffers make tarfile's stream reader copy more on every header read.
READ_BUFSIZE = 64 * 1024

LayerOpener = Callable[[int], IO[bytes]]


def clean_name(name: str) -> str:
    """A tar member name as go-containerregistry stores it: cleaned, relative, no slash."""
    cleaned = posixpath.normpath("/" + name).lstrip("/")
    return cleaned or "."


def _hidden(name: str, gone: set[str], opaque: set[str]) -> bool:
    """Whether a whiteout/opaque marker of a higher layer hides `name`."""
    parent = name
    while True:
        parent = posixpath.dirname(parent)
        if parent in gone:
            return True
        if parent in opaque:
            return True
        if not parent:
            return False


def flatten(layer_count: int, open_layer: LayerOpener) -> Generator[Entry, None, None]:
    """Entries of the flattened image, topmost layer first; regular files carry their data.

    Yields `Entry` objects whose data must be consumed before the next one is requested.
    """
    seen: set[str] = set()
    gone: set[str] = set()
    opaque: set[str] = set()
    for index in reversed(range(layer_count)):
        new_opaque: set[str] = set()
        new_gone: set[str] = set()
        with closing(open_layer(index)) as stream, _layer_tar(stream, index) as tar:
            for member in tar:
                name = clean_name(member.name)
                base = posixpath.basename(name)
                parent = posixpath.dirname(name)
                if base == OPAQUE:
                    new_opaque.add(parent)
                    continue
                if base.startswith(WHITEOUT):
                    new_gone.add(posixpath.join(parent, base[len(WHITEOUT) :]))
                    continue
                if name in seen or name in gone or _hidden(name, gone, opaque):
                    continue
                seen.add(name)
                if not member.isdir():
                    # A file or link also hides anything below its name in lower layers.
                    new_gone.add(name)
                member.name = name
                if member.islnk():
                    member.linkname = clean_name(member.linkname)
                data = tar.extractfile(member) if member.isreg() else None
                yield Entry(member, data)
            if isinstance(stream, LayerStream):
                # tar stops at its end-of-archive blocks: verify the rest of the blob too.
                stream.finish()
        # A layer's markers only affect the layers below it.
        gone |= new_gone
        opaque |= new_opaque


def _layer_tar(stream: IO[bytes], index: int) -> tarfile.TarFile:
    try:
        return tarfile.open(fileobj=stream, mode="r|", bufsize=READ_BUFSIZE)
    except tarfile.TarError as err:
        raise BuildError(f"image layer {index} is not a valid tar archive: {err}") from err


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
