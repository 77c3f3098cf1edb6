"""`distrokit vm` booting real microVMs under TCG, through the real CLI in a subprocess.

Images: small ones made here from the host's busybox-static (written as a layer into the boot
test image cache), distrokit's pkg/nginx and pkg/kernel built once by the package builder
(cached, see hosts_systems.py); pkg/kernel-vm (everything built in) runs one workload too.
The VMs' data directory is a temporary one for this module. One long-running VM is shared by
the exec, stop/start, kill and rm steps (each boot costs seconds under TCG).
"""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import tarfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from types import MappingProxyType

import pytest
import requests
from buildfix import PLATFORM, F, write_layer
from hosts_systems import Ssh, build_images, image_cache, keypair
from hosttools import require_tools
from minimal_system import free_port

from distrokit.oci.cache import Cache
from distrokit.oci.image import ImageConfigBlob

TIMEOUT = 180.0
BUSYBOX = Path("/bin/busybox")


@dataclass(frozen=True)
class Env:
    home: Path
    kernel: str
    busybox: str  # CMD sh, PATH=/bin
    user_image: str  # User nobody, WorkingDir /tmp, Env GREETING
    own_init: str  # /sbin/init is busybox init with an inittab
    nginx: str
    sshd: str

    def run(self, *args: str, timeout: float = TIMEOUT) -> subprocess.CompletedProcess[str]:
        """`distrokit vm ARGS` with this module's data directory and image cache."""
        env = {**os.environ, "DISTROKIT_VM_HOME": str(self.home)}
        return subprocess.run(
            [sys.executable, "-m", "distrokit", "vm", *args],
            env=env,
            capture_output=True,
            text=True,
            timeout=timeout,
            check=False,
        )

    def ok(self, *args: str, timeout: float = TIMEOUT) -> str:
        proc = self.run(*args, timeout=timeout)
        assert proc.returncode == 0, f"vm {' '.join(args)}: {proc.returncode}\n{proc.stderr}"
        return proc.stdout

    def cached(self, image: str) -> tuple[str, ...]:
        """Flags and IMAGE for run/create (everything after IMAGE is the command)."""
        return ("--cache", str(image_cache()), "-k", self.kernel, image)

    def vm_dir(self, name: str) -> Path:
        info = json.loads(self.ok("inspect", name))
        return Path(info["state_dir"])


def _busybox_layer(*extra: F) -> list[F]:
    return [
        F("bin", "dir"),
        F("bin/busybox", data=BUSYBOX.read_bytes(), mode=0o755),
        F("bin/sh", "symlink", target="busybox"),
        F("bin/cat", "symlink", target="busybox"),
        F("etc", "dir"),
        F("etc/passwd", data=b"root:x:0:0::/root:/bin/sh\nnobody:x:65534:65534::/:/bin/sh\n"),
        F("etc/group", data=b"root:x:0:\nnogroup:x:65534:\n"),
        F("tmp", "dir", mode=0o1777),
        *extra,
    ]


def _add(cache: Cache, work: Path, ref: str, layer: list[F], config: ImageConfigBlob) -> str:
    path = write_layer(work / (ref.replace("/", "_").replace(":", "_") + ".tar"), layer)
    cache.add_image(ref, [path], config, PLATFORM)
    return ref


