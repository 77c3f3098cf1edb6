"""Upload throughput to a datastore: ``push vcenter``'s HTTP PUT vs curl, against a real vcsim.

A 256 MiB ISO is uploaded to the same ``/folder`` URL of a local vcsim (built by
scripts/build-vcsim, started as the tests start it) by three means, each --runs times:

- ``curl -T`` (a plain HTTP PUT with the session cookie),
- distrokit's PUT alone (what ``push vcenter`` sends),
- a whole ``push vcenter`` of the file: PUT under a temporary name, read back with sha256,
  move into place.

Prints a table with MiB/s and the ratio to curl, and writes benchmarks/results/vsphere_upload.json.

    .venv/bin/python benchmarks/vsphere_upload.py [--runs 3] [--size-mib 256]
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
# vcsim is started the way the tests start it, not a second copy of that code.
sys.path.insert(0, str(ROOT / "tests" / "tool" / "vsphere"))

from vcsim_env import make_iso, running_vcsim  # noqa: E402

from benchlib import write_result  # noqa: E402
from distrokit.push import vcenter  # noqa: E402
from distrokit.push.vsphere import Session, Target  # noqa: E402


def build_vcsim() -> Path:
    out = subprocess.run(
        [ROOT / "scripts" / "build-vcsim"], capture_output=True, text=True, check=True
    )
    return Path(out.stdout.strip().splitlines()[-1])


def timed(fn: Callable[[], None]) -> float:
    start = time.monotonic()
    fn()
    return time.monotonic() - start


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--size-mib", type=int, default=256)
    args = parser.parse_args()
    binary = build_vcsim()
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        iso = make_iso(work, "bench", args.size_mib << 20, os.urandom(64))
        size = iso.stat().st_size
        with (
            running_vcsim(binary, work / "vcsim") as sim,
            Session(Target(url=sim.url(), cert_file=sim.cert)) as session,
        ):
            cookie = session.cookie

            def curl(n: int) -> None:
                url = f"https://127.0.0.1:{sim.port}{session.folder_url(f'bench/curl-{n}.iso')}"
                code = subprocess.run(
                    [
                        "curl", "-sS", "-T", str(iso), "--cacert", str(sim.cert),
                        "-H", f"Cookie: {cookie}", "-o", "/dev/null", "-w", "%{http_code}", url,
                    ],
                    capture_output=True, text=True, check=True,
                ).stdout  # fmt: skip
                if code not in ("200", "201", "204"):
                    raise SystemExit(f"curl PUT answered HTTP {code}")

            def put(n: int) -> None:
                vcenter._put(session, iso, f"bench/put-{n}.iso", size, None)

            def push(n: int) -> None:
                vcenter.push(session, iso, folder=f"bench/push-{n}")

            cases: dict[str, Callable[[int], None]] = {
                "curl -T (plain HTTP PUT)": curl,
                "distrokit PUT": put,
                "distrokit push vcenter (PUT + read-back sha256 + move)": push,
            }
            results = []
            for name, fn in cases.items():
                secs = [timed(lambda fn=fn, i=i: fn(i)) for i in range(args.runs)]
                med = statistics.median(secs)
                results.append(
                    {
                        "case": name,
                        "runs": args.runs,
                        "median_s": round(med, 3),
                        "mib_per_s": round(size / med / (1 << 20), 1),
                        "seconds": [round(s, 3) for s in secs],
                    }
                )
    base = results[0]["median_s"]
    for r in results:
        r["time_vs_curl"] = round(float(r["median_s"]) / float(base), 2)
    report = {
        "benchmark": "vsphere_upload",
        "size_bytes": size,
        "host": {"machine": platform.machine(), "cpus": os.cpu_count()},
        "results": results,
    }
    print(f"{'case':58} {'median s':>9} {'MiB/s':>8} {'x curl':>7}")
    for r in results:
        print(f"{r['case']:58} {r['median_s']:9.3f} {r['mib_per_s']:8.1f} {r['time_vs_curl']:7.2f}")
    write_result("vsphere_upload", report)
    return 0


if __name__ == "__main__":
    sys.exit(main())
