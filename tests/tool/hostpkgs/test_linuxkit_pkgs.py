"""The LinuxKit-named packages: `distrokit pkg build` makes each one reproducibly (two builds
into two caches, one digest), with LinuxKit's `org.mobyproject.config` label, and the programs
in the images do their job when run from the unpacked image (chroot, private namespaces)."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import tarfile
import time
import urllib.request
from pathlib import Path

import pytest
from hosttools import build_twice, require_tools
from registry import free_port

from distrokit.oci.cache import Cache
from distrokit.oci.image import host_platform

PKG = Path(__file__).resolve().parents[3] / "pkg"
HASH = "lk-tool-test"
NAMES = [
    "acpid", "binfmt", "dm-crypt", "extend", "ip", "kmsg", "losetup", "memlogd", "modprobe",
    "node_exporter", "openntpd", "qemu-ga", "redis", "swap", "sysfs", "trim-after-delete",
]  # fmt: skip
# LinuxKit's label semantics, one telling key per package
LABELS: dict[str, dict[str, object]] = {
    "binfmt": {"binds": ["/proc/sys/fs/binfmt_misc:/binfmt_misc:rshared,rbind"]},
    "memlogd": {"ipc": "host", "command": ["/usr/bin/memlogd"]},
    "acpid": {"pid": "host", "binds": ["/dev:/dev", "/lib/modules:/lib/modules", "/sys:/sys"]},
    "modprobe": {"capabilities": ["CAP_SYS_MODULE"], "command": ["modprobe", "-a"]},
    "swap": {"command": ["/swap.sh"], "rootfsPropagation": "shared"},
    "sysfs": {"binds": ["/sys:/sys", "/etc/sysfs.d:/etc/sysfs.d"]},
    "kmsg": {"capabilities": ["CAP_SYSLOG"], "command": ["/usr/bin/kmsg"]},
    "openntpd": {"net": "host"},
    "qemu-ga": {"pid": "host", "net": "host"},
    "node_exporter": {"pid": "host", "net": "host"},
    "extend": {"command": ["/usr/bin/extend"], "tmpfs": ["/tmp", "/run/lock"]},
    "dm-crypt": {
        "command": ["/usr/bin/crypto"],
        "devices": [{"path": "all", "type": "a", "major": 0, "minor": 0}],
    },
    "losetup": {
        "command": ["/usr/bin/loopy"],
        "binds": ["/dev:/dev", "/var:/var", "/lib/modules:/lib/modules"],
    },
    "redis": {"command": ["/usr/bin/redis-server", "--protected-mode", "no", "--dir", "/data"]},
    "trim-after-delete": {"command": ["/usr/bin/trim-after-delete", "--", "/sbin/fstrim", "/var"]},
    "ip": {"net": "host", "capabilities": ["CAP_NET_ADMIN", "CAP_NET_RAW", "CAP_SYS_ADMIN"]},
}


@pytest.fixture(scope="module")
def caches(tmp_path_factory: pytest.TempPathFactory) -> tuple[Cache, Cache]:
    """Every package built twice, into two empty caches."""
    return build_twice(tmp_path_factory, HASH, *(PKG / name for name in NAMES))


@pytest.fixture(scope="module")
def roots(caches: tuple[Cache, Cache], tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Each image's layers unpacked under ROOT/NAME."""
    base = tmp_path_factory.mktemp("roots")
    for name in NAMES:
        image = caches[0].image(f"distrokit/{name}:{HASH}", host_platform())
        for layer in image.layers:
            with tarfile.open(image.blob_path(layer), mode="r:gz") as tar:
                tar.extractall(base / name, filter="fully_trusted")
    return base


def test_two_builds_give_one_digest(caches: tuple[Cache, Cache]) -> None:
    for name in NAMES:
        a, b = (c.lookup(f"distrokit/{name}:{HASH}") for c in caches)
        assert a is not None and b is not None, name
        assert a.digest == b.digest, f"{name}: {a.digest} != {b.digest}"


@pytest.mark.parametrize("name", NAMES)
def test_label_has_linuxkit_semantics(caches: tuple[Cache, Cache], name: str) -> None:
    image = caches[0].image(f"distrokit/{name}:{HASH}", host_platform())
    label = json.loads(dict(image.config.labels)["org.mobyproject.config"])
    for key, value in LABELS[name].items():
        assert label.get(key) == value, f"{name}: {key} = {label.get(key)!r}"


