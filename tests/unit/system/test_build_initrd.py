"""tar -> newc cpio: record fields, hard links, trailer, padding, compression, segment reuse."""

from __future__ import annotations

import gzip
import io
import os
import tarfile
import time
from pathlib import Path

import pytest
import zstandard
from buildfix import MTIME, F, Images, config_from, new_images, parse_cpio, run_build

from distrokit.errors import BuildError
from distrokit.formats.cpio import FIRST_INODE
from distrokit.formats.initrd import (
    CHUNK,
    Compression,
    InitrdWriter,
    SegmentCache,
)
from distrokit.tarstream import Entry, Origin, directory, regular

ORIGIN = Origin("x", "init[0]")


def _write(
    entries_by_part: list[list[Entry]],
    compression: str = "none",
    cache: SegmentCache | None = None,
    keys: list[str | None] | None = None,
) -> bytes:
    out = io.BytesIO()
    writer = InitrdWriter(out, Compression(compression), cache, threads=2)
    for i, part in enumerate(entries_by_part):
        writer.add(lambda part=part: part, (keys or [None] * len(entries_by_part))[i])
    writer.finish()
    return out.getvalue()


def _decompress(data: bytes, compression: str) -> bytes:
    if compression == "gzip":
        return gzip.decompress(data)  # reads every concatenated member
    if compression == "zstd":
        return (
            zstandard.ZstdDecompressor()
            .stream_reader(io.BytesIO(data), read_across_frames=True)
            .read()
        )
    return data


def test_newc_records_match_linuxkit() -> None:
    link = tarfile.TarInfo("usr/bin/b")
    link.type, link.linkname, link.mtime = tarfile.LNKTYPE, "bin/a", MTIME
    dev = tarfile.TarInfo("dev/null")
    dev.type, dev.devmajor, dev.devminor, dev.mode = tarfile.CHRTYPE, 1, 3, 0o666
    raw = _write(
        [
            [
                directory("bin", ORIGIN, mode=0o755, mtime=MTIME),
                regular("bin/a", b"hello", ORIGIN, mode=0o755, uid=3, gid=4, mtime=MTIME),
                Entry(link),
                Entry(dev),
            ]
        ]
    )
    records, end = parse_cpio(raw)
    names = [r.name for r in records]
    assert names == ["bin", "bin/a", "usr/bin/b", "dev/null", "TRAILER!!!"]
    d, a, b, n = records[:4]
    assert [r.ino for r in records[:4]] == [FIRST_INODE + i for i in range(4)]
    assert (d.mode, d.nlink, d.mtime) == (0o040755, 2, MTIME)
    assert (a.mode, a.uid, a.gid, a.nlink, a.data) == (0o100755, 3, 4, 1, b"hello")
    assert all(r.dev == (3, 1) for r in records[:4])
    # a hard link becomes a symlink relative to the link's directory
    assert b.mode & 0o170000 == 0o120000 and b.data == b"../../bin/a"
    assert n.mode == 0o020666 and n.rdev == (1, 3)
    assert len(raw) % 512 == 0 and end <= len(raw) and not raw[end:].strip(b"\0")


def test_unsupported_tar_type_is_an_error() -> None:
    fifo = tarfile.TarInfo("weird")
    fifo.type = tarfile.CONTTYPE
    with pytest.raises(BuildError, match="cannot convert tar file"):
        _write([[Entry(fifo)]])


