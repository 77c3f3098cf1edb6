"""Boot time of `distrokit run qemu`: fast path (microvm + PVH ELF) vs q35 with the bzImage.

Measures wall time from starting ``distrokit run qemu`` to the marker line printed by the
guest's /init (and to the CLI's exit after the guest powers off), for the same small system
(Debian kernel + busybox initramfs, built as the boot tests do). One untimed warm-up per case
fills the caches (PVH extraction, accelerator probe). Prints a table and writes
benchmarks/results/boot.json.

    .venv/bin/python benchmarks/boot.py [--runs 5] [--accel auto|tcg|kvm]
"""

from __future__ import annotations

import argparse
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
# The test-system builder is shared with the boot tests rather than copied.
sys.path.insert(0, str(ROOT / "tests" / "support"))

from guest import MARKER, make_guest, start  # noqa: E402

from benchlib import write_result  # noqa: E402

CASES = {
    "fast path (microvm, PVH vmlinux)": (),
    "q35, bzImage": ("--machine", "q35", "--no-pvh"),
}


def one_boot(prefix: str, accel: str, extra: tuple[str, ...]) -> tuple[float, float]:
    """Seconds to the marker and to the exit of one `distrokit run qemu`."""
    boot = start("--accel", accel, "--mem", "256", "--networking", "none", *extra, prefix)
    try:
        to_marker = boot.wait_for(MARKER, 180)
        code = boot.finish(180)
        to_exit = time.monotonic() - boot.started
    finally:
        boot.stop()
    if code != 0:
        raise SystemExit(f"run failed with status {code}:\n{boot.text()}")
    return to_marker, to_exit


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--accel", default="auto", choices=("auto", "tcg", "kvm"))
    args = parser.parse_args()
    results = []
    with tempfile.TemporaryDirectory() as tmp:
        prefix = make_guest(Path(tmp), "bench")
        for name, extra in CASES.items():
            one_boot(prefix, args.accel, extra)  # warm-up: caches
            runs = [one_boot(prefix, args.accel, extra) for _ in range(args.runs)]
            marker = [r[0] for r in runs]
            exits = [r[1] for r in runs]
            results.append(
                {
                    "case": name,
                    "args": list(extra),
                    "runs": args.runs,
                    "median_to_marker_s": round(statistics.median(marker), 3),
                    "median_to_exit_s": round(statistics.median(exits), 3),
                    "to_marker_s": [round(x, 3) for x in marker],
                }
            )
    qemu = subprocess.run(
        ["qemu-system-x86_64", "--version"], capture_output=True, text=True, check=False
    ).stdout.splitlines()[:1]
    report = {
        "benchmark": "boot",
        "accel": args.accel,
        "host": {"machine": platform.machine(), "kernel": platform.release(), "qemu": qemu},
        "results": results,
    }
    print(f"{'case':<36} {'median to marker':>17} {'median to exit':>15}   runs (to marker)")
    for r in results:
        runs = " ".join(f"{x:.2f}" for x in r["to_marker_s"])  # type: ignore[attr-defined]
        print(
            f"{r['case']:<36} {r['median_to_marker_s']:>16.2f}s {r['median_to_exit_s']:>14.2f}s"
            f"   {runs}"
        )
    write_result("boot", report)
    return 0


if __name__ == "__main__":
    sys.exit(main())
