"""Outputs read back by the real host tools: GNU tar, cpio, gzip and zstd.

The initrd unpacked by `cpio` must hold the same tree as the `tar` output unpacked by `tar`
(minus boot/kernel, boot/cmdline), for every compression.
"""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest
from buildfix import F, Images, new_images
from hosttools import require_tools

from distrokit.cli import main
from distrokit.host import Host

YAML = """kernel:
  image: example.org/kernel:1
  cmdline: console=ttyS0
init:
  - example.org/init:1
onboot:
  - name: one
    image: example.org/app:1
services:
  - name: two
    image: example.org/app:1
    readonly: true
files:
  - path: etc/motd
    contents: hello
    mode: "0644"
"""


def _tree(root: Path) -> dict[str, tuple[str, int, str]]:
    """path -> (kind, mode, content or link target), for comparing unpacked trees."""
    out: dict[str, tuple[str, int, str]] = {}
    for dirpath, dirnames, filenames in os.walk(root):
        for name in dirnames + filenames:
            p = Path(dirpath) / name
            rel = str(p.relative_to(root))
            st = p.lstat()
            if p.is_symlink():
                out[rel] = ("l", 0, str(p.readlink()))
            elif p.is_dir():
                out[rel] = ("d", st.st_mode & 0o7777, "")
            else:
                out[rel] = ("f", st.st_mode & 0o7777, p.read_bytes().hex())
    return out


@pytest.fixture
def system(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> tuple[Images, Path]:
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    images = new_images(tmp_path)
    ktar = tmp_path / "k" / "lib" / "modules" / "6.1"
    ktar.mkdir(parents=True)
    (ktar / "m.ko").write_bytes(b"module")
    Host().run(["tar", "-C", str(tmp_path / "k"), "-cf", str(tmp_path / "kernel.tar"), "."])
    images.add(
        "example.org/kernel:1",
        [F("kernel", data=b"KERNEL"), F("kernel.tar", data=(tmp_path / "kernel.tar").read_bytes())],
    )
    images.add(
        "example.org/init:1",
        [
            F("bin", "dir"),
            F("bin/busybox", data=b"bb", mode=0o755),
            F("bin/sh", "link", target="bin/busybox"),
        ],
    )
    images.add("example.org/app:1", [F("srv", "dir"), F("srv/data", data=os.urandom(300_000))])
    yml = tmp_path / "s.yml"
    yml.write_text(YAML)
    return images, yml


@pytest.mark.parametrize("compression", ["gzip", "zstd", "none"])
def test_initrd_unpacks_to_the_same_tree_as_the_tar(
    system: tuple[Images, Path], tmp_path: Path, compression: str
) -> None:
    require_tools("tar", "cpio", "gzip", "zstd")
    images, yml = system
    out = tmp_path / "out"
    base = ["build", "--cache", str(images.cache.root), "-dir", str(out)]
    assert main([*base, "-format", "tar", str(yml)]) == 0
    assert main([*base, "-format", "kernel+initrd", "--compress", compression, str(yml)]) == 0
    from_tar, from_cpio = tmp_path / "t", tmp_path / "c"
    from_tar.mkdir()
    from_cpio.mkdir()
    Host().run(["tar", "-C", str(from_tar), "-xf", str(out / "s.tar")])
    decompress = {"gzip": ["gzip", "-dc"], "zstd": ["zstd", "-dc"], "none": ["cat"]}[compression]
    with (out / "s-initrd.img").open("rb") as src:
        raw = subprocess.run(decompress, stdin=src, capture_output=True, check=True).stdout
    Host().run(["cpio", "-idm", "--quiet", "--no-absolute-filenames"], input=raw, cwd=from_cpio)
    tar_tree, cpio_tree = _tree(from_tar), _tree(from_cpio)
    for name in ("boot/kernel", "boot/cmdline"):
        assert tar_tree.pop(name)
    # the tar keeps hard links; the initrd turns them into relative symlinks (as LinuxKit)
    assert tar_tree.pop("bin/sh")[0] == "f"
    assert cpio_tree.pop("bin/sh") == ("l", 0, "busybox")
    assert tar_tree == cpio_tree
    assert cpio_tree["etc/motd"] == ("f", 0o644, b"hello".hex())
    assert cpio_tree["lib/modules/6.1/m.ko"][2] == b"module".hex()
    assert (out / "s-kernel").read_bytes() == b"KERNEL"


def test_gnu_tar_sees_the_pax_records(system: tuple[Images, Path], tmp_path: Path) -> None:
    require_tools("tar")
    images, yml = system
    out = tmp_path / "out"
    assert (
        main(
            [
                "build",
                "--cache",
                str(images.cache.root),
                "-dir",
                str(out),
                "-format",
                "tar",
                str(yml),
            ]
        )
        == 0
    )
    listing = Host().output(["tar", "-tvf", str(out / "s.tar")])
    assert "containers/onboot/000-one/lower/srv/data" in listing
    assert "containers/services/two/rootfs/srv" not in listing  # unpacked once
    raw = (out / "s.tar").read_bytes()
    # every entry but the SBOM, which LinuxKit writes last without its records
    assert listing.splitlines()[-1].endswith(" sbom.spdx.json")
    assert raw.count(b"LINUXKIT.location=") == len(listing.splitlines()) - 1
