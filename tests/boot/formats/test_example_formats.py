"""examples/minimal.yml (distrokit's own packages, the real init) built as every bootable format
with ``distrokit build`` and each booted with ``distrokit run qemu`` until the init reports that
an onboot container of the system ran.

The packages and the system are built once; the formats go into a few builds (see `BUILDS`)
only because some share output names and so that a build failure fails only its formats. BIOS
formats boot with SeaBIOS, EFI ones with OVMF (``--uefi``), disk images by their detected
format (qcow2, vmdk, vpc), the gcp tarball unpacked to its disk.raw, and the kernel+* formats
from their NAME prefix: QEMU loads the kernel and the root-finder initrd, which finds the root
on the squashfs/erofs disk or on the ISO.
"""

from __future__ import annotations

import subprocess
import sys
import tarfile
from pathlib import Path

import pytest
from guest import Boot, start
from hosttools import require_tools
from minimal_system import build_minimal_system

from distrokit.formats.bootable import bootable_formats

MARKER = "distrokit: onboot formatmarker: exited 0"
TIMEOUT = 180.0
OVERLAY = """\
onboot:
  - name: formatmarker
    image: "@pkg:../pkg/poweroff"
    command: [/bin/sh, -c, "echo DISTROKIT-FORMAT-ONBOOT"]
"""
# build NAME -> its formats. Formats sharing an output name (NAME.vhd, NAME.iso, NAME-kernel)
# go into different builds, and those with the root finder (which needs the system kernel's
# disk and file-system modules) apart from those without, so one failure names its formats.
BUILDS = {
    "fmt": (
        "raw-bios", "raw-efi", "aws", "gcp", "qcow2-bios", "qcow2-efi", "vmdk", "vhd",
        "iso-efi-initrd",
    ),
    "dyn": ("dynamic-vhd",),
    "med": ("iso-bios", "iso-efi", "kernel+squashfs"),
    "ero": ("kernel+erofs",),
    "kiso": ("kernel+iso",),
}  # fmt: skip
# format -> what `distrokit run qemu` is given (relative to the output directory)
BOOT = {
    "raw-bios": "fmt-bios.img",
    "raw-efi": "fmt-efi.img",
    "aws": "fmt.raw",
    "gcp": "gcp/disk.raw",
    "qcow2-bios": "fmt.qcow2",
    "qcow2-efi": "fmt-efi.qcow2",
    "vmdk": "fmt.vmdk",
    "vhd": "fmt.vhd",
    "dynamic-vhd": "dyn.vhd",
    "iso-bios": "med.iso",
    "iso-efi": "med-efi.iso",
    "iso-efi-initrd": "fmt-efi-initrd.iso",
    "kernel+squashfs": "med",
    "kernel+erofs": "ero",
    "kernel+iso": "kiso",
}
EFI = frozenset(("raw-efi", "qcow2-efi", "iso-efi", "iso-efi-initrd"))


def _build(repo: Path, cache: Path, out: Path, name: str, formats: tuple[str, ...]) -> str:
    """Build `formats` as NAME `name`; "" or distrokit's error output."""
    proc = subprocess.run(
        [sys.executable, "-m", "distrokit", "build", "--cache", str(cache),
         "-format", ",".join(formats), "--name", name, "--dir", str(out),
         "examples/minimal.yml", "examples/test-overlay.yml"],
        cwd=repo, capture_output=True, text=True, check=False, timeout=600,
    )  # fmt: skip
    return "" if proc.returncode == 0 else proc.stderr or f"exit status {proc.returncode}"


@pytest.fixture(scope="module")
def outputs(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict[str, str]]:
    """The output directory and, per format, its build's error ("" when it built)."""
    require_tools("git", "apt-get", "dpkg-deb", "qemu-system-x86_64", "qemu-img", "xorriso")
    require_tools("syslinux", "mksquashfs", "mkfs.erofs", "mkfs.vfat", "mcopy", "mmd")
    work = tmp_path_factory.mktemp("example")
    build_minimal_system(work, overlay=OVERLAY)
    out = work / "out"
    errors: dict[str, str] = {}
    for name, formats in BUILDS.items():
        error = _build(work / "repo", work / "cache", out, name, formats)
        errors.update(dict.fromkeys(formats, error))
    if not errors["gcp"]:
        with tarfile.open(out / "fmt.img.tar.gz", "r:gz") as tar:  # GCP's layout: one disk.raw
            assert tar.getnames() == ["disk.raw"]
            tar.extractall(out / "gcp", filter="data")
    return out, errors


def test_every_bootable_format_is_built_and_booted() -> None:
    built = [f for formats in BUILDS.values() for f in formats]
    assert sorted(BOOT) == sorted(bootable_formats()) == sorted(built)


@pytest.mark.parametrize("fmt", list(BOOT))
def test_example_system_boots_to_its_onboot_container(
    fmt: str, outputs: tuple[Path, dict[str, str]], boots: list[Boot], tmp_path: Path
) -> None:
    out, errors = outputs
    assert not errors[fmt], f"distrokit build -format {fmt} failed:\n{errors[fmt]}"
    target = out / BOOT[fmt]
    assert target.is_file() or Path(f"{target}-kernel").is_file()
    # Each image is booted once, in place (the guest may write to it); the state goes apart.
    boot = start("--accel", "tcg", "--mem", "1024", *(["--uefi"] if fmt in EFI else []),
                 "--networking", "none", "--state", str(tmp_path / "state"),
                 str(target))  # fmt: skip
    boots.append(boot)
    boot.wait_for(MARKER, TIMEOUT)
    assert "distrokit: onboot sysctl: exited 0" in boot.text()
