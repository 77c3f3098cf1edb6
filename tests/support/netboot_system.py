"""The system the netboot boot tests and benchmarks/netboot.py boot: the base packages' kernel,
init and runc, an onboot container that writes the marker to the console, then one that powers
the machine off. Built as NAME-kernel + NAME-initrd.img + NAME-cmdline into a directory."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
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


def start_distrokit(*args: str, wrap: tuple[str, ...] = ()) -> subprocess.Popen[bytes]:
    """`python -m distrokit ARGS` (behind `wrap`, e.g. ``ip netns exec NS``) in the background,
    output collected."""
    argv = [*wrap, sys.executable, "-m", "distrokit", *args]
    return subprocess.Popen(
        argv,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        start_new_session=True,
        env={**os.environ},
    )


class Server:
    """A running `distrokit serve`, its output collected when it is stopped."""

    def __init__(self, proc: subprocess.Popen[bytes]) -> None:
        self.proc = proc
        self.output = ""

    def wait_for(self, text: str, timeout: float = 30) -> None:
        assert self.proc.stdout is not None
        deadline = time.monotonic() + timeout
        seen = b""
        while text.encode() not in seen:
            assert time.monotonic() < deadline, seen.decode(errors="replace")
            line = self.proc.stdout.readline()
            assert line, f"distrokit serve ended:\n{seen.decode(errors='replace')}"
            seen += line
        self.output += seen.decode(errors="replace")

    def stop(self) -> str:
        if self.proc.poll() is None:
            self.proc.terminate()
        out, _ = self.proc.communicate(timeout=30)
        self.output += out.decode(errors="replace")
        assert self.proc.returncode == 0, self.output
        return self.output
