"""What goes into a Debian-built package image, chosen from the unpacked staging tree.

Only what the `debian:` block names is kept: binaries with their library closure, paths (files
or whole trees, optionally renamed), archives (a tree stored as a tar file, e.g. the kernel's
modules as ``/kernel.tar``), files copied from the package directory, symlinks and empty
directories, and what the build compiled (`debian.kernels`). An archive with ``depmod: true``
also carries the module indexes of exactly the modules it keeps (`distrokit.packages.depmod`).
The list of Debian package versions is written
to ``/usr/share/distrokit/<image>.packages``.
"""

from __future__ import annotations

import fnmatch
import os
import posixpath
import shutil
from pathlib import Path

from distrokit.env import source_date_epoch
from distrokit.errors import PackageError
from distrokit.host import Host
from distrokit.packages.buildyml import ArchiveSpec, ConcatSpec, DebianSpec, PathSpec
from distrokit.packages.depmod import module_indexes
from distrokit.packages.elf import library_closure
from distrokit.packages.layer import Member, member_from_disk, write_tar
from distrokit.packages.tag import PackageInfo

Plan = dict[str, Member]


def plan_debian_image(
    pkg: PackageInfo,
    *,
    spec: DebianSpec,
    staging: Path,
    work: Path,
    versions: list[str],
    layer: Path,
    host: Host,
    built: dict[str, Path] | None = None,
) -> None:
    """Select from `staging` per `spec` and write the layer tar to `layer` (`host` runs the
    programs an archive's options need: depmod). `built` maps image paths to files the build
    made (compiled kernels), stored with mode 0644."""
    plan: Plan = {}
    for path in sorted(library_closure(staging, spec.binaries)):
        plan[path] = member_from_disk(staging / path.lstrip("/"))
    for path_spec in spec.paths:
        _add_paths(plan, staging, path_spec)
    mtime = source_date_epoch(default=0)  # package layers: the epoch, as image builders do
    for index, archive in enumerate(spec.archives):
        tar_path = work / f"archive-{index}.tar"
        scratch = work / f"depmod-{index}"
        _write_archive(staging, archive, tar_path, mtime=mtime, host=host, scratch=scratch)
        plan[archive.dst] = Member(kind="file", source=tar_path, mode=0o644)
    for copy in spec.copy:
        what = f"{pkg.path}: copy {copy.src}"
        _add_tree(plan, pkg.path / copy.src, copy.dst, copy.mode, what, normalize=True)
    for index, concat in enumerate(spec.concat):
        joined = work / f"concat-{index}"
        _concat(staging, concat, joined)
        plan[concat.dst] = Member(kind="file", source=joined, mode=0o644)
    for dst, made in (built or {}).items():
        plan[dst] = Member(kind="file", source=made, mode=0o644)
    for link, target in spec.symlinks:
        plan[link] = Member(kind="symlink", target=target)
    for directory in spec.mkdir:
        plan[directory] = Member(kind="dir", mode=0o755)
    if versions:
        listing = "".join(f"{v}\n" for v in versions).encode()
        plan[f"/usr/share/distrokit/{pkg.spec.image}.packages"] = Member(kind="file", data=listing)
    with layer.open("wb") as out:
        write_tar(plan, out, mtime)


def _matches(staging: Path, pattern: str) -> list[Path]:
    rel = pattern.lstrip("/")
    if not any(c in rel for c in "*?["):
        found = staging / rel
        return [found] if found.exists() or found.is_symlink() else []
    return sorted(staging.glob(rel))


def _add_paths(plan: Plan, staging: Path, spec: PathSpec) -> None:
    found = _matches(staging, spec.src)
    if not found:
        raise PackageError(f"debian.paths: {spec.src} is not in the unpacked packages")
    if spec.dst is not None and len(found) != 1:
        names = ", ".join("/" + str(f.relative_to(staging)) for f in found)
        raise PackageError(
            f"debian.paths: {spec.src} matches {len(found)} paths ({names}), "
            "but a renamed path must match exactly one"
        )
    for match in found:
        dst = spec.dst or "/" + str(match.relative_to(staging))
        _add_tree(plan, match, dst, None, f"debian.paths {spec.src}")


def _git_mode(path: Path) -> int | None:
    """The mode git would give a checked-out file: 0755 if executable, else 0644.

    Files of the package directory get these whatever the local umask was, so the same
    commit builds the same image everywhere.
    """
    if path.is_symlink():
        return None
    if path.is_dir():
        return 0o755
    return 0o755 if path.stat().st_mode & 0o100 else 0o644


def _add_tree(
    plan: Plan, src: Path, dst: str, mode: int | None, what: str, *, normalize: bool = False
) -> None:
    if not src.exists() and not src.is_symlink():
        raise PackageError(f"{what}: {src} does not exist")
    top_mode = mode if mode is not None else (_git_mode(src) if normalize else None)
    plan[dst] = member_from_disk(src, top_mode)
    if src.is_symlink() or not src.is_dir():
        return
    for dirpath, dirnames, filenames in os.walk(src):
        dirnames.sort()
        base = Path(dirpath)
        for name in [*dirnames, *sorted(filenames)]:
            full = base / name
            rel = full.relative_to(src)
            entry = member_from_disk(full, _git_mode(full) if normalize else None)
            plan[posixpath.join(dst, rel.as_posix())] = entry


def _write_archive(
    staging: Path, spec: ArchiveSpec, out: Path, *, mtime: int, host: Host, scratch: Path
) -> None:
    root = staging / spec.src.lstrip("/")
    if not root.is_dir():
        raise PackageError(f"debian.archives: {spec.src} is not a directory of the packages")
    plan: Plan = {}
    selected: dict[str, Path] = {}
    for dirpath, dirnames, filenames in os.walk(root):
        dirnames.sort()
        base = Path(dirpath)
        for name in sorted(filenames):
            full = base / name
            rel = full.relative_to(root).as_posix()
            if spec.include is None or any(fnmatch.fnmatch(rel, p) for p in spec.include):
                plan["/" + full.relative_to(staging).as_posix()] = member_from_disk(full)
                selected[rel] = full
    if not plan:
        raise PackageError(f"debian.archives: nothing under {spec.src} matches {spec.include}")
    if spec.depmod:
        for rel, index in module_indexes(host, selected, scratch).items():
            # depmod's files get the umask's mode; a package's must not depend on it
            plan[posixpath.join(spec.src, rel)] = member_from_disk(index, 0o644)
    with out.open("wb") as f:
        write_tar(plan, f, mtime)


def _concat(staging: Path, spec: ConcatSpec, out: Path) -> None:
    files = [f for f in _matches(staging, spec.src) if f.is_file()]
    if not files:
        raise PackageError(f"debian.concat: {spec.src} matches no file of the packages")
    with out.open("wb") as dst:
        for file in files:
            with file.open("rb") as src:
                shutil.copyfileobj(src, dst, 1 << 20)
                # like update-ca-certificates: every file ends with a newline
                if file.stat().st_size and not _ends_with_newline(file):
                    dst.write(b"\n")


def _ends_with_newline(file: Path) -> bool:
    with file.open("rb") as f:
        f.seek(-1, os.SEEK_END)
        return f.read(1) == b"\n"
