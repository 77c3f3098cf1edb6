"""Start time of `distrokit vm run`: from the command to the workload's first output line.

Three cases, each the median of N runs:

- ``kernel to /init``: ``distrokit run qemu`` of the same kernel (pkg/kernel or pkg/kernel-vm,
  booted the same way: microvm + PVH) with a busybox initramfs whose /init prints a marker at
  once: the kernel's own boot time, the floor for any VM.
- ``vm run, cold``: a fresh data directory each run, the kernel imported beforehand (``vm
  kernel import``), so the image has never been used: flatten, mkfs.ext4, overlay, boot.
- ``vm run, warm``: the image already imported; each run creates and boots a new VM.

The workload prints a marker and the guest's uptime, in a busybox image made here from the host's
busybox-static. The kernel and image live in the boot tests' image cache (built once by the
package builder). Prints a table and writes benchmarks/results/vm_run.json.

    .venv/bin/python benchmarks/vm_run.py [--runs 5] [--accel auto|tcg|kvm]
        [--kernel-package kernel|kernel-vm]

--kernel-package picks the package of pkg/ whose kernel every case boots: pkg/kernel
(Debian's, the default) or pkg/kernel-vm (compiled for VMs, everything built in).
"""

from __future__ import annotations

import argparse
import os
import platform
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tests" / "support"))

from buildfix import PLATFORM, F, write_layer  # noqa: E402
from guest import MARKER, make_guest, start  # noqa: E402
from hosts_systems import build_images, image_cache  # noqa: E402

from benchlib import write_result  # noqa: E402
from distrokit.oci.cache import Cache  # noqa: E402
from distrokit.oci.image import ImageConfigBlob  # noqa: E402

VM_MARKER = "distrokit-vm-workload-up"
IMAGE = "distrokit-bench/vm-busybox:1"


def add_image(work: Path) -> None:
    """The busybox image, written into the boot tests' image cache."""
    layer = [
        F("bin", "dir"),
        F("bin/busybox", data=Path("/bin/busybox").read_bytes(), mode=0o755),
        F("bin/sh", "symlink", target="busybox"),
        F("etc", "dir"),
        F("tmp", "dir", mode=0o1777),
    ]
    path = write_layer(work / "layer.tar", layer)
    config = ImageConfigBlob(cmd=("sh",), env=("PATH=/bin",))
    Cache(image_cache()).add_image(IMAGE, [path], config, PLATFORM)


def time_to_line(argv: list[str], marker: str, env: dict[str, str]) -> tuple[float, float]:
    """Seconds from starting `argv` to the first output line holding `marker`, and the guest's
    uptime the line carries after the marker (then waits for the end)."""
    started = time.monotonic()
    proc = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, env=env)
    assert proc.stdout is not None
    found: tuple[float, float] | None = None
    for line in proc.stdout:
        if marker.encode() in line and found is None:
            uptime = float(line.decode().split(marker, 1)[1].split()[0])
            found = (time.monotonic() - started, uptime)
    code = proc.wait(timeout=300)
    if found is None:
        raise SystemExit(f"{' '.join(argv)}: no {marker!r} (status {code})")
    return found


def kernel_boot(kernel: Path, work: Path, accel: str) -> tuple[float, float]:
    prefix = make_guest(work, "floor", modules=())
    shutil.copyfile(kernel, f"{prefix}-kernel")
    boot = start("--accel", accel, "--mem", "512", "--networking", "none", prefix)
    try:
        seconds = boot.wait_for(MARKER, 300)
        boot.finish(120)
    finally:
        boot.stop()
    uptime = float(boot.text().split(MARKER, 1)[1].split()[0])
    return seconds, uptime


