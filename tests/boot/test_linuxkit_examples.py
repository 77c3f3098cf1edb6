"""The twins of LinuxKit's examples (examples/*.yml with LinuxKit's names): every one builds
with `distrokit build` from this repository's packages, and the ones that need no special
hardware boot under TCG to `distrokit: init done` with every service running; static-ip answers
HTTP on its fixed address and node_exporter serves /metrics, both through published ports.

The packages and examples are copied into a fresh git repository so the `@pkg:` tags are the
tree hashes of their content: a rerun with unchanged packages builds nothing new.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from guest import Boot, start
from hosts_systems import image_cache
from hosttools import require_tools
from minimal_system import wait_http
from registry import free_port

from distrokit.config.load import load_config

ROOT = Path(__file__).resolve().parents[2]
# LinuxKit's example names served here (minimal.yml has its own boot tests)
EXAMPLES = ("getty", "logging", "node_exporter", "static-ip", "swap", "dm-crypt")
INIT_DONE = "distrokit: init done"


def _distrokit(*args: str, cwd: Path) -> None:
    proc = subprocess.run(
        [sys.executable, "-m", "distrokit", *args],
        cwd=cwd, capture_output=True, text=True, check=False, timeout=1200,
    )  # fmt: skip
    assert proc.returncode == 0, f"distrokit {' '.join(args)} failed:\n{proc.stderr}"


@pytest.fixture(scope="module")
def built(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Every example built as kernel+initrd into OUT/NAME-*; returns OUT."""
    require_tools("git", "apt-get", "dpkg-deb", "qemu-system-x86_64")
    repo = tmp_path_factory.mktemp("examples-repo")
    shutil.copytree(ROOT / "pkg", repo / "pkg")
    shutil.copytree(ROOT / "examples", repo / "examples")
    git = ["git", "-C", str(repo), "-c", "user.name=t", "-c", "user.email=t@t"]
    for argv in (["init", "-q"], ["add", "."], ["commit", "-qm", "packages"]):
        subprocess.run([*git, *argv], check=True)
    names: set[str] = set()

    def record(directory: Path) -> str:
        names.add(directory.name)
        return f"distrokit/{directory.name}:unresolved"

    for example in EXAMPLES:
        load_config([str(repo / "examples" / f"{example}.yml")], resolve_pkg=record)
    cache = str(image_cache())
    _distrokit("pkg", "build", "--cache", cache, *(f"pkg/{n}" for n in sorted(names)), cwd=repo)
    out = repo / "out"
    for example in EXAMPLES:
        _distrokit("build", "--cache", cache, "-format", "kernel+initrd", "--dir", str(out),
                   f"examples/{example}.yml", cwd=repo)  # fmt: skip
    return out


@pytest.mark.parametrize("example", EXAMPLES)
def test_example_builds(built: Path, example: str) -> None:
    for suffix in ("kernel", "initrd.img", "cmdline"):
        assert (built / f"{example}-{suffix}").stat().st_size > 0


def _boot(boots: list[Boot], prefix: Path, *args: str) -> Boot:
    boot = start("--accel", "tcg", "--mem", "1024", *args, str(prefix))
    boots.append(boot)
    boot.wait_for(INIT_DONE, 300)
    out = boot.text()
    assert "FAILED" not in out and "is not running" not in out, out
    return boot


@pytest.mark.parametrize(
    ("example", "target"),
    [
        ("static-ip", (80, "/", "nginx")),
        ("node_exporter", (9100, "/metrics", "node_uname_info")),
    ],
)
def test_example_answers_on_its_port(
    built: Path, boots: list[Boot], example: str, target: tuple[int, str, str]
) -> None:
    guest_port, path, expect = target
    port = free_port()
    boot = _boot(boots, built / example, "--publish", f"{port}:{guest_port}")
    response = wait_http(f"http://127.0.0.1:{port}{path}", boot, 120)
    assert expect in response.text or expect in response.headers.get("Server", "")
    if example == "static-ip":
        assert "onboot ip: exited 0" in boot.text()
        assert "dhcpcd" not in boot.text()


@pytest.mark.parametrize("example", ["getty", "logging"])
def test_example_boots_with_every_service_running(
    built: Path, boots: list[Boot], example: str
) -> None:
    _boot(boots, built / example)
