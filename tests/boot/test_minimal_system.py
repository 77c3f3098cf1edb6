"""examples/minimal.yml built from distrokit's own packages, booted in QEMU, checked from the host.

The packages and the example are copied into a fresh git repository (so the `@pkg:` tags are
clean tree hashes whatever the state of the work tree), built with `distrokit pkg build`, the
system with `distrokit build -format kernel+initrd` plus a small test overlay (an onshutdown
container and a poweroff service that powers off once nginx has served a request), and booted
with `distrokit run qemu`. The host checks: nginx answers on a published port, the sysctl
onboot container ran, `ctr -n services.linuxkit tasks ls` (printed by the init) lists every
service RUNNING, the onshutdown container ran at poweroff, and the init ran no depmod (the
kernel package's modules.dep is made at build time) yet loaded its modules.
"""

from __future__ import annotations

import re
from pathlib import Path

from guest import start
from hosttools import require_tools
from minimal_system import SERVICES, build_minimal_system, free_port, wait_http


def _task_table(text: str) -> dict[str, str]:
    # The rows (TASK PID STATUS) between the heading and the done line; services start
    # concurrently, so a service's own console output (getty's banner) may come in between.
    block = text.split("distrokit: services:", 1)[1].split("distrokit: init done", 1)[0]
    rows = re.findall(r"^(\S+)\s+\d+\s+([A-Z]+)\s*$", block, re.MULTILINE)
    return dict(rows)


def test_minimal_system_boots_and_serves(tmp_path: Path) -> None:
    require_tools("git", "apt-get", "apt-cache", "dpkg-deb", "qemu-system-x86_64")
    prefix = build_minimal_system(tmp_path)
    port = free_port()
    boot = start("--accel", "tcg", "--publish", f"{port}:80", "--state", str(tmp_path / "st"),
                 str(prefix))  # fmt: skip
    try:
        boot.wait_for("distrokit: init done", 240)
        text = boot.text()
        assert "distrokit: onboot sysctl: exited 0" in text
        # The kernel package carries modules.dep and modules.alias (made at build time): no
        # depmod at boot, yet modprobe loads the named modules with their dependencies
        # (virtio_net needs net_failover) and, through modules.alias, the coldplugged ones
        # (button: the ACPI power button's modalias).
        assert "distrokit: depmod done" not in text
        loaded = re.search(r"^distrokit: modules: (.*)$", text, re.MULTILINE)
        assert loaded is not None, "rc.init printed no modules line"
        wanted = {"virtio_net", "net_failover", "virtio_blk", "overlay", "button"}
        assert wanted <= set(loaded[1].split()), loaded[0]
        tasks = _task_table(text)
        assert {name: tasks.get(name) for name in SERVICES} == dict.fromkeys(SERVICES, "RUNNING")

        page = wait_http(f"http://127.0.0.1:{port}/", boot, 120)
        assert "Welcome to nginx on distrokit!" in page.text

        # the poweroff service sees nginx's log line and powers the machine off
        boot.wait_for("distrokit: onshutdown goodbye: exited 0", 120)
        assert boot.finish(120) == 0
        assert "reboot: Power down" in boot.text()
    finally:
        boot.stop()
