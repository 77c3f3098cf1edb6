"""The tar layout of a whole system, entry by entry, against LinuxKit's (sections 2.2-2.4)."""

from __future__ import annotations

import io
import tarfile
from pathlib import Path

import pytest
from buildfix import (
    MTIME,
    F,
    Images,
    config_from,
    members,
    new_images,
    read_member,
    run_build,
)

from distrokit.tarstream import DEFAULT_MTIME

YAML = """kernel:
  image: example.org/kernel:1
  cmdline: console=ttyS0 quiet
  ucode: intel-ucode.cpio
init:
  - example.org/init:1
  - example.org/extra:1
volumes:
  - name: data
    image: example.org/vol:1
  - name: scratch
onboot:
  - name: setup
    image: example.org/app:1
onshutdown:
  - name: bye
    image: example.org/app:1
services:
  - name: hello
    image: example.org/ro:1
    readonly: true
  - name: getty
    image: example.org/app:1
    binds:
      - data:/data
files:
  - path: etc/lk-release
    contents: "v1"
  - path: /etc/lk/empty
    directory: true
  - path: etc/lk/link
    symlink: /etc/lk-release
  - path: etc/lk/secret
    contents: "s"
    mode: "0644"
    uid: getty
    gid: 7
  - path: etc/config.yml
    metadata: yaml
  - path: opt/from-host
    source: host.txt
  - path: opt/missing
    source: nope.txt
    optional: true
"""


def _kernel_tar(tmp: Path) -> bytes:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.PAX_FORMAT) as tar:
        for name, kind in (
            ("./", "d"),
            ("./lib/", "d"),
            ("./lib/modules/", "d"),
            ("./lib/modules/6.1/", "d"),
            ("./lib/modules/6.1/a.ko", "f"),
            ("./lib/modules/6.1/b.ko", "l"),
        ):
            info = tarfile.TarInfo(name)
            info.mtime = MTIME
            if kind == "d":
                info.type, info.mode = tarfile.DIRTYPE, 0o755
                tar.addfile(info)
            elif kind == "l":
                info.type, info.linkname = tarfile.LNKTYPE, "./lib/modules/6.1/a.ko"
                tar.addfile(info)
            else:
                info.size = 3
                tar.addfile(info, io.BytesIO(b"mod"))
    return buf.getvalue()


def make_system(tmp_path: Path, images: Images) -> Path:
    images.add(
        "example.org/kernel:1",
        [
            F("kernel", data=b"BZIMAGE", mode=0o600),
            F("kernel.tar", data=_kernel_tar(tmp_path)),
            F("intel-ucode.cpio", data=b"UCODE"),
            F("kernel-headers.tar", data=b"ignored"),
        ],
    )
    images.add(
        "example.org/init:1",
        [
            F("bin", "dir"),
            F("bin/busybox", data=b"bb", mode=0o755),
            F("init", data=b"#!/bin/sh", mode=0o755),
        ],
    )
    images.add(
        "example.org/extra:1",
        [F("usr", "dir"), F("usr/bin", "dir"), F("usr/bin/runc", data=b"runc", mode=0o755)],
    )
    images.add("example.org/vol:1", [F("srv", data=b"volume data")])
    images.add(
        "example.org/app:1",
        [F("app", data=b"app", mode=0o755)],
        entrypoint=("/app",),
        cmd=("--flag",),
        env=("PATH=/bin", "A=1"),
        working_dir="/work",
    )
    images.add(
        "example.org/ro:1",
        [F("hello", data=b"hi", mode=0o755)],
        labels={
            "org.mobyproject.config": '{"capabilities": ["CAP_SYS_TIME"], '
            '"binds": ["/var/log:/var/log"]}'
        },
    )
    (tmp_path / "host.txt").write_text("from the host")
    return tmp_path / "system.yml"


@pytest.fixture
def built(tmp_path: Path) -> Path:
    images = new_images(tmp_path)
    make_system(tmp_path, images)
    config = config_from(tmp_path, YAML)
    run_build(images, config, tmp_path / "out", "tar", name="lk")
    return tmp_path / "out" / "lk.tar"


def _kind(m: tarfile.TarInfo) -> str:
    if m.isdir():
        return "d"
    if m.issym():
        return "s"
    if m.islnk():
        return "h"
    return "f"


