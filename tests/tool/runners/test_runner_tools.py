"""Runner pieces against real host programs: the Debian bzImage, qemu-img, a KVM probe VM."""

from __future__ import annotations

import json
import struct
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from hosttools import require_tools

from distrokit.errors import RunError, UsageError
from distrokit.host import Host
from distrokit.runners import accel, pvh, qemu, state
from distrokit.runners.config import DiskSpec
from distrokit.runners.source import detect_disk_format


def _debian_kernel() -> Path:
    kernels = sorted(Path("/boot").glob("vmlinuz-*"))
    if not kernels:
        pytest.fail("no /boot/vmlinuz-* (scripts/setup installs linux-image-amd64)")
    return kernels[-1]


def test_pvh_extraction_of_the_debian_kernel(tmp_path: Path) -> None:
    kernel = _debian_kernel()
    elf = pvh.pvh_kernel(kernel, tmp_path)
    assert elf is not None
    header = elf.read_bytes()[:64]
    assert header[:4] == b"\x7fELF" and struct.unpack_from("<H", header, 0x12)[0] == 62  # x86-64
    entry = pvh.pvh_entry(elf)
    assert entry is not None and entry > 0x100000
    # the kernel build appends the uncompressed size after the compressed payload
    start, length = pvh.payload_location(kernel)
    with kernel.open("rb") as f:
        f.seek(start + length - 4)
        (size,) = struct.unpack("<I", f.read(4))
    assert elf.stat().st_size == size


@pytest.mark.parametrize(
    ("fmt", "name"),
    [("qcow2", "d.img"), ("vmdk", "d.img"), ("vpc", "d.img"), ("vhdx", "d.img"), ("raw", "d.bin")],
)
def test_detect_formats_of_qemu_img_disks(host: Host, tmp_path: Path, fmt: str, name: str) -> None:
    require_tools("qemu-img")
    path = tmp_path / name
    host.run(["qemu-img", "create", "-q", "-f", fmt, str(path), "8M"])
    assert detect_disk_format(path) == fmt


def _info(host: Host, path: Path) -> dict[str, Any]:
    return dict(json.loads(host.output(["qemu-img", "info", "--output=json", str(path)])))


def test_disks_created_once_in_state(host: Host, tmp_path: Path) -> None:
    require_tools("qemu-img")
    own = tmp_path / "own.raw"
    specs = (
        DiskSpec(size_mb=16),
        DiskSpec(path=own, size_mb=8, format="raw"),
        DiskSpec(size_mb=1024),
    )
    disks = state.resolve_disks(host, tmp_path, specs)
    assert [d.path for d in disks] == [tmp_path / "disk.img", own, tmp_path / "disk2.img"]
    assert [d.format for d in disks] == ["qcow2", "raw", "qcow2"]
    assert _info(host, tmp_path / "disk.img")["virtual-size"] == 16 << 20
    assert _info(host, own)["virtual-size"] == 8 << 20
    # a second run finds the disks (format from their contents), keeps their data
    (tmp_path / "own.raw").write_bytes(b"data" + bytes((8 << 20) - 4))
    again = state.resolve_disks(host, tmp_path, (DiskSpec(size_mb=99), DiskSpec(path=own)))
    assert [d.format for d in again] == ["qcow2", "raw"]
    assert _info(host, tmp_path / "disk.img")["virtual-size"] == 16 << 20
    assert own.read_bytes()[:4] == b"data"


def test_missing_disk_without_size(host: Host, tmp_path: Path) -> None:
    with pytest.raises(UsageError, match="does not exist and no size"):
        state.resolve_disks(host, tmp_path, (DiskSpec(path=tmp_path / "nope.img"),))


@dataclass
class _Recording(Host):
    started: list[list[str]] = field(default_factory=list)

    def popen(self, argv: Any, **kwargs: Any) -> Any:
        self.started.append([str(a) for a in argv])
        return super().popen(argv, **kwargs)


def test_auto_accel_probes_once_then_uses_the_cache(tmp_path: Path) -> None:
    require_tools("qemu-system-x86_64")
    if not Path("/dev/kvm").exists():
        pytest.fail("this test needs /dev/kvm to exercise the probe")
    host = _Recording()
    qemu = "qemu-system-x86_64"
    first = accel.choose_accel(host, qemu, "auto", _debian_kernel(), cache=tmp_path)
    assert first.accel in ("kvm", "tcg")
    assert len(host.started) == 1 and "kvm" in host.started[0]
    cached = json.loads((tmp_path / "accel.json").read_text())
    assert cached[accel.cache_key(qemu)]["accel"] == first.accel
    second = accel.choose_accel(host, qemu, "auto", _debian_kernel(), cache=tmp_path)
    assert second.accel == first.accel and second.reason.startswith("cached:")
    assert len(host.started) == 1
    forced = accel.choose_accel(host, qemu, "tcg", None, cache=tmp_path)
    assert forced.accel == "tcg" and len(host.started) == 1


def test_tsc_khz_matches_cpuinfo() -> None:
    khz = accel.tsc_khz()
    mhz = [line for line in Path("/proc/cpuinfo").read_text().splitlines() if "cpu MHz" in line]
    assert khz is not None and mhz
    assert abs(khz / 1000 - float(mhz[0].split(":")[1])) < 1


def test_launch_streams_output_and_maps_exit_status(host: Host) -> None:
    require_tools("qemu-system-x86_64")
    chunks: list[bytes] = []
    assert qemu.launch(host, ["qemu-system-x86_64", "--version"], on_output=chunks.append) == 0
    assert b"QEMU emulator version" in b"".join(chunks)
    with pytest.raises(RunError, match="QEMU exited with status 1"):
        qemu.launch(host, ["qemu-system-x86_64", "-no-such-option"], on_output=chunks.append)


def test_launch_reports_a_killed_vmm(host: Host) -> None:
    with pytest.raises(RunError, match="killed by signal 9"):
        qemu.launch(host, ["sh", "-c", "kill -9 $$"], on_output=lambda _: None)
