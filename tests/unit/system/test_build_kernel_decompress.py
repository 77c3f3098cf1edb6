"""``--decompress-kernel`` and the kernel image checks, built through the real pipeline."""

from __future__ import annotations

import gzip
import lzma
import struct
from pathlib import Path

import pytest
from buildfix import F, Images, config_from, new_images, read_member, run_build

from distrokit.cli import main
from distrokit.errors import BuildError
from distrokit.pipeline import BuildRequest, build

VMLINUX = b"\x7fELF" + bytes(range(256)) * 64


def bzimage(payload: bytes, setup_sects: int = 1) -> bytes:
    """A minimal bzImage: boot sector with the 2.15 setup header, then `payload`."""
    head = bytearray((setup_sects + 1) * 512)
    head[0x1F1] = setup_sects
    struct.pack_into("<H", head, 0x1FE, 0xAA55)
    head[0x202:0x206] = b"HdrS"
    struct.pack_into("<H", head, 0x206, 0x020F)
    struct.pack_into("<II", head, 0x248, 0, len(payload))
    # the kernel build appends the uncompressed size after the payload
    return bytes(head) + payload + struct.pack("<I", len(VMLINUX))


YAML = """
kernel:
  image: example.org/kernel:1
  cmdline: console=ttyS0
  tar: none
"""


def _kernel_image(images: Images, kernel: bytes) -> None:
    images.add("example.org/kernel:1", [F("kernel", data=kernel, mode=0o644)])


def _build(tmp_path: Path, images: Images, *, decompress: bool, fmt: str = "tar") -> Path:
    out = tmp_path / "out"
    out.mkdir(exist_ok=True)
    config = config_from(tmp_path, YAML)
    request = BuildRequest(formats=(fmt,), name="sys", directory=out, decompress_kernel=decompress)
    build(config, images.cache, request)
    return out


@pytest.mark.parametrize(
    "kernel",
    [
        pytest.param(bzimage(gzip.compress(VMLINUX)), id="bzImage-gzip"),
        pytest.param(bzimage(lzma.compress(VMLINUX, check=lzma.CHECK_CRC32)), id="bzImage-xz"),
        pytest.param(gzip.compress(VMLINUX), id="Image.gz"),
    ],
)
def test_decompress_kernel_stores_the_uncompressed_kernel(tmp_path: Path, kernel: bytes) -> None:
    images = new_images(tmp_path)
    _kernel_image(images, kernel)
    out = _build(tmp_path, images, decompress=True)
    assert read_member(out / "sys.tar", "boot/kernel") == VMLINUX
    out = _build(tmp_path, images, decompress=True, fmt="kernel+initrd")
    assert (out / "sys-kernel").read_bytes() == VMLINUX
    # without the flag the image's kernel is stored as it is
    out = _build(tmp_path, images, decompress=False)
    assert read_member(out / "sys.tar", "boot/kernel") == kernel


def test_decompress_kernel_refuses_an_uncompressed_kernel(tmp_path: Path) -> None:
    images = new_images(tmp_path)
    _kernel_image(images, VMLINUX)
    with pytest.raises(BuildError, match="no compressed kernel or no supported format found"):
        _build(tmp_path, images, decompress=True)


def test_decompress_kernel_from_the_command_line(tmp_path: Path) -> None:
    images = new_images(tmp_path)
    _kernel_image(images, bzimage(gzip.compress(VMLINUX)))
    (tmp_path / "k.yml").write_text(YAML)
    out = tmp_path / "k.tar"
    cache = str(images.cache.root)
    argv = ["build", "--cache", cache, "--decompress-kernel", "-f", "tar", "-o", str(out)]
    assert main([*argv, str(tmp_path / "k.yml")]) == 0
    assert read_member(out, "boot/kernel") == VMLINUX


def test_more_than_one_possible_kernel_image(tmp_path: Path) -> None:
    """LinuxKit also sees the entries it appends after every image: an image's own etc/hosts
    as kernel.binary is found twice."""
    images = new_images(tmp_path)
    images.add("example.org/kernel:1", [F("etc", "dir"), F("etc/hosts", data=b"k")])
    config = config_from(tmp_path, YAML + "  binary: etc/hosts\n")
    with pytest.raises(BuildError, match="found more than one possible kernel image"):
        run_build(images, config, tmp_path)
