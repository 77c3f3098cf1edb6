"""Real hosts booted under TCG: metadata from `--data`, sshd logins, persistent disks, docker.

Each system is built from this repository's packages (see hosts_systems.py) and booted with
the real `distrokit run qemu`; the host reaches the guest over ssh through a published port,
as a user would. Timeouts are generous: two shared cores, software emulation.
"""

from __future__ import annotations

import contextlib
import json
import subprocess
from pathlib import Path

import pytest
from guest import Boot, start
from hosts_systems import Ssh, build_images, build_system, keypair, system_yaml
from hosttools import require_tools
from registry import Registry, free_port

BOOT_TIMEOUT = 180.0
INIT_DONE = "distrokit: init done"
BASE = ["kernel", "init", "runc", "containerd", "dhcpcd"]
HOST_KEY = "/var/lib/docker/.ssh-host-keys/ssh_host_ed25519_key.pub"
HOST_PKGS = ["metadata", "format", "mount", "sshd", "docker", "open-vm-tools", "poweroff"]


@pytest.fixture(scope="module")
def refs(tmp_path_factory: pytest.TempPathFactory) -> dict[str, str]:
    """Every package the systems here use, built (or found in the cache)."""
    require_tools("qemu-system-x86_64", "qemu-img", "ssh", "ssh-keygen", "apt-get", "dpkg-deb")
    return build_images(BASE + HOST_PKGS, tmp_path_factory.mktemp("kernel"))


def _boot(boots: list[Boot], prefix: str, *args: str, mem: str = "1024") -> Boot:
    boot = start("--accel", "tcg", "--mem", mem, *args, prefix, debug=True)
    boots.append(boot)
    boot.wait_for(INIT_DONE, BOOT_TIMEOUT)
    return boot


def _authorized(key: Path) -> dict[str, object]:
    pub = key.with_suffix(".pub").read_text()
    return {"path": "root/.ssh/authorized_keys", "contents": pub, "mode": "0600"}


def test_metadata_user_data_lands_in_run_config(
    refs: dict[str, str], tmp_path: Path, boots: list[Boot]
) -> None:
    """`--data` JSON becomes files in /run/config; sshd takes root's key from there."""
    key = keypair(tmp_path, "meta")
    data = {
        "ssh": {
            "entries": {
                "authorized_keys": {"perm": "0600", "content": key.with_suffix(".pub").read_text()}
            }
        },
        "greeting": {"content": "hello from the host\n"},
    }
    onboot = [{"name": "metadata", "image": refs["metadata"]}]
    services = [{"name": "sshd", "image": refs["sshd"]}]
    prefix = build_system(system_yaml(refs, onboot, services, []), tmp_path, "meta")
    port = free_port()
    _boot(boots, prefix, "--data", json.dumps(data), "--publish", f"{port}:22")
    ssh = Ssh(port, key)
    assert ssh.wait("cat /run/config/greeting", BOOT_TIMEOUT) == "hello from the host\n"
    assert json.loads(ssh.wait("cat /run/config/userdata", 60)) == data
    assert ssh.wait("cat /run/config/provider", 60) == "cdrom\n"


def test_sshd_accepts_the_key_and_refuses_another(
    refs: dict[str, str], tmp_path: Path, boots: list[Boot]
) -> None:
    good, wrong = keypair(tmp_path, "good"), keypair(tmp_path, "wrong")
    services = [{"name": "sshd", "image": refs["sshd"]}]
    prefix = build_system(system_yaml(refs, [], services, [_authorized(good)]), tmp_path, "ssh")
    port = free_port()
    _boot(boots, prefix, "--publish", f"{port}:22")
    out = Ssh(port, good).wait("echo logged-in-as-$(id -u); uname -s", BOOT_TIMEOUT)
    assert out.split() == ["logged-in-as-0", "Linux"]
    refused = Ssh(port, wrong).run("echo should-not-run")
    assert refused.returncode == 255
    assert "should-not-run" not in refused.stdout
    assert "Permission denied" in refused.stderr


def test_failure_modes_foreign_disk_and_no_authorized_keys(
    refs: dict[str, str], tmp_path: Path, boots: list[Boot]
) -> None:
    """A disk with a foreign partition table is neither formatted nor mounted; sshd says on
    the console that nobody can log in."""
    require_tools("sfdisk")
    disk = tmp_path / "foreign.img"
    with disk.open("wb") as f:
        f.truncate(64 * 1024 * 1024)
    subprocess.run(["sfdisk", "-q", "--label", "dos", str(disk)], input="type=7\n", text=True,
                   check=True)  # fmt: skip
    before = disk.read_bytes()
    onboot = [
        {"name": "format", "image": refs["format"]},
        {"name": "mount", "image": refs["mount"], "command": ["/usr/bin/mountie", "/var/lib/x"]},
    ]
    services = [{"name": "sshd", "image": refs["sshd"]}]
    prefix = build_system(system_yaml(refs, onboot, services, []), tmp_path, "fail")
    boot = _boot(boots, prefix, "--disk", f"file={disk},format=raw")
    boot.wait_for("nobody can log in", 60)
    out = boot.text()
    assert "onboot format: FAILED (status 1)" in out
    assert "onboot mount: FAILED (status 1)" in out
    assert "sshd: WARNING: no /root/.ssh/authorized_keys" in out
    boot.stop()
    assert disk.read_bytes() == before


