"""The QEMU runner: a pure function from a `RunConfig` to QEMU's argv, plus a thin launcher.

Machine choice (``--machine auto``): kernel+initrd boots on x86_64 use ``-M microvm`` with ACPI
on (the Debian kernel finds virtio-mmio devices only through ACPI; it has no
``VIRTIO_MMIO_CMDLINE_DEVICES``) and, when the kernel has a PVH note, the uncompressed ELF
kernel with ``x-option-roms=off`` (a bzImage needs the option ROMs on instead). Everything on
microvm is virtio-mmio: virtio-blk-device, virtio-net-device, virtio-rng-device and, for the
metadata CD, scsi-cd on virtio-scsi-device. ISO, disk-image, squashfs/erofs (``root=/dev/sda``,
an AHCI disk as LinuxKit), kernel+iso (the ISO on the second AHCI port, no boot index: the
kernel boots directly and finds its root on the CD through ``root=`` in NAME-cmdline) and UEFI
boots need firmware or PCI devices and use ``q35``. Every kernel boot passes NAME-initrd.img when
it exists (distrokit's root finder for the medium-root formats).

Exit status of `launch`: 0 when the guest powered off or rebooted (``-no-reboot`` turns a reboot
into an exit), a `RunError` when QEMU failed or was killed, and Ctrl-C (or SIGTERM to distrokit)
stops QEMU (SIGTERM, then wait) and re-raises `KeyboardInterrupt` (the CLI maps it to 130).
"""

from __future__ import annotations

import logging
import os
import platform
import signal
import subprocess
import threading
from collections.abc import Callable
from dataclasses import dataclass, replace
from pathlib import Path
from typing import IO, Any

from distrokit.arch import kernel_arch
from distrokit.errors import RunError, UsageError
from distrokit.host import Host, terminate
from distrokit.runners import accel as accel_mod
from distrokit.runners import initrd as initrd_mod
from distrokit.runners import pvh, state
from distrokit.runners.config import BootMode, Console, NetMode, RunConfig

log = logging.getLogger(__name__)

ARCHES = ("x86_64", "aarch64")
MACHINES = ("auto", "microvm", "q35")


@dataclass(frozen=True, kw_only=True)
class HostFacts:
    """What was found on the host for this run (not asked for): the QEMU binary, the chosen
    accelerator, the host TSC frequency, the PVH kernel extracted from the bzImage, the MAC."""

    qemu: str
    accel: str  # "kvm" or "tcg"
    tsc_khz: int | None = None
    pvh_kernel: Path | None = None
    mac: str | None = None
    # The machine `check` chose in `prepare`; None lets `qemu_argv` check the run itself.
    machine: str | None = None


def host_arch() -> str:
    """The host architecture in QEMU's spelling."""
    return kernel_arch(platform.machine())


def qemu_binary(run: RunConfig) -> str:
    """``--qemu`` or ``qemu-system-<arch>``."""
    return run.qemu or f"qemu-system-{run.arch}"


_WHAT = {
    BootMode.KERNEL: "a kernel",
    BootMode.SQUASHFS: "a squashfs or erofs root",
    BootMode.ISO: "an ISO",
    BootMode.DISK: "a disk image",
    BootMode.NETWORK: "from the network",
}

# The virtio NIC's option ROM: iPXE for BIOS and UEFI in one image, which QEMU loads by
# default from Debian's ipxe-qemu. Naming it in romfile= would stop QEMU from patching the
# ROM's PCI ids to the device's, and SeaBIOS then skips it.
IPXE_ROM = Path("/usr/lib/ipxe/qemu/efi-virtio.rom")
IPXE_ROM_PACKAGE = "ipxe-qemu"
NETBOOT_TFTP = "tftp"  # in the state dir: QEMU's TFTP root for user networking
NETBOOT_FILE = "netboot.ipxe"  # the boot file there: a script that chains to the URL


# PCI-only devices commonly passed with --device (besides every "*-pci" one).
_PCI_DEVICES = frozenset(
    (
        "e1000",
        "e1000e",
        "rtl8139",
        "nvme",
        "ahci",
        "VGA",
        "qxl",
        "qemu-xhci",
        "usb-ehci",
        "ich9-ahci",
    )
)


def needs_pci(device: str) -> bool:
    """Whether a ``-device`` spec names a PCI device (so it cannot go on microvm)."""
    driver = device.split(",", 1)[0]
    return driver.endswith("-pci") or driver in _PCI_DEVICES


