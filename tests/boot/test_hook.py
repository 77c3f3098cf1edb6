"""examples/hook.yml really provisions: it netboots, pulls an action from a registry, the action
writes a distrokit raw-bios build onto the VM's empty disk, the VM reboots and boots from it.

The example is built as written, with its ``@pkg:`` references replaced by this repository's
packages as the boot tests build them. The action image (busybox + the raw-bios image, ``dd``
onto DEST_DISK) is made with buildah and pushed to a local docker-registry on 127.0.0.1; the
worker reads its instructions from a metadata URL that `distrokit serve` serves from the build
directory, named on the kernel command line through ``--kernel-param``. One VM does it all, as
a server would: ``--boot-order disk`` tries the empty disk first (not bootable, so the NIC
netboots), ``--reboot`` lets the worker's reboot restart the machine, which then boots its disk.
"""

from __future__ import annotations

import json
import re
import subprocess
import time
from pathlib import Path

from guest import Boot
from hosts_systems import build_images, build_system, image_cache
from hosttools import require_tools
from netboot_system import Server, start_distrokit, system_config
from registry import Registry, free_port

from distrokit.cli import main

ROOT = Path(__file__).resolve().parents[2]
PACKAGES = ["kernel", "init", "runc", "containerd", "ca-certificates", "dhcpcd", "docker"]
PROVISIONED = "DISTROKIT-PROVISIONED-MARKER"
TIMEOUT = 400.0


def _hook_yaml(refs: dict[str, str]) -> str:
    text = (ROOT / "examples" / "hook.yml").read_text()
    return re.sub(r'"@pkg:\.\./pkg/([a-z-]+)"', lambda m: f'"{refs[m.group(1)]}"', text)


def _raw_bios(refs: dict[str, str], directory: Path) -> Path:
    """The system the action writes: the netboot test system printing another marker."""
    config = json.loads(json.dumps(system_config(refs)).replace("DISTROKIT-NETBOOT-MARKER",
                                                                PROVISIONED))  # fmt: skip
    yml = directory / "provisioned.yml"
    yml.write_text(json.dumps(config))
    argv = ["build", "--cache", str(image_cache()), "--format", "raw-bios", "--dir",
            str(directory), str(yml)]  # fmt: skip
    assert main(argv) == 0
    return directory / "provisioned-bios.img"


def _action_image(disk: Path, work: Path, registry: Registry) -> str:
    """busybox + the disk image, entrypoint dd onto DEST_DISK; pushed; the guest's reference."""
    store = ["--root", str(work / "root"), "--runroot", str(work / "run"),
             "--storage-driver", "vfs"]  # fmt: skip

    def buildah(*argv: str) -> str:
        done = subprocess.run(["buildah", *store, *argv], capture_output=True, text=True,
                              check=True)  # fmt: skip
        return done.stdout.strip()

    script = ('echo "write-disk: $(/bin/busybox stat -c %s /disk.img) bytes to $DEST_DISK"; '
              '/bin/busybox dd if=/disk.img of="$DEST_DISK" bs=1M conv=fsync')  # fmt: skip
    ctr = buildah("from", "scratch")
    buildah("copy", ctr, "/bin/busybox", "/bin/busybox")
    buildah("copy", ctr, str(disk), "/disk.img")
    buildah("config", "--entrypoint", json.dumps(["/bin/busybox", "sh", "-c", script]), ctr)
    buildah("commit", "-q", ctr, "write-disk:1")
    buildah("push", "-q", "--tls-verify=false", "write-disk:1",
            f"docker://{registry.host}/hook/write-disk:1")  # fmt: skip
    return f"10.0.2.2:{registry.host.rsplit(':', 1)[1]}/hook/write-disk:1"


def test_hook_provisions_the_disk_and_boots_it(tmp_path: Path, registry: Registry) -> None:
    require_tools("qemu-system-x86_64", "qemu-img", "buildah", "apt-get", "dpkg-deb")
    refs = build_images([*PACKAGES, "poweroff"])
    www = tmp_path / "www"
    www.mkdir()
    build_system(_hook_yaml(refs), www, "hook")
    image = _action_image(_raw_bios(refs, tmp_path), tmp_path / "buildah", registry)
    (www / "hook-actions").write_text(f"# the actions, in order\n{image}\n")
    port = free_port()
    server = Server(
        start_distrokit("serve", "--address", "127.0.0.1", "--port", str(port), "--directory",
                   str(www), "--kernel-param",
                   f"hook.metadata=http://10.0.2.2:{port}/hook-actions")
    )  # fmt: skip
    state = tmp_path / "state"
    boots: list[Boot] = []
    try:
        server.wait_for("Ctrl-C stops")
        # One machine, as in a data centre: the disk is tried first (empty: not bootable, so
        # the NIC's iPXE netboots Hook), Hook writes the disk and reboots, the disk boots.
        vm = Boot(
            proc=start_distrokit("run", "qemu", "--accel", "tcg", "--mem", "3072", "--state",
                            str(state), "--disk", "size=256M", "--boot-order", "disk",
                            "--reboot", "--netboot", f"http://127.0.0.1:{port}/boot.ipxe"),
            started=time.monotonic(),
        )  # fmt: skip
        boots.append(vm)
        vm.wait_for("hook-worker: all 1 actions done, rebooting", TIMEOUT)
        text = vm.text()
        assert "hook-worker: actions: " + image + "; disk: /dev/vda" in text
        assert f"hook-worker: action 1: {image} succeeded" in text
        vm.wait_for(f"{PROVISIONED}-42", 240)
        assert vm.finish(120) == 0
    finally:
        for boot in boots:
            boot.stop()
        log = server.stop()
    assert '"GET /hook-actions" 200 ' in log
