"""PVH kernel extraction on small bzImages built here (xz, gzip, zstd payloads)."""

from __future__ import annotations

import gzip
import lzma
import struct
from collections.abc import Callable
from pathlib import Path

import pytest
import zstandard

from distrokit.errors import RunError
from distrokit.formats.disk import file_sha256
from distrokit.runners import pvh


def _note(name: bytes, ntype: int, desc: bytes) -> bytes:
    def pad(b: bytes) -> bytes:
        return b + b"\0" * (-len(b) % 4)

    return struct.pack("<III", len(name), len(desc), ntype) + pad(name) + pad(desc)


def make_elf(entry: int | None) -> bytes:
    """A minimal ELF64 with one PT_NOTE segment (a Xen PVH note when `entry` is set)."""
    notes = _note(b"GNU\0", 3, b"\x01" * 20)
    if entry is not None:
        notes += _note(b"Xen\0", pvh.XEN_ELFNOTE_PHYS32_ENTRY, struct.pack("<I", entry))
    phoff, phentsize = 64, 56
    note_off = phoff + phentsize
    header = b"\x7fELF\x02\x01\x01" + bytes(9)
    header += struct.pack("<HHIQQQIHHHHHH", 2, 62, 1, 0, phoff, 0, 0, 64, phentsize, 1, 0, 0, 0)
    phdr = struct.pack("<IIQQQQQQ", pvh.PT_NOTE, 4, note_off, 0, 0, len(notes), len(notes), 4)
    return header + phdr + notes + bytes(4096)


def make_bzimage(payload: bytes, setup_sects: int = 3) -> bytes:
    """A bzImage-shaped file: boot header (protocol 2.15) then the compressed payload."""
    setup = bytearray((setup_sects + 1) * 512)
    setup[0x1F1] = setup_sects
    setup[0x202:0x206] = b"HdrS"
    struct.pack_into("<H", setup, 0x206, 0x20F)
    struct.pack_into("<II", setup, 0x248, 0x40, len(payload) + 4)
    # the decompressor stub sits before the payload; the kernel appends its size after it
    return bytes(setup) + bytes(0x40) + payload + struct.pack("<I", 0)


COMPRESSORS: dict[str, Callable[[bytes], bytes]] = {
    "xz": lambda d: lzma.compress(d, format=lzma.FORMAT_XZ, check=lzma.CHECK_CRC32),
    "gzip": gzip.compress,
    "zstd": lambda d: zstandard.ZstdCompressor().compress(d),
}


@pytest.mark.parametrize("name", sorted(COMPRESSORS))
def test_extract_and_cache(tmp_path: Path, name: str) -> None:
    elf = make_elf(0x1000850)
    kernel = tmp_path / "k"
    kernel.write_bytes(make_bzimage(COMPRESSORS[name](elf)))
    cache = tmp_path / "cache"
    out = pvh.pvh_kernel(kernel, cache)
    assert out is not None and out.read_bytes() == elf
    assert out.name == f"{file_sha256(kernel).hex()}.vmlinux"
    assert pvh.pvh_entry(out) == 0x1000850
    out.write_bytes(elf + b"cached")  # a second call uses the cache, not the bzImage
    assert pvh.pvh_kernel(kernel, cache) == out
    assert out.read_bytes().endswith(b"cached")
    assert [p.name for p in cache.iterdir()] == [out.name]  # no temporary files left


def test_kernel_without_pvh_note_is_remembered(tmp_path: Path) -> None:
    kernel = tmp_path / "k"
    kernel.write_bytes(make_bzimage(gzip.compress(make_elf(None))))
    cache = tmp_path / "cache"
    assert pvh.pvh_kernel(kernel, cache) is None
    assert sorted(p.suffix for p in cache.iterdir()) == [".no-pvh"]
    assert pvh.pvh_kernel(kernel, cache) is None


def test_elf_kernel_with_note_is_used_as_is(tmp_path: Path) -> None:
    kernel = tmp_path / "vmlinux"
    kernel.write_bytes(make_elf(0x2000))
    assert pvh.pvh_kernel(kernel, tmp_path / "cache") == kernel


def test_not_a_bzimage(tmp_path: Path) -> None:
    kernel = tmp_path / "Image"
    kernel.write_bytes(b"MZ" + bytes(4096))
    assert pvh.pvh_kernel(kernel, tmp_path / "cache") is None
    with pytest.raises(RunError, match="not an x86 bzImage"):
        pvh.payload_location(kernel)


def test_unknown_compression_and_corrupt_payload(tmp_path: Path) -> None:
    kernel = tmp_path / "k"
    kernel.write_bytes(make_bzimage(b"\x02\x21\x4c\x18" + bytes(100)))  # lz4 legacy
    with pytest.raises(RunError, match="unsupported kernel compression"):
        pvh.pvh_kernel(kernel, tmp_path / "cache")
    kernel.write_bytes(make_bzimage(b"\xfd7zXZ\x00" + bytes(100)))
    with pytest.raises(RunError, match="corrupt xz kernel payload"):
        pvh.pvh_kernel(kernel, tmp_path / "cache")
    assert not list((tmp_path / "cache").iterdir())