@pytest.fixture(scope="module")
def vm(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Env]:
    require_tools("qemu-system-x86_64", "qemu-img", "mkfs.ext4", "busybox")
    refs = build_images(["kernel", "nginx", "sshd"])
    work = tmp_path_factory.mktemp("vm-images")
    cache = Cache(image_cache())
    inittab = (
        b"::sysinit:/bin/busybox mount -t proc proc /proc\n"
        b"::sysinit:/bin/busybox sh -c 'echo own-init-reached pid=$$'\n"
        b"::once:/bin/busybox poweroff -f\n"
    )
    env = Env(
        home=tmp_path_factory.mktemp("vm-home"),
        kernel=refs["kernel"],
        busybox=_add(
            cache, work, "distrokit-test/vm-busybox:1", _busybox_layer(),
            ImageConfigBlob(cmd=("sh",), env=("PATH=/bin",)),
        ),
        user_image=_add(
            cache, work, "distrokit-test/vm-user:1", _busybox_layer(),
            ImageConfigBlob(
                cmd=("sh", "-c", 'echo "$GREETING $(pwd) $(id -u):$(id -g)"; exit 3'),
                env=("PATH=/bin", "GREETING=image"), user="nobody", working_dir="/tmp",
                labels=MappingProxyType({}),
            ),
        ),
        own_init=_add(
            cache, work, "distrokit-test/vm-own-init:1",
            _busybox_layer(
                F("sbin", "dir"), F("sbin/init", "symlink", target="/bin/busybox"),
                F("etc/inittab", data=inittab), F("proc", "dir"), F("dev", "dir"),
            ),
            ImageConfigBlob(env=("PATH=/bin",)),
        ),
        nginx=refs["nginx"],
        sshd=refs["sshd"],
    )  # fmt: skip
    try:
        yield env
    finally:
        for vm_id in env.run("ps", "-aq").stdout.split():
            env.run("rm", "-f", vm_id)


