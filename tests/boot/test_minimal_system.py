"""examples/minimal.yml built from distrokit's own packages, booted in QEMU, checked from the host.

The packages and the example are copied into a fresh git repository (so the `@pkg:` tags are
clean tree hashes whatever the state of the work tree), built with `distrokit pkg build`, the
system with `distrokit build -format kernel+initrd` plus a small test overlay (an onshutdown
container and a poweroff service that powers off once nginx has served a request), and booted
with `distrokit run qemu`. The host checks: nginx answers on a published port, the sysctl
onboot container ran, `ctr -n services.linuxkit tasks ls` (printed by the init) lists every
service RUNNING, and the onshutdown container ran at poweroff.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
import time
from pathlib import Path

import requests
from guest import Boot, start

from conftest import require_tools
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


def build_minimal_system(work: Path, *, overlay: str | None = TEST_OVERLAY) -> Path:
    """Build every package and examples/minimal.yml (plus `overlay`); return the NAME prefix."""
    repo = work / "repo"
    shutil.copytree(ROOT / "pkg", repo / "pkg")
    shutil.copytree(ROOT / "examples", repo / "examples")
    files = ["examples/minimal.yml"]
    if overlay is not None:
        (repo / "examples" / "test-overlay.yml").write_text(overlay)
        files.append("examples/test-overlay.yml")
    git = ["git", "-C", str(repo), "-c", "user.name=t", "-c", "user.email=t@t"]
    host = Host()
    host.run([*git, "init", "-q"])
    host.run([*git, "add", "."])
    host.run([*git, "commit", "-qm", "packages"])
    cache = str(work / "cache")
    packages = [str(repo / "pkg" / name) for name in PACKAGES]
    _distrokit("pkg", "build", "--cache", cache, *packages, cwd=repo)
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


def _task_table(text: str) -> dict[str, str]:
    lines = text.split("distrokit: services:", 1)[1].splitlines()
    table: dict[str, str] = {}
    for line in lines[1:]:
        fields = line.split()
        if not fields or fields[0] == "TASK":
            continue
        if line.startswith("distrokit:") or len(fields) != 3:
            break
        table[fields[0]] = fields[2]
    return table


def test_minimal_system_boots_and_serves(tmp_path: Path) -> None:
    require_tools("git", "apt-get", "apt-cache", "dpkg-deb", "qemu-system-x86_64")
    prefix = build_minimal_system(tmp_path)
    port = free_port()
    boot = start("--accel", "tcg", "--publish", f"{port}:80", "--state", str(tmp_path / "st"),
                 str(prefix))  # fmt: skip
    try:
        boot.wait_for("distrokit: init done", 240)
        text = boot.text()
        assert "distrokit: onboot sysctl: exited 0" in text
        tasks = _task_table(text)
        assert {name: tasks.get(name) for name in SERVICES} == dict.fromkeys(SERVICES, "RUNNING")

        page = wait_http(f"http://127.0.0.1:{port}/", boot, 120)
        assert "Welcome to nginx on distrokit!" in page.text

        # the poweroff service sees nginx's log line and powers the machine off
        boot.wait_for("distrokit: onshutdown goodbye: exited 0", 120)
        assert boot.finish(120) == 0
        assert "reboot: Power down" in boot.text()
    finally:
        boot.stop()
