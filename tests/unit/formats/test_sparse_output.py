"""Disk outputs are written in place and renamed, never copied: a 1 GiB disk that is mostly
holes stays mostly holes, and its bytes are written once."""

from __future__ import annotations

from pathlib import Path

import pytest

from distrokit.formats.outputs import Outputs

MIB = 1024 * 1024


def _sparse(path: Path) -> None:
    with path.open("r+b") as f:
        f.write(b"boot" * 128)
        f.seek(32 * MIB)
        f.write(b"middle")
        f.truncate(64 * MIB)


def test_reserved_output_is_renamed_into_place_not_copied(tmp_path: Path) -> None:
    with Outputs(tmp_path, "sys") as outputs:
        reserved = outputs.reserve("sys.raw")
        assert reserved.parent == tmp_path and reserved.name != "sys.raw"
        _sparse(reserved)
        inode = reserved.stat().st_ino
    final = tmp_path / "sys.raw"
    assert outputs.written == [final] and not reserved.exists()
    assert final.stat().st_ino == inode  # the same file: renamed, not copied
    assert final.stat().st_size == 64 * MIB
    # Written as data, 64 MiB would take 64 MiB; the two data blocks take a few KiB.
    assert final.stat().st_blocks * 512 < 1 * MIB
    assert oct(final.stat().st_mode & 0o777) != "0o600"  # mkstemp's mode is not kept


def test_reserved_output_is_removed_when_the_build_fails(tmp_path: Path) -> None:
    with pytest.raises(RuntimeError), Outputs(tmp_path, "sys") as outputs:
        _sparse(outputs.reserve("sys.raw"))
        raise RuntimeError("writer failed")
    assert list(tmp_path.iterdir()) == []