def _docker_script(image: str) -> str:
    # Runs in a service built from the docker image: pull (first boot) or find the image, then
    # a container writes to (first boot) or reads from a named volume.
    return f"""
img={image}
i=0
until docker version >/dev/null 2>&1; do
    i=$((i + 1)); [ $i -gt 240 ] && {{ echo "DOCKERTEST no-daemon"; exit 1; }}; sleep 1
done
if docker image inspect $img >/dev/null 2>&1; then state=present
else docker pull -q $img || {{ echo "DOCKERTEST pull-failed"; exit 1; }}; state=pulled; fi
check='if [ -f /data/f ]; then read x </data/f; echo "$x"
else echo written >/data/f; echo empty; fi'
vol=$(docker run --rm --network none -v data:/data $img /bin/sh -c "$check") ||
    {{ echo "DOCKERTEST run-failed"; exit 1; }}
echo "DOCKERTEST image=$state volume=$vol"
"""


def _docker_yaml(refs: dict[str, str], key: Path, registry: str, image: str) -> str:
    daemon = {"insecure-registries": [registry], "bridge": "none", "iptables": False,
              "ip6tables": False}  # fmt: skip
    onboot = [
        {"name": "format", "image": refs["format"]},
        {"name": "mount", "image": refs["mount"],
         "command": ["/usr/bin/mountie", "/var/lib/docker"]},
    ]  # fmt: skip
    services = [
        {"name": "sshd", "image": refs["sshd"]},
        {"name": "docker", "image": refs["docker"],
         "binds.add": ["/etc/docker/daemon.json:/etc/docker/daemon.json"]},
        {"name": "open-vm-tools", "image": refs["open-vm-tools"]},
        {"name": "dockertest", "image": refs["docker"], "binds": ["/run:/run"],
         "command": ["/bin/sh", "-c", _docker_script(image)]},
    ]  # fmt: skip
    files = [
        _authorized(key),
        {"path": "etc/docker/daemon.json", "contents": json.dumps(daemon)},
    ]
    return system_yaml(refs, onboot, services, files)


def _push_test_image(refs: dict[str, str], registry: Registry) -> str:
    """The poweroff package image (busybox sh) copied into the registry with skopeo."""
    from hosts_systems import image_cache

    require_tools("skopeo")
    source = f"oci:{image_cache()}:docker.io/{refs['poweroff']}-amd64"
    dest = f"docker://{registry.host}/hosts-test/shell:1"
    subprocess.run(["skopeo", "copy", "-q", "--dest-tls-verify=false", source, dest], check=True)
    return f"10.0.2.2:{registry.host.rsplit(':', 1)[1]}/hosts-test/shell:1"


def _docker_result(ssh: Ssh) -> str:
    out = ssh.wait("grep DOCKERTEST /var/log/dockertest.log", 400)
    return out.strip().splitlines()[-1]


def test_docker_host_keeps_images_and_volumes_on_its_disk(
    refs: dict[str, str], registry: Registry, tmp_path: Path, boots: list[Boot]
) -> None:
    key = keypair(tmp_path, "docker")
    image = _push_test_image(refs, registry)
    guest_registry = image.split("/", 1)[0]
    prefix = build_system(_docker_yaml(refs, key, guest_registry, image), tmp_path, "docker")
    disk = tmp_path / "docker-disk.qcow2"
    port = free_port()
    args = ("--disk", f"file={disk},size=2G", "--publish", f"{port}:22")
    first = _boot(boots, prefix, *args, mem="2048")
    ssh = Ssh(port, key)
    assert _docker_result(ssh) == "DOCKERTEST image=pulled volume=empty"
    assert "formatted /dev/vda1 as ext4" in ssh.wait("cat /var/log/onboot/format.log", 60)
    uuid = ssh.wait("ls /dev/disk/by-uuid", 60).split()
    host_key = ssh.wait(f"cat {HOST_KEY}", 60)
    assert "not running under VMware" in ssh.wait("cat /var/log/open-vm-tools.log", 60)
    with contextlib.suppress(subprocess.TimeoutExpired):  # the connection may just drop
        ssh.run("poweroff", timeout=30)
    assert first.finish(120) == 0

    second = _boot(boots, prefix, *args, mem="2048")
    assert _docker_result(ssh) == "DOCKERTEST image=present volume=written"
    log = ssh.wait("cat /var/log/onboot/format.log", 60)
    assert "/dev/vda already has a Linux partition, nothing to do" in log
    assert ssh.wait("ls /dev/disk/by-uuid", 60).split() == uuid
    assert ssh.wait(f"cat {HOST_KEY}", 60) == host_key  # sshd kept its identity on the disk
    second.stop()
