"""Every bootable format built twice from the example system: identical bytes, valid tables,
images qemu-img accepts with the expected sub-formats."""

from __future__ import annotations

import json
import tarfile
from collections.abc import Iterator
from pathlib import Path

import fmt_system
import pytest
from hosttools import require_tools

from distrokit.formats import bootable, registry
from distrokit.formats.disk import BootFiles, file_sha256
from distrokit.host import Host

FORMATS = sorted(bootable.bootable_formats())


@pytest.fixture(scope="module")
def system(tmp_path_factory: pytest.TempPathFactory) -> BootFiles:
    return fmt_system.make_system(tmp_path_factory.mktemp("system"))


@pytest.fixture(scope="module")
def built(
    system: BootFiles, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[dict[str, tuple[dict[str, Path], dict[str, Path]]]]:
    """Each format built twice, in two directories."""
    require_tools("qemu-img", "mkfs.vfat", "mcopy", "syslinux", "xorriso", "mksquashfs")
    require_tools("mkfs.erofs", "sfdisk", "sgdisk")
    base = tmp_path_factory.mktemp("built")
    yield {
        name: tuple(  # type: ignore[misc]
            fmt_system.build(name, system, base / f"{name}-{n}", size="64M") for n in (1, 2)
        )
        for name in FORMATS
    }


def test_every_linuxkit_bootable_format_is_registered() -> None:
    names = set(registry.formats())
    wanted = {"iso-bios", "iso-efi", "iso-efi-initrd", "raw-bios", "raw-efi", "qcow2-bios",
              "qcow2-efi", "vmdk", "vhd", "dynamic-vhd", "gcp", "aws", "kernel+squashfs",
              "kernel+iso", "kernel+erofs"}  # fmt: skip
    assert wanted <= names and wanted == set(FORMATS)
    chosen = registry.check_request(sorted(wanted), single_output=None, arch="amd64", host=Host())
    # every format names the host files it copies, each with its Debian package
    assert all(fmt.host_files for fmt in chosen)
    assert ("/usr/lib/ISOLINUX/isohdpfx.bin", "isolinux") in registry.get("iso-bios").host_files


@pytest.mark.parametrize("name", FORMATS)
def test_two_builds_are_byte_identical(
    name: str, built: dict[str, tuple[dict[str, Path], dict[str, Path]]]
) -> None:
    first, second = built[name]
    assert sorted(first) == sorted(second) and first
    for suffix in first:
        assert file_sha256(first[suffix]) == file_sha256(second[suffix]), f"{name} {suffix}"


def _sfdisk(host: Host, path: Path) -> dict[str, object]:
    table: dict[str, object] = json.loads(host.output(["sfdisk", "--json", path]))["partitiontable"]
    return table


def test_raw_bios_has_one_active_fat_partition(
    built: dict[str, tuple[dict[str, Path], dict[str, Path]]], host: Host
) -> None:
    table = _sfdisk(host, built["raw-bios"][0]["-bios.img"])
    assert table["label"] == "dos"
    assert table["partitions"] == [  # type: ignore[comparison-overlap]
        {**table["partitions"][0], "start": 2048, "type": "c", "bootable": True}  # type: ignore[index]
    ]


def test_raw_efi_gpt_verifies(
    built: dict[str, tuple[dict[str, Path], dict[str, Path]]], host: Host
) -> None:
    disk = built["raw-efi"][0]["-efi.img"]
    assert "No problems found" in host.output(["sgdisk", "-v", disk])
    table = _sfdisk(host, disk)
    assert table["label"] == "gpt"
    (part,) = table["partitions"]  # type: ignore[misc]
    assert part["start"] == 2048
    assert part["type"] == "C12A7328-F81F-11D2-BA4B-00A0C93EC93B"


def test_aws_takes_the_size(built: dict[str, tuple[dict[str, Path], dict[str, Path]]]) -> None:
    assert built["aws"][0][".raw"].stat().st_size == 64 << 20


CONVERTED = [
    ("qcow2-bios", ".qcow2", "qcow2", None),
    ("qcow2-efi", "-efi.qcow2", "qcow2", None),
    ("vmdk", ".vmdk", "vmdk", "streamOptimized"),
    ("vhd", ".vhd", "vpc", None),
    ("dynamic-vhd", ".vhd", "vpc", None),
]


@pytest.mark.parametrize("case", CONVERTED, ids=[c[0] for c in CONVERTED])
def test_qemu_img_checks_and_identifies(
    built: dict[str, tuple[dict[str, Path], dict[str, Path]]],
    host: Host,
    case: tuple[str, str, str, str | None],
) -> None:
    name, suffix, fmt, subformat = case
    image = built[name][0][suffix]
    # A fixed VHD has its footer only at the end: qemu's probe sees raw, so name the format.
    info = json.loads(host.output(["qemu-img", "info", "-f", fmt, "--output=json", image]))
    assert info["format"] == fmt
    if subformat is not None:
        assert info["format-specific"]["data"]["create-type"] == subformat
    if fmt != "vpc":  # qemu-img check has no checker for vpc (it says so and fails)
        host.run(["qemu-img", "check", "-f", fmt, image])
    source = built["raw-efi"][0]["-efi.img"] if name == "qcow2-efi" else built["aws"][0][".raw"]
    expected = 25 << 30 if name == "dynamic-vhd" else source.stat().st_size
    assert info["virtual-size"] == expected
    if name == "vhd":
        assert image.stat().st_size == expected + 512
    # the guest sees the same sectors as the raw disk it was made from
    if name != "dynamic-vhd":
        host.run(["qemu-img", "compare", "-f", "raw", "-F", fmt, source, image])


def test_gcp_is_disk_raw_in_a_tar_gz(
    built: dict[str, tuple[dict[str, Path], dict[str, Path]]],
) -> None:
    with tarfile.open(built["gcp"][0][".img.tar.gz"], "r:gz") as tar:
        (member,) = tar.getmembers()
    assert member.name == "disk.raw" and member.size == 1 << 30  # whole GiB, as GCE wants