def vm_argv(kernel_ref: str, accel: str) -> list[str]:
    dk = [sys.executable, "-m", "distrokit", "vm"]
    flags = ["--cache", str(image_cache()), "-k", kernel_ref, "--accel", accel]
    # the first line: the marker and the guest's uptime when the workload runs
    script = f"read up _ </proc/uptime; echo {VM_MARKER} $up"
    return [*dk, "run", *flags, IMAGE, "sh", "-c", script]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--accel", default="auto", choices=("auto", "tcg", "kvm"))
    parser.add_argument("--kernel-package", default="kernel", choices=("kernel", "kernel-vm"))
    args = parser.parse_args()
    kernel_ref = build_images([args.kernel_package])[args.kernel_package]
    dk = [sys.executable, "-m", "distrokit", "vm"]
    cases: dict[str, list[tuple[float, float]]] = {
        "kernel to /init": [],
        "vm run, cold": [],
        "vm run, warm": [],
    }
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        add_image(work)
        warm_home = work / "warm"
        # An installed distrokit has its bytecode compiled; a development shell may forbid
        # writing it (PYTHONDONTWRITEBYTECODE), which would time the compiler at every start.
        base_env = {k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"}
        env = {**base_env, "DISTROKIT_VM_HOME": str(warm_home)}
        cache = ["--cache", str(image_cache())]
        subprocess.run([*dk, "kernel", "import", *cache, kernel_ref], env=env, check=True)
        kernel = next((warm_home / "kernels").glob("*/kernel"))
        kernel_boot(kernel, work, args.accel)  # warm-up: PVH extraction, accelerator probe
        subprocess.run([*dk, "image", "import", *cache, IMAGE], env=env, check=True)
        for i in range(args.runs):
            cases["kernel to /init"].append(kernel_boot(kernel, work, args.accel))
            cases["vm run, warm"].append(
                time_to_line(vm_argv(kernel_ref, args.accel), VM_MARKER, env)
            )
            cold_home = work / f"cold{i}"
            cold = {**base_env, "DISTROKIT_VM_HOME": str(cold_home)}
            subprocess.run([*dk, "kernel", "import", *cache, kernel_ref], env=cold, check=True)
            cases["vm run, cold"].append(
                time_to_line(vm_argv(kernel_ref, args.accel), VM_MARKER, cold)
            )
            shutil.rmtree(cold_home)
        subprocess.run([*dk, "rm", "-f", *subprocess.run(
            [*dk, "ps", "-aq"], env=env, capture_output=True, text=True, check=True
        ).stdout.split()], env=env, check=False, capture_output=True)  # fmt: skip
    floor = statistics.median(r[0] for r in cases["kernel to /init"])
    floor_up = statistics.median(r[1] for r in cases["kernel to /init"])
    rows = []
    print(f"{'case':<20}{'median s':>10}{'vs kernel s':>13}{'guest uptime':>14}  runs")
    for name, runs in cases.items():
        median = statistics.median(r[0] for r in runs)
        uptime = statistics.median(r[1] for r in runs)
        rows.append(
            {
                "case": name,
                "median_s": round(median, 3),
                "over_kernel_s": round(median - floor, 3),
                # the guest's own clock at the line: how much of the difference is in the VM
                "median_guest_uptime_s": round(uptime, 3),
                "guest_over_kernel_s": round(uptime - floor_up, 3),
                "runs_s": [round(r[0], 3) for r in runs],
            }
        )
        listed = ", ".join(f"{r[0]:.2f}" for r in runs)
        print(f"{name:<20}{median:>10.3f}{median - floor:>+13.3f}{uptime:>14.3f}  {listed}")
    qemu = subprocess.run(
        ["qemu-system-x86_64", "--version"], capture_output=True, text=True, check=False
    ).stdout.splitlines()[:1]
    report = {
        "benchmark": "vm_run",
        "accel": args.accel,
        "runs": args.runs,
        "host": {"machine": platform.machine(), "kernel": platform.release(), "qemu": qemu},
        "kernel_image": kernel_ref,
        "results": rows,
    }
    suffix = "" if args.kernel_package == "kernel" else f"-{args.kernel_package}"
    write_result(f"vm_run{suffix}", report)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
