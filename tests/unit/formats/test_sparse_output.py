"""Disk outputs keep their holes when copied into place: a 1 GiB disk is mostly holes."""

from __future__ import annotations

from pathlib import Path

from distrokit.formats.bootable import _stream

MIB = 1024 * 1024


def test_stream_copies_data_and_keeps_holes(tmp_path: Path) -> None:
    src = tmp_path / "disk.raw"
    with src.open("wb") as f:
        f.write(b"boot" * 128)
        f.seek(32 * MIB)
        f.write(b"middle")
        f.truncate(64 * MIB)
    out_path = tmp_path / "out.raw"
    with out_path.open("wb") as out:
        _stream(src, out)
    assert out_path.read_bytes() == src.read_bytes()
    # Written as data, 64 MiB would take 64 MiB; the two data blocks take a few KiB.
    assert out_path.stat().st_blocks * 512 < 1 * MIB