def pick_machine(run: RunConfig) -> str:
    """The QEMU machine type: microvm for x86 kernel+initrd boots, q35 otherwise (virt on
    aarch64)."""
    if run.arch == "aarch64":
        if run.machine != "auto":
            raise UsageError(f"--machine {run.machine} is not available for aarch64")
        if run.source.mode is not BootMode.KERNEL:
            raise UsageError(f"aarch64 guests boot kernel+initrd only, not {run.source.mode.value}")
        return "virt"
    pci = [d for d in run.devices if needs_pci(d)]
    fast = run.source.mode is BootMode.KERNEL and not run.uefi and not pci
    if run.machine == "microvm" and not fast:
        raise UsageError(
            f"--machine microvm cannot boot {_WHAT[run.source.mode]}"
            + (" with UEFI" if run.uefi else "")
            + (f" with PCI device {pci[0]}" if pci else ""),
            hint="microvm has no PCI and no firmware disk boot; use --machine q35",
        )
    if run.machine == "auto":
        return "microvm" if fast else "q35"
    return run.machine


def kernel_cmdline(run: RunConfig, facts: HostFacts, machine: str) -> str:
    """The guest command line: the system's own, then what this runner needs, then --append."""
    parts = [run.source.cmdline] if run.source.cmdline else []
    if run.source.mode is BootMode.SQUASHFS:
        parts.append("root=/dev/sda")
    if machine == "microvm" and facts.accel == "tcg" and facts.tsc_khz:
        parts.append(f"tsc_early_khz={facts.tsc_khz}")
    parts.extend(run.append)
    return " ".join(parts)


def _machine_args(run: RunConfig, facts: HostFacts, machine: str, use_pvh: bool) -> list[str]:
    spec = machine
    if machine == "microvm":
        spec += ",acpi=on,x-option-roms=" + ("off" if use_pvh else "on")
    args = ["-M", spec, "-accel", facts.accel]
    if facts.accel == "kvm":
        args += accel_mod.KVM_CPU_ARGS
    elif machine == "virt":
        args += ["-cpu", "cortex-a57"]
    return [*args, "-smp", str(run.cpus), "-m", str(run.mem_mb)]


def _console_args(console: Console) -> list[str]:
    if console.kind == "file" and console.path is not None:
        return ["-serial", f"file:{console.path}"]
    if console.kind == "none":
        return ["-serial", "null"]
    return ["-serial", "stdio"]


def _boot_args(run: RunConfig, facts: HostFacts, machine: str, use_pvh: bool) -> list[str]:
    src = run.source
    args: list[str] = []
    if run.uefi:
        code = run.firmware or state.OVMF_CODE
        vars_ = run.state_dir / "OVMF_VARS.fd"
        args += ["-drive", f"if=pflash,format=raw,unit=0,readonly=on,file={code}"]
        args += ["-drive", f"if=pflash,format=raw,unit=1,file={vars_}"]
    if src.kernel is not None:
        kernel = facts.pvh_kernel if use_pvh and facts.pvh_kernel else src.kernel
        args += ["-kernel", str(kernel)]
        if src.initrd is not None:
            args += ["-initrd", str(src.initrd)]
        args += ["-append", kernel_cmdline(run, facts, machine)]
    if src.squashfs is not None:
        # The squashfs or erofs root, the first SATA disk (/dev/sda) as LinuxKit attaches it.
        # ide-hd cannot be read-only; both file systems are read-only anyway
        args += ["-drive", f"file={src.squashfs},format=raw,if=none,id=squashfs"]
        args += ["-device", "ide-hd,drive=squashfs,bus=ide.0"]
    if src.iso is not None:
        # With -kernel the ISO is only the root medium (kernel+iso): QEMU refuses a CD at
        # bootindex 0 next to -kernel, and the firmware must not boot it anyway.
        boot = "" if src.kernel is not None else ",bootindex=0"
        args += ["-drive", f"file={src.iso},media=cdrom,if=none,id=cd0,readonly=on"]
        args += ["-device", f"ide-cd,drive=cd0,bus=ide.1{boot}"]
    if src.disk is not None:
        args += ["-drive", f"file={src.disk},format={src.disk_format or 'raw'},if=none,id=boot"]
        args += ["-device", "virtio-blk-pci,drive=boot,bootindex=0"]
    return args


