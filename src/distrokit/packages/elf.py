"""Shared-library closure of ELF binaries, resolved inside an unpacked tree (never the host).

For each binary: its PT_INTERP (the dynamic loader) and DT_NEEDED entries, searched in
DT_RUNPATH/DT_RPATH (``$ORIGIN`` expanded) and then the default Debian library directories of the
tree, recursively. Every symlink met on the way (``/lib64/ld-linux-x86-64.so.2`` ->
``/lib/x86_64-linux-gnu/ld-linux-x86-64.so.2``) is part of the closure, so the copied tree
resolves exactly as the loader will resolve it.
"""

from __future__ import annotations

import posixpath
from collections.abc import Iterable
from pathlib import Path

from elftools.common.exceptions import ELFError
from elftools.elf.dynamic import DynamicSection
from elftools.elf.elffile import ELFFile
from elftools.elf.segments import InterpSegment

from distrokit.errors import PackageError

# Debian's multiarch and legacy library directories, in the loader's default order.
DEFAULT_LIBRARY_DIRS = (
    "/lib/x86_64-linux-gnu",
    "/usr/lib/x86_64-linux-gnu",
    "/lib64",
    "/usr/lib64",
    "/lib",
    "/usr/lib",
    "/usr/local/lib",
)


def _inside(root: Path, path: str) -> Path:
    return root / path.lstrip("/")


def resolve(root: Path, path: str, touched: set[str]) -> str | None:
    """Resolve absolute `path` inside `root`, following symlinks within the tree.

    Every symlink on the way and the final target are added to `touched`. Returns the final
    path (absolute, inside the tree) or None when it does not exist there.
    """
    parts = [p for p in path.split("/") if p]
    current = "/"
    hops = 0
    while parts:
        name = parts.pop(0)
        candidate = posixpath.join(current, name)
        real = _inside(root, candidate)
        if real.is_symlink():
            hops += 1
            if hops > 40:
                raise PackageError(f"too many levels of symlinks resolving {path} in the tree")
            touched.add(candidate)
            target = str(real.readlink())
            base = "/" if target.startswith("/") else current
            joined = posixpath.normpath(posixpath.join(base, target))
            parts = [p for p in joined.split("/") if p] + parts
            current = "/"
            continue
        if not real.exists() and not real.is_symlink():
            return None
        current = candidate
    touched.add(current)
    return current


def _dynamic_info(file: Path) -> tuple[str | None, list[str], list[str]]:
    """(interpreter, needed sonames, runpath entries) of an ELF file; empty for non-ELF."""
    try:
        with file.open("rb") as f:
            elf = ELFFile(f)
            interp: str | None = None
            needed: list[str] = []
            runpath: list[str] = []
            for segment in elf.iter_segments():
                if isinstance(segment, InterpSegment):
                    interp = str(segment.get_interp_name())
            for section in elf.iter_sections():
                if not isinstance(section, DynamicSection):
                    continue
                for tag in section.iter_tags():
                    # pyelftools sets these attributes per tag kind, untyped.
                    kind = tag.entry.d_tag
                    if kind == "DT_NEEDED":
                        needed.append(str(getattr(tag, "needed")))  # noqa: B009
                    elif kind in ("DT_RUNPATH", "DT_RPATH"):
                        value = str(getattr(tag, kind[3:].lower()))
                        runpath.extend(p for p in value.split(":") if p)
            return interp, needed, runpath
    except ELFError:
        return None, [], []


def library_closure(root: Path, binaries: Iterable[str]) -> set[str]:
    """Absolute paths (inside `root`) of the binaries, their libraries, loader and symlinks."""
    touched: set[str] = set()
    queue: list[str] = []
    for binary in binaries:
        real = resolve(root, binary, touched)
        if real is None:
            raise PackageError(f"binary {binary} is not in the unpacked packages")
        queue.append(real)
    seen: set[str] = set()
    while queue:
        path = queue.pop()
        if path in seen:
            continue
        seen.add(path)
        interp, needed, runpath = _dynamic_info(_inside(root, path))
        if interp is not None:
            found = resolve(root, interp, touched)
            if found is None:
                raise _missing(interp, path)
            queue.append(found)
        origin = posixpath.dirname(path)
        dirs = [d.replace("$ORIGIN", origin).replace("${ORIGIN}", origin) for d in runpath]
        for soname in needed:
            found = _find_library(root, soname, [*dirs, *DEFAULT_LIBRARY_DIRS], touched)
            if found is None:
                raise _missing(soname, path)
            queue.append(found)
    return touched


def _find_library(root: Path, soname: str, dirs: list[str], touched: set[str]) -> str | None:
    if "/" in soname:
        return resolve(root, soname, touched)
    for directory in dirs:
        if _inside(root, posixpath.join(directory, soname)).exists():
            return resolve(root, posixpath.join(directory, soname), touched)
    return None


def _missing(soname: str, needed_by: str) -> PackageError:
    return PackageError(
        f"{soname}, needed by {needed_by}, is not in the unpacked packages",
        hint="add the Debian package that ships it to debian.packages "
        f"(on a Debian host: dpkg -S {posixpath.basename(soname)})",
    )
