"""`depmod: true` on a build.yml archive: kmod's depmod indexes exactly the modules kept, from
Debian's real kernel package, and the package is still reproducible."""

from __future__ import annotations

import io
import tarfile
from pathlib import Path

from hosttools import require_tools

from distrokit.host import Host
from distrokit.oci.cache import Cache
from distrokit.oci.image import host_platform
from distrokit.packages.builder import BuildOptions, build_package
from distrokit.packages.debian import default_cache_dir
from distrokit.packages.tag import TagOptions, package_info

MODULES = """\
image: modules
org: test
arches: [amd64]
debian:
  metapackages: [linux-image-amd64]
  archives:
    - src: /lib/modules
      dst: /indexed.tar
      depmod: true
      include:
        - "*/modules.order"
        - "*/modules.builtin"
        - "*/modules.builtin.modinfo"
        - "*/kernel/fs/ext4/*"
        - "*/kernel/fs/jbd2/*"
        - "*/kernel/fs/mbcache.ko"
        - "*/kernel/lib/crc16.ko"
        - "*/kernel/drivers/scsi/sr_mod.ko"
        - "*/kernel/drivers/scsi/scsi_mod.ko"
        - "*/kernel/drivers/scsi/scsi_common.ko"
        - "*/kernel/drivers/cdrom/cdrom.ko"
    - src: /lib/modules
      dst: /plain.tar
      include: ["*/kernel/fs/ext4/*"]
"""


def _build(pkg: Path, cache_dir: Path) -> tuple[Cache, str]:
    require_tools("apt-get", "apt-cache", "dpkg-deb", "depmod")
    host = Host()
    info = package_info(pkg, host, TagOptions(hash="t1"))
    cache = Cache(cache_dir)
    return cache, build_package(
        info, cache, host, BuildOptions(deb_cache=default_cache_dir())
    ).digest


def _inner(cache: Cache, name: str) -> dict[str, tuple[tarfile.TarInfo, bytes]]:
    """The members of the tar file `name` inside the package image, with their contents."""
    image = cache.image("test/modules:t1", host_platform())
    (layer,) = image.layers
    with tarfile.open(image.blob_path(layer), mode="r:gz") as tar:
        data = tar.extractfile(name)
        assert data is not None, f"{name} is not in the image"
        inner = data.read()
    out = {}
    with tarfile.open(fileobj=io.BytesIO(inner)) as tar:
        for member in tar:
            f = tar.extractfile(member) if member.isfile() else None
            out[member.name] = (member, f.read() if f else b"")
    return out


def _deps(modules_dep: bytes) -> dict[str, list[str]]:
    out = {}
    for line in modules_dep.decode().splitlines():
        mod, _, deps = line.partition(":")
        out[mod] = deps.split()
    return out


def test_depmod_indexes_exactly_the_kept_modules(tmp_path: Path) -> None:
    pkg = tmp_path / "modules"
    pkg.mkdir()
    (pkg / "build.yml").write_text(MODULES)
    cache, first = _build(pkg, tmp_path / "a")
    # two builds from scratch give one digest: depmod's output is part of the package
    assert _build(pkg, tmp_path / "b")[1] == first

    files = _inner(cache, "indexed.tar")
    (release,) = {name.split("/")[2] for name in files if name.startswith("lib/modules/")}
    base = f"lib/modules/{release}"
    deps = _deps(files[f"{base}/modules.dep"][1])
    # paths relative to the release directory, as busybox modprobe and the root finder read them
    assert sorted(deps["kernel/fs/ext4/ext4.ko"]) == [
        "kernel/fs/jbd2/jbd2.ko",
        "kernel/fs/mbcache.ko",
        "kernel/lib/crc16.ko",
    ]
    # the full (transitive) list: sr_mod needs scsi_mod, which needs scsi_common
    assert sorted(deps["kernel/drivers/scsi/sr_mod.ko"]) == [
        "kernel/drivers/cdrom/cdrom.ko",
        "kernel/drivers/scsi/scsi_common.ko",
        "kernel/drivers/scsi/scsi_mod.ko",
    ]
    # one line per kept module, none for the thousands left out
    kept = {name.removeprefix(f"{base}/") for name in files if name.endswith(".ko")}
    assert set(deps) == kept and len(kept) == 8
    # the coldplug (modprobe by modalias) and the kernel's request_module read modules.alias
    assert "alias fs-ext4 ext4" in files[f"{base}/modules.alias"][1].decode().splitlines()
    for index in ("modules.symbols", "modules.dep.bin", "modules.alias.bin"):
        assert f"{base}/{index}" in files, index
    for name, (member, _data) in files.items():
        if name.startswith(f"{base}/modules."):
            assert (member.mode, member.uid, member.gid) == (0o644, 0, 0), name
            assert member.mtime == files[f"{base}/modules.order"][0].mtime, name

    plain = _inner(cache, "plain.tar")
    assert not any("/modules." in name for name in plain)
