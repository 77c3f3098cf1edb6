"""examples/minimal.yml (distrokit's own packages, the real init) built as bootable formats with
``distrokit build`` and booted with ``distrokit run qemu`` until the init reports that an onboot
container of the system ran: a BIOS disk, an EFI disk and an ISO whose root file system lives on
the medium (found by the root finder, run by the real init).
"""

from __future__ import annotations

import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from guest import Boot, start
from test_minimal_system import build_minimal_system

from conftest import require_tools

MARKER = "distrokit: onboot formatmarker: exited 0"
TIMEOUT = 240.0
OVERLAY = """\
onboot:
  - name: formatmarker
    image: "@pkg:../pkg/poweroff"
    command: [/bin/sh, -c, "echo DISTROKIT-FORMAT-ONBOOT"]
"""
FORMATS = {"raw-bios": "fmt-bios.img", "raw-efi": "fmt-efi.img", "iso-bios": "fmt.iso"}


@pytest.fixture(scope="module")
def outputs(tmp_path_factory: pytest.TempPathFactory) -> Path:
    require_tools("git", "apt-get", "dpkg-deb", "qemu-system-x86_64", "xorriso", "syslinux")
    work = tmp_path_factory.mktemp("example")
    build_minimal_system(work, overlay=OVERLAY)
    repo, out = work / "repo", work / "out"
    proc = subprocess.run(
        [sys.executable, "-m", "distrokit", "build", "--cache", str(work / "cache"),
         "-format", ",".join(FORMATS), "--name", "fmt", "--dir", str(out),
         "examples/minimal.yml", "examples/test-overlay.yml"],
        cwd=repo, capture_output=True, text=True, check=False, timeout=600,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    for name in FORMATS.values():
        assert f"  {name}" in proc.stderr  # progress goes to stderr, as LinuxKit's logrus
    return out


@pytest.fixture
def boots() -> Iterator[list[Boot]]:
    started: list[Boot] = []
    yield started
    for boot in started:
        boot.stop()


@pytest.mark.parametrize("fmt", sorted(FORMATS))
def test_example_system_boots_to_its_onboot_container(
    fmt: str, outputs: Path, boots: list[Boot], tmp_path: Path
) -> None:
    image = tmp_path / FORMATS[fmt]
    shutil.copyfile(outputs / FORMATS[fmt], image)
    boot = start("--accel", "tcg", "--mem", "1024", *(["--uefi"] if "efi" in fmt else []),
                 "--networking", "none", str(image))  # fmt: skip
    boots.append(boot)
    boot.wait_for(MARKER, TIMEOUT)
    assert "distrokit: onboot sysctl: exited 0" in boot.text()
