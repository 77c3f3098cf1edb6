"""Build time and size of every output format for the example system (examples/minimal.yml).

The packages and the example are built once, as the minimal-system boot test does (in a
temporary git repository, so the `@pkg:` tags resolve). Then each registered format is built
`--runs` times with `distrokit build -format F examples/minimal.yml`, each run in a fresh
directory: images are in the cache and the initrd segment cache is warm, as for a user who
builds several formats of one system. Reports the median wall time, and the apparent and
allocated size of the output files. Prints one table and writes
benchmarks/results/formats.json.

    .venv/bin/python benchmarks/formats.py [--runs 3] [--size 1024M] [--format F ...]
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
# The system builder is shared with the boot tests rather than copied.
sys.path.insert(0, str(ROOT / "tests" / "support"))

from minimal_system import build_minimal_system  # noqa: E402

from benchlib import write_result  # noqa: E402
from distrokit.formats import registry  # noqa: E402


def build_once(name: str, repo: Path, cache: Path, out: Path, size: str) -> float:
    """Seconds one `distrokit build -format NAME` of the example takes."""
    out.mkdir(parents=True)
    argv = [sys.executable, "-m", "distrokit", "build", "--cache", str(cache), "-format", name]
    argv += ["--size", size, "--name", "minimal", "--dir", str(out), "examples/minimal.yml"]
    start = time.perf_counter()
    proc = subprocess.run(argv, cwd=repo, capture_output=True, text=True, check=False)
    seconds = time.perf_counter() - start
    if proc.returncode != 0:
        raise SystemExit(f"building {name} failed:\n{proc.stderr}")
    return seconds


def measure(name: str, work: Path, runs: int, size: str) -> dict[str, object]:
    """Median build seconds and output sizes of one format."""
    times = []
    for run in range(runs):
        out = work / "formats" / f"{name}-{run}"
        times.append(build_once(name, work / "repo", work / "cache", out, size))
    files = sorted(p for p in out.iterdir() if p.is_file())
    return {
        "format": name,
        "seconds": round(statistics.median(times), 2),
        "apparent_bytes": sum(p.stat().st_size for p in files),
        "allocated_bytes": sum(p.stat().st_blocks * 512 for p in files),
        "files": [p.name for p in files],
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=3, help="builds per format (median)")
    parser.add_argument("--size", default="1024M", help="disk size for sized formats")
    parser.add_argument("--format", action="append", help="only these formats")
    args = parser.parse_args()
    names = args.format or sorted(registry.formats())
    with tempfile.TemporaryDirectory(prefix="distrokit-bench-") as tmp:
        work = Path(tmp)
        started = time.monotonic()
        build_minimal_system(work, overlay=None)
        setup = time.monotonic() - started
        rows = [measure(name, work, args.runs, args.size) for name in names]
    mib = 1024 * 1024
    print(f"packages + kernel+initrd of the example (setup): {setup:.1f} s\n")
    print(f"{'format':<20} {'build s':>8} {'apparent MiB':>13} {'allocated MiB':>14}  files")
    for row in rows:
        apparent, allocated = int(row["apparent_bytes"]), int(row["allocated_bytes"])  # type: ignore[call-overload]
        print(
            f"{row['format']!s:<20} {row['seconds']:>8} {apparent / mib:>13.1f} "
            f"{allocated / mib:>14.1f}  {' '.join(row['files'])}"  # type: ignore[arg-type]
        )
    result = {
        "system": "examples/minimal.yml",
        "host": platform.node(),
        "runs": args.runs,
        "size": args.size,
        "setup_seconds": round(setup, 1),
        "formats": rows,
    }
    print()
    write_result("formats", result)
    return 0


if __name__ == "__main__":
    sys.exit(main())
