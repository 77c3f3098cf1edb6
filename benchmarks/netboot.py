"""Netboot: VM start to marker over the network vs the same kernel+initrd booted directly, and
the HTTP throughput of `distrokit serve` vs Python's http.server on the same file.

The system is the netboot boot tests' (base packages: kernel, init, runc; an onboot container
prints the marker, another powers off). Boot cases, each timed from starting ``distrokit run
qemu`` to the marker on the console:

- direct, fast path: microvm + PVH ELF kernel (``run qemu NAME``)
- direct, q35 + bzImage: the same machine type network boots use
- netboot, SeaBIOS and netboot, OVMF: ``run qemu --netboot URL`` with ``distrokit serve`` on
  127.0.0.1; the phases come from the times the server logged each answered request:
  firmware + DHCP + TFTP until the script was served, the script's own ``dhcp`` plus the kernel
  download, the initrd download, then kernel + init to the marker.

Throughput: a random file of --size MiB downloaded with curl from each server (127.0.0.1),
--runs times, median MiB/s. Prints tables and writes benchmarks/results/netboot.json.

    .venv/bin/python benchmarks/netboot.py [--runs 3] [--accel tcg|auto|kvm] [--size 256]
"""

from __future__ import annotations

import argparse
import os
import platform
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
# The system builder and the VM driver are shared with the boot tests rather than copied.
sys.path.insert(0, str(ROOT / "tests" / "support"))

from guest import start  # noqa: E402
from netboot_system import FULL_MARKER, NAME, build_netboot_system  # noqa: E402

from benchlib import write_result  # noqa: E402

DIRECT = {
    "direct, fast path (microvm, PVH)": (),
    "direct, q35 + bzImage": ("--machine", "q35", "--no-pvh"),
}
NETBOOT = {"netboot, SeaBIOS": (), "netboot, OVMF": ("--uefi",)}


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class Server:
    """A server subprocess whose output lines are kept with the time each arrived."""

    def __init__(self, argv: list[str], port: int, ready: str | None = None) -> None:
        self.lines: list[tuple[float, str]] = []
        self.proc = subprocess.Popen(
            argv, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL
        )
        threading.Thread(target=self._read, daemon=True).start()
        deadline = time.monotonic() + 30
        while True:
            try:
                socket.create_connection(("127.0.0.1", port), timeout=1).close()
                break
            except OSError:
                if time.monotonic() > deadline or self.proc.poll() is not None:
                    raise SystemExit(f"{argv[0]} did not start: {self.lines}") from None
                time.sleep(0.05)

    def _read(self) -> None:
        assert self.proc.stdout is not None
        for raw in self.proc.stdout:
            self.lines.append((time.monotonic(), raw.decode(errors="replace").rstrip()))

    def first(self, text: str, after: float) -> float:
        """When the first line containing `text` arrived after `after`."""
        for t, line in self.lines:
            if t >= after and text in line:
                return t
        raise SystemExit(f"server never logged {text!r}")

    def stop(self) -> None:
        self.proc.terminate()
        self.proc.wait(timeout=30)


def boot(args: tuple[str, ...], accel: str) -> tuple[float, float]:
    """One `distrokit run qemu`: (when it started, seconds to the marker)."""
    vm = start("--accel", accel, "--mem", "512", *args)
    try:
        to_marker = vm.wait_for(FULL_MARKER, 300)
        code = vm.finish(120)
    finally:
        vm.stop()
    if code != 0:
        raise SystemExit(f"run failed with status {code}:\n{vm.text()}")
    return vm.started, to_marker


def boot_cases(directory: Path, runs: int, accel: str) -> list[dict[str, object]]:
    prefix = str(directory / NAME)
    results: list[dict[str, object]] = []
    for name, extra in DIRECT.items():
        boot((*extra, "--networking", "none", prefix), accel)  # warm-up: PVH and probe caches
        times = [
            boot((*extra, "--networking", "none", "--state", f"{prefix}-d", prefix), accel)[1]
            for _ in range(runs)
        ]
        results.append({"case": name, "to_marker_s": times})
    port = free_port()
    serve = Server(
        [sys.executable, "-m", "distrokit", "serve", "--address", "127.0.0.1",
         "--port", str(port), "--directory", str(directory)],
        port,
    )  # fmt: skip
    url = f"http://127.0.0.1:{port}/boot.ipxe"
    try:
        for name, extra in NETBOOT.items():
            times, phases = [], []
            for i in range(runs):
                state = f"{prefix}-n{len(results)}{i}"
                started, to_marker = boot((*extra, "--state", state, "--netboot", url), accel)
                script = serve.first('"GET /boot.ipxe"', started)
                kernel = serve.first(f'"GET /{NAME}-kernel"', started)
                initrd = serve.first(f'"GET /{NAME}-initrd.img"', started)
                times.append(to_marker)
                phases.append(
                    {
                        "firmware_dhcp_tftp_to_script_s": script - started,
                        "script_dhcp_and_kernel_s": kernel - script,
                        "initrd_download_s": initrd - kernel,
                        "kernel_init_to_marker_s": started + to_marker - initrd,
                    }
                )
            median = {k: statistics.median(p[k] for p in phases) for k in phases[0]}
            results.append({"case": name, "to_marker_s": times, "median_phases_s": median})
    finally:
        serve.stop()
    for r in results:
        times = r["to_marker_s"]
        assert isinstance(times, list)
        r["median_to_marker_s"] = round(statistics.median(times), 3)
        r["to_marker_s"] = [round(x, 3) for x in times]
    return results


