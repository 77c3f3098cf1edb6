"""Benchmark: validate (load_config) a generated YAML with 2,000 services; target under 1 s.

Prints a table and writes benchmarks/results/validate.json.
"""

from __future__ import annotations

import json
import statistics
import sys
import tempfile
import time
from pathlib import Path

from distrokit.config.load import load_config

SERVICES = 2000
RUNS = 5
TARGET_SECONDS = 1.0
RESULTS = Path(__file__).resolve().parent / "results" / "validate.json"


def generate(services: int) -> str:
    """A realistic system: kernel, init, a volume, and services using most field kinds."""
    lines = [
        "kernel:",
        "  image: linuxkit/kernel:6.6.71",
        '  cmdline: "console=ttyS0"',
        "init:",
        "  - linuxkit/init:8f1e6a0747acbbb4d7e24dc98f97faa8d1c6cec7",
        "  - linuxkit/runc:f01b88c7033180d50ae43562d72707c6881904e4",
        "volumes:",
        "  - name: data",
        "services:",
    ]
    for i in range(services):
        lines += [
            f"  - name: svc{i}",
            f"    image: example.org/team/svc{i}:1.{i}",
            "    capabilities: [CAP_NET_BIND_SERVICE, CAP_CHOWN, CAP_SETUID]",
            "    binds:",
            "      - /etc/resolv.conf:/etc/resolv.conf",
            f"      - data:/data/{i}",
            "    env:",
            f"      - INDEX={i}",
            '    rlimits: ["nofile,1024,unlimited"]',
            f"    uid: svc{max(i - 1, 0)}",
            "    net: host",
            "    readonly: true",
            "    runtime:",
            f"      mkdir: [/var/lib/svc{i}]",
        ]
    lines += ["files:", "  - path: etc/motd", "    contents: hello", "    mode: '0644'"]
    return "\n".join(lines) + "\n"


def main() -> int:
    """Run the benchmark; exit 1 if the median is over the target."""
    text = generate(SERVICES)
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "big.yml"
        path.write_text(text)
        times = []
        for _ in range(RUNS):
            start = time.perf_counter()
            config = load_config([str(path)])
            times.append(time.perf_counter() - start)
    assert len(config.services) == SERVICES
    median = statistics.median(times)
    result = {
        "benchmark": "validate",
        "services": SERVICES,
        "yaml_bytes": len(text.encode()),
        "runs": RUNS,
        "seconds_min": round(min(times), 4),
        "seconds_median": round(median, 4),
        "seconds_max": round(max(times), 4),
        "target_seconds": TARGET_SECONDS,
        "ok": median < TARGET_SECONDS,
    }
    print(f"{'metric':<16} {'value':>12}")
    for key in ("services", "yaml_bytes", "runs", "seconds_min", "seconds_median", "seconds_max"):
        print(f"{key:<16} {result[key]:>12}")
    verdict = "OK" if result["ok"] else "SLOW"
    print(f"{'target':<16} {'< ' + str(TARGET_SECONDS) + ' s':>12}  {verdict}")
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    tmp_out = RESULTS.with_suffix(".json.tmp")
    tmp_out.write_text(json.dumps(result, indent=2) + "\n")
    tmp_out.replace(RESULTS)
    return 0 if result["ok"] else 1


if __name__ == "__main__":
    sys.exit(main())