def _chroot(root: Path, *argv: str, ns: str = "-m") -> subprocess.CompletedProcess[str]:
    if os.geteuid() != 0:
        pytest.fail("this test runs the images' programs in a chroot: run it as root")
    return subprocess.run(
        ["unshare", ns, "chroot", str(root), *argv],
        capture_output=True, text=True, timeout=60, check=False,
    )  # fmt: skip


def test_binfmt_ships_interpreters_its_entries_name(roots: Path) -> None:
    root = roots / "binfmt"
    for conf in sorted((root / "etc/binfmt.d").iterdir()):
        interpreter = conf.read_text().strip().split(":")[6]
        target = root / (root / interpreter.lstrip("/")).resolve().relative_to(root)
        assert target.is_file() and os.access(target, os.X_OK), interpreter
    version = _chroot(root, "/usr/bin/qemu-aarch64-static", "--version")
    assert "qemu-aarch64 version" in version.stdout


def test_memlogd_collects_log_files_and_logwrite_output(roots: Path, tmp_path: Path) -> None:
    root = roots / "memlogd"
    logs = tmp_path / "log"
    (logs / "onboot").mkdir(parents=True)
    (logs / "web.log").write_text("web: started\n")
    (logs / "onboot" / "sysctl.log").write_text("sysctl: applied\n")
    body = f"""
mkdir -p {root}/dev && mount -t tmpfs none {root}/dev && mount -t tmpfs none {root}/run
touch {root}/dev/null && mount --bind /dev/null {root}/dev/null
mount --bind {logs} {root}/var/log
chroot {root} /usr/bin/memlogd >{tmp_path}/memlogd.out 2>&1 &
sleep 3
echo "web: a later line" >>{logs}/web.log
chroot {root} /usr/bin/logwrite -n job /bin/sh -c 'echo from-logwrite; exit 3'
echo "logwrite status $?"
sleep 2
chroot {root} /usr/bin/logread
"""
    require_tools("unshare", "busybox")
    if os.geteuid() != 0:
        pytest.fail("this test mounts in private namespaces: run it as root")
    # a pid namespace too: memlogd's syslogd and followers end with the shell
    argv = ["unshare", "-m", "-i", "-p", "-f", "--propagation", "private", "busybox", "sh", "-c",
            body]  # fmt: skip
    run = subprocess.run(argv, capture_output=True, text=True, timeout=60, check=False)
    out = run.stdout
    assert "logwrite status 3" in out, out + run.stderr
    for line in ("web: web: started", "web: web: a later line", "onboot.sysctl: sysctl: applied",
                 "job: from-logwrite"):  # fmt: skip
        assert line in out, f"{line!r} not in logread output:\n{out}"


def test_node_exporter_serves_metrics(roots: Path) -> None:
    root = roots / "node_exporter"
    port = free_port()
    loader = root / "lib64/ld-linux-x86-64.so.2"
    argv = [str(loader), "--library-path", str(root / "lib/x86_64-linux-gnu"),
            str(root / "usr/bin/prometheus-node-exporter"),
            f"--web.listen-address=127.0.0.1:{port}"]  # fmt: skip
    proc = subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline, body = time.monotonic() + 30, ""
        while time.monotonic() < deadline and not body:
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as r:
                    body = r.read().decode()
            except OSError:
                time.sleep(0.3)
        assert "node_load1" in body and "node_exporter_build_info" in body
    finally:
        proc.terminate()
        proc.wait(timeout=10)


