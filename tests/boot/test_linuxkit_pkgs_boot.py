"""LinuxKit's package set, rebuilt from Debian, in one booted system (q35 under TCG).

The system carries binfmt, memlogd, acpid, swap (on a formatted data disk) and node_exporter;
a checker service prints what it saw on the console: an arm64 busybox run through qemu-user,
a service's line found with `logread`, the swap file in /proc/swaps. The host fetches /metrics
through a published port, then presses the power button over QMP: acpid asks init to power
off, the onshutdown container runs, QEMU exits 0.

A second system runs extend before mount on a disk whose ext4 partition covers a quarter of
it: in the guest, the partition and the file system then fill the disk (/proc/partitions, df).
"""

from __future__ import annotations

import json
import subprocess
import urllib.request
from pathlib import Path

import pytest
from guest import Boot, start
from hosts_systems import build_images, build_system, system_yaml
from hosttools import require_tools
from qmp import execute
from registry import free_port

BOOT_TIMEOUT = 300.0
BASE = ["kernel", "init", "runc", "containerd", "dhcpcd"]
PKGS = ["binfmt", "memlogd", "acpid", "swap", "node_exporter", "format", "mount", "extend", "getty"]
ARM64 = "opt/arm64/busybox"
CONSOLE = {"path": "/dev/console", "type": "c", "major": 5, "minor": 1, "mode": "0620"}

CHECKER = f"""
say() {{ echo "$*"; echo "$*" >/dev/console; }}
say "CHECK start"
out=$(/{ARM64} uname -m 2>&1); say "CHECK binfmt: $out"
i=0
until line=$(logread | grep talker-says-hello); do
    i=$((i + 1)); [ $i -gt 120 ] && break; sleep 1
done
say "CHECK logread: $(echo "$line" | tail -n 1)"
logread | grep onboot.binfmt | while read -r l; do say "BINFMT $l"; done
# /proc/swaps names the file as this container sees it (it does not see the data disk), so
# count the swap files and show their sizes (KiB)
swaps='NR > 1 && $2 == "file" {{ n++; s = s " " $3 }} END {{ print n + 0 s }}'
say "CHECK swap: $(awk "$swaps" /proc/swaps)"
say "CHECKS DONE"
"""


def arm64_busybox(directory: Path) -> Path:
    """Debian's busybox-static for arm64, unpacked (needs `dpkg --add-architecture arm64`)."""
    require_tools("apt-get", "dpkg-deb")
    run = subprocess.run(
        ["apt-get", "download", "busybox-static:arm64"],
        cwd=directory, capture_output=True, text=True, check=False,
    )  # fmt: skip
    assert run.returncode == 0, f"apt-get download busybox-static:arm64: {run.stderr}"
    deb = next(directory.glob("busybox-static_*_arm64.deb"))
    subprocess.run(["dpkg-deb", "-x", str(deb), str(directory / "root")], check=True)
    return directory / "root" / "bin" / "busybox"


def _yaml(refs: dict[str, str], busybox: Path) -> str:
    on = refs["memlogd"]
    onboot = [
        {"name": "binfmt", "image": refs["binfmt"]},
        {"name": "format", "image": refs["format"]},
        {"name": "mount", "image": refs["mount"],
         "command": ["/usr/bin/mountie", "/var/external"]},
        {"name": "swap", "image": refs["swap"],
         "command": ["/swap.sh", "--path", "/var/external/swap", "--size", "32M",
                     "--condition", "part:/var/external"]},
    ]  # fmt: skip
    services = [
        {"name": "memlogd", "image": on},
        {"name": "acpid", "image": refs["acpid"]},
        {"name": "node_exporter", "image": refs["node_exporter"]},
        {"name": "talker", "image": on, "readonly": True, "net": "none",
         "command": ["/bin/sh", "-c", "while :; do echo talker-says-hello; sleep 5; done"]},
        {"name": "checker", "image": on, "ipc": "host", "net": "none", "readonly": True,
         "devices": [CONSOLE], "binds": ["/opt/arm64:/opt/arm64"],
         "command": ["/bin/sh", "-c", CHECKER]},
    ]  # fmt: skip
    config = system_yaml(refs, onboot, services, [
        {"path": ARM64, "source": str(busybox), "mode": "0755"},
    ])  # fmt: skip
    data = json.loads(config)
    data["onshutdown"] = [
        {"name": "goodbye", "image": on, "devices": [CONSOLE],
         "command": ["/bin/sh", "-c", "echo ONSHUTDOWN-RAN >/dev/console"]},
    ]  # fmt: skip
    return json.dumps(data, indent=1)


@pytest.fixture(scope="module")
def refs() -> dict[str, str]:
    require_tools("qemu-system-x86_64", "qemu-img", "apt-get", "dpkg-deb")
    return build_images(BASE + PKGS)


