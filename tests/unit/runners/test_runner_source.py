"""Finding what to boot from a path or prefix, and disk formats from magic bytes."""

from __future__ import annotations

from pathlib import Path

import pytest

from distrokit.errors import UsageError
from distrokit.runners.config import BootMode
from distrokit.runners.source import detect_disk_format, resolve


def _touch(path: str | Path, data: bytes = b"x") -> Path:
    p = Path(path)
    p.write_bytes(data)
    return p


def test_prefix_kernel_initrd_cmdline(tmp_path: Path) -> None:
    p = tmp_path / "linuxkit"
    _touch(f"{p}-kernel")
    _touch(f"{p}-initrd.img")
    _touch(f"{p}-cmdline", b"console=ttyS0 page_poison=1\n")
    src = resolve(str(p))
    assert src.mode is BootMode.KERNEL
    assert src.kernel == Path(f"{p}-kernel") and src.initrd == Path(f"{p}-initrd.img")
    assert src.cmdline == "console=ttyS0 page_poison=1"


def test_prefix_squashfs_wins_over_initrd(tmp_path: Path) -> None:
    p = tmp_path / "sq"
    _touch(f"{p}-kernel")
    _touch(f"{p}-squashfs.img")
    src = resolve(str(p))
    assert src.mode is BootMode.SQUASHFS and src.squashfs == Path(f"{p}-squashfs.img")
    assert src.cmdline == ""


def test_iso_and_disk_files(tmp_path: Path) -> None:
    iso = resolve(str(_touch(tmp_path / "x.iso")))
    assert iso.mode is BootMode.ISO and iso.prefix == str(tmp_path / "x")
    disk = resolve(str(_touch(tmp_path / "x.qcow2", b"QFI\xfb" + bytes(600))))
    assert disk.mode is BootMode.DISK and disk.disk_format == "qcow2"


def test_forced_modes(tmp_path: Path) -> None:
    p = tmp_path / "k"
    _touch(f"{p}-kernel")
    _touch(f"{p}-squashfs.img")
    assert resolve(str(p), BootMode.KERNEL).mode is BootMode.KERNEL
    img = _touch(tmp_path / "cd.bin")
    assert resolve(str(img), BootMode.ISO).iso == img


def test_prefix_squashfs_and_erofs_take_the_initrd(tmp_path: Path) -> None:
    for suffix in ("-squashfs.img", "-erofs.img"):
        p = tmp_path / suffix.strip("-.")
        _touch(f"{p}-kernel")
        _touch(f"{p}-initrd.img")
        _touch(f"{p}-cmdline", b"console=ttyS0\n")
        _touch(f"{p}{suffix}")
        src = resolve(str(p))
        assert src.mode is BootMode.SQUASHFS and src.squashfs == Path(f"{p}{suffix}")
        assert src.initrd == Path(f"{p}-initrd.img") and src.cmdline == "console=ttyS0"
        assert resolve(str(p), BootMode.SQUASHFS).squashfs == Path(f"{p}{suffix}")


def test_prefix_kernel_iso(tmp_path: Path) -> None:
    p = tmp_path / "ki"
    _touch(f"{p}-kernel")
    _touch(f"{p}-initrd.img")
    _touch(f"{p}.iso")
    # without root= in the cmdline NAME.iso is another output (iso-bios): a kernel+initrd boot
    _touch(f"{p}-cmdline", b"console=ttyS0\n")
    assert resolve(str(p)).mode is BootMode.KERNEL and resolve(str(p)).iso is None
    forced = resolve(str(p), BootMode.ISO)
    assert forced.mode is BootMode.ISO and forced.iso == Path(f"{p}.iso")
    assert forced.kernel == Path(f"{p}-kernel")
    _touch(f"{p}-cmdline", b"console=ttyS0 root=LABEL=DISTROKIT\n")
    src = resolve(str(p))
    assert src.mode is BootMode.ISO and src.iso == Path(f"{p}.iso")
    assert src.kernel == Path(f"{p}-kernel") and src.initrd == Path(f"{p}-initrd.img")
    assert resolve(str(p), BootMode.KERNEL).iso is None


def test_missing_root_image_or_iso(tmp_path: Path) -> None:
    p = tmp_path / "k"
    _touch(f"{p}-kernel")
    with pytest.raises(UsageError, match=r"-erofs\.img"):
        resolve(str(p), BootMode.SQUASHFS)
    with pytest.raises(UsageError, match=r"k\.iso"):
        _touch(f"{p}-cmdline", b"root=/dev/sr0")
        resolve(str(p), BootMode.ISO)


@pytest.mark.parametrize(
    ("name", "data", "fmt"),
    [
        ("a.img", b"QFI\xfb" + bytes(1020), "qcow2"),
        ("a.img", b"KDMV" + bytes(1020), "vmdk"),
        ("a.img", b"# Disk DescriptorFile\n" + bytes(100), "vmdk"),
        ("a.img", b"conectix" + bytes(1020), "vpc"),
        ("a.img", bytes(1024) + b"conectix" + bytes(504), "vpc"),  # fixed VHD: footer only
        ("a.img", b"vhdxfile" + bytes(1020), "vhdx"),
        ("a.vhd", bytes(100), "vpc"),
        ("a.vmdk", bytes(100), "vmdk"),
        ("a.img", bytes(1024), "raw"),
        ("a", b"", "raw"),
    ],
)
def test_detect_disk_format(tmp_path: Path, name: str, data: bytes, fmt: str) -> None:
    assert detect_disk_format(_touch(tmp_path / name, data)) == fmt


def test_nothing_to_boot(tmp_path: Path) -> None:
    with pytest.raises(UsageError, match="nothing to boot"):
        resolve(str(tmp_path / "none"))
    with pytest.raises(UsageError, match=r"kernel file .* not found"):
        resolve(str(tmp_path / "none"), BootMode.KERNEL)
    with pytest.raises(UsageError, match="not a file"):
        resolve(str(tmp_path))
