"""Every bootable format, built from one example system, booted under TCG until the guest's
own init prints the marker with the root's file system type: rootfs for a RAM root, overlay
when the root finder mounted the medium (under a RAM overlay). The /init that prints it exists
only in the root file system on the medium, not in the root finder's initramfs.

Disk and ISO formats boot through the real ``distrokit run qemu`` CLI (SeaBIOS, or OVMF with
``--uefi``). The kernel+squashfs / kernel+erofs / kernel+iso outputs carry the root finder as
NAME-initrd.img, which ``run qemu``'s prefix lookup does not pass in squashfs mode yet, so those
boot through the runner API with the initrd set (in a subprocess, so a hang can be killed).
"""

from __future__ import annotations

import shutil
import subprocess
import sys
import tarfile
from pathlib import Path

import fmt_system
import pytest
from guest import Boot, start
from hosttools import require_tools

from distrokit.formats.disk import BootFiles

TIMEOUT = 150.0
TCG = ("--accel", "tcg", "--mem", "512")
Built = dict[str, dict[str, Path]]


@pytest.fixture(scope="module")
def built(tmp_path_factory: pytest.TempPathFactory) -> Built:
    require_tools("qemu-system-x86_64", "qemu-img", "mkfs.vfat", "mcopy", "syslinux", "xorriso")
    require_tools("mksquashfs", "mkfs.erofs")
    base = tmp_path_factory.mktemp("formats")
    (base / "system").mkdir()
    system: BootFiles = fmt_system.make_system(base / "system")
    names = ("raw-bios", "raw-efi", "aws", "gcp", "qcow2-bios", "qcow2-efi", "vmdk", "vhd",
             "dynamic-vhd", "iso-bios", "iso-efi", "iso-efi-initrd", "kernel+squashfs",
             "kernel+erofs", "kernel+iso")  # fmt: skip
    return {name: fmt_system.build(name, system, base / name, size="64M") for name in names}


def _boot(boots: list[Boot], *args: str) -> str:
    boot = start(*TCG, *args)
    boots.append(boot)
    boot.wait_for(fmt_system.MARKER + " root=", TIMEOUT)
    boot.finish(TIMEOUT)
    return boot.text()


def _copy(src: Path, dest: Path) -> Path:
    # Booting may write to the image (e.g. the FAT's dirty bit): boot a copy.
    shutil.copyfile(src, dest)
    return dest


CLI_CASES = [
    ("raw-bios", "-bios.img", False, "rootfs"),
    ("raw-efi", "-efi.img", True, "rootfs"),
    ("aws", ".raw", False, "rootfs"),
    ("qcow2-bios", ".qcow2", False, "rootfs"),
    ("qcow2-efi", "-efi.qcow2", True, "rootfs"),
    ("vmdk", ".vmdk", False, "rootfs"),
    ("vhd", ".vhd", False, "rootfs"),
    ("dynamic-vhd", ".vhd", False, "rootfs"),
    ("iso-bios", ".iso", False, "overlay"),
    ("iso-efi", "-efi.iso", True, "overlay"),
    ("iso-efi-initrd", "-efi-initrd.iso", True, "rootfs"),
]


@pytest.mark.parametrize("case", CLI_CASES, ids=[c[0] for c in CLI_CASES])
def test_format_boots_with_run_qemu(
    case: tuple[str, str, bool, str], built: Built, boots: list[Boot], tmp_path: Path
) -> None:
    name, suffix, uefi, root = case
    image = _copy(built[name][suffix], tmp_path / f"boot{suffix}")
    out = _boot(boots, *(["--uefi"] if uefi else []), str(image))
    assert f"{fmt_system.MARKER} root={root}" in out


def test_iso_bios_is_hybrid_and_boots_as_a_disk(
    built: Built, boots: list[Boot], tmp_path: Path
) -> None:
    image = _copy(built["iso-bios"][".iso"], tmp_path / "hybrid.img")
    out = _boot(boots, str(image))  # a .img: attached as a virtio disk, not a CD
    assert f"{fmt_system.MARKER} root=overlay" in out


def test_gcp_disk_raw_boots(built: Built, boots: list[Boot], tmp_path: Path) -> None:
    with tarfile.open(built["gcp"][".img.tar.gz"], "r:gz") as tar:
        tar.extract("disk.raw", tmp_path, filter="data")
    out = _boot(boots, str(tmp_path / "disk.raw"))
    assert f"{fmt_system.MARKER} root=rootfs" in out


RUNNER = """
import sys
from pathlib import Path
from distrokit.host import Host
from distrokit.runners.config import BootMode, BootSource, DiskSpec, RunConfig
from distrokit.runners.qemu import run_vm

prefix, image, mode = sys.argv[1:4]
source = BootSource(
    mode=BootMode(mode), prefix=prefix, kernel=Path(prefix + "-kernel"),
    initrd=Path(prefix + "-initrd.img"), cmdline=Path(prefix + "-cmdline").read_text().strip(),
    squashfs=Path(image) if mode == "squashfs" else None,
)
# kernel+iso: QEMU refuses -kernel together with a CD boot device, so the ISO is a plain disk
disks = (DiskSpec(path=Path(image), format="raw"),) if mode == "kernel" else ()
run = RunConfig(source=source, state_dir=Path(prefix + "-state"), accel="tcg", mem_mb=512,
                machine="q35", disks=disks)
sys.exit(run_vm(Host(), run))
"""

MEDIUM_CASES = [
    ("kernel+squashfs", "-squashfs.img", "squashfs", "overlay"),
    ("kernel+erofs", "-erofs.img", "squashfs", "overlay"),
    ("kernel+iso", ".iso", "kernel", "overlay"),
]


@pytest.mark.parametrize("case", MEDIUM_CASES, ids=[c[0] for c in MEDIUM_CASES])
def test_medium_root_boots_with_the_root_finder(
    case: tuple[str, str, str, str], built: Built, boots: list[Boot]
) -> None:
    name, suffix, mode, root = case
    prefix = str(built[name]["-kernel"]).removesuffix("-kernel")
    proc = subprocess.Popen(
        [sys.executable, "-c", RUNNER, prefix, str(built[name][suffix]), mode],
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    boot = Boot(proc=proc, started=0.0)
    boots.append(boot)
    boot.wait_for(f"{fmt_system.MARKER} root={root}", TIMEOUT)
    assert boot.finish(TIMEOUT) == 0
