"""Size of the minimal system built from distrokit's packages, and its time to serve HTTP.

Builds every package of pkg/ and examples/minimal.yml as kernel+initrd (as the boot test
does, in a temporary git repository), reports the kernel and initrd sizes and the build
times, then boots it with `distrokit run qemu --accel tcg` and measures the wall time from
starting the VM to nginx answering on a published port. Prints a table and writes
benchmarks/results/pkg_minimal.json.

    .venv/bin/python benchmarks/pkg_minimal.py [--runs 3] [--accel tcg|auto|kvm]
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
# The system builder and VM helpers are shared with the boot tests rather than copied.
sys.path.insert(0, str(ROOT / "tests" / "support"))

from guest import start  # noqa: E402
from minimal_system import build_minimal_system, free_port, wait_http  # noqa: E402

from benchlib import write_result  # noqa: E402


def one_boot(prefix: Path, accel: str, state: Path) -> float:
    """Seconds from starting the VM to nginx's first 200 answer."""
    port = free_port()
    boot = start("--accel", accel, "--publish", f"{port}:80", "--state", str(state), str(prefix))
    try:
        wait_http(f"http://127.0.0.1:{port}/", boot, 300)
        return time.monotonic() - boot.started
    finally:
        boot.stop()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=3, help="boots to time (default 3)")
    parser.add_argument("--accel", default="tcg", help="QEMU accelerator (default tcg)")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="distrokit-bench-") as tmp:
        work = Path(tmp)
        started = time.monotonic()
        prefix = build_minimal_system(work, overlay=None)
        build_seconds = time.monotonic() - started
        kernel = Path(f"{prefix}-kernel").stat().st_size
        initrd = Path(f"{prefix}-initrd.img").stat().st_size
        times = [one_boot(prefix, args.accel, work / f"state-{i}") for i in range(args.runs)]
    result = {
        "kernel_bytes": kernel,
        "initrd_bytes": initrd,
        "packages_and_system_build_seconds": round(build_seconds, 2),
        "accel": args.accel,
        "start_to_http_seconds": [round(t, 2) for t in times],
        "start_to_http_median": round(statistics.median(times), 2),
    }
    mib = 1024 * 1024
    print(f"{'what':<40} {'value':>12}")
    print(f"{'kernel (bzImage)':<40} {kernel / mib:>9.1f} MiB")
    print(f"{'initrd (gzip cpio)':<40} {initrd / mib:>9.1f} MiB")
    print(f"{'total':<40} {(kernel + initrd) / mib:>9.1f} MiB")
    print(f"{'build: packages + system (warm debs)':<40} {build_seconds:>10.1f} s")
    for i, t in enumerate(times):
        print(f"{f'VM start -> nginx 200 ({args.accel}) run {i + 1}':<40} {t:>10.1f} s")
    print(f"{'VM start -> nginx 200, median':<40} {statistics.median(times):>10.1f} s")
    write_result("pkg_minimal", result)
    return 0


if __name__ == "__main__":
    sys.exit(main())