def _running(pid: int) -> bool:
    """Whether `pid` is a live process (a zombie waiting for its reaper is not)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    return stat.rpartition(")")[2].split()[0] not in ("Z", "X")


def _wait_log(env: Env, name: str, text: str, count: int = 1) -> None:
    deadline = time.monotonic() + TIMEOUT
    while time.monotonic() < deadline:
        log = env.ok("logs", name)
        if log.count(text) >= count:
            return
        time.sleep(0.5)
    raise AssertionError(f"{text!r} (x{count}) not in the console of {name}:\n{log}")


@pytest.fixture(scope="module")
def status_vm(vm: Env) -> subprocess.CompletedProcess[str]:
    """The VM named ``status``: its run, and the image later tests share and remove."""
    return vm.run("run", "--name", "status", "--env", "GREETING=flag", *vm.cached(vm.user_image))


def test_run_returns_the_workload_status_with_env_user_and_workdir(
    vm: Env, status_vm: subprocess.CompletedProcess[str], tmp_path: Path
) -> None:
    proc = status_vm
    assert proc.returncode == 3, proc.stderr
    assert "flag /tmp 65534:65534" in proc.stdout
    ps = vm.ok("ps", "-a")
    assert any("status" in line and "exited (3)" in line for line in ps.splitlines()), ps
    assert json.loads(vm.ok("inspect", "status"))["exit_status"] == 3
    greeting = tmp_path / "greeting"
    greeting.write_text("copied-in\n")
    proc = vm.run(
        "run", "--copy-files", f"{greeting}:/etc/greeting", *vm.cached(vm.busybox),
        "sh", "-c", "read line </etc/greeting; echo \"got $line\"; exit 7",
    )  # fmt: skip
    assert proc.returncode == 7, proc.stderr
    assert "got copied-in" in proc.stdout


def test_interactive_run_feeds_stdin_to_the_console(vm: Env) -> None:
    argv = [sys.executable, "-m", "distrokit", "vm", "run", "-i", *vm.cached(vm.busybox), "sh"]
    proc = subprocess.run(
        argv,
        input="echo answer-$((6*7))\nexit 4\n",
        env={**os.environ, "DISTROKIT_VM_HOME": str(vm.home)},
        capture_output=True, text=True, timeout=TIMEOUT, check=False,
    )  # fmt: skip
    assert proc.returncode == 4, proc.stderr
    assert "answer-42" in proc.stdout


def test_second_vm_shares_the_base_disk(
    vm: Env, status_vm: subprocess.CompletedProcess[str]
) -> None:
    first = vm.vm_dir("status")
    base = json.loads(vm.ok("inspect", "status"))["image_digest"].removeprefix("sha256:")
    bases = sorted((vm.home / "images" / base).glob("*.ext4"))
    assert len(bases) == 1
    before = bases[0].stat()
    vm.ok("create", "--name", "second", *vm.cached(vm.user_image))
    overlay = vm.vm_dir("second") / "overlay.qcow2"
    info = json.loads(
        subprocess.run(
            ["qemu-img", "info", "--output=json", str(overlay)],
            capture_output=True, text=True, check=True,
        ).stdout
    )  # fmt: skip
    assert info["backing-filename"] == str(bases[0])
    used = overlay.stat().st_blocks * 512
    assert used < 1 << 20, f"the second VM's overlay takes {used} bytes"
    assert bases[0].stat().st_blocks * 512 > 4 * used
    after = bases[0].stat()
    assert (after.st_ino, after.st_mtime) == (before.st_ino, before.st_mtime)
    assert sorted((vm.home / "images" / base).glob("*.ext4")) == bases
    assert first != vm.vm_dir("second")
    vm.ok("rm", "second")
    assert not overlay.parent.exists()
    assert bases[0].exists()


def test_exec_stop_start_kill_and_rm(vm: Env) -> None:
    loop = ("sh", "-c", "echo keeper-up; while :; do sleep 1; done")
    vm_id = vm.ok("run", "-d", "--name", "keeper", *vm.cached(vm.busybox), *loop).strip()
    _wait_log(vm, "keeper", "keeper-up")
    assert vm.ok("ps", "-q").split() == [vm_id[:12]]
    # exec through the agent: stdout, stderr and the status come back separately
    proc = vm.run("exec", vm_id[:6], "sh", "-c", "echo kept >/data.txt; sync; echo e >&2; exit 5")
    assert (proc.returncode, proc.stdout, proc.stderr) == (5, "", "e\n")
    assert vm.ok("exec", "keeper", "cat", "/data.txt") == "kept\n"
    # the VM init's modules are lean: loaded (ext4 is the root), without their BTF
    btf = "for f in vmlinux ext4 virtio_net; do [ -e /sys/kernel/btf/$f ] && echo $f; done"
    loaded = "while read -r m _; do [ $m = ext4 ] && echo loaded; done </proc/modules"
    assert vm.ok("exec", "keeper", "sh", "-c", f"{btf}; {loaded}; :").split() == [
        "vmlinux",
        "loaded",
    ]
    # stop (the workload gets SIGTERM) and start again on the same disk
    vm.ok("stop", "keeper")
    assert vm.ok("ps", "-q").split() == []
    assert "exited (143)" in vm.ok("ps", "-a")
    vm.ok("start", "keeper")
    _wait_log(vm, "keeper", "keeper-up", count=2)
    assert vm.ok("exec", "keeper", "cat", "/data.txt") == "kept\n"
    # QEMU killed behind the VM's back: ps asks QEMU, so the VM shows stopped
    directory = vm.vm_dir("keeper")
    pid = int((directory / "qemu.pid").read_text())
    os.kill(pid, signal.SIGKILL)
    deadline = time.monotonic() + 10
    while _running(pid) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert vm.ok("ps", "-q").split() == []
    assert json.loads(vm.ok("inspect", "keeper"))["status"] == "stopped"
    vm.ok("start", "keeper")
    _wait_log(vm, "keeper", "keeper-up", count=3)
    assert vm.ok("exec", "keeper", "cat", "/data.txt") == "kept\n"
    # rm refuses a running VM; rm -f kills it and removes its state directory
    proc = vm.run("rm", "keeper")
    assert proc.returncode != 0 and "is running" in proc.stderr
    new_pid = int((directory / "qemu.pid").read_text())
    vm.ok("rm", "-f", "keeper")
    assert not directory.exists()
    assert not _running(new_pid)
    proc = vm.run("inspect", "keeper")
    assert proc.returncode != 0 and "no VM named 'keeper'" in proc.stderr


def test_nginx_answers_on_a_published_port(vm: Env) -> None:
    port = free_port()
    argv = ("/usr/sbin/nginx", "-g", "daemon off;")
    vm.ok("run", "-d", "--name", "web", "-p", f"{port}:80", *vm.cached(vm.nginx), *argv)
    deadline = time.monotonic() + TIMEOUT
    body = ""
    while time.monotonic() < deadline:
        try:
            response = requests.get(f"http://127.0.0.1:{port}/", timeout=3)
        except requests.RequestException:
            time.sleep(0.5)
            continue
        if response.status_code == 200:
            body = response.text
            break
    assert "Welcome to nginx on distrokit" in body, vm.ok("logs", "web")
    vm.ok("rm", "-f", "web")


def test_ssh_key_is_injected_and_port_22_published(vm: Env, tmp_path: Path) -> None:
    key = keypair(tmp_path, "vmkey")
    sshd = vm.cached(vm.sshd)
    vm.ok("run", "-d", "--name", "sshd", f"--ssh={key}.pub", *sshd, "/usr/bin/start-sshd")
    port = json.loads(vm.ok("inspect", "sshd"))["ssh_port"]
    assert f"{port}:22" in json.loads(vm.ok("inspect", "sshd"))["publish"]
    assert Ssh(port, key).wait("hostname", TIMEOUT).strip() == "sshd"
    vm.ok("rm", "-f", "sshd")


def test_an_image_with_its_own_init_boots_it(vm: Env) -> None:
    proc = vm.run("run", "--name", "osimage", *vm.cached(vm.own_init))
    assert proc.returncode == 0, proc.stderr
    assert "own-init-reached" in proc.stdout, proc.stdout
    assert json.loads(vm.ok("inspect", "osimage"))["status"] == "stopped"
    proc = vm.run("exec", "osimage", "true")
    assert proc.returncode != 0 and "not running" in proc.stderr


def test_an_ignite_style_kernel_image_boots(vm: Env, tmp_path: Path) -> None:
    """A kernel image as Ignite's: /boot/vmlinux (an ELF) and loose /lib/modules files, made
    from the kernel pkg/kernel gave (its PVH ELF and its modules)."""
    vm.ok("kernel", "import", "--cache", str(image_cache()), vm.kernel)
    kdir = next(d for d in (vm.home / "kernels").iterdir() if (d / "vmlinux").is_file())
    layer = [F("boot", "dir"), F("boot/vmlinux", data=(kdir / "vmlinux").read_bytes())]
    with tarfile.open(kdir / "modules.tar") as tar:
        for member in tar:
            name = member.name.removeprefix("./")
            if member.isdir():
                layer.append(F(name, "dir"))
            elif member.isfile():
                data = tar.extractfile(member)
                assert data is not None
                layer.append(F(name, data=data.read()))
    ref = _add(
        Cache(image_cache()), tmp_path, "distrokit-test/vm-ignite-kernel:1", layer,
        ImageConfigBlob(),
    )  # fmt: skip
    argv = ("--cache", str(image_cache()), "-k", ref, vm.busybox, "sh", "-c", "echo ok; exit 5")
    proc = vm.run("run", "--name", "ignite-kernel", *argv)
    assert proc.returncode == 5, proc.stderr
    assert "ok" in proc.stdout
    info = json.loads(vm.ok("inspect", "ignite-kernel"))
    assert info["kernel_image"].endswith("vm-ignite-kernel:1")


def test_image_rm_refuses_while_vms_use_it(
    vm: Env, status_vm: subprocess.CompletedProcess[str]
) -> None:
    digest = json.loads(vm.ok("inspect", "status"))["image_digest"]
    proc = vm.run("image", "rm", digest)
    assert proc.returncode != 0 and "used by VMs: status" in proc.stderr
    assert digest[7:19] in vm.ok("image", "ls")
    for name in ("status", *vm.ok("ps", "-aq").split()):
        vm.run("rm", "-f", name)
    vm.ok("image", "rm", digest)
    assert not (vm.home / "images" / digest.removeprefix("sha256:")).exists()
    assert digest[7:19] not in vm.ok("image", "ls")


def test_a_kernel_with_everything_built_in_loads_no_modules(vm: Env) -> None:
    # pkg/kernel-vm: no module tree, so the VM init's initramfs carries none and loads none
    kernel = build_images(["kernel-vm"])["kernel-vm"]
    script = "busybox uname -r; [ -e /proc/modules ] || echo no-module-support; exit 5"
    proc = vm.run(
        "run", "--cache", str(image_cache()), "-k", kernel, vm.busybox, "sh", "-c", script
    )
    assert proc.returncode == 5, proc.stderr
    assert re.search(r"^6\.1\.\d+-distrokit-vm$", proc.stdout, re.MULTILINE), proc.stdout
    assert "no-module-support" in proc.stdout
