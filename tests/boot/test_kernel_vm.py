"""pkg/kernel-vm boots examples/minimal.yml through `run qemu`'s fast path (microvm + PVH).

The example's packages and pkg/kernel-vm are built into the boot tests' image cache (cached by
content), the example is built from those images with its kernel swapped for kernel-vm
(hosts_systems.minimal_from_images), and the system is booted under TCG: the kernel is the
compiled one, the init loads no modules (there are none: everything is built in), the onboot
container runs, every service is RUNNING and nginx answers on a published port.
"""

from __future__ import annotations

import re
from pathlib import Path

from guest import start
from hosts_systems import minimal_from_images
from hosttools import require_tools
from minimal_system import free_port, wait_http

SERVICES = ("getty", "rngd", "dhcpcd", "nginx")


def test_minimal_system_on_the_vm_kernel(tmp_path: Path) -> None:
    require_tools("qemu-system-x86_64", "apt-get", "dpkg-deb", "make", "gcc")
    prefix = minimal_from_images(tmp_path, "kernel-vm")
    port = free_port()
    boot = start("--accel", "tcg", "--publish", f"{port}:80", prefix, debug=True)
    try:
        boot.wait_for("distrokit: init done", 240)
        text = boot.text()
        assert "-M microvm,acpi=on" in text and ".vmlinux -initrd" in text  # the fast path
        assert re.search(r"Linux version 6\.1\.\d+-distrokit-vm ", text), text[:2000]
        assert "distrokit: modules:" not in text  # no module tree, nothing to load
        assert "distrokit: onboot sysctl: exited 0" in text
        table = text.split("distrokit: services:", 1)[1]
        for name in SERVICES:
            assert re.search(rf"^{name}\s+\d+\s+RUNNING", table, re.MULTILINE), table
        page = wait_http(f"http://127.0.0.1:{port}/", boot, 120)
        assert "Welcome to nginx on distrokit!" in page.text
    finally:
        boot.stop()
