"""Package tags, computed exactly as `linuxkit pkg show-tag` computes them.

Tag = ``<org>/<image>:<hash>`` where the hash is the git tree object id of the package directory
at the hash commit (default HEAD): ``git ls-tree --full-tree <commit> -- <dir>``, or the commit's
own tree when the package is the repository root. With `extra-sources` the tree ids are
concatenated and SHA-1'd. A package with uncommitted changes or untracked files gets
``-dirty-<first 7 hex of SHA-256 over the contents of its tracked, then untracked files>`` (as
listed by ``git ls-files`` run in the package directory; directories and symlinks skipped).
Outside git there is no hash and the tag is ``latest``.
"""

from __future__ import annotations

import hashlib
import os
import re
from dataclasses import dataclass
from pathlib import Path

from distrokit.errors import CommandError, PackageError
from distrokit.host import Host
from distrokit.packages.buildyml import BuildYml, load_build_yml
from distrokit.reference import expand

_TREE_LINE = re.compile(r"^[0-7]{6} [^ ]+ ([0-9a-f]{40,64})\t.+$")


@dataclass(frozen=True, kw_only=True)
class TagOptions:
    """Command-line overrides of the tag (LinuxKit's `pkg` flags)."""

    org: str | None = None
    hash: str | None = None
    hash_commit: str = "HEAD"
    hash_path: Path | None = None
    force_dirty: bool = False
    dev: bool = False
    build_yml: str = "build.yml"


@dataclass(frozen=True, kw_only=True)
class PackageInfo:
    """A package directory with its build.yml and computed tag."""

    path: Path
    spec: BuildYml
    org: str
    hash: str
    dirty: bool

    @property
    def tag(self) -> str:
        """``<org>/<image>:<tag>``; ``latest`` when no hash could be computed."""
        rendered = self.spec.tag.replace("{{.Hash}}", self.hash) if self.hash else ""
        return f"{self.org}/{self.spec.image}:{rendered or 'latest'}"

    @property
    def canonical(self) -> str:
        """The tag expanded with its registry, e.g. ``docker.io/linuxkit/init:<hash>``."""
        return expand(self.tag)


def show_tag(path: str | Path, host: Host | None = None, options: TagOptions | None = None) -> str:
    """The tag of the package at `path`, as `linuxkit pkg show-tag` prints it."""
    return package_info(Path(path), host or Host(), options or TagOptions()).tag


def package_info(path: Path, host: Host, options: TagOptions) -> PackageInfo:
    """Read the package at `path` and compute its org, hash and dirtiness."""
    pkg = path.resolve()
    if not pkg.is_dir():
        raise PackageError(f"{path}: not a package directory")
    spec = load_build_yml(pkg, options.build_yml)
    org = spec.org
    pkg_hash = options.hash or ""
    if options.dev:
        org = os.environ.get("USER", "dev")
        pkg_hash = pkg_hash or "dev"
    if options.org is not None:
        org = options.org
    hash_path = options.hash_path.resolve() if options.hash_path else pkg
    if not str(pkg).startswith(str(hash_path)):
        raise PackageError(f"hash path {hash_path} is not a prefix of the package path {pkg}")
    git = _Git(host, pkg)
    dirty = False
    if git.inside():
        dirty = options.force_dirty or git.is_dirty(hash_path, options.hash_commit)
        if not pkg_hash:
            pkg_hash = git.tree_hash(hash_path, options.hash_commit)
            extra = [
                git.tree_hash(_source(pkg, s), options.hash_commit) for s in spec.extra_sources
            ]
            if extra:
                pkg_hash = hashlib.sha1("".join([pkg_hash, *extra]).encode()).hexdigest()
            if dirty:
                pkg_hash += "-dirty-" + git.content_hash()[:7]
    return PackageInfo(path=pkg, spec=spec, org=org, hash=pkg_hash, dirty=dirty)


def _source(pkg: Path, source: str) -> Path:
    src, sep, _dst = source.partition(":")
    if not sep:
        raise PackageError(f"{pkg}: bad extra-sources entry '{source}' (expected src:dst)")
    return (pkg / src).resolve()


@dataclass(frozen=True)
class _Git:
    """git run in one directory, as LinuxKit's pkglib runs it (``git -C <dir> ...``)."""

    host: Host
    dir: Path

    def _out(self, *args: str) -> str:
        return self.host.output(["git", "-C", str(self.dir), *args])

    def inside(self) -> bool:
        if not self.host.has("git"):
            return False
        try:
            return self._out("rev-parse", "--is-inside-work-tree").strip() == "true"
        except CommandError:
            return False

    def tree_hash(self, path: Path, commit: str) -> str:
        top = self._out("rev-parse", "--prefix", str(path), "--show-toplevel").strip()
        if Path(top) == path:
            return self._out("show", "--format=%T", "-s", commit).strip()
        out = self._out("ls-tree", "--full-tree", commit, "--", str(path))
        if not out:
            raise PackageError(
                f"package {path} is not in git at {commit}",
                hint="commit the package directory, or pass --hash",
            )
        match = _TREE_LINE.match(out.rstrip("\n"))
        if match is None:
            raise PackageError(f"cannot parse git ls-tree output for {path}: {out!r}")
        return match.group(1)

    def is_dirty(self, path: Path, commit: str) -> bool:
        if commit != "HEAD":
            return False
        diff = ["git", "-C", str(self.dir), "diff", "--no-ext-diff", "--exit-code", "--quiet"]
        if self.host.run([*diff, commit, "--", str(path)], check=False).returncode != 0:
            return True
        untracked = [
            *("git", "-C", str(self.dir), "ls-files", "--exclude-standard", "--others"),
            *("--error-unmatch", "--", str(path)),
        ]
        return self.host.run(untracked, check=False, capture=True).returncode == 0

    def content_hash(self) -> str:
        tracked = self._out("ls-files")
        untracked = self._out("ls-files", "--exclude-standard", "--others")
        digest = hashlib.sha256()
        for name in "\n".join([tracked, untracked]).strip().splitlines():
            file = self.dir / name
            # LinuxKit skips what it cannot stat (deleted files), directories and symlinks.
            if not file.exists() or file.is_symlink() or file.is_dir():
                continue
            with file.open("rb") as f:
                while chunk := f.read(1 << 20):
                    digest.update(chunk)
        return digest.hexdigest()
