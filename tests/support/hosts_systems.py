"""Systems for the host package boot tests, built from this repository's packages.

Packages are built with `distrokit pkg build`'s library into an image cache under the user's
cache directory, tagged with a hash of each package directory's content, so a rerun with no
package change builds nothing. The kernel is the stock pkg/kernel: it carries the modules
persistent disks and the metadata CD need (ext4, SCSI CD-ROM, ISO 9660).
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

from distrokit.cli import main
from distrokit.host import Host
from distrokit.oci.cache import Cache
from distrokit.packages.builder import BuildOptions, build_package
from distrokit.packages.debian import default_cache_dir
from distrokit.packages.tag import TagOptions, package_info

REPO = Path(__file__).resolve().parents[2]
PKG = REPO / "pkg"
SSH_OPTIONS = (
    "-o", "StrictHostKeyChecking=no", "-o", "UserKnownHostsFile=/dev/null",
    "-o", "BatchMode=yes", "-o", "ConnectTimeout=10", "-o", "LogLevel=ERROR",
)  # fmt: skip


def image_cache() -> Path:
    """Where the test images live between runs (tags change with the packages' content)."""
    base = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache")
    return base / "distrokit" / "boot-test-images"


def content_hash(directory: Path) -> str:
    """A hash of every file's relative path, mode and bytes under `directory`."""
    h = hashlib.sha256()
    for path in sorted(p for p in directory.rglob("*") if p.is_file()):
        h.update(f"{path.relative_to(directory)}\0{path.stat().st_mode & 0o777}\0".encode())
        h.update(path.read_bytes())
    return h.hexdigest()[:16]


def build_images(names: list[str], workdir: Path | None = None) -> dict[str, str]:
    """Build pkg/NAME for each name; name -> ref. `workdir` is unused: every package, the
    kernel included, is built from its own directory."""
    del workdir
    host, cache = Host(), Cache(image_cache())
    refs: dict[str, str] = {}
    for name in names:
        directory = PKG / name
        info = package_info(directory, host, TagOptions(hash=content_hash(directory)))
        build_package(info, cache, host, BuildOptions(deb_cache=default_cache_dir()))
        refs[name] = info.tag
    return refs


def build_system(yml: str, directory: Path, name: str) -> str:
    """`distrokit build -format kernel+initrd` of the YAML text; returns the prefix."""
    path = directory / f"{name}.yml"
    path.write_text(yml)
    argv = ["build", "--cache", str(image_cache()), "--format", "kernel+initrd"]
    status = main([*argv, "--dir", str(directory), str(path)])
    assert status == 0, f"distrokit build {path} failed"
    return str(directory / name)


def minimal_from_images(directory: Path, kernel: str = "kernel") -> str:
    """examples/minimal.yml built from the packages in the image cache (`build_images`), its
    kernel taken from pkg/`kernel` (e.g. kernel-vm); returns the NAME prefix."""
    yml = (REPO / "examples" / "minimal.yml").read_text()
    used = set(re.findall(r'"@pkg:\.\./pkg/([a-z0-9-]+)"', yml))
    refs = build_images(sorted(used - {"kernel"} | {kernel}))
    refs["kernel"] = refs[kernel]
    for name in used:
        yml = yml.replace(f'"@pkg:../pkg/{name}"', f'"{refs[name]}"')
    if "@pkg:" in yml:
        raise AssertionError(
            f"examples/minimal.yml has a package reference of another form:\n{yml}"
        )
    return build_system(yml, directory, f"minimal-{kernel}")


def system_yaml(
    refs: dict[str, str],
    onboot: list[dict[str, object]],
    services: list[dict[str, object]],
    files: list[dict[str, object]],
) -> str:
    """A system: kernel, init, runc, containerd, dhcpcd (onboot), then the given sections."""
    config = {
        "kernel": {"image": refs["kernel"], "cmdline": "console=ttyS0"},
        "init": [refs["init"], refs["runc"], refs["containerd"]],
        "onboot": [
            {
                "name": "dhcpcd",
                "image": refs["dhcpcd"],
                "command": ["/sbin/dhcpcd", "--nobackground", "-f", "/dhcpcd.conf", "-1"],
            },
            *onboot,
        ],
        "services": services,
        "files": files,
    }
    return json.dumps(config, indent=1)  # JSON is YAML


@dataclass(frozen=True)
class Ssh:
    """ssh to the guest's published port with a key."""

    port: int
    key: Path

    def run(self, command: str, timeout: float = 60) -> subprocess.CompletedProcess[str]:
        """Run `command` in the guest once."""
        argv = ["ssh", *SSH_OPTIONS, "-i", str(self.key), "-p", str(self.port)]
        return subprocess.run(
            [*argv, "root@127.0.0.1", command],
            capture_output=True,
            text=True,
            timeout=timeout,
            check=False,
        )

    def wait(self, command: str, timeout: float) -> str:
        """Retry `command` until it succeeds (sshd starting, guest booting); its output."""
        deadline = time.monotonic() + timeout
        last: subprocess.CompletedProcess[str] | None = None
        while time.monotonic() < deadline:
            try:
                last = self.run(command, timeout=30)
            except subprocess.TimeoutExpired:
                continue
            if last.returncode == 0:
                return last.stdout
            time.sleep(2)
        detail = f"{last.returncode}: {last.stdout}{last.stderr}" if last else "no answer"
        raise AssertionError(f"ssh {command!r} did not succeed within {timeout}s ({detail})")


def keypair(directory: Path, name: str) -> Path:
    """A new ed25519 key pair (keys/NAME, keys/NAME.pub) without passphrase."""
    (directory / "keys").mkdir(exist_ok=True)
    key = directory / "keys" / name
    Host().run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", name, "-f", str(key)])
    return key
