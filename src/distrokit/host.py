"""The one door to the outside: every external program distrokit starts goes through `Host`.

argv lists only (never a shell string), a clean environment, the command logged at debug level,
and a `ToolMissingError` that names the Debian package when a program is absent. Components take
a `Host` as a parameter so tests can substitute a recording one without patching globals.
"""

from __future__ import annotations

import logging
import os
import shutil
import subprocess
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

from distrokit.errors import CommandError, ToolMissingError

log = logging.getLogger(__name__)

# Which Debian package provides each host program distrokit may run. scripts/setup installs them.
TOOL_PACKAGES: Mapping[str, str] = {
    "qemu-system-x86_64": "qemu-system-x86",
    "qemu-system-aarch64": "qemu-system-arm",
    "qemu-img": "qemu-utils",
    "docker-registry": "docker-registry",
    "skopeo": "skopeo",
    "buildah": "buildah",
    "busybox": "busybox-static",
    "runc": "runc",
    "containerd": "containerd",
    "xorriso": "xorriso",
    "mkfs.vfat": "dosfstools",
    "mcopy": "mtools",
    "mmd": "mtools",
    "mke2fs": "e2fsprogs",
    "mkfs.ext4": "e2fsprogs",
    "e2fsck": "e2fsprogs",
    "debugfs": "e2fsprogs",
    "mksquashfs": "squashfs-tools",
    "unsquashfs": "squashfs-tools",
    "mkfs.erofs": "erofs-utils",
    "cpio": "cpio",
    "ldd": "libc-bin",
    "zstd": "zstd",
    "pigz": "pigz",
    "sfdisk": "fdisk",
    "sgdisk": "gdisk",
    "isohybrid": "syslinux-utils",
    "extlinux": "extlinux",
    "syslinux": "syslinux",
    "grub-mkimage": "grub-common",
    "apt-get": "apt",
    "apt-cache": "apt",
    "jq": "jq",
    "dpkg-deb": "dpkg",
    "depmod": "kmod",
    "git": "git",
    "htpasswd": "apache2-utils",
    "openssl": "openssl",
    "ssh": "openssh-client",
    "ssh-keygen": "openssh-client",
    "blkid": "util-linux",
    "dnsmasq": "dnsmasq-base",
    # compiling kernels (distrokit.packages.kernelbuild)
    "make": "make",
    "gcc": "gcc",
    "flex": "flex",
    "bison": "bison",
    "bc": "bc",
    "tar": "tar",
    "xz": "xz-utils",
}

# Variables passed through to children; everything else is dropped for reproducibility.
_KEEP_ENV = ("PATH", "HOME", "TMPDIR", "LANG", "LC_ALL", "TERM", "SOURCE_DATE_EPOCH", "USER")


def clean_env(extra: Mapping[str, str] | None = None) -> dict[str, str]:
    """The environment children get: a few known variables, then `extra`."""
    env = {k: os.environ[k] for k in _KEEP_ENV if k in os.environ}
    env.setdefault("PATH", "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin")
    env.setdefault("LC_ALL", "C.UTF-8")
    if extra:
        env.update(extra)
    return env


def terminate(proc: subprocess.Popen[Any], grace: float) -> None:
    """Stop a program we started: SIGTERM, and SIGKILL if it is still there after `grace`
    seconds; always reaped."""
    if proc.poll() is None:
        proc.terminate()
        try:
            proc.wait(timeout=grace)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def _search_path() -> str:
    # sbin directories hold mke2fs, sfdisk and friends; a non-root PATH often lacks them.
    path = os.environ.get("PATH", "")
    extra = [d for d in ("/usr/sbin", "/sbin") if d not in path.split(os.pathsep)]
    return os.pathsep.join([path, *extra]) if path else os.pathsep.join(extra)


@dataclass
class Host:
    """Runs host programs. Subclass or wrap it to record argv in tests."""

    debug: bool = False
    extra_env: dict[str, str] = field(default_factory=dict)

    def which(self, tool: str) -> str:
        """Absolute path of `tool`, or `ToolMissingError` naming its Debian package."""
        if os.sep in tool:
            if os.access(tool, os.X_OK):
                return tool
            raise ToolMissingError(tool, None)
        found = shutil.which(tool, path=_search_path())
        if found is None:
            raise ToolMissingError(tool, TOOL_PACKAGES.get(tool))
        return found

    def has(self, tool: str) -> bool:
        """Whether `tool` is installed."""
        try:
            self.which(tool)
        except ToolMissingError:
            return False
        return True

    def check_tools(self, tools: Iterable[str]) -> None:
        """Raise for the first missing tool, before any work starts."""
        for tool in tools:
            self.which(tool)

    def _argv(self, argv: Sequence[str | os.PathLike[str]]) -> list[str]:
        args = [os.fspath(a) for a in argv]
        args[0] = self.which(args[0])
        log.debug("run: %s", " ".join(args))
        return args

    def run(
        self,
        argv: Sequence[str | os.PathLike[str]],
        *,
        input: bytes | None = None,
        stdin: IO[Any] | int | None = None,
        stdout: IO[Any] | int | None = None,
        capture: bool = False,
        check: bool = True,
        env: Mapping[str, str] | None = None,
        cwd: str | Path | None = None,
        timeout: float | None = None,
    ) -> subprocess.CompletedProcess[bytes]:
        """Run a program to completion. With `capture`, stdout and stderr are returned."""
        args = self._argv(argv)
        try:
            proc = subprocess.run(
                args,
                input=input,
                stdin=stdin if input is None else None,
                stdout=subprocess.PIPE if capture else stdout,
                stderr=subprocess.PIPE,
                env=clean_env({**self.extra_env, **(env or {})}),
                cwd=cwd,
                timeout=timeout,
                check=False,
            )
        except FileNotFoundError as err:
            raise ToolMissingError(args[0], TOOL_PACKAGES.get(Path(args[0]).name)) from err
        if check and proc.returncode != 0:
            raise CommandError(args, proc.returncode, proc.stderr.decode(errors="replace"))
        return proc

    def output(self, argv: Sequence[str | os.PathLike[str]], **kwargs: Any) -> str:
        """Run a program and return its stdout as text."""
        return self.run(argv, capture=True, **kwargs).stdout.decode(errors="replace")

    def popen(
        self,
        argv: Sequence[str | os.PathLike[str]],
        *,
        env: Mapping[str, str] | None = None,
        **kwargs: Any,
    ) -> subprocess.Popen[bytes]:
        """Start a long-running program (a VM, a registry) and return its handle."""
        args = self._argv(argv)
        return subprocess.Popen(args, env=clean_env({**self.extra_env, **(env or {})}), **kwargs)
