"""The guest init's services: started concurrently, and the `service` tool in the guest.

examples/minimal.yml is built from distrokit's own packages (no test overlay: nothing powers
the machine off) and booted with `distrokit run qemu`, its serial console on a pipe both ways.
The init prints, for each service, the uptime at which its start began and ended: the four
start intervals must overlap (started one after the other, each would begin after the
previous one ended). getty's passwordless root shell on the console then runs `service` in the
root mount namespace (`nsenter -t 1 -m`, as a user of the console would): `service stop nginx`
stops it (nginx stops answering, the console says it exited, `service ls` no longer lists it)
and `service start nginx` brings it back (answering again, listed RUNNING). The root mount is
the initramfs bound over itself (the init copies nothing), and the services run on it.
"""

from __future__ import annotations

import re
from pathlib import Path

import requests
from guest import Boot, start
from hosttools import require_tools
from minimal_system import build_minimal_system, free_port, wait_http

SERVICES = ("getty", "rngd", "dhcpcd", "nginx")
STARTED = re.compile(r"distrokit: service (\S+): started \(uptime ([\d.]+) -> ([\d.]+) s\)")


def _in_guest(boot: Boot, command: str, mark: str, timeout: float = 120) -> str:
    """Run `command` in the root mount namespace from the console shell; its output."""
    before = len(boot.output)
    # The mark is split in the typed line so that the console's echo of it does not match.
    boot.send(f'nsenter -t 1 -m -- {command}; echo "{mark[:3]}""{mark[3:]} $?"')
    boot.wait_for(f"{mark} ", timeout)
    out = boot.output[before:].decode(errors="replace")
    status = re.search(rf"{mark} (\d+)", out)
    assert status and status.group(1) == "0", f"{command} failed:\n{out}"
    return out


def _listed(out: str) -> dict[str, str]:
    return {f[0]: f[2] for f in (line.split() for line in out.splitlines()) if len(f) == 3}


def test_services_start_concurrently_and_service_stop_start(tmp_path: Path) -> None:
    require_tools("git", "apt-get", "apt-cache", "dpkg-deb", "qemu-system-x86_64")
    prefix = build_minimal_system(tmp_path, overlay=None)
    port = free_port()
    boot = start("--accel", "tcg", "--publish", f"{port}:80", "--state", str(tmp_path / "st"),
                 str(prefix), console_input=True)  # fmt: skip
    try:
        boot.wait_for("distrokit: init done", 240)
        starts = {m[0]: (float(m[1]), float(m[2])) for m in STARTED.findall(boot.text())}
        assert sorted(starts) == sorted(SERVICES), boot.text()
        # concurrent: every start began before the first one ended
        assert max(b for b, _ in starts.values()) < min(e for _, e in starts.values()), starts

        wait_http(f"http://127.0.0.1:{port}/", boot, 120)
        boot.wait_for("built-in shell", 60)  # getty's root shell is on the console

        # The root is the initramfs itself, bound over / (no copy to a tmpfs), and every
        # service's runc could still pivot_root away from it (they all run).
        info = _in_guest(boot, "cat /proc/self/mountinfo", "MARK-root")
        roots = [
            line.split(" - ")[1].split()[0]
            for line in info.splitlines()
            if " - " in line and line.split()[4:5] == ["/"]
        ]
        assert roots == ["rootfs"], info

        out = _in_guest(boot, "service stop nginx", "MARK-stop")
        assert "distrokit: service nginx: stopped" in out
        boot.wait_for("distrokit: service nginx (services.linuxkit): exited", 30)
        listed = _listed(_in_guest(boot, "service ls", "MARK-ls1"))
        assert "nginx" not in listed and listed.get("rngd") == "RUNNING", listed
        try:
            answered = requests.get(f"http://127.0.0.1:{port}/", timeout=5).status_code == 200
        except requests.RequestException:
            answered = False
        assert not answered, "nginx still answers after service stop"

        out = _in_guest(boot, "service start nginx", "MARK-start")
        assert "distrokit: service nginx: started" in out
        page = wait_http(f"http://127.0.0.1:{port}/", boot, 120)
        assert "Welcome to nginx on distrokit!" in page.text
        listed = _listed(_in_guest(boot, "service ls", "MARK-ls2"))
        assert listed.get("nginx") == "RUNNING", listed
    finally:
        boot.stop()