def _devices(run: RunConfig, facts: HostFacts, machine: str) -> list[str]:
    bus = "device" if machine == "microvm" else "pci"
    args: list[str] = []
    for index, disk in enumerate(run.disks):
        if disk.path is None or disk.format is None:
            raise RunError(f"disk {index} was not resolved before building the QEMU command")
        args += ["-drive", f"file={disk.path},format={disk.format},if=none,id=disk{index}"]
        first = ",bootindex=0" if run.disk_first and index == 0 else ""
        args += ["-device", f"virtio-blk-{bus},drive=disk{index}{first}"]
    if run.data is not None:
        iso = run.state_dir / state.DATA_ISO
        args += ["-drive", f"file={iso},media=cdrom,if=none,id=data,readonly=on"]
        if machine == "microvm":
            args += ["-device", "virtio-scsi-device,id=scsi0"]
            args += ["-device", "scsi-cd,drive=data,bus=scsi0.0"]
        elif machine == "q35":
            args += ["-device", "ide-cd,drive=data,bus=ide.2"]
        else:
            args += ["-device", "virtio-blk-pci,drive=data"]
    args += _net_args(run, facts, bus)
    args += ["-object", "rng-random,id=rng0,filename=/dev/urandom"]
    args += ["-device", f"virtio-rng-{bus},rng=rng0"]
    for device in run.devices:
        args += ["-device", device]
    return args


def _net_args(run: RunConfig, facts: HostFacts, bus: str) -> list[str]:
    net = run.networking
    if net.mode is NetMode.NONE:
        return []
    if net.mode is NetMode.USER:
        netdev = "user,id=net0" + "".join(
            f",hostfwd={p.protocol}::{p.host_port}-:{p.guest_port}" for p in run.publish
        )
        if run.source.mode is BootMode.NETWORK:
            # QEMU's own DHCP names the boot file and its TFTP serves it to the NIC's iPXE
            netdev += f",tftp={run.state_dir / NETBOOT_TFTP},bootfile={NETBOOT_FILE}"
    elif net.mode is NetMode.TAP:
        netdev = f"tap,id=net0,ifname={net.name},script=no,downscript=no"
    else:
        netdev = f"bridge,id=net0,br={net.name}"
    device = f"virtio-net-{bus},netdev=net0" + (f",mac={facts.mac}" if facts.mac else "")
    if run.source.mode is BootMode.NETWORK:
        device += ",bootindex=1" if run.disk_first else ",bootindex=0"
    return ["-netdev", netdev, "-device", device]


def check(run: RunConfig) -> str:
    """Refuse impossible combinations before anything is created; returns the machine."""
    if run.arch not in ARCHES:
        raise UsageError(f"unsupported --arch {run.arch}", hint=f"use one of {', '.join(ARCHES)}")
    if run.publish and run.networking.mode is not NetMode.USER:
        raise UsageError("--publish only works with --networking user")
    if run.source.mode is BootMode.NETWORK:
        if run.networking.mode is NetMode.NONE:
            raise UsageError("a network boot needs a network", hint="use --networking user")
        if run.networking.mode is NetMode.USER and not run.netboot_url:
            raise UsageError("a network boot on user networking needs the script's URL")
    return pick_machine(run)


def qemu_argv(run: RunConfig, facts: HostFacts) -> list[str]:
    """The complete QEMU command line for `run` on a host described by `facts` (pure)."""
    machine = facts.machine or check(run)
    use_pvh = (
        run.pvh
        and facts.pvh_kernel is not None
        and run.source.mode is BootMode.KERNEL
        and run.arch == "x86_64"
    )
    argv = [facts.qemu, "-nodefaults", "-no-user-config", "-display", "none"]
    if not run.reboot:
        argv.append("-no-reboot")
    argv += _machine_args(run, facts, machine, use_pvh)
    argv += ["-pidfile", str(run.state_dir / state.PID_FILE)]
    argv += _console_args(run.console)
    argv += _boot_args(run, facts, machine, use_pvh)
    argv += _devices(run, facts, machine)
    if run.qmp is not None:
        argv += ["-qmp", f"unix:{run.qmp},server=on,wait=off"]
    if run.detach:
        argv.append("-daemonize")
    return argv