EXPECTED = """
d boot|f boot/cmdline|f boot/kernel
d .|d ./lib|d ./lib/modules|d ./lib/modules/6.1|f ./lib/modules/6.1/a.ko
h ./lib/modules/6.1/b.ko|f boot/ucode.cpio
d bin|f bin/busybox|f init
d dev|d dev/pts|d dev/shm|d etc|f etc/hosts|s etc/mtab|s etc/resolv.conf|d proc|d sys
d usr|d usr/bin|f usr/bin/runc
d dev|d dev/pts|d dev/shm|d etc|f etc/hosts|s etc/mtab|s etc/resolv.conf|d proc|d sys
d containers|d containers/volumes|d containers/volumes/data|d containers/volumes/data/lower
f containers/volumes/data/lower/srv
d containers/volumes/data/lower/dev|d containers/volumes/data/lower/dev/pts
d containers/volumes/data/lower/dev/shm|d containers/volumes/data/lower/etc
f containers/volumes/data/lower/etc/hosts|s containers/volumes/data/lower/etc/mtab
s containers/volumes/data/lower/etc/resolv.conf
d containers/volumes/data/lower/proc|d containers/volumes/data/lower/sys
d containers/volumes/data/tmp|d containers/volumes/data/merged
d containers|d containers/volumes|d containers/volumes/scratch
d containers/volumes/scratch/lower
d containers/volumes/scratch/tmp|d containers/volumes/scratch/merged
d containers|d containers/onboot|d containers/onboot/000-setup
d containers/onboot/000-setup/lower|f containers/onboot/000-setup/lower/app
d containers/onboot/000-setup/lower/dev|d containers/onboot/000-setup/lower/dev/pts
d containers/onboot/000-setup/lower/dev/shm|d containers/onboot/000-setup/lower/etc
f containers/onboot/000-setup/lower/etc/hosts|s containers/onboot/000-setup/lower/etc/mtab
f containers/onboot/000-setup/lower/etc/resolv.conf
d containers/onboot/000-setup/lower/proc|d containers/onboot/000-setup/lower/sys
f containers/onboot/000-setup/config.json|d containers/onboot/000-setup/tmp
d containers/onboot/000-setup/rootfs|f containers/onboot/000-setup/runtime.json
d containers|d containers/onshutdown|d containers/onshutdown/000-bye
f containers/onshutdown/000-bye/config.json|d containers/onshutdown/000-bye/tmp
d containers/onshutdown/000-bye/rootfs|f containers/onshutdown/000-bye/runtime.json
d containers|d containers/services|d containers/services/hello
d containers/services/hello/rootfs|f containers/services/hello/rootfs/hello
d containers/services/hello/rootfs/dev|d containers/services/hello/rootfs/dev/pts
d containers/services/hello/rootfs/dev/shm|d containers/services/hello/rootfs/etc
f containers/services/hello/rootfs/etc/hosts|s containers/services/hello/rootfs/etc/mtab
f containers/services/hello/rootfs/etc/resolv.conf
d containers/services/hello/rootfs/proc|d containers/services/hello/rootfs/sys
f containers/services/hello/config.json|f containers/services/hello/runtime.json
d containers|d containers/services|d containers/services/getty
f containers/services/getty/config.json|d containers/services/getty/tmp
d containers/services/getty/rootfs|f containers/services/getty/runtime.json
d etc|f etc/lk-release|d etc/lk|d etc/lk/empty|s etc/lk/link|f etc/lk/secret
f etc/config.yml|d opt|f opt/from-host
"""


def test_tar_listing_is_linuxkits_layout(built: Path) -> None:
    want = [item.strip() for line in EXPECTED.strip().splitlines() for item in line.split("|")]
    got = [f"{_kind(m)} {m.name}" for m in members(built)]
    assert got == want


def test_every_entry_has_the_pax_records(built: Path) -> None:
    for m in members(built):
        assert "LINUXKIT.source" in m.pax_headers, m.name
        assert "LINUXKIT.location" in m.pax_headers, m.name
    by_loc = {
        (m.name, m.pax_headers["LINUXKIT.location"], m.pax_headers["LINUXKIT.source"])
        for m in members(built)
    }
    assert ("boot/kernel", "kernel", "example.org/kernel:1") in by_loc
    assert ("usr/bin/runc", "init[1]", "example.org/extra:1") in by_loc
    assert ("containers/volumes/data/lower/srv", "volume[0]", "example.org/vol:1") in by_loc
    # LinuxKit names the image of a blank volume "empty"
    assert ("containers/volumes/scratch/lower", "volume[1]", "empty") in by_loc
    assert ("containers/volumes/scratch/tmp", "volume[1]", "linuxkit.volumes") in by_loc
    assert ("containers/services/getty/config.json", "services[1]", "example.org/app:1") in by_loc
    assert ("etc/lk/secret", "files[3]", "linuxkit.files") in by_loc


def test_kernel_entries_and_files(built: Path) -> None:
    ms = {m.name: m for m in members(built)}
    assert read_member(built, "boot/kernel") == b"BZIMAGE"
    # the image's mode, LinuxKit's fixed time
    assert ms["boot/kernel"].mode == 0o600 and ms["boot/kernel"].mtime == DEFAULT_MTIME
    assert read_member(built, "boot/cmdline") == b"console=ttyS0 quiet"
    assert ms["boot/cmdline"].mode == 0o644 and ms["boot/cmdline"].mtime == DEFAULT_MTIME
    assert read_member(built, "boot/ucode.cpio") == b"UCODE"
    # kernel.tar entries are copied verbatim, "./" prefix included
    assert ms["./lib/modules/6.1/b.ko"].linkname == "./lib/modules/6.1/a.ko"
    assert read_member(built, "etc/lk-release") == b"v1"
    assert ms["etc/lk-release"].mode == 0o600
    assert ms["etc/lk/empty"].mode == 0o700
    assert ms["etc/lk/link"].linkname == "/etc/lk-release"
    secret = ms["etc/lk/secret"]
    # uid by container name: onboot setup=100, onshutdown bye=101, hello=102, getty=103
    assert (secret.mode, secret.uid, secret.gid) == (0o644, 103, 7)
    # parents are written once, by the first entry below them: 0700 from the directory entry
    assert ms["etc/lk"].mode == 0o700
    assert ms["opt"].mode == 0o700
    assert read_member(built, "opt/from-host") == b"from the host"
    assert b"example.org/kernel:1" in read_member(built, "etc/config.yml")
    assert ms["etc/resolv.conf"].linkname == "/run/resolvconf/resolv.conf"
    assert read_member(built, "containers/onboot/000-setup/lower/etc/resolv.conf") == (
        b"\n# no resolv.conf configured\n"
    )
    first_etc = [m for m in members(built) if m.name == "etc"]
    assert [m.mode for m in first_etc][-1] == 0o700  # LinuxKit's quirk, kept (see docs)
