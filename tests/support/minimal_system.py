"""Builds examples/minimal.yml from distrokit's own packages for the boot tests and benchmarks.

The packages and the example are copied into a fresh git repository (so the `@pkg:` tags are
clean tree hashes whatever the state of the work tree), built with `distrokit pkg build`, and
the system with `distrokit build -format kernel+initrd`, optionally with a test overlay.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
import time
from pathlib import Path

import requests
from guest import Boot

from distrokit.host import Host

ROOT = Path(__file__).resolve().parents[2]
SERVICES = ("getty", "rngd", "dhcpcd", "nginx", "poweroff")
# What examples/minimal.yml (and the test overlay) use.
PACKAGES = (
    "kernel", "init", "runc", "containerd", "ca-certificates", "sysctl", "getty", "rngd",
    "dhcpcd", "nginx", "poweroff",
)  # fmt: skip

# Merged after examples/minimal.yml: powers off 3 s after nginx logged a request, and says
# goodbye from an onshutdown container.
TEST_OVERLAY = """\
onshutdown:
  - name: goodbye
    image: "@pkg:../pkg/poweroff"
    command: [/bin/sh, -c, "echo onshutdown-goodbye"]
services:
  - name: poweroff
    image: "@pkg:../pkg/poweroff"
    command: [/bin/poweroff-after, "3"]
    env: [WAIT_FOR=/var/log/nginx.log, "WAIT_PATTERN=GET /", PATH=/bin:/sbin]
"""


def _distrokit(*args: str, cwd: Path) -> str:
    proc = subprocess.run(
        [sys.executable, "-m", "distrokit", *args],
        cwd=cwd,
        capture_output=True,
        text=True,
        check=False,
        timeout=900,
    )
    assert proc.returncode == 0, f"distrokit {' '.join(args)} failed:\n{proc.stderr}"
    return proc.stdout


def build_packages(
    work: Path, packages: tuple[str, ...], *, extra: dict[str, str] | None = None
) -> tuple[Path, str]:
    """pkg/ and examples/ (plus `extra` files) committed to a fresh git repository in `work`,
    so the `@pkg:` tags are clean tree hashes, and `packages` built into `work`/cache.
    Returns the repository and the cache directory."""
    repo = work / "repo"
    shutil.copytree(ROOT / "pkg", repo / "pkg")
    shutil.copytree(ROOT / "examples", repo / "examples")
    for name, text in (extra or {}).items():
        (repo / name).write_text(text)
    git = ["git", "-C", str(repo), "-c", "user.name=t", "-c", "user.email=t@t"]
    host = Host()
    host.run([*git, "init", "-q"])
    host.run([*git, "add", "."])
    host.run([*git, "commit", "-qm", "packages"])
    cache = str(work / "cache")
    _distrokit("pkg", "build", "--cache", cache, *(f"pkg/{p}" for p in packages), cwd=repo)
    return repo, cache


def build_minimal_system(work: Path, *, overlay: str | None = TEST_OVERLAY) -> Path:
    """Build every package and examples/minimal.yml (plus `overlay`); return the NAME prefix."""
    files = ["examples/minimal.yml"]
    extra = {}
    if overlay is not None:
        extra["examples/test-overlay.yml"] = overlay
        files.append("examples/test-overlay.yml")
    repo, cache = build_packages(work, PACKAGES, extra=extra)
    out = work / "out"
    out.mkdir()
    _distrokit(
        "build", "--cache", cache, "-format", "kernel+initrd", "--name", "minimal",
        "--dir", str(out), *files, cwd=repo,
    )  # fmt: skip
    return out / "minimal"


def free_port() -> int:
    """A TCP port nothing listens on right now."""
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def wait_http(url: str, boot: Boot, timeout: float) -> requests.Response:
    """GET `url` until it answers 200; fails when the VM ends or time runs out."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if boot.proc.poll() is not None:
            raise AssertionError(f"VM ended before {url} answered:\n{boot.text()}")
        try:
            response = requests.get(url, timeout=3)
            if response.status_code == 200:
                return response
        except requests.RequestException:
            pass
        time.sleep(0.5)
    raise AssertionError(f"{url} did not answer within {timeout}s:\n{boot.text()}")