def prepare(host: Host, run: RunConfig) -> tuple[RunConfig, HostFacts]:
    """Do the side effects a run needs (state dir, MAC, disks, metadata CD, OVMF variables,
    PVH kernel extraction, accelerator choice, under TCG the initrd uncompressed:
    `distrokit.runners.initrd`) and return the resolved config and facts."""
    machine = check(run)
    qemu = qemu_binary(run)
    host.check_tools([qemu])
    state_dir = state.ensure_state_dir(run.state_dir)
    running = state.running_pid(state_dir)
    if running is not None:
        raise RunError(
            f"a VM of {state_dir} is already running (pid {running})",
            hint="stop it, or pass another --state",
        )
    disks = state.resolve_disks(host, state_dir, run.disks)
    run = replace(run, state_dir=state_dir)
    if run.detach and run.console.kind == "stdio":
        run = replace(run, console=Console(kind="file", path=state_dir / "console.log"))
    if run.data is not None:
        state.write_data_iso(state_dir, run.data)
    if run.uefi:
        state.ovmf_vars(state_dir)
    if run.source.mode is BootMode.NETWORK:
        _prepare_netboot(run)
    mac = state.mac_address(state_dir) if run.networking.mode is not NetMode.NONE else None
    kernel = run.source.kernel
    if run.arch != host_arch():
        answer = accel_mod.AccelAnswer(accel="tcg", reason="guest arch differs from host")
    else:
        probe = kernel or accel_mod.default_probe_kernel()
        answer = accel_mod.choose_accel(host, qemu, run.accel, probe)
    log.debug("accelerator %s: %s", answer.accel, answer.reason)
    initrd = run.source.initrd
    if initrd is not None and answer.accel == "tcg":
        plain = initrd_mod.plain_initrd(initrd, accel_mod.cache_dir() / "initrd", run.mem_mb)
        run = replace(run, source=replace(run.source, initrd=plain))
    pvh_kernel = None
    if run.pvh and kernel is not None and run.source.mode is BootMode.KERNEL:
        pvh_kernel = pvh.pvh_kernel(kernel, accel_mod.cache_dir() / "vmlinux")
    facts = HostFacts(
        qemu=qemu,
        accel=answer.accel,
        tsc_khz=accel_mod.tsc_khz(),
        pvh_kernel=pvh_kernel,
        mac=mac,
        machine=machine,
    )
    return replace(run, disks=disks), facts


def _prepare_netboot(run: RunConfig) -> None:
    """Check the NIC's iPXE ROM is there; write the TFTP boot file that chains to the URL."""
    if not IPXE_ROM.is_file():
        hint = f"install it with: apt-get install {IPXE_ROM_PACKAGE}"
        raise RunError(f"iPXE ROM {IPXE_ROM} not found", hint=hint)
    if run.networking.mode is NetMode.USER and run.netboot_url:
        tftp = run.state_dir / NETBOOT_TFTP
        tftp.mkdir(exist_ok=True)
        (tftp / NETBOOT_FILE).write_text(f"#!ipxe\n\nchain {run.netboot_url}\n")


def _stop(proc: subprocess.Popen[bytes]) -> None:
    """Stop QEMU cleanly: SIGTERM (QEMU shuts the VM down and exits), then wait."""
    terminate(proc, 10)


def _raise_interrupt(signum: int, frame: object) -> None:
    raise KeyboardInterrupt


def _interrupt_on_sigterm() -> Any:
    """Treat SIGTERM like Ctrl-C while QEMU runs, so a stopped distrokit stops its VM too
    instead of leaving it orphaned. Returns the previous handler (None off the main thread)."""
    if threading.current_thread() is not threading.main_thread():
        return None
    return signal.signal(signal.SIGTERM, _raise_interrupt)


def launch(
    host: Host,
    argv: list[str],
    *,
    on_output: Callable[[bytes], None] | None = None,
    stdin: IO[Any] | int | None = None,
) -> int:
    """Start QEMU, stream its console to `on_output` (or the inherited stdout) until it exits,
    and map how it ended to an exit status (see the module docstring)."""
    proc = host.popen(argv, stdin=stdin, stdout=subprocess.PIPE if on_output is not None else None)
    previous = _interrupt_on_sigterm()
    try:
        if on_output is not None and proc.stdout is not None:
            fd = proc.stdout.fileno()
            while chunk := os.read(fd, 65536):
                on_output(chunk)
        code = proc.wait()
    except BaseException:
        _stop(proc)
        raise
    finally:
        if previous is not None:
            signal.signal(signal.SIGTERM, previous)
        if proc.stdout is not None:
            proc.stdout.close()
    if code == 0:
        return 0
    if code < 0:
        raise RunError(f"QEMU was killed by signal {-code}")
    raise RunError(f"QEMU exited with status {code}", hint="its error is printed above")


def run_vm(
    host: Host,
    run: RunConfig,
    *,
    on_output: Callable[[bytes], None] | None = None,
    stdin: IO[Any] | int | None = None,
) -> int:
    """Prepare, build the argv and launch: the whole `distrokit run qemu`."""
    resolved, facts = prepare(host, run)
    argv = qemu_argv(resolved, facts)
    if resolved.detach:
        host.run(argv, stdin=subprocess.DEVNULL)
        pid = state.read_pid(resolved.state_dir)
        log.info("VM started in the background, pid %s (%s)", pid, resolved.state_dir)
        return 0
    try:
        return launch(host, argv, on_output=on_output, stdin=stdin)
    except RunError as err:
        if facts.accel == "kvm":
            raise RunError(
                err.message, hint="KVM was used; try --accel tcg (or auto, which tests KVM first)"
            ) from err
        raise
