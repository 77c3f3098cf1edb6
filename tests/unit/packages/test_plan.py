"""Selecting image contents from a staging tree (no apt: the tree is made in tmp_path)."""

from __future__ import annotations

import tarfile
from pathlib import Path

import pytest

from distrokit.errors import PackageError
from distrokit.host import Host
from distrokit.packages.buildyml import parse_build_yml
from distrokit.packages.plan import plan_debian_image
from distrokit.packages.tag import PackageInfo

BUILD = """\
image: demo
debian:
  paths: [/etc/conf.d, {src: "/boot/vmlinuz-*", dst: /kernel}]
  archives: [{src: /lib/modules, dst: /kernel.tar, include: ["*/virtio/*"]}]
  concat: [{src: "/usr/share/certs/*.crt", dst: /etc/bundle.crt}]
  copy: [{src: run.sh, dst: /bin/run.sh}, {src: conf, dst: /etc/app.conf}, {src: tree, dst: /opt}]
  symlinks: {/bin/sh: busybox}
"""


def _members(layer: Path) -> dict[str, tarfile.TarInfo]:
    with tarfile.open(layer) as tar:
        return {m.name: m for m in tar.getmembers()}


def _build(tmp_path: Path, text: str = BUILD) -> Path:
    pkg = tmp_path / "pkg"
    (pkg / "tree/sub").mkdir(parents=True)
    (pkg / "run.sh").write_text("#!/bin/sh\n")
    (pkg / "run.sh").chmod(0o775)  # a umask-002 checkout
    (pkg / "conf").write_text("a=1\n")
    (pkg / "conf").chmod(0o664)
    (pkg / "tree/sub/f").write_text("x")
    staging = tmp_path / "staging"
    for rel in ("etc/conf.d/a", "boot/vmlinuz-6.1.0-1-amd64", "usr/share/certs/b.crt"):
        (staging / rel).parent.mkdir(parents=True, exist_ok=True)
        (staging / rel).write_text(rel)
    (staging / "usr/share/certs/a.crt").write_text("first\n")
    mods = staging / "lib/modules/6.1/kernel/drivers"
    (mods / "virtio").mkdir(parents=True)
    (mods / "virtio/virtio.ko").write_text("ko")
    (mods / "other.ko").write_text("no")
    spec = parse_build_yml(text, "build.yml")
    info = PackageInfo(path=pkg, spec=spec, org="o", hash="h", dirty=False)
    assert spec.debian is not None
    layer = tmp_path / "layer.tar"
    plan_debian_image(
        info,
        spec=spec.debian,
        staging=staging,
        work=tmp_path,
        versions=["x=1"],
        layer=layer,
        host=Host(),
    )
    return layer


def test_selection(tmp_path: Path) -> None:
    members = _members(_build(tmp_path))
    assert {"etc/conf.d/a", "kernel", "kernel.tar", "etc/bundle.crt", "bin/sh"} <= set(members)
    assert "boot/vmlinuz-6.1.0-1-amd64" not in members
    assert members["usr/share/distrokit/demo.packages"].size == len("x=1\n")
    with tarfile.open(tmp_path / "layer.tar") as tar:
        bundle = tar.extractfile("etc/bundle.crt").read()  # type: ignore[union-attr]
        assert bundle == b"first\nusr/share/certs/b.crt\n"  # sorted, newline added
        kernel_tar = tar.extractfile("kernel.tar")
        assert kernel_tar is not None
        with tarfile.open(fileobj=kernel_tar) as inner:
            names = inner.getnames()
    assert "lib/modules/6.1/kernel/drivers/virtio/virtio.ko" in names
    assert not any(n.endswith("other.ko") for n in names)


def test_package_files_get_git_modes(tmp_path: Path) -> None:
    members = _members(_build(tmp_path))
    assert members["bin/run.sh"].mode == 0o755
    assert members["etc/app.conf"].mode == 0o644
    assert members["opt/sub"].mode == 0o755
    assert members["opt/sub/f"].mode == 0o644


def test_renamed_glob_must_match_once(tmp_path: Path) -> None:
    text = BUILD.replace('"/boot/vmlinuz-*"', '"/usr/share/certs/*"')
    with pytest.raises(PackageError, match="must match exactly one"):
        _build(tmp_path, text)
