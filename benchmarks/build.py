"""Benchmark `distrokit build`: kernel+initrd cold and after a files: change, and tar.

Fixture (made here, in a temp dir): a kernel image whose kernel.tar is the full module tree of
the installed Debian linux-image package (/lib/modules/<release>, ~400 MB, ~4,000 files) plus
/boot/vmlinuz-<release>, stored gzip-compressed like registry images; a busybox-static init
image; two service images. Each build runs as a child process; wall time, CPU (user+sys) and
peak RSS come from os.wait4 on that child. LinuxKit is not installable here (no network, no Go
toolchain), so its initrd size is approximated by ``gzip -6`` of the same uncompressed cpio
(LinuxKit compresses with pgzip at the default level 6); its published times are quoted from
the issue (8.2 s / 1.2 GB for kernel+initrd, 3.5-4.2 s / 830 MB for tar).

Each case runs --repeat times (default 3) and the fastest run is reported: the machine's two
cores are shared, so single runs measure the neighbours as much as the build. Every sample's
wall time and the load average go into the JSON.

Usage: .venv/bin/python benchmarks/build.py [--keep DIR] [--repeat N]
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tarfile
import tempfile
import time
from pathlib import Path

from distrokit.host import Host
from distrokit.oci.cache import Cache
from distrokit.oci.image import ImageConfigBlob, Platform

PLATFORM = Platform("linux", "amd64")
RESULTS = Path(__file__).parent / "results" / "build.json"
TARGETS = {"cold_wall_s": 6.0, "cold_rss_mb": 150.0, "rebuild_wall_s": 1.0, "size_ratio": 1.05}

YAML = """kernel:
  image: bench.example/kernel:full
  cmdline: console=ttyS0
init:
  - bench.example/init:1
services:
  - name: one
    image: bench.example/svc-one:1
  - name: two
    image: bench.example/svc-two:1
files:
  - path: etc/bench-marker
    contents: "{marker}"