def test_binfmt_logread_swap_metrics_and_power_button(
    refs: dict[str, str], tmp_path: Path, boots: list[Boot]
) -> None:
    busybox = arm64_busybox(tmp_path)
    prefix = build_system(_yaml(refs, busybox), tmp_path, "lkpkgs")
    port, qmp = free_port(), tmp_path / "qmp.sock"
    disk = tmp_path / "data.qcow2"
    boot = start(
        "--accel", "tcg", "--machine", "q35", "--mem", "1536", "--qmp", str(qmp),
        "--disk", f"file={disk},size=256M", "--publish", f"{port}:9100", prefix, debug=True,
    )  # fmt: skip
    boots.append(boot)
    boot.wait_for("CHECKS DONE", BOOT_TIMEOUT)
    out = boot.text()
    checks = [line.strip() for line in out.splitlines() if line.startswith("CHECK")]
    assert "CHECK binfmt: aarch64" in checks, out
    assert [c for c in checks if c.startswith("CHECK logread:") and "talker-says-hello" in c]
    # onboot containers' logs reach the ring too
    assert "onboot.binfmt: binfmt: registered qemu-aarch64" in out
    swap = next(c for c in checks if c.startswith("CHECK swap:")).split()[2:]
    assert swap[0] == "1" and 32000 < int(swap[1]) <= 32768, checks

    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=30) as response:
        metrics = response.read().decode()
    total = [line for line in metrics.splitlines() if line.startswith("node_memory_SwapTotal")]
    assert total and float(total[0].split()[1]) == int(swap[1]) * 1024, total
    assert "node_uname_info" in metrics and 'machine="x86_64"' in metrics

    execute(qmp, "system_powerdown")
    assert boot.finish(180) == 0
    out = boot.text()
    assert "ONSHUTDOWN-RAN" in out
    assert out.index("ONSHUTDOWN-RAN") > out.index("CHECKS DONE")


def _small_partition_disk(path: Path, disk_mb: int, part_mb: int) -> None:
    """A raw disk of `disk_mb` MiB whose one partition (from 1 MiB) holds a `part_mb` ext4."""
    require_tools("sfdisk", "mke2fs")
    with path.open("wb") as f:
        f.truncate(disk_mb << 20)
    layout = f"label: dos\nstart=2048, size={part_mb << 11}, type=83\n"
    subprocess.run(["sfdisk", "-q", str(path)], input=layout, text=True, check=True)
    subprocess.run(
        ["mke2fs", "-q", "-F", "-t", "ext4", "-L", "grow-me", "-E", "offset=1048576",
         str(path), f"{part_mb}M"],
        check=True,
    )  # fmt: skip


def test_extend_grows_the_partition_and_file_system_to_the_disk(
    refs: dict[str, str], tmp_path: Path, boots: list[Boot]
) -> None:
    disk = tmp_path / "grow.img"
    _small_partition_disk(disk, 256, 64)
    onboot = [
        {"name": "extend", "image": refs["extend"]},
        {"name": "mount", "image": refs["mount"],
         "command": ["/usr/bin/mountie", "/var/external"]},
    ]  # fmt: skip
    services = [{"name": "getty", "image": refs["getty"], "env": ["INSECURE=true"]}]
    prefix = build_system(system_yaml(refs, onboot, services, []), tmp_path, "lkextend")
    boot = start(
        "--accel", "tcg", "--mem", "1024", "--disk", f"file={disk},format=raw", prefix,
        console_input=True,
    )  # fmt: skip
    boots.append(boot)
    boot.wait_for("distrokit: init done", BOOT_TIMEOUT)
    # the getty's shell is in the host's pid namespace: /proc/1/root is the host's root
    # (busybox df looks for the mount in its own namespace; stat -f asks the file system)
    out = boot.shell(
        "cat /var/log/onboot/extend.log; grep -w vda1 /proc/partitions; "
        "echo fs_kib=$(($(stat -f -c '%b * %S' /proc/1/root/var/external) / 1024))"
    )
    assert "extend: /dev/vda1 (ext4) now fills /dev/vda" in out, out
    assert "FAILED" not in boot.text(), boot.text()
    blocks = [row.split() for row in out.splitlines() if row.split()[-1:] == ["vda1"]]
    # 64 MiB (65536 KiB) before; now up to the disk's end (261120 KiB from the 1 MiB offset,
    # less what growpart keeps free at the end)
    assert blocks and 261000 < int(blocks[0][2]) <= 261120, out
    sizes = [int(row.split("=")[1]) for row in out.splitlines() if row.startswith("fs_kib=")]
    # the file system's blocks (statfs, less ext4's metadata): about 60000 KiB before
    assert sizes and 220000 < sizes[0] <= 261120, out
