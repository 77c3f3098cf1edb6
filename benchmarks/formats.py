"""Build time and size of every bootable format for the example system.

The example system is the one the format tests boot (Debian kernel, busybox initramfs for the
RAM-root formats, a busybox root file system tar with the root medium's modules for the others;
tests/boot/formats/fmt_system.py). Each format is built `--runs` times (median wall time);
size is the bytes the output files take on disk (allocated) and their apparent size. Prints
one table and writes benchmarks/results/formats.json.

    .venv/bin/python benchmarks/formats.py [--runs 3] [--size 1024M]
"""

from __future__ import annotations

import argparse
import json
import platform
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
# The example system is shared with the format tests rather than copied.
sys.path.insert(0, str(ROOT / "tests" / "boot" / "formats"))

import fmt_system  # noqa: E402

from distrokit.formats import bootable  # noqa: E402


def measure(name: str, system: object, work: Path, runs: int, size: str) -> dict[str, object]:
    """Median build seconds and output sizes of one format."""
    times = []
    outputs: dict[str, Path] = {}
    for run in range(runs):
        start = time.perf_counter()
        outputs = fmt_system.build(name, system, work / f"{name}-{run}", size=size)  # type: ignore[arg-type]
        times.append(time.perf_counter() - start)
    apparent = sum(p.stat().st_size for p in outputs.values())
    allocated = sum(p.stat().st_blocks * 512 for p in outputs.values())
    return {
        "format": name,
        "seconds": round(statistics.median(times), 3),
        "apparent_bytes": apparent,
        "allocated_bytes": allocated,
        "files": sorted(suffix for suffix in outputs),
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--size", default="1024M", help="--size for the disk formats")
    args = parser.parse_args()
    rows = []
    with tempfile.TemporaryDirectory(prefix="distrokit-bench-formats.") as name:
        work = Path(name)
        (work / "system").mkdir()
        system = fmt_system.make_system(work / "system")
        for fmt in sorted(bootable.SPECS):
            rows.append(measure(fmt, system, work, args.runs, args.size))
            for old in work.glob(f"{fmt}-*"):
                for f in sorted(old.rglob("*"), reverse=True):
                    f.unlink() if f.is_file() else f.rmdir()
                old.rmdir()
    print(f"{'format':<18} {'build s':>8} {'apparent MiB':>13} {'on disk MiB':>12}  files")
    for row in rows:
        print(
            f"{row['format']:<18} {row['seconds']:>8.2f} "
            f"{int(row['apparent_bytes']) / 2**20:>13.1f} "  # type: ignore[call-overload]
            f"{int(row['allocated_bytes']) / 2**20:>12.1f}  " + " ".join(row["files"])  # type: ignore[call-overload]  # type: ignore[arg-type]
        )
    out = ROOT / "benchmarks" / "results" / "formats.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    result = {"host": platform.node(), "runs": args.runs, "size": args.size, "formats": rows}
    out.write_text(json.dumps(result, indent=2) + "\n")
    print(f"wrote {out.relative_to(ROOT)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
