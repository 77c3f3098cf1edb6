"""The kernel section's binary/tar/ucode options and their errors; files: metadata json."""

from __future__ import annotations

import io
import json
import tarfile
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


def _tar_bytes(members: list[F]) -> bytes:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.PAX_FORMAT) as tar:
        for m in members:
            info = tarfile.TarInfo(m.name)
            if m.kind == "link":
                info.type, info.linkname = tarfile.LNKTYPE, m.target
            else:
                info.size = len(m.data)
            tar.addfile(info, io.BytesIO(m.data) if m.kind == "file" else None)
    return buf.getvalue()


@pytest.mark.parametrize(
    ("member", "message"),
    [
        (F("../../tmp/evil", data=b"x"), "unsafe member name '../../tmp/evil'"),
        (F("/etc/evil", data=b"x"), "unsafe member name '/etc/evil'"),
        (F("lib/ok", kind="link", target="../../etc/shadow"), "name '../../etc/shadow'"),
    ],
)
def test_kernel_tar_members_that_leave_the_root_are_refused(
    tmp_path: Path, member: F, message: str
) -> None:
    imgs = new_images(tmp_path)
    inner = _tar_bytes([F("lib/modules/x.ko", data=b"ko"), member])
    imgs.add("example.org/k:1", [F("kernel", data=b"K"), F("kernel.tar", data=inner)])
    config = config_from(tmp_path, "kernel:\n  image: example.org/k:1\n")
    with pytest.raises(BuildError, match=message):
        run_build(imgs, config, tmp_path / "out", "tar", name="k")
    assert not (tmp_path / "out").exists() or not any((tmp_path / "out").iterdir())
