"""What a killed build leaves (build directory in $TMPDIR, temp outputs, staged trees, initrd
segments, partial blobs) is removed by the next run, by process id: never a live run's."""

from __future__ import annotations

import os
import stat
import subprocess
import sys
from pathlib import Path

import pytest
from buildfix import F, config_from, new_images, run_build

from distrokit.formats.disk import atomic_output, scratch_dir
from distrokit.leftovers import sweep, temp_prefix
from distrokit.oci.cache import Cache
from distrokit.oci.image import host_platform
from distrokit.oci.pull import pull


def _dead_pid() -> int:
    proc = subprocess.Popen([sys.executable, "-c", ""])
    proc.wait()
    return proc.pid


def _tagged(base: str, pid: int, namespace: str | None = None) -> str:
    own = temp_prefix(base)  # base + "<pid namespace>.<pid>-"
    ns = namespace or own[len(base) :].split(".", 1)[0]
    return f"{base}{ns}.{pid}-x1y2"


def test_sweep_removes_only_what_dead_processes_of_this_namespace_left(tmp_path: Path) -> None:
    dead = _dead_pid()
    alive = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(30)"])
    try:
        gone = tmp_path / _tagged(".out.tar.", dead)
        gone.mkdir()
        (gone / "dev").mkdir()
        (gone / "dev" / "null").write_bytes(b"")
        kept = [
            tmp_path / _tagged(".out.tar.", alive.pid),
            tmp_path / _tagged(".out.tar.", dead, namespace="1"),  # another container's
            tmp_path / ".out.tar.abcdef.tmp",  # not tagged: never guessed at
            tmp_path / _tagged(".other.", dead),  # another prefix
        ]
        for path in kept:
            path.write_bytes(b"")
        assert sweep(tmp_path, ".out.tar.") == [gone]
        assert not gone.exists()
        assert all(path.exists() for path in kept)
    finally:
        alive.kill()
        alive.wait()


def test_the_next_build_removes_what_a_killed_one_left(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    tmpdir = tmp_path / "tmp"
    tmpdir.mkdir()
    monkeypatch.setenv("TMPDIR", str(tmpdir))
    monkeypatch.setattr("tempfile.tempdir", None)
    dead = _dead_pid()
    out, store = tmp_path / "out", tmp_path / "store"
    (store / "segments").mkdir(parents=True)
    out.mkdir()
    left = [
        tmpdir / _tagged("distrokit-build-", dead),
        out / _tagged(".k-initrd.img.", dead),
        out / _tagged(".k-kernel.", dead),
        store / "segments" / _tagged(".seg-", dead),
    ]
    left[0].mkdir()
    for path in left[1:]:
        path.write_bytes(b"half written")
    imgs = new_images(tmp_path)
    imgs.add("example.org/k:1", [F("kernel", data=b"K"), F("kernel.tar", data=b"")])
    config = config_from(tmp_path, "kernel:\n  image: example.org/k:1\n")
    run_build(imgs, config, out, "kernel+initrd", name="k", build_cache=store)
    assert [path for path in left if path.exists()] == []
    assert sorted(p.name for p in out.iterdir()) == ["k-cmdline", "k-initrd.img", "k-kernel"]
    assert list(tmpdir.iterdir()) == []


def test_a_pull_removes_partial_blobs_of_killed_downloads(tmp_path: Path) -> None:
    cache = Cache(tmp_path / "cache")
    dead = cache.blob_dir / _tagged(".partial-", _dead_pid())
    dead.write_bytes(b"half a layer")
    mine = cache.blob_writer()  # a download in progress in this process
    try:
        pull(cache, [], host_platform())
        assert not dead.exists()
        assert mine.tmp.exists()
    finally:
        mine.abort()


def test_a_staged_tree_of_a_killed_build_is_removed_beside_the_next(tmp_path: Path) -> None:
    dead = _dead_pid()
    reserved = _tagged(".k.iso.", dead) + ".tmp"  # the output a killed build was writing
    staged = tmp_path / (_tagged(f".{reserved}.", dead))
    (staged / "root" / "dev").mkdir(parents=True)
    os.mknod(staged / "root/dev/null", stat.S_IFCHR | 0o666, os.makedev(1, 3))
    (tmp_path / reserved).write_bytes(b"half an iso")
    mine = tmp_path / (temp_prefix(".k.iso.") + "now.tmp")  # this build's reserved output
    with scratch_dir(mine) as scratch:
        assert scratch.exists()
        assert not staged.exists()
    with atomic_output(tmp_path / "k.iso") as tmp:
        tmp.write_bytes(b"iso")
    assert not (tmp_path / reserved).exists()
