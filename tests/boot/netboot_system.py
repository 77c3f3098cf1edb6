"""The system the netboot boot tests and benchmarks/netboot.py boot: the base packages' kernel,
init and runc, an onboot container that writes the marker to the console, then one that powers
the machine off. Built as NAME-kernel + NAME-initrd.img + NAME-cmdline into a directory."""

from __future__ import annotations

import json
from pathlib import Path

from hosts_systems import build_images, build_system

MARKER = "DISTROKIT-NETBOOT-MARKER"
FULL_MARKER = f"{MARKER}-42"  # the container's shell computed it: it really ran
NAME = "netboot"
PACKAGES = ["kernel", "init", "runc", "poweroff"]


def system_config(refs: dict[str, str]) -> dict[str, object]:
    """The LinuxKit YAML (as a dict) of the netboot test system."""
    console = {"path": "/dev/console", "type": "c", "major": 5, "minor": 1, "mode": "0620"}
    return {
        "kernel": {"image": refs["kernel"], "cmdline": "console=ttyS0"},
        "init": [refs["init"], refs["runc"]],
        "onboot": [
            {
                "name": "marker",
                "image": refs["poweroff"],
                "devices": [console],
                "command": ["/bin/sh", "-c", f"echo {MARKER}-$((6*7)) >/dev/console"],
            },
            {"name": "off", "image": refs["poweroff"], "command": ["/bin/poweroff-after", "0"]},
        ],
    }


def build_netboot_system(directory: Path) -> Path:
    """Build the packages (cached) and the system into `directory`; returns `directory`."""
    refs = build_images(PACKAGES)
    build_system(json.dumps(system_config(refs), indent=1), directory, NAME)
    return directory
