"""Power-on to a serving system: examples/minimal.yml under `distrokit run qemu`.

Builds the packages and examples/minimal.yml from this tree (as the boot tests do) unless
systems are given with --system, then boots each system --runs times (alternating between
systems, after one untimed warm-up each) with nginx published on a free host port, and
measures from the start of ``distrokit run qemu`` to

  (a) the onboot container's line (`distrokit: onboot sysctl: exited 0`),
  (b) nginx answering HTTP 200 on the published port,
  (c) the init's `distrokit: init done` line.

Every console line is timestamped on arrival, which gives the per-phase table (medians of
the runs): the kernel's first line, the kernel running /init, rc.init starting (the init has
made its root by then), depmod (when the init runs it), modules loaded, onboot done, containerd
up, each service started, init done. Writes benchmarks/results/boot_to_service.json.

    .venv/bin/python benchmarks/boot_to_service.py [--runs 5] [--accel tcg] [--cpus 1[,2]]
        [--system LABEL=PREFIX ...] [--keep DIR] [--kernel-vm]

--keep DIR builds the system from this tree into DIR (reused when DIR/out/minimal-kernel
exists) so later runs can compare it with another build through --system. --kernel-vm also
boots the example built from the boot tests' image cache with pkg/kernel-vm as its kernel
(compiled once, see docs/packages.md), labelled kernel-vm. --cpus 1,2 boots every system
with one and with two vCPUs (the runner's default is one).
"""

from __future__ import annotations

import argparse
import os
import platform
import re
import statistics
import sys
import tempfile
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

import requests

ROOT = Path(__file__).resolve().parent.parent
# The system builder and the VM starter are shared with the boot tests rather than copied.
sys.path.insert(0, str(ROOT / "tests" / "support"))

from guest import Boot, start  # noqa: E402
from hosts_systems import minimal_from_images  # noqa: E402
from minimal_system import build_minimal_system, free_port  # noqa: E402

from benchlib import write_result  # noqa: E402

ONBOOT_LINE = "distrokit: onboot sysctl: exited 0"
DONE_LINE = "distrokit: init done"
# Milestones read from the console, in boot order: (phase name, pattern). A pattern with a
# group names one milestone per match (each service).
MILESTONES: tuple[tuple[str, str], ...] = (
    ("kernel: first line", r"^\[\s*0\.0+\] Linux version"),
    ("kernel runs /init", r"Run /init as init process"),
    ("rc.init starts", r"^distrokit: rc.init: starting"),
    ("depmod at boot", r"^distrokit: depmod done"),
    ("modules loaded", r"^distrokit: modules:"),
    ("onboot done", r"^distrokit: onboot done|^" + re.escape(ONBOOT_LINE)),
    ("containerd up", r"^distrokit: containerd up"),
    ("service {} started", r"^distrokit: service (\S+): started"),
    ("services listed", r"^distrokit: services:"),
    ("init done", r"^" + re.escape(DONE_LINE)),
)


@dataclass
class Run:
    """One boot: when each milestone's line arrived, seconds since `distrokit run qemu`."""

    at: dict[str, float] = field(default_factory=dict)
    onboot: float = 0.0
    http: float = 0.0
    done: float = 0.0


def _milestone(line: str) -> str | None:
    for name, pattern in MILESTONES:
        match = re.search(pattern, line)
        if match:
            return name.format(*match.groups()) if match.groups() else name
    return None


def _poll_http(url: str, boot: Boot, result: dict[str, float], stop: threading.Event) -> None:
    while not stop.is_set() and boot.proc.poll() is None:
        try:
            # QEMU's user networking accepts on the host before the guest listens: a request
            # then hangs until its timeout, which would round the time up by as much
            if requests.get(url, timeout=0.2).status_code == 200:
                result["http"] = time.monotonic() - boot.started
                return
        except requests.RequestException:
            pass
        time.sleep(0.05)


