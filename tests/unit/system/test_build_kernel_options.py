"""The kernel section's binary/tar/ucode options and their errors; files: metadata json."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from buildfix import F, Images, config_from, members, new_images, read_member, run_build

from distrokit.errors import BuildError


@pytest.fixture
def images(tmp_path: Path) -> Images:
    imgs = new_images(tmp_path)
    imgs.add(
        "example.org/k:1",
        [
            F("boot", "dir"),
            F("boot/vmlinuz", data=b"VMLINUZ"),
            F("mods.tar", data=b""),
            F("kernel.tar", data=b""),
        ],
    )
    return imgs


def _build(tmp_path: Path, images: Images, kernel: str, files: str = "") -> Path:
    config = config_from(tmp_path, f"kernel:\n  image: example.org/k:1\n{kernel}{files}")
    run_build(images, config, tmp_path / "out", "tar", name="k")
    return tmp_path / "out" / "k.tar"


def test_binary_and_tar_options(tmp_path: Path, images: Images) -> None:
    tar = _build(tmp_path, images, "  binary: boot/vmlinuz\n  tar: mods.tar\n")
    assert read_member(tar, "boot/kernel") == b"VMLINUZ"
    assert [m.name for m in members(tar)][:3] == ["boot", "boot/cmdline", "boot/kernel"]


@pytest.mark.parametrize(
    ("kernel", "message"),
    [
        ("  binary: nope\n", "did not find kernel in kernel image example.org/k:1"),
        ("  binary: boot/vmlinuz\n  tar: absent.tar\n", "did not find kernel tar absent.tar"),
        ("  binary: boot/vmlinuz\n  ucode: intel.cpio\n", "did not find ucode intel.cpio"),
    ],
)
def test_missing_kernel_parts_are_errors(
    tmp_path: Path, images: Images, kernel: str, message: str
) -> None:
    with pytest.raises(BuildError, match=message):
        _build(tmp_path, images, kernel)
    assert not (tmp_path / "out").exists() or not any((tmp_path / "out").iterdir())


def test_metadata_json_is_the_merged_config(tmp_path: Path, images: Images) -> None:
    files = "files:\n  - path: etc/meta.json\n    metadata: json\n"
    tar = _build(tmp_path, images, "  binary: boot/vmlinuz\n  tar: none\n", files)
    meta = json.loads(read_member(tar, "etc/meta.json"))
    assert meta["kernel"]["image"] == "example.org/k:1"
