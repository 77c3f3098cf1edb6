"""Derived ids, sizes, boot loader configuration text and the VHD checksum."""

from __future__ import annotations

import struct
from dataclasses import replace
from pathlib import Path

import pytest

from distrokit.env import source_date_epoch
from distrokit.errors import UsageError
from distrokit.formats import convert, efi, iso, raw
from distrokit.formats.disk import (
    DEFAULT_EPOCH,
    BootFiles,
    derive_u32,
    derive_uuid,
    parse_size_mib,
)


def _boot(tmp_path: Path, cmdline: str = "console=ttyS0") -> BootFiles:
    (tmp_path / "k").write_bytes(b"kernel")
    (tmp_path / "i").write_bytes(b"initrd")
    return BootFiles(kernel=tmp_path / "k", initrd=tmp_path / "i", cmdline=cmdline)


def test_ids_depend_on_inputs_and_purpose(tmp_path: Path) -> None:
    seed = _boot(tmp_path).seed()
    assert seed == _boot(tmp_path).seed()
    assert seed != _boot(tmp_path, "console=tty0").seed()
    a, b = derive_uuid(seed, "disk"), derive_uuid(seed, "esp")
    assert a != b and a.version == 4 and a == derive_uuid(seed, "disk")
    assert derive_u32(seed, "x") != derive_u32(seed, "y")


@pytest.mark.parametrize(
    ("text", "mib"), [("1024M", 1024), ("2G", 2048), ("1", 1024), ("512m", 512)]
)
def test_size_like_linuxkit(text: str, mib: int) -> None:
    assert parse_size_mib(text) == mib


@pytest.mark.parametrize("text", ["", "0", "1T", "-1G", "abc"])
def test_bad_size(text: str) -> None:
    with pytest.raises(UsageError, match="invalid --size"):
        parse_size_mib(text)


def test_source_date_epoch() -> None:
    assert source_date_epoch(environ={}) == DEFAULT_EPOCH == 1492533000
    assert source_date_epoch(environ={"SOURCE_DATE_EPOCH": "42"}) == 42
    with pytest.raises(UsageError, match="SOURCE_DATE_EPOCH"):
        source_date_epoch(environ={"SOURCE_DATE_EPOCH": "soon"})


def test_iso_root_added_only_when_missing() -> None:
    assert iso.with_root("console=ttyS0") == "console=ttyS0 root=LABEL=DISTROKIT"
    assert iso.with_root("root=/dev/vda console=ttyS0") == "root=/dev/vda console=ttyS0"


def test_boot_loader_configs_carry_the_cmdline() -> None:
    assert b"APPEND console=ttyS0 quiet\n" in raw.syslinux_cfg("console=ttyS0 quiet")
    entry = efi.loader_entry("console=ttyS0").decode()
    assert "linux /kernel\ninitrd /initrd.img\noptions console=ttyS0\n" in entry
    assert b"timeout 0" in efi.loader_conf()


def test_vhd_checksum_matches_definition() -> None:
    footer = bytearray(b"conectix".ljust(512, b"\x01"))
    footer[64:68] = struct.pack(">I", convert.vhd_checksum(bytes(footer)))
    total = sum(footer[:64]) + sum(footer[68:])
    assert struct.unpack(">I", footer[64:68])[0] == (~total & 0xFFFFFFFF)


def test_missing_boot_loader_file_names_its_package(tmp_path: Path) -> None:
    from distrokit.errors import BuildError
    from distrokit.formats.registry import check_host_files, get

    check_host_files(get("raw-efi"))
    missing = replace(
        get("raw-efi"), host_files=((str(tmp_path / "BOOTX64.EFI"), efi.SYSTEMD_BOOT_PACKAGE),)
    )
    with pytest.raises(BuildError) as err:
        check_host_files(missing)
    assert "BOOTX64.EFI" in str(err.value)
    assert err.value.hint == "install it with: apt-get install systemd-boot-efi"
