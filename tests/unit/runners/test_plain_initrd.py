"""The uncompressed initramfs copy for TCG boots (runners/initrd.py)."""

from __future__ import annotations

import gzip
import io
import lzma
import os
import time
from pathlib import Path

import zstandard

from distrokit.runners import initrd


def _write(path: Path, data: bytes) -> Path:
    path.write_bytes(data)
    return path


def test_members_frames_and_padding_inflate_to_the_concatenation() -> None:
    parts = [os.urandom(3000) + b"a" * 70000, b"b" * 5000, b"c" * 10, b"d" * 4000]
    data = (
        gzip.compress(parts[0], mtime=0)
        + b"\0" * 512
        + zstandard.ZstdCompressor().compress(parts[1])
        + gzip.compress(parts[2], mtime=0)
        + lzma.compress(parts[3], format=lzma.FORMAT_XZ)
    )
    out = io.BytesIO()
    assert initrd.inflate(io.BytesIO(data), out, limit=1 << 20)
    assert out.getvalue() == b"".join(parts)


def test_what_cannot_be_inflated_is_refused() -> None:
    good = gzip.compress(b"x" * 100000, mtime=0)
    for bad in (good[:-20], good + b"not a member", b"", b"\0" * 64, b"plain cpio 070701"):
        assert not initrd.inflate(io.BytesIO(bad), io.BytesIO(), limit=1 << 20), bad[:20]
    assert not initrd.inflate(io.BytesIO(good), io.BytesIO(), limit=99999)


def test_plain_copy_is_made_once_and_follows_the_file(tmp_path: Path) -> None:
    cache = tmp_path / "cache"
    src = _write(tmp_path / "sys-initrd.img", gzip.compress(b"first" * 1000, mtime=0))
    copy = initrd.plain_initrd(src, cache, mem_mb=1024)
    assert copy.parent == cache and copy.read_bytes() == b"first" * 1000
    made = copy.stat().st_ino
    assert initrd.plain_initrd(src, cache, mem_mb=1024) == copy
    assert copy.stat().st_ino == made  # not inflated again
    # a rebuild replaces the file: a new copy with the new contents
    new = _write(tmp_path / "new.img", gzip.compress(b"second" * 1000, mtime=0))
    new.replace(src)
    again = initrd.plain_initrd(src, cache, mem_mb=1024)
    assert again != copy and again.read_bytes() == b"second" * 1000
    assert src.read_bytes() == gzip.compress(b"second" * 1000, mtime=0)  # never changed


def test_uncompressed_too_big_or_broken_initrds_are_used_as_given(tmp_path: Path) -> None:
    cache = tmp_path / "cache"
    plain = _write(tmp_path / "plain.img", b"070701" + b"0" * 200)
    assert initrd.plain_initrd(plain, cache, mem_mb=1024) == plain
    # 300 MiB of zeros would not fit twice in 512 MiB next to the reserve
    big = gzip.compress(b"\0" * (300 << 20), compresslevel=1, mtime=0)
    large = _write(tmp_path / "large.img", big)
    assert initrd.plain_initrd(large, cache, mem_mb=512) == large
    broken = _write(tmp_path / "broken.img", big[:1000])
    assert initrd.plain_initrd(broken, cache, mem_mb=4096) == broken
    assert not [p for p in cache.iterdir() if p.suffix == ".cpio"]
    assert not [p for p in cache.iterdir() if p.name.startswith(".initrd-")]


def test_old_idle_copies_are_pruned(tmp_path: Path) -> None:
    cache = tmp_path / "cache"
    copies = []
    for i in range(initrd.KEEP + 2):
        src = _write(tmp_path / f"s{i}.img", gzip.compress(b"%d" % i * 100, mtime=0))
        copy = initrd.plain_initrd(src, cache, mem_mb=1024)
        old = time.time() - initrd.IDLE_SECONDS - 100 * (initrd.KEEP + 2 - i)
        os.utime(copy, (old, old))
        copies.append(copy)
    src = _write(tmp_path / "last.img", gzip.compress(b"last", mtime=0))
    newest = initrd.plain_initrd(src, cache, mem_mb=1024)
    left = sorted(cache.glob("*.cpio"))
    assert newest in left and len(left) == initrd.KEEP
    assert copies[0] not in left and copies[1] not in left and copies[-1] in left
