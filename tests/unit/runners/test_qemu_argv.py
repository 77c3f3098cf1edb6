"""qemu_argv: the QEMU command line for each boot mode and flag, built without starting QEMU."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import pytest

from distrokit.errors import RunError, UsageError
from distrokit.runners.config import (
    BootMode,
    BootSource,
    Console,
    DiskSpec,
    NetMode,
    Networking,
    Publish,
    RunConfig,
)
from distrokit.runners.qemu import HostFacts, pick_machine, qemu_argv

STATE = Path("/state")
KERNEL = BootSource(
    mode=BootMode.KERNEL,
    prefix="/out/demo",
    kernel=Path("/out/demo-kernel"),
    initrd=Path("/out/demo-initrd.img"),
    cmdline="console=ttyS0",
)
ISO = BootSource(mode=BootMode.ISO, prefix="/out/demo", iso=Path("/out/demo.iso"))
DISK = BootSource(
    mode=BootMode.DISK, prefix="/out/demo", disk=Path("/out/demo.qcow2"), disk_format="qcow2"
)
SQUASHFS = BootSource(
    mode=BootMode.SQUASHFS,
    prefix="/out/demo",
    kernel=Path("/out/demo-kernel"),
    squashfs=Path("/out/demo-squashfs.img"),
    cmdline="console=ttyS0",
)
TCG = HostFacts(
    qemu="qemu-system-x86_64",
    accel="tcg",
    tsc_khz=2500000,
    pvh_kernel=Path("/cache/abc.vmlinux"),
    mac="02:00:00:00:00:01",
)


def _run(source: BootSource = KERNEL, **kw: object) -> RunConfig:
    return RunConfig(source=source, state_dir=STATE, **kw)  # type: ignore[arg-type]


def _after(argv: list[str], flag: str) -> list[str]:
    """Every value that follows `flag` in argv."""
    return [argv[i + 1] for i, a in enumerate(argv) if a == flag]


@pytest.mark.parametrize(
    ("source", "kw", "machine"),
    [
        (KERNEL, {}, "microvm,acpi=on,x-option-roms=off"),
        (KERNEL, {"pvh": False}, "microvm,acpi=on,x-option-roms=on"),
        (KERNEL, {"machine": "q35"}, "q35"),
        (KERNEL, {"uefi": True}, "q35"),
        (ISO, {}, "q35"),
        (DISK, {}, "q35"),
        (SQUASHFS, {}, "q35"),
        (KERNEL, {"arch": "aarch64"}, "virt"),
        (KERNEL, {"devices": ("virtio-balloon-device",)}, "microvm,acpi=on,x-option-roms=off"),
        (KERNEL, {"devices": ("e1000,netdev=n1",)}, "q35"),
        (KERNEL, {"devices": ("virtio-gpu-pci",)}, "q35"),
    ],
)
def test_machine_per_mode(source: BootSource, kw: dict[str, object], machine: str) -> None:
    argv = qemu_argv(_run(source, **kw), TCG)
    assert _after(argv, "-M") == [machine]


def test_fast_path_boots_pvh_elf_with_tsc_and_virtio_mmio() -> None:
    argv = qemu_argv(_run(disks=(DiskSpec(path=Path("/d.img"), format="raw"),)), TCG)
    assert argv[0] == "qemu-system-x86_64"
    assert _after(argv, "-kernel") == ["/cache/abc.vmlinux"]
    assert _after(argv, "-initrd") == ["/out/demo-initrd.img"]
    assert _after(argv, "-append") == ["console=ttyS0 tsc_early_khz=2500000"]
    assert _after(argv, "-accel") == ["tcg"]
    devices = _after(argv, "-device")
    assert "virtio-blk-device,drive=disk0" in devices
    assert "virtio-net-device,netdev=net0,mac=02:00:00:00:00:01" in devices
    assert "virtio-rng-device,rng=rng0" in devices
    assert not [d for d in devices if "-pci" in d]
    assert _after(argv, "-pidfile") == ["/state/qemu.pid"]
    assert "-no-reboot" in argv and "-nodefaults" in argv


def test_q35_uses_bzimage_without_pvh_and_pci_devices() -> None:
    argv = qemu_argv(_run(machine="q35", pvh=False, append=("quiet", "x=1")), TCG)
    assert _after(argv, "-kernel") == ["/out/demo-kernel"]
    # tsc_early_khz is only needed on microvm (no HPET/PM timer there)
    assert _after(argv, "-append") == ["console=ttyS0 quiet x=1"]
    assert "virtio-net-pci,netdev=net0,mac=02:00:00:00:00:01" in _after(argv, "-device")


def test_kvm_adds_cpu_host_and_no_tsc() -> None:
    argv = qemu_argv(_run(), replace(TCG, accel="kvm"))
    assert _after(argv, "-accel") == ["kvm"]
    assert _after(argv, "-cpu") == ["host"]
    assert "tsc_early_khz" not in " ".join(argv)


def test_no_pvh_kernel_found_falls_back_to_bzimage_with_roms() -> None:
    argv = qemu_argv(_run(), replace(TCG, pvh_kernel=None))
    assert _after(argv, "-kernel") == ["/out/demo-kernel"]
    assert _after(argv, "-M") == ["microvm,acpi=on,x-option-roms=on"]


def test_iso_disk_and_squashfs_boots() -> None:
    iso = qemu_argv(_run(ISO), TCG)
    assert "file=/out/demo.iso,media=cdrom,if=none,id=cd0,readonly=on" in _after(iso, "-drive")
    assert "ide-cd,drive=cd0,bus=ide.1,bootindex=0" in _after(iso, "-device")
    assert "-kernel" not in iso
    disk = qemu_argv(_run(DISK), TCG)
    assert "file=/out/demo.qcow2,format=qcow2,if=none,id=boot" in _after(disk, "-drive")
    assert "virtio-blk-pci,drive=boot,bootindex=0" in _after(disk, "-device")
    sq = qemu_argv(_run(SQUASHFS), TCG)
    assert _after(sq, "-append") == ["console=ttyS0 root=/dev/sda"]
    assert "ide-hd,drive=squashfs,bus=ide.0" in _after(sq, "-device")
    assert "file=/out/demo-squashfs.img,format=raw,if=none,id=squashfs" in _after(sq, "-drive")


def test_squashfs_and_erofs_pass_the_root_finder_initrd() -> None:
    erofs = replace(
        SQUASHFS,
        squashfs=Path("/out/demo-erofs.img"),
        initrd=Path("/out/demo-initrd.img"),
    )
    argv = qemu_argv(_run(erofs), TCG)
    assert _after(argv, "-kernel") == ["/out/demo-kernel"]
    assert _after(argv, "-initrd") == ["/out/demo-initrd.img"]
    assert _after(argv, "-append") == ["console=ttyS0 root=/dev/sda"]
    assert "file=/out/demo-erofs.img,format=raw,if=none,id=squashfs" in _after(argv, "-drive")
    assert "-initrd" not in qemu_argv(_run(SQUASHFS), TCG)


def test_kernel_iso_attaches_the_cd_without_a_boot_index() -> None:
    source = BootSource(
        mode=BootMode.ISO,
        prefix="/out/demo",
        kernel=Path("/out/demo-kernel"),
        initrd=Path("/out/demo-initrd.img"),
        cmdline="console=ttyS0 root=LABEL=DISTROKIT",
        iso=Path("/out/demo.iso"),
    )
    argv = qemu_argv(_run(source), TCG)
    assert _after(argv, "-M") == ["q35"]
    assert _after(argv, "-kernel") == ["/out/demo-kernel"]  # the bzImage: PVH is microvm only
    assert _after(argv, "-initrd") == ["/out/demo-initrd.img"]
    assert _after(argv, "-append") == ["console=ttyS0 root=LABEL=DISTROKIT"]
    assert "ide-cd,drive=cd0,bus=ide.1" in _after(argv, "-device")
    assert not any("bootindex" in device for device in _after(argv, "-device"))
    uefi = qemu_argv(_run(source, uefi=True), TCG)
    assert not any("bootindex" in device for device in _after(uefi, "-device"))


def test_uefi_pflash_code_and_vars_copy() -> None:
    argv = qemu_argv(_run(ISO, uefi=True), TCG)
    assert _after(argv, "-drive")[:2] == [
        "if=pflash,format=raw,unit=0,readonly=on,file=/usr/share/OVMF/OVMF_CODE.fd",
        "if=pflash,format=raw,unit=1,file=/state/OVMF_VARS.fd",
    ]
    custom = qemu_argv(_run(ISO, uefi=True, firmware=Path("/fw/CODE.fd")), TCG)
    assert "file=/fw/CODE.fd" in _after(custom, "-drive")[0]


@pytest.mark.parametrize(
    ("networking", "publish", "netdev"),
    [
        (Networking(), (), "user,id=net0"),
        (
            Networking(),
            (
                Publish(host_port=8080, guest_port=80),
                Publish(host_port=53, guest_port=53, protocol="udp"),
            ),
            "user,id=net0,hostfwd=tcp::8080-:80,hostfwd=udp::53-:53",
        ),
        (
            Networking(mode=NetMode.TAP, name="tap0"),
            (),
            "tap,id=net0,ifname=tap0,script=no,downscript=no",
        ),
        (Networking(mode=NetMode.BRIDGE, name="br0"), (), "bridge,id=net0,br=br0"),
    ],
)
def test_networking(networking: Networking, publish: tuple[Publish, ...], netdev: str) -> None:
    argv = qemu_argv(_run(networking=networking, publish=publish), TCG)
    assert _after(argv, "-netdev") == [netdev]


def test_networking_none_has_no_nic() -> None:
    argv = qemu_argv(_run(networking=Networking(mode=NetMode.NONE)), TCG)
    assert "-netdev" not in argv
    assert not [d for d in _after(argv, "-device") if "net" in d]


def test_publish_needs_user_networking() -> None:
    run = _run(
        networking=Networking(mode=NetMode.TAP, name="tap0"),
        publish=(Publish(host_port=1, guest_port=2),),
    )
    with pytest.raises(UsageError, match="--publish only works with --networking user"):
        qemu_argv(run, TCG)


@pytest.mark.parametrize(
    ("console", "serial"),
    [
        (Console(), "stdio"),
        (Console(kind="file", path=Path("/tmp/c.log")), "file:/tmp/c.log"),
        (Console(kind="none"), "null"),
    ],
)
def test_console(console: Console, serial: str) -> None:
    assert _after(qemu_argv(_run(console=console), TCG), "-serial") == [serial]


def test_data_iso_cd_per_machine() -> None:
    micro = qemu_argv(_run(data=b"x"), TCG)
    assert "file=/state/data.iso,media=cdrom,if=none,id=data,readonly=on" in _after(micro, "-drive")
    assert "scsi-cd,drive=data,bus=scsi0.0" in _after(micro, "-device")
    q35 = qemu_argv(_run(ISO, data=b"x"), TCG)
    assert "ide-cd,drive=data,bus=ide.2" in _after(q35, "-device")


def test_cpus_mem_detach_devices_and_qemu_binary() -> None:
    run = _run(cpus=2, mem_mb=512, detach=True, devices=("virtio-balloon-device",))
    argv = qemu_argv(run, replace(TCG, qemu="/opt/q"))
    assert _after(argv, "-device")[-1] == "virtio-balloon-device"
    assert argv[0] == "/opt/q"
    assert _after(argv, "-smp") == ["2"] and _after(argv, "-m") == ["512"]
    assert argv[-1] == "-daemonize"


def test_microvm_refuses_what_needs_pci_or_firmware() -> None:
    with pytest.raises(UsageError, match="microvm cannot boot an ISO"):
        pick_machine(_run(ISO, machine="microvm"))
    with pytest.raises(UsageError, match="with UEFI"):
        pick_machine(_run(uefi=True, machine="microvm"))
    with pytest.raises(UsageError, match="with PCI device nvme"):
        pick_machine(_run(devices=("nvme,drive=x",), machine="microvm"))


def test_unresolved_disk_is_an_error() -> None:
    with pytest.raises(RunError, match="not resolved"):
        qemu_argv(_run(disks=(DiskSpec(size_mb=10),)), TCG)


def test_aarch64_boots_kernels_only() -> None:
    argv = qemu_argv(_run(arch="aarch64"), TCG)
    assert _after(argv, "-cpu") == ["cortex-a57"]
    assert "virtio-net-pci,netdev=net0,mac=02:00:00:00:00:01" in _after(argv, "-device")
    with pytest.raises(UsageError, match="aarch64 guests boot kernel"):
        qemu_argv(_run(ISO, arch="aarch64"), TCG)


def test_unknown_arch() -> None:
    with pytest.raises(UsageError, match="unsupported --arch riscv64"):
        qemu_argv(_run(arch="riscv64"), TCG)


NETBOOT = BootSource(mode=BootMode.NETWORK, prefix="netboot")


def test_a_reboot_ends_the_vm_unless_asked_otherwise() -> None:
    assert "-no-reboot" in qemu_argv(_run(), TCG)
    assert "-no-reboot" not in qemu_argv(_run(reboot=True), TCG)


def test_netboot_tries_the_network_first_or_the_disk_first() -> None:
    disk = (DiskSpec(path=Path("/d.img"), format="raw"),)
    net_first = _after(qemu_argv(_run(NETBOOT, disks=disk, netboot_url="http://h/b.ipxe"), TCG),
                       "-device")  # fmt: skip
    assert any(d.startswith("virtio-net-pci") and "bootindex=0" in d for d in net_first)
    assert not any(d.startswith("virtio-blk-pci") and "bootindex" in d for d in net_first)
    run = _run(NETBOOT, disks=disk, netboot_url="http://h/b.ipxe", disk_first=True)
    disk_first = _after(qemu_argv(run, TCG), "-device")
    assert "virtio-blk-pci,drive=disk0,bootindex=0" in disk_first
    assert any(d.startswith("virtio-net-pci") and "bootindex=1" in d for d in disk_first)


def test_qmp_socket_is_served_without_waiting_for_a_client() -> None:
    assert "-qmp" not in qemu_argv(_run(), TCG)
    argv = qemu_argv(_run(qmp=Path("/state/qmp.sock")), TCG)
    assert _after(argv, "-qmp") == ["unix:/state/qmp.sock,server=on,wait=off"]