"""


def make_fixture(work: Path) -> tuple[Cache, Path]:
    """Images in a fresh cache under `work`; returns the cache and the YAML path."""
    cache = Cache(work / "cache")
    kernel = sorted(Path("/boot").glob("vmlinuz-*"))[-1]
    release = kernel.name.removeprefix("vmlinuz-")
    modules = work / "kernel.tar"
    # GNU tar, as the kernel package's Dockerfile makes kernel.tar.
    Host().run(["tar", "-C", "/", "-cf", str(modules), f"lib/modules/{release}"])
    layer = work / "klayer.tar"
    with tarfile.open(layer, "w", format=tarfile.PAX_FORMAT) as tar:
        tar.add(kernel, arcname="kernel")
        tar.add(modules, arcname="kernel.tar")
    modules.unlink()
    cache.add_image("bench.example/kernel:full", [layer], ImageConfigBlob(), PLATFORM)
    layer.unlink()
    busybox = Path(Host().which("busybox"))
    for ref, extra in (
        ("bench.example/init:1", "init"),
        ("bench.example/svc-one:1", "one"),
        ("bench.example/svc-two:1", "two"),
    ):
        path = work / f"{extra}.tar"
        with tarfile.open(path, "w", format=tarfile.PAX_FORMAT) as tar:
            tar.add(busybox, arcname="bin/busybox")
            info = tarfile.TarInfo(f"etc/{extra}")
            tar.addfile(info)
        cfg = ImageConfigBlob(cmd=("/bin/busybox", "sleep", "1000"))
        cache.add_image(ref, [path], cfg, PLATFORM)
    yml = work / "bench.yml"
    yml.write_text(YAML.format(marker="one"))
    return cache, yml


def run(argv: list[str], env: dict[str, str]) -> dict[str, float]:
    """Run one child; wall seconds, CPU seconds and peak RSS (MB) of that child alone."""
    start = time.monotonic()
    proc = Host().popen(argv, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    _, status, usage = os.wait4(proc.pid, 0)
    wall = time.monotonic() - start
    proc.returncode = os.waitstatus_to_exitcode(status)
    err = proc.stderr.read().decode() if proc.stderr else ""
    if proc.returncode != 0:
        raise SystemExit(f"build failed: {' '.join(argv)}\n{err}")
    return {
        "wall_s": round(wall, 2),
        "cpu_s": round(usage.ru_utime + usage.ru_stime, 2),
        "rss_mb": round(usage.ru_maxrss / 1024, 1),
    }


def best(samples: list[dict[str, float]]) -> dict[str, float]:
    """The fastest of several runs (the machine is shared), with every wall time kept."""
    fastest = dict(min(samples, key=lambda r: r["wall_s"]))
    fastest["all_wall_s"] = [r["wall_s"] for r in samples]  # type: ignore[assignment]
    return fastest


def measure(work: Path, repeat: int) -> tuple[dict[str, dict[str, float]], int, int]:
    """Build the fixture three ways, `repeat` times each (best kept); also the gzip -6 size
    of the same uncompressed cpio."""
    print(f"fixture in {work} ...", flush=True)
    cache, yml = make_fixture(work)
    env = {"XDG_CACHE_HOME": str(work / "xdg")}  # Host adds its clean base environment
    base = [sys.executable, "-m", "distrokit", "build", "--cache", str(cache.root)]
    out = work / "out"
    initrd = out / "bench-initrd.img"
    rows: dict[str, dict[str, float]] = {}
    kernel_initrd = [*base, "-f", "kernel+initrd", "-dir", str(out), str(yml)]
    cold = []
    for _ in range(repeat):
        shutil.rmtree(work / "xdg", ignore_errors=True)  # empty segment cache
        cold.append(run(kernel_initrd, env))
    rows["kernel+initrd cold"] = best(cold)
    rows["kernel+initrd cold"]["size_mb"] = round(initrd.stat().st_size / 1e6, 2)
    rebuilds = []
    for i in range(repeat):
        yml.write_text(YAML.format(marker=f"changed {i}"))
        rebuilds.append(run(kernel_initrd, env))
    rows["rebuild (files: changed)"] = best(rebuilds)
    rows["rebuild (files: changed)"]["size_mb"] = round(initrd.stat().st_size / 1e6, 2)
    tar_argv = [*base, "-f", "tar", "-dir", str(out), str(yml)]
    rows["tar"] = best([run(tar_argv, env) for _ in range(repeat)])
    rows["tar"]["size_mb"] = round((out / "bench.tar").stat().st_size / 1e6, 2)
    raw = work / "raw"
    run([*base, "-f", "kernel+initrd", "--compress", "none", "-dir", str(raw), str(yml)], env)
    with (raw / "bench-initrd.img").open("rb") as src:
        gz = Host().run(["gzip", "-6", "-c"], stdin=src, capture=True)
    return rows, initrd.stat().st_size, len(gz.stdout)


def report(rows: dict[str, dict[str, float]], ours: int, proxy: int) -> bool:
    """Print the table and the target checks, write the JSON; True if every target is met."""
    ratio = round(ours / proxy, 4)
    print(f"\n{'run':<26}{'wall s':>8}{'cpu s':>8}{'rss MB':>9}{'size MB':>10}")
    for name, r in rows.items():
        print(f"{name:<26}{r['wall_s']:>8}{r['cpu_s']:>8}{r['rss_mb']:>9}{r['size_mb']:>10}")
    print(
        f"\ninitrd {ours / 1e6:.2f} MB vs gzip -6 of the same cpio {proxy / 1e6:.2f} MB:"
        f" ratio {ratio} (target <= {TARGETS['size_ratio']})"
    )
    cold, rebuild = rows["kernel+initrd cold"], rows["rebuild (files: changed)"]
    checks = {
        "cold wall <= 6 s": cold["wall_s"] <= TARGETS["cold_wall_s"],
        "cold peak RSS <= 150 MB": cold["rss_mb"] <= TARGETS["cold_rss_mb"],
        "rebuild wall <= 1 s": rebuild["wall_s"] <= TARGETS["rebuild_wall_s"],
        "initrd <= 5% larger than gzip -6": ratio <= TARGETS["size_ratio"],
    }
    for name, ok in checks.items():
        print(f"  {'PASS' if ok else 'FAIL'}  {name}")
    result = {
        "runs": rows,
        "gzip6_proxy_bytes": proxy,
        "initrd_bytes": ours,
        "size_ratio": ratio,
        "checks": checks,
        "cpus": os.cpu_count(),
        "load_average": os.getloadavg(),
    }
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(json.dumps(result, indent=2) + "\n")
    print(f"\nwrote {RESULTS}")
    return all(checks.values())


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--keep", type=Path, help="keep the fixture and outputs in DIR")
    parser.add_argument("--repeat", type=int, default=3, help="runs per case, best kept (3)")
    args = parser.parse_args()
    work = args.keep or Path(tempfile.mkdtemp(prefix="distrokit-bench-"))
    work.mkdir(parents=True, exist_ok=True)
    try:
        rows, ours, proxy = measure(work, max(1, args.repeat))
    finally:
        if args.keep is None:
            shutil.rmtree(work, ignore_errors=True)
    return 0 if report(rows, ours, proxy) else 1


if __name__ == "__main__":
    sys.exit(main())
