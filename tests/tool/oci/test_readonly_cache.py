"""A read-only image cache (a read-only bind mount in a mount namespace of the test's own) can
still be listed, exported and built from: only writers need the lock file writable."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from hosttools import require_tools
from registry import make_layer

from distrokit.oci.cache import Cache
from distrokit.oci.image import ImageConfigBlob, Platform

AMD64 = Platform.parse("linux/amd64")
REF = "reg.example/readonly/image:1"


def _read_only(cache_dir: Path, *argv: str) -> subprocess.CompletedProcess[str]:
    """Run distrokit with `cache_dir` mounted read-only over itself (in its own namespace)."""
    script = 'mount --bind "$1" "$1" && mount -o remount,bind,ro "$1" && shift && exec "$@"'
    command = [sys.executable, "-m", "distrokit", *argv]
    return subprocess.run(
        ["unshare", "--mount", "sh", "-c", script, "sh", str(cache_dir), *command],
        capture_output=True, text=True, timeout=120, check=False,
    )  # fmt: skip


def test_read_only_cache_can_be_listed_and_exported(tmp_path: Path) -> None:
    require_tools("unshare", "mount")
    cache_dir = tmp_path / "cache"
    layer = make_layer(tmp_path / "l.tar", seed=3)
    Cache(cache_dir).add_image(REF, [layer], ImageConfigBlob(), AMD64)
    (cache_dir / ".lock").unlink()  # as copied from elsewhere: no lock file either
    probe = _read_only(cache_dir, "cache", "ls", "--cache", str(cache_dir))
    assert probe.returncode == 0, probe.stderr
    assert REF in probe.stdout
    out = tmp_path / "out.tar"
    export = _read_only(
        cache_dir, "cache", "export", "--cache", str(cache_dir), "--outfile", str(out), REF
    )
    assert export.returncode == 0, export.stderr
    assert out.stat().st_size > 4096
    denied = _read_only(cache_dir, "cache", "rm", "--cache", str(cache_dir), REF)
    assert denied.returncode == 1
    assert f"cannot lock image cache {cache_dir}: Read-only file system" in denied.stderr
