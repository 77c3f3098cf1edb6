"""The vmdk descriptor's random CID is replaced in place, whatever its printed width."""

from __future__ import annotations

import struct
from pathlib import Path

import pytest

from distrokit.formats.convert import _fix_vmdk

SECTOR = 512


def _vmdk(path: Path, cid_text: bytes) -> bytes:
    """A minimal sparse-extent header, a one-sector descriptor, then data that must not move."""
    header = bytearray(SECTOR)
    header[0:4] = b"KDMV"
    struct.pack_into("<QQ", header, 28, 1, 1)  # descriptor at sector 1, one sector long
    text = b"# Disk DescriptorFile\nversion=1\nCID=" + cid_text + b"\nparentCID=ffffffff\n"
    descriptor = text.ljust(SECTOR, b"\0")
    tail = b"grain data".ljust(SECTOR, b"\xaa")
    path.write_bytes(bytes(header) + descriptor + tail)
    return tail


@pytest.mark.parametrize("cid_text", [b"1a2b", b"0", b"fedcba98"])
def test_cid_is_rewritten_to_eight_digits_in_place(tmp_path: Path, cid_text: bytes) -> None:
    path = tmp_path / "disk.vmdk"
    tail = _vmdk(path, cid_text)
    size = path.stat().st_size
    _fix_vmdk(path, 0x0BADF00D)
    data = path.read_bytes()
    assert len(data) == size
    assert b"\nCID=0badf00d\nparentCID=ffffffff\n" in data[SECTOR : 2 * SECTOR]
    assert data[2 * SECTOR :] == tail


def test_a_descriptor_without_cid_is_an_error(tmp_path: Path) -> None:
    path = tmp_path / "disk.vmdk"
    _vmdk(path, b"not-hex")
    with pytest.raises(ValueError, match="no CID line in the vmdk descriptor"):
        _fix_vmdk(path, 1)
