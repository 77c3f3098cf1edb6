"""The guest init's 005-volumes step run against a fake tree on the host.

`mount` is a stand-in on PATH that records its argv (and fails when told to), so the test sees
which overlays the step asks for; the boot test of examples/volumes.yml mounts them for real.
"""

from __future__ import annotations

import subprocess
from pathlib import Path

from hosttools import require_tools

SCRIPT = Path(__file__).resolve().parents[3] / "pkg" / "init" / "005-volumes"

MOUNT = """#!/bin/sh
echo "mount $*" >>"$DK_ROOT/calls"
case "$*" in *"$FAIL_ON"*) [ -n "$FAIL_ON" ] && exit 32 ;; esac
exit 0
"""


def _run(root: Path, fail_on: str = "") -> tuple[subprocess.CompletedProcess[str], list[str]]:
    fake = root.parent / "bin"
    fake.mkdir(exist_ok=True)
    (fake / "mount").write_text(MOUNT)
    (fake / "mount").chmod(0o755)
    env = {"PATH": f"{fake}:/usr/bin:/bin", "DK_ROOT": str(root), "FAIL_ON": fail_on}
    proc = subprocess.run(
        ["sh", str(SCRIPT)], env=env, capture_output=True, text=True, check=False, timeout=60
    )
    calls = root / "calls"
    return proc, calls.read_text().splitlines() if calls.exists() else []


def _volume(root: Path, name: str, *, lower: bool = True) -> Path:
    base = root / "containers" / "volumes" / name
    for part in ("lower", "tmp", "merged") if lower else ("tmp", "merged"):
        (base / part).mkdir(parents=True)
    return base


def test_each_volume_gets_a_tmpfs_and_an_overlay_on_merged(tmp_path: Path) -> None:
    root = tmp_path / "root"
    a, b = _volume(root, "vola"), _volume(root, "volb")
    _volume(root, "broken", lower=False)
    proc, calls = _run(root)
    assert proc.returncode == 0, proc.stderr
    assert calls == [
        call
        for v in (a, b)
        for call in (
            f"mount -t tmpfs -o mode=0755 tmpfs {v}/tmp",
            f"mount -t overlay -o lowerdir={v}/lower,upperdir={v}/tmp/upper,"
            f"workdir={v}/tmp/work overlay {v}/merged",
        )
    ]
    assert (a / "tmp" / "upper").is_dir() and (b / "tmp" / "work").is_dir()
    assert proc.stdout.splitlines() == [
        "distrokit: volume vola mounted",
        "distrokit: volume volb mounted",
    ]


def test_a_failed_mount_is_reported_and_the_next_volume_still_mounts(tmp_path: Path) -> None:
    root = tmp_path / "root"
    _volume(root, "vola")
    _volume(root, "volb")
    proc, calls = _run(root, fail_on="vola/merged")
    assert proc.returncode == 0, proc.stderr
    assert "distrokit: volume vola: cannot mount its overlay" in proc.stdout
    assert "distrokit: volume volb mounted" in proc.stdout
    assert len(calls) == 4


def test_no_volumes_is_nothing_to_do(tmp_path: Path) -> None:
    root = tmp_path / "root"
    root.mkdir()
    proc, calls = _run(root)
    assert (proc.returncode, proc.stdout, calls) == (0, "", [])


def test_the_guest_shell_parses_the_step() -> None:
    require_tools("busybox")
    proc = subprocess.run(
        ["busybox", "sh", "-n", str(SCRIPT)], capture_output=True, text=True, check=False
    )
    assert proc.returncode == 0, proc.stderr