def test_redis_stores_and_returns_a_value(roots: Path, tmp_path: Path) -> None:
    root = roots / "redis"
    port = str(free_port())
    loader = [str(root / "lib64/ld-linux-x86-64.so.2"), "--library-path",
              str(root / "lib/x86_64-linux-gnu:" f"{root}/usr/lib/x86_64-linux-gnu")]  # fmt: skip
    server = [*loader, str(root / "usr/bin/redis-server"), "--port", port, "--bind", "127.0.0.1",
              "--dir", str(tmp_path)]  # fmt: skip
    cli = [*loader, str(root / "usr/bin/redis-cli"), "-p", port]
    proc = subprocess.Popen(server, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    try:
        deadline, answer = time.monotonic() + 30, ""
        while time.monotonic() < deadline and answer != "PONG":
            run = subprocess.run([*cli, "ping"], capture_output=True, text=True, check=False)
            answer = run.stdout.strip()
            time.sleep(0.2)
        assert answer == "PONG", run.stderr
        subprocess.run([*cli, "set", "os", "distrokit"], check=True, capture_output=True)
        got = subprocess.run([*cli, "get", "os"], capture_output=True, text=True, check=True)
        assert got.stdout.strip() == "distrokit"
        subprocess.run([*cli, "save"], check=True, capture_output=True)
        assert (tmp_path / "dump.rdb").stat().st_size > 0
    finally:
        proc.terminate()
        proc.wait(timeout=10)


def test_qemu_ga_answers_a_ping(roots: Path, tmp_path: Path) -> None:
    root = roots / "qemu-ga"
    sock = tmp_path / "ga.sock"
    loader = root / "lib64/ld-linux-x86-64.so.2"
    argv = [str(loader), "--library-path", str(root / "lib/x86_64-linux-gnu"),
            str(root / "usr/sbin/qemu-ga"), "-m", "unix-listen", "-p", str(sock),
            "-t", str(tmp_path), "-f", str(tmp_path / "ga.pid")]  # fmt: skip
    proc = subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    try:
        deadline = time.monotonic() + 20
        while not sock.exists() and time.monotonic() < deadline:
            time.sleep(0.2)
        with socket.socket(socket.AF_UNIX) as s:
            s.settimeout(10)
            s.connect(str(sock))
            s.sendall(b'{"execute": "guest-info"}\n')
            answer = json.loads(s.makefile().readline())
        assert answer["return"]["version"].startswith("7.")
    finally:
        proc.terminate()
        proc.wait(timeout=10)


def test_chrony_accepts_its_configuration(roots: Path) -> None:
    run = _chroot(roots / "openntpd", "/usr/sbin/chronyd", "-p", "-f", "/etc/chrony.conf")
    assert run.returncode == 0, run.stderr
    assert "pool pool.ntp.org iburst" in run.stdout
    assert "makestep 1 3" in run.stdout


def test_ip_configures_an_address_in_a_network_namespace(roots: Path) -> None:
    run = _chroot(roots / "ip", "/bin/sh", "-c",
                  "ip link set lo up && ip addr add 10.9.8.7/32 dev lo && ip -4 addr show lo",
                  ns="-n")  # fmt: skip
    assert run.returncode == 0, run.stderr
    assert "inet 10.9.8.7/32" in run.stdout


def test_cryptsetup_and_extend_tools_run(roots: Path) -> None:
    assert "cryptsetup 2." in _chroot(roots / "dm-crypt", "/sbin/cryptsetup", "--version").stdout
    grow = _chroot(roots / "extend", "/usr/bin/growpart", "--help")
    assert "growpart disk partition" in grow.stdout + grow.stderr


def _sh(*argv: str, stdin: str | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        list(argv), input=stdin, capture_output=True, text=True, timeout=120, check=False
    )


def test_extend_grows_the_partition_of_a_disk_image(roots: Path) -> None:
    """A 64 MiB disk image with a 32 MiB partition, made 96 MiB: extend (in a chroot of its
    image, with the host's /dev, /proc and /sys) grows the partition to the end of the disk.
    The image has no partition device, so there is no file system to grow: this container
    cannot scan a loop device's partitions."""
    require_tools("sfdisk", "unshare")
    if os.geteuid() != 0:
        pytest.fail("this test mounts in a private namespace and chroots: run it as root")
    root = roots / "extend"
    disk = root / "disk.img"
    with disk.open("wb") as f:
        f.truncate(64 << 20)
    assert _sh("sfdisk", "-q", str(disk), stdin="start=2048,size=65536,type=83\n").returncode == 0
    with disk.open("r+b") as f:
        f.truncate(96 << 20)
    body = (
        f"mkdir -p {root}/dev {root}/proc {root}/sys && mount --rbind /dev {root}/dev && "
        f"mount -t proc proc {root}/proc && mount -t sysfs sysfs {root}/sys && "
        f"chroot {root} /usr/bin/extend /disk.img"
    )
    extend = ("unshare", "-m", "--propagation", "private", "sh", "-c", body)
    run = _sh(*extend)
    assert run.returncode == 0, run.stdout + run.stderr
    assert "CHANGED: partition=1 start=2048 old: size=65536" in run.stdout, run.stdout
    assert "only the partition was grown" in run.stdout
    table = _sh("sfdisk", "-d", str(disk)).stdout.replace(" ", "")
    # growpart keeps the last 33 sectors free (room for a GPT's backup header)
    assert "start=2048,size=194527," in table, table
    again = _sh(*extend)
    assert "already fills the disk" in again.stdout, again.stdout + again.stderr