def throughput(size_mib: int, runs: int) -> list[dict[str, object]]:
    """MiB/s of curl downloading one file from each server on 127.0.0.1."""
    results = []
    with tempfile.TemporaryDirectory() as tmp:
        data = Path(tmp) / "blob.img"
        with data.open("wb") as f:
            for _ in range(size_mib):
                f.write(os.urandom(1 << 20))
        servers = {
            "distrokit serve": [sys.executable, "-m", "distrokit", "serve",
                                "--address", "127.0.0.1", "--directory", tmp, "--port"],
            "python -m http.server": [sys.executable, "-m", "http.server", "--bind",
                                      "127.0.0.1", "--directory", tmp],
        }  # fmt: skip
        for name, argv in servers.items():
            port = free_port()
            server = Server([*argv, str(port)], port)
            try:
                speeds = []
                for _ in range(runs + 1):  # the first run warms the page cache
                    out = subprocess.run(
                        ["curl", "-sS", "-o", "/dev/null",
                         "-w", "%{speed_download} %{size_download}",
                         f"http://127.0.0.1:{port}/blob.img"],
                        capture_output=True, text=True, check=True,
                    ).stdout.split()  # fmt: skip
                    if int(float(out[1])) != size_mib << 20:
                        raise SystemExit(f"{name}: got {out[1]} bytes, not {size_mib} MiB")
                    speeds.append(float(out[0]) / (1 << 20))
            finally:
                server.stop()
            speeds = speeds[1:]
            results.append(
                {
                    "server": name,
                    "size_mib": size_mib,
                    "median_mib_s": round(statistics.median(speeds), 1),
                    "mib_s": [round(s, 1) for s in speeds],
                }
            )
    return results


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--accel", default="tcg", choices=("auto", "tcg", "kvm"))
    parser.add_argument("--size", type=int, default=256, help="throughput file size in MiB")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        directory = build_netboot_system(Path(tmp))
        kernel = (directory / f"{NAME}-kernel").stat().st_size
        initrd = (directory / f"{NAME}-initrd.img").stat().st_size
        boots = boot_cases(directory, args.runs, args.accel)
    http = throughput(args.size, args.runs)
    report = {
        "benchmark": "netboot",
        "accel": args.accel,
        "host": {
            "machine": platform.machine(),
            "kernel": platform.release(),
            "cpus": os.cpu_count(),
        },
        "system": {"kernel_bytes": kernel, "initrd_bytes": initrd},
        "boot": boots,
        "http": http,
    }
    mib = 1 << 20
    print(f"system: kernel {kernel / mib:.1f} MiB, initrd {initrd / mib:.1f} MiB on the wire")
    print(f"\n{'boot case':<34} {'median to marker':>17}   runs")
    for r in boots:
        runs = " ".join(f"{x:.2f}" for x in r["to_marker_s"])  # type: ignore[attr-defined]
        print(f"{r['case']:<34} {r['median_to_marker_s']:>16.2f}s   {runs}")
    print(f"\n{'netboot phase (median s)':<34} {'SeaBIOS':>9} {'OVMF':>9}")
    phases = [r["median_phases_s"] for r in boots if "median_phases_s" in r]
    for key in phases[0]:  # type: ignore[union-attr]
        values = " ".join(f"{p[key]:>9.2f}" for p in phases)  # type: ignore[index]
        print(f"{key:<34} {values}")
    print(f"\n{'HTTP server (curl, 127.0.0.1)':<34} {'median MiB/s':>13}   runs")
    for h in http:
        runs = " ".join(f"{x:.0f}" for x in h["mib_s"])  # type: ignore[attr-defined]
        print(f"{h['server']:<34} {h['median_mib_s']:>13.1f}   {runs}")
    write_result("netboot", report)
    return 0


if __name__ == "__main__":
    sys.exit(main())
