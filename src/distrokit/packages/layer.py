"""Deterministic layer tars: the same planned entries always give the same bytes.

Entries are written in sorted path order, every missing parent directory is added (0755),
owners are 0:0 with empty names, and every mtime is one fixed value (SOURCE_DATE_EPOCH, or 0).
File contents are streamed from disk, never held whole in memory.
"""

from __future__ import annotations

import io
import posixpath
import stat
import tarfile
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Literal

from distrokit.errors import PackageError

EntryKind = Literal["file", "dir", "symlink"]


@dataclass(frozen=True, kw_only=True)
class Member:
    """One planned member of a package layer: a file (from `source` or `data`), a directory
    or a symlink. (A tar stream's entries are `distrokit.tarstream.Entry`.)"""

    kind: EntryKind
    mode: int = 0o644
    source: Path | None = None
    data: bytes | None = None
    target: str = ""


def member_from_disk(path: Path, mode: int | None = None) -> Member:
    """An entry copying what is at `path` (not following a final symlink)."""
    st = path.lstat()
    if stat.S_ISLNK(st.st_mode):
        return Member(kind="symlink", target=str(path.readlink()), mode=0o777)
    if stat.S_ISDIR(st.st_mode):
        return Member(kind="dir", mode=mode if mode is not None else stat.S_IMODE(st.st_mode))
    if stat.S_ISREG(st.st_mode):
        perm = mode if mode is not None else stat.S_IMODE(st.st_mode)
        return Member(kind="file", source=path, mode=perm)
    raise PackageError(f"{path}: only files, directories and symlinks can go into a package")


def _normal(path: str) -> str:
    clean = posixpath.normpath("/" + path.lstrip("/"))
    return clean.lstrip("/")


def write_tar(entries: Mapping[str, Member], out: IO[bytes], mtime: int) -> None:
    """Write `entries` (absolute image path -> entry) as a deterministic tar to `out`."""
    planned: dict[str, Member] = {}
    for path, entry in entries.items():
        name = _normal(path)
        if not name:
            continue
        planned[name] = entry
        parent = posixpath.dirname(name)
        while parent and parent not in planned:
            planned[parent] = Member(kind="dir", mode=0o755)
            parent = posixpath.dirname(parent)
    with tarfile.open(fileobj=out, mode="w|", format=tarfile.PAX_FORMAT) as tar:
        for name in sorted(planned):
            _add(tar, name, planned[name], mtime)


def _add(tar: tarfile.TarFile, name: str, entry: Member, mtime: int) -> None:
    info = tarfile.TarInfo(name)
    info.mtime = mtime
    info.uid = info.gid = 0
    info.uname = info.gname = ""
    info.mode = entry.mode
    if entry.kind == "dir":
        info.type = tarfile.DIRTYPE
        tar.addfile(info)
    elif entry.kind == "symlink":
        info.type = tarfile.SYMTYPE
        info.linkname = entry.target
        info.mode = 0o777
        tar.addfile(info)
    elif entry.data is not None:
        info.size = len(entry.data)
        tar.addfile(info, io.BytesIO(entry.data))
    elif entry.source is not None:
        info.size = entry.source.stat().st_size
        with entry.source.open("rb") as f:
            tar.addfile(info, f)
    else:
        raise PackageError(f"file entry {name} has no content")