def one_boot(prefix: str, accel: str, cpus: int, timeout: float) -> Run:
    """Boot `prefix` once; time the milestones, nginx's first 200 and the done line."""
    port = free_port()
    with tempfile.TemporaryDirectory() as state:
        flags = ("--accel", accel, "--cpus", str(cpus), "--publish", f"{port}:80")
        boot = start(*flags, "--state", state, prefix)
        http: dict[str, float] = {}
        stop = threading.Event()
        poller = threading.Thread(
            target=_poll_http, args=(f"http://127.0.0.1:{port}/", boot, http, stop), daemon=True
        )
        poller.start()
        run = Run()
        failed: list[float] = []  # when the first FAILED line arrived (monotonic)

        def on_line(at: float, line: str) -> None:
            # the getty's prompt may come first on the same console line
            line = line[max(0, line.find("distrokit: ")) :]
            name = _milestone(line)
            if name is not None:
                run.at.setdefault(name, at)
            if line.startswith(ONBOOT_LINE):
                run.onboot = at
            if line.startswith("distrokit:") and "FAILED" in line:
                failed.append(time.monotonic())
            if line.startswith(DONE_LINE):
                run.done = at

        def serving() -> bool:
            if run.done and "http" in http:
                return True
            # a failed service or onboot step: give the console 5 s more to say why
            if failed and time.monotonic() > failed[0] + 5:
                raise SystemExit(f"{prefix}: not serving, a step FAILED:\n{boot.text()}")
            return False

        try:
            boot.wait_until(serving, timeout, "nginx answering and the done line", on_line)
        except AssertionError as err:
            raise SystemExit(f"{prefix}: {err}") from err
        finally:
            stop.set()
            boot.stop()
        run.http = http["http"]
        return run


def _median(values: list[float]) -> float:
    return round(statistics.median(values), 2)


def summarize(label: str, prefix: str, runs: list[Run]) -> dict[str, object]:
    """Medians of (a)/(b)/(c) and of each milestone seen in every run, in arrival order."""
    names = [n for n in runs[0].at if all(n in r.at for r in runs)]
    names.sort(key=lambda n: statistics.median(r.at[n] for r in runs))
    phases = []
    previous = 0.0
    for name in names:
        at = _median([r.at[name] for r in runs])
        phases.append({"phase": name, "median_at_s": at, "took_s": round(at - previous, 2)})
        previous = at
    return {
        "system": label,
        "prefix": prefix,
        "runs": len(runs),
        "median_onboot_s": _median([r.onboot for r in runs]),
        "median_http_s": _median([r.http for r in runs]),
        "median_done_s": _median([r.done for r in runs]),
        "http_s": [round(r.http, 2) for r in runs],
        "phases": phases,
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--accel", default="tcg", choices=("auto", "tcg", "kvm"))
    parser.add_argument("--system", action="append", default=[], metavar="LABEL=PREFIX")
    parser.add_argument("--keep", type=Path, metavar="DIR")
    parser.add_argument("--timeout", type=float, default=300)
    parser.add_argument("--kernel-vm", action="store_true")
    parser.add_argument(
        "--cpus", default="1", metavar="N[,N...]", help="vCPU counts; each system boots with each"
    )
    args = parser.parse_args()
    counts = [int(n) for n in args.cpus.split(",")]
    systems: list[tuple[str, str]] = [tuple(s.split("=", 1)) for s in args.system]
    with tempfile.TemporaryDirectory() as tmp:
        if args.kernel_vm:
            systems.append(("kernel-vm", minimal_from_images(Path(tmp), "kernel-vm")))
        if not systems or args.keep:
            work = args.keep or Path(tmp)
            built = work / "out" / "minimal"
            if not Path(f"{built}-kernel").exists():
                work.mkdir(parents=True, exist_ok=True)
                built = build_minimal_system(work, overlay=None)
            systems.append(("tree", str(built)))
        # every system with every vCPU count, labelled with the count when there are several
        boots = [
            (label if len(counts) == 1 else f"{label}, {n} vCPU", prefix, n)
            for label, prefix in systems
            for n in counts
        ]
        for _, prefix, n in boots:
            one_boot(prefix, args.accel, n, args.timeout)  # warm-up: caches
        runs: dict[str, list[Run]] = {label: [] for label, _, _ in boots}
        for _ in range(args.runs):
            for label, prefix, n in boots:
                runs[label].append(one_boot(prefix, args.accel, n, args.timeout))
    results = [summarize(label, prefix, runs[label]) for label, prefix, _ in boots]
    report = {
        "benchmark": "boot_to_service",
        "accel": args.accel,
        "cpus": counts,
        "host": {"machine": platform.machine(), "cpus": os.cpu_count(), "load": os.getloadavg()},
        "results": results,
    }
    for r in results:
        print(
            f"\n{r['system']}: onboot {r['median_onboot_s']:.2f}s, nginx answers "
            f"{r['median_http_s']:.2f}s, init done {r['median_done_s']:.2f}s "
            f"(medians of {r['runs']}; nginx per run: {r['http_s']})"
        )
        print(f"  {'phase':<28} {'at (median)':>11} {'took':>7}")
        for p in r["phases"]:  # type: ignore[attr-defined]
            print(f"  {p['phase']:<28} {p['median_at_s']:>10.2f}s {p['took_s']:>6.2f}s")
    write_result("boot_to_service", report)
    return 0


if __name__ == "__main__":
    sys.exit(main())
