"""The twins of LinuxKit's examples (examples/*.yml with LinuxKit's names): every one builds
with `distrokit build` from this repository's packages, and the ones that need no special
hardware boot under TCG to `distrokit: init done` with every service running; static-ip answers
HTTP on its fixed address and node_exporter serves /metrics, both through published ports.

The packages and examples are copied into a fresh git repository so the `@pkg:` tags are the
tree hashes of their content: a rerun with unchanged packages builds nothing new.
"""

from __future__ import annotations

import json
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
KEY = "a secret of at least 32 bytes!!!"
PROBE = "distrokit-dm-crypt-probe-text"


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


def _boot(boots: list[Boot], prefix: Path, *args: str, console_input: bool = False) -> Boot:
    boot = start(
        "--accel", "tcg", "--mem", "1024", *args, str(prefix), console_input=console_input
    )  # fmt: skip
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


def _contains(path: Path, needle: bytes) -> bool:
    """Whether the file holds `needle`, read in 1 MiB pieces (a disk image is large)."""
    tail = b""
    with path.open("rb") as f:
        while piece := f.read(1 << 20):
            if needle in tail + piece:
                return True
            tail = piece[-len(needle) :]
    return False


def test_swap_example_turns_on_a_swap_file_on_its_disk(
    built: Path, boots: list[Boot], tmp_path: Path
) -> None:
    disk = f"file={tmp_path / 'swap.img'},size=1G"
    boot = _boot(boots, built / "swap", "--disk", disk, console_input=True)
    # the getty's root shell runs in the host's pid namespace: /proc/1 is the host's init
    swaps = boot.shell("cat /proc/swaps; grep ' /var/external ' /proc/1/mounts")
    files = [row.split() for row in swaps.splitlines() if row.split()[1:2] == ["file"]]
    assert len(files) == 1 and 261000 < int(files[0][2]) <= 262144, swaps
    assert "/dev/vda1 /var/external ext4" in swaps, swaps


def test_dm_crypt_example_mounts_ext4_on_the_encrypted_disk(
    built: Path, boots: list[Boot], tmp_path: Path
) -> None:
    disk = tmp_path / "crypt.img"
    data = json.dumps({"dm-crypt": {"entries": {"key": {"content": KEY}}}})
    boot = _boot(
        boots, built / "dm-crypt", "--disk", f"file={disk},size=256M,format=raw",
        "--data", data, console_input=True,
    )  # fmt: skip
    mounts = boot.shell("grep ' /var/lib/docker ' /proc/1/mounts")
    assert "/dev/mapper/dm-crypt /var/lib/docker ext4 rw" in mounts, mounts
    # what the shell computes never matches the echoed input (upper case, expanded)
    mapping = boot.shell(
        'echo "name=$(cat /sys/block/dm-0/dm/name) on=$(ls /sys/block/dm-0/slaves)"'
    )
    assert "name=dm-crypt on=vda" in mapping, mapping
    probe = "/proc/1/root/var/lib/docker/probe"
    wrote = boot.shell(f"echo {PROBE} >{probe}; sync; tr a-z A-Z <{probe}")
    assert PROBE.upper() in wrote, wrote
    boot.stop()
    # on the disk itself: neither the text nor an ext4 superblock (magic 0xEF53 at 1080)
    assert not _contains(disk, PROBE.encode())
    with disk.open("rb") as f:
        f.seek(1080)
        assert f.read(2) != b"\x53\xef"