@pytest.mark.parametrize("compression", ["gzip", "zstd"])
def test_parallel_members_decompress_to_the_same_cpio(compression: str) -> None:
    """Several chunks (one bigger than the buffered limit) give several members."""
    files = [regular(f"f{i}", bytes([i]) * (CHUNK // 3), ORIGIN) for i in range(10)]
    big = regular("big", b"x" * (17 << 20), ORIGIN)
    plain = _write([[*files, big]])
    files = [regular(f"f{i}", bytes([i]) * (CHUNK // 3), ORIGIN) for i in range(10)]
    big = regular("big", b"x" * (17 << 20), ORIGIN)
    packed = _write([[*files, big]], compression)
    assert _decompress(packed, compression) == plain
    if compression == "gzip":
        assert packed.count(b"\x1f\x8b\x08") >= 3  # several members


def test_segments_are_reused_and_give_identical_bytes(tmp_path: Path) -> None:
    cache = SegmentCache(tmp_path / "seg")

    def parts(content: bytes) -> list[list[Entry]]:
        return [
            [regular("a", b"A" * 1000, ORIGIN)],
            [regular("b", content, ORIGIN)],
            [regular("c", b"C", ORIGIN)],
        ]

    cold = _write(parts(b"B"), "gzip")
    first = _write(parts(b"B"), "gzip", cache, ["a", None, "c"])
    assert first == cold
    stored = sorted(p.name for p in (tmp_path / "seg").iterdir())
    assert len([n for n in stored if n.endswith(".seg")]) == 2
    again = _write(parts(b"B"), "gzip", cache, ["a", None, "c"])
    assert again == cold
    changed = _write(parts(b"B2"), "gzip", cache, ["a", None, "c"])
    assert changed == _write(parts(b"B2"), "gzip")
    records, _ = parse_cpio(gzip.decompress(changed))
    assert [r.ino for r in records[:3]] == [721, 722, 723]


@pytest.fixture
def images(tmp_path: Path) -> Images:
    return new_images(tmp_path)


def _system(tmp_path: Path, images: Images, ucode: bool) -> None:
    images.add(
        "example.org/kernel:1",
        [F("kernel", data=b"KERNEL"), F("ucode.cpio", data=b"UC"), F("kernel.tar", data=b"")],
    )
    images.add("example.org/init:1", [F("init", data=b"#!/bin/sh\n", mode=0o755)])
    text = "kernel:\n  image: example.org/kernel:1\n  cmdline: console=ttyS0\n  tar: none\n"
    if ucode:
        text += "  ucode: ucode.cpio\n"
    text += "init:\n  - example.org/init:1\n"
    (tmp_path / "k.yml").write_text(text)


@pytest.mark.parametrize("ucode", [False, True])
def test_kernel_initrd_files(tmp_path: Path, images: Images, ucode: bool) -> None:
    _system(tmp_path, images, ucode)
    config = config_from(tmp_path, (tmp_path / "k.yml").read_text())
    out = tmp_path / "out"
    written = run_build(images, config, out, "kernel+initrd", name="k")
    assert sorted(p.name for p in written) == ["k-cmdline", "k-initrd.img", "k-kernel"]
    assert (out / "k-kernel").read_bytes() == b"KERNEL"
    assert (out / "k-cmdline").read_bytes() == b"console=ttyS0"
    data = (out / "k-initrd.img").read_bytes()
    if ucode:
        assert data.startswith(b"UC")
        data = data[2:]
    records, _ = parse_cpio(gzip.decompress(data))
    names = [r.name for r in records]
    assert names[0] == "boot"  # boot/ stays, its files go to their own outputs
    assert not [n for n in names if n.startswith("boot/")]
    assert "init" in names and names[-1] == "TRAILER!!!"


def test_tar_kernel_initrd_carries_the_microcode(tmp_path: Path, images: Images) -> None:
    _system(tmp_path, images, ucode=True)
    config = config_from(tmp_path, (tmp_path / "k.yml").read_text())
    out = tmp_path / "out"
    run_build(images, config, out, "tar-kernel-initrd", "kernel+initrd", name="k")
    with tarfile.open(out / "k-initrd.tar") as tar:
        assert [m.name for m in tar.getmembers()] == [
            "kernel",
            "initrd.img",
            "cmdline",
            "ucode.cpio",
        ]
        ucode, initrd = tar.extractfile("ucode.cpio"), tar.extractfile("initrd.img")
        assert ucode is not None and initrd is not None
        assert ucode.read() == b"UC"
        # initrd.img in the tar is the compressed cpio alone; NAME-initrd.img has ucode first
        assert b"UC" + initrd.read() == (out / "k-initrd.img").read_bytes()


def test_unused_segments_are_pruned(tmp_path: Path) -> None:
    cache = SegmentCache(tmp_path / "seg")
    _write([[regular("a", b"A", ORIGIN)], [regular("b", b"B", ORIGIN)]], "gzip", cache, ["a", "b"])
    segs = sorted((tmp_path / "seg").glob("*.seg"))
    assert len(segs) == 2
    old = time.time() - 30 * 86400
    os.utime(segs[0], (old, old))
    assert cache.prune(14) == 1
    assert sorted((tmp_path / "seg").glob("*.seg")) == segs[1:]
    assert len(list((tmp_path / "seg").glob("*.json"))) == 1
