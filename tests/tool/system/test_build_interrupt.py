"""An interrupted build (SIGTERM or Ctrl-C) leaves no output and no temporary file behind."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import tarfile
import time
from pathlib import Path

import pytest

from distrokit.host import Host
from distrokit.oci.cache import Cache
from distrokit.oci.image import ImageConfigBlob, Platform

PLATFORM = Platform("linux", "amd64")


def _fixture(tmp_path: Path) -> Path:
    cache = Cache(tmp_path / "cache")
    layer = tmp_path / "big.tar"
    with tarfile.open(layer, "w") as tar, (tmp_path / "random").open("wb") as f:
        f.write(os.urandom(96 << 20))
        f.flush()
        tar.add(tmp_path / "random", arcname="big")
    (tmp_path / "random").unlink()
    cache.add_image("example.org/big:1", [layer], ImageConfigBlob(), PLATFORM, compression="none")
    klayer = tmp_path / "k.tar"
    with tarfile.open(klayer, "w") as tar:
        (tmp_path / "kernel").write_bytes(b"K")
        tar.add(tmp_path / "kernel", arcname="kernel")
    cache.add_image("example.org/k:1", [klayer], ImageConfigBlob(), PLATFORM, compression="none")
    yml = tmp_path / "big.yml"
    yml.write_text("kernel:\n  image: example.org/k:1\n  tar: none\ninit:\n  - example.org/big:1\n")
    return yml


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT])
def test_interrupted_build_leaves_nothing(tmp_path: Path, sig: signal.Signals) -> None:
    yml = _fixture(tmp_path)
    out = tmp_path / "out"
    out.mkdir()
    argv = [
        sys.executable,
        "-m",
        "distrokit",
        "build",
        "--cache",
        str(tmp_path / "cache"),
        "-format",
        "kernel+initrd",
        "-dir",
        str(out),
        str(yml),
    ]
    proc = Host().popen(
        argv,
        env={"XDG_CACHE_HOME": str(tmp_path / "xdg")},
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    try:
        deadline = time.monotonic() + 60
        while not any(out.iterdir()):
            assert proc.poll() is None, "build ended before it could be interrupted"
            assert time.monotonic() < deadline
            time.sleep(0.01)
        proc.send_signal(sig)
        assert proc.wait(timeout=60) == 130
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert list(out.iterdir()) == []
