"""Choosing the accelerator: KVM only once a probe VM has proved that it boots, else TCG.

`/dev/kvm` existing is not enough: on nested or paravirtual hosts (e.g. the ``kvm_pvm`` module)
``KVM_CREATE_VM`` succeeds but normal guests hang right after real-mode setup. So ``auto`` boots
a probe: the given kernel with no initramfs and no root device, under ``-accel kvm`` with the
same CPU flags a real run uses. A kernel that gets as far as "VFS: Unable to mount root fs" (it
panics, reboots, and ``-no-reboot`` ends QEMU) has run its whole init; one that prints nothing
within the time limit has not. The answer is cached per host kernel release, QEMU version and
/dev/kvm presence in ``$XDG_CACHE_HOME/distrokit/accel.json``.
"""

from __future__ import annotations

import json
import logging
import os
import platform
import select
import shutil
import subprocess
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

from distrokit.env import user_cache_dir
from distrokit.host import Host

log = logging.getLogger(__name__)

KVM_CPU_ARGS: tuple[str, ...] = ("-cpu", "host")
PROBE_SECONDS = 15.0
# Printed by any kernel that finished initialising and found no root file system.
_PROBE_MARKERS = (b"VFS: Unable to mount root",)


@dataclass(frozen=True, kw_only=True)
class AccelAnswer:
    """The accelerator to use and why."""

    accel: str  # "kvm" or "tcg"
    reason: str


def cache_dir() -> Path:
    """distrokit's cache directory (``$XDG_CACHE_HOME/distrokit``)."""
    return user_cache_dir()


def tsc_khz() -> int | None:
    """The host TSC frequency in kHz, from /proc/cpuinfo ("cpu MHz"); None when unknown.

    TCG guests on microvm (no HPET, no ACPI PM timer) otherwise sometimes fail to calibrate
    the TSC against the PIT and stall early in boot; ``tsc_early_khz=`` skips calibration."""
    try:
        text = Path("/proc/cpuinfo").read_text()
    except OSError:
        return None
    for line in text.splitlines():
        key, _, value = line.partition(":")
        if key.strip() == "cpu MHz":
            try:
                return int(float(value) * 1000)
            except ValueError:
                return None
    return None


def cache_key(qemu: str) -> str:
    """What the probe answer depends on: host kernel, the QEMU binary, /dev/kvm, CPU flags.

    The binary is named by its path, size and mtime (an upgrade changes them) rather than by
    asking it ``--version``: a process at every VM start, ~30 ms of the time to boot."""
    found = Path(shutil.which(qemu) or qemu)
    try:
        st = found.stat()
        version = f"{found.resolve()}:{st.st_size}:{st.st_mtime_ns}"
    except OSError:
        version = qemu
    kvm = "kvm" if Path("/dev/kvm").exists() else "no-kvm"
    return "|".join((platform.release(), version, kvm, " ".join(KVM_CPU_ARGS)))


def probe_argv(qemu: str, kernel: Path) -> list[str]:
    """A VM that boots `kernel` under KVM with no initramfs and ends on the kernel's panic."""
    return [
        qemu,
        "-nodefaults",
        "-no-user-config",
        "-display",
        "none",
        "-accel",
        "kvm",
        *KVM_CPU_ARGS,
        "-M",
        "q35",
        "-m",
        "256",
        "-serial",
        "stdio",
        "-no-reboot",
        "-kernel",
        str(kernel),
        "-append",
        "console=ttyS0 panic=-1 root=/dev/distrokit-probe",
    ]


def probe_kvm(host: Host, qemu: str, kernel: Path, limit: float = PROBE_SECONDS) -> AccelAnswer:
    """Boot `kernel` under KVM for at most `limit` seconds and say whether it got through."""
    if not os.access("/dev/kvm", os.R_OK | os.W_OK):
        return AccelAnswer(accel="tcg", reason="/dev/kvm is missing or not accessible")
    proc = host.popen(
        probe_argv(qemu, kernel),
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
    )
    assert proc.stdout is not None
    seen = b""
    deadline = time.monotonic() + limit
    try:
        while (left := deadline - time.monotonic()) > 0:
            ready, _, _ = select.select([proc.stdout], [], [], left)
            if not ready:
                break
            chunk = os.read(proc.stdout.fileno(), 65536)
            if not chunk:
                break
            seen = (seen + chunk)[-4096:]
            if any(m in seen for m in _PROBE_MARKERS):
                return AccelAnswer(accel="kvm", reason="a probe VM booted under KVM")
    finally:
        proc.kill()
        proc.wait()
    tail = seen.decode(errors="replace").strip().splitlines()[-1:] or ["no output"]
    return AccelAnswer(accel="tcg", reason=f"probe VM did not boot under KVM ({tail[0][:80]})")


def choose_accel(
    host: Host, qemu: str, requested: str, probe_kernel: Path | None, cache: Path | None = None
) -> AccelAnswer:
    """Resolve ``kvm``, ``tcg`` or ``auto`` (probe, cached) to the accelerator to use."""
    if requested in ("kvm", "tcg"):
        return AccelAnswer(accel=requested, reason="requested")
    if not Path("/dev/kvm").exists():
        return AccelAnswer(accel="tcg", reason="no /dev/kvm")
    path = (cache or cache_dir()) / "accel.json"
    key = cache_key(qemu)
    try:
        known = json.loads(path.read_text())
    except (OSError, ValueError):
        known = {}
    if isinstance(known, dict) and isinstance(known.get(key), dict):
        entry = known[key]
        return AccelAnswer(accel=str(entry["accel"]), reason=f"cached: {entry['reason']}")
    if probe_kernel is None:
        return AccelAnswer(accel="tcg", reason="no kernel to probe KVM with")
    answer = probe_kvm(host, qemu, probe_kernel)
    known = known if isinstance(known, dict) else {}
    known[key] = {"accel": answer.accel, "reason": answer.reason}
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=".accel-")
    with os.fdopen(fd, "w") as f:
        json.dump(known, f, indent=2, sort_keys=True)
    Path(tmp).replace(path)
    log.info("accelerator: %s (%s)", answer.accel, answer.reason)
    return answer


def default_probe_kernel() -> Path | None:
    """A kernel to probe with when the system to boot has none (ISO or disk boots)."""
    candidates = sorted(Path("/boot").glob("vmlinuz-*"))
    return candidates[-1] if candidates else None
