"""The twins of LinuxKit's examples (examples/*.yml with LinuxKit's names): every one builds
with `distrokit build` from this repository's packages, and the ones that need no special
hardware boot under TCG to `distrokit: init done` with every service running; static-ip answers
HTTP on its fixed address, node_exporter serves /metrics and redis-os answers PING, through
published ports. Through the root shell on the console (`Boot.shell`): swap shows its swap
file, dm-crypt an ext4 mounted from the encrypted disk, dm-crypt-loop one from an encrypted
file on the disk's file system (through /dev/loop0), addbinds the added bind, and in
wireguard the shell in wg1's namespace fetches nginx's page from wg0's through the tunnel;
in volumes an onboot container's write shows in the getty's bind of the same volume.

The packages and examples are copied into a fresh git repository so the `@pkg:` tags are the
tree hashes of their content: a rerun with unchanged packages builds nothing new.
"""

from __future__ import annotations

import json
import re
import shutil
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest
from guest import Boot, start
from hosts_systems import image_cache
from hosttools import require_tools
from minimal_system import wait_http
from registry import free_port

from distrokit.config.load import load_config

ROOT = Path(__file__).resolve().parents[2]
# LinuxKit's example names served here (minimal.yml has its own boot tests)
EXAMPLES = ("getty", "logging", "node_exporter", "static-ip", "swap", "dm-crypt", "sshd",
            "addbinds", "redis-os", "wireguard", "dm-crypt-loop", "volumes", "docker",
            "containerd-debug", "hostmount-writeable-overlay")  # fmt: skip
INIT_DONE = "distrokit: init done"
KEY = "a secret of at least 32 bytes!!!"
PROBE = "distrokit-dm-crypt-probe-text"


def _distrokit(*args: str, cwd: Path) -> None:
    proc = subprocess.run(
        [sys.executable, "-m", "distrokit", *args],
        cwd=cwd, capture_output=True, text=True, check=False, timeout=1200,
    )  # fmt: skip
    assert proc.returncode == 0, f"distrokit {' '.join(args)} failed:\n{proc.stderr}"


@pytest.fixture(scope="module")
def built(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Every example built as kernel+initrd into OUT/NAME-*; returns OUT."""
    require_tools("git", "apt-get", "dpkg-deb", "qemu-system-x86_64")
    repo = tmp_path_factory.mktemp("examples-repo")
    shutil.copytree(ROOT / "pkg", repo / "pkg")
    shutil.copytree(ROOT / "examples", repo / "examples")
    git = ["git", "-C", str(repo), "-c", "user.name=t", "-c", "user.email=t@t"]
    for argv in (["init", "-q"], ["add", "."], ["commit", "-qm", "packages"]):
        subprocess.run([*git, *argv], check=True)
    names: set[str] = set()

    def record(directory: Path) -> str:
        names.add(directory.name)
        return f"distrokit/{directory.name}:unresolved"

    for example in EXAMPLES:
        load_config([str(repo / "examples" / f"{example}.yml")], resolve_pkg=record)
    cache = str(image_cache())
    _distrokit("pkg", "build", "--cache", cache, *(f"pkg/{n}" for n in sorted(names)), cwd=repo)
    out = repo / "out"
    for example in EXAMPLES:
        _distrokit("build", "--cache", cache, "-format", "kernel+initrd", "--dir", str(out),
                   f"examples/{example}.yml", cwd=repo)  # fmt: skip
    return out


@pytest.mark.parametrize("example", EXAMPLES)
def test_example_builds(built: Path, example: str) -> None:
    for suffix in ("kernel", "initrd.img", "cmdline"):
        assert (built / f"{example}-{suffix}").stat().st_size > 0


def _boot(
    boots: list[Boot],
    prefix: Path,
    *args: str,
    console_input: bool = False,
    may_stop: tuple[str, ...] = (),
) -> Boot:
    """Boot `prefix` to "init done" with every service running but those in `may_stop`."""
    boot = start(
        "--accel", "tcg", "--mem", "1024", *args, str(prefix), console_input=console_input
    )  # fmt: skip
    boots.append(boot)
    boot.wait_for(INIT_DONE, 300)
    out = boot.text()
    assert "FAILED" not in out, out
    stopped = set(re.findall(r"service (\S+) is not running", out))
    assert stopped <= set(may_stop), out
    return boot


@pytest.mark.parametrize(
    ("example", "target"),
    [
        ("static-ip", (80, "/", "nginx")),
        ("node_exporter", (9100, "/metrics", "node_uname_info")),
    ],
)
def test_example_answers_on_its_port(
    built: Path, boots: list[Boot], example: str, target: tuple[int, str, str]
) -> None:
    guest_port, path, expect = target
    port = free_port()
    boot = _boot(boots, built / example, "--publish", f"{port}:{guest_port}")
    response = wait_http(f"http://127.0.0.1:{port}{path}", boot, 120)
    assert expect in response.text or expect in response.headers.get("Server", "")
    if example == "static-ip":
        assert "onboot ip: exited 0" in boot.text()
        assert "dhcpcd" not in boot.text()


@pytest.mark.parametrize("example", ["getty", "logging", "sshd"])
def test_example_boots_with_every_service_running(
    built: Path, boots: list[Boot], example: str
) -> None:
    _boot(boots, built / example)


def test_redis_os_answers_ping_on_its_published_port(built: Path, boots: list[Boot]) -> None:
    port = free_port()
    boot = _boot(boots, built / "redis-os", "--publish", f"{port}:6379")
    deadline, answer = time.monotonic() + 120, b""
    while time.monotonic() < deadline and not answer.startswith(b"+PONG"):
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=10) as conn:
                conn.sendall(b"PING\r\n")
                answer = conn.recv(64)
        except OSError:
            time.sleep(1)
    assert answer.startswith(b"+PONG"), (answer, boot.text())


def test_addbinds_example_adds_a_bind_to_the_getty_s_own(built: Path, boots: list[Boot]) -> None:
    boot = _boot(boots, built / "addbinds", console_input=True)
    # upper-cased, so the echoed command line cannot match
    out = boot.shell(
        "touch /var/tmp/seen-by-getty; ls /proc/1/root/var/tmp | tr a-z A-Z; "
        "ls /var/log/onboot | tr a-z A-Z"
    )
    assert "SEEN-BY-GETTY" in out and "DHCPCD.LOG" in out, out


def test_wireguard_example_reaches_nginx_through_the_tunnel(built: Path, boots: list[Boot]) -> None:
    boot = _boot(boots, built / "wireguard", console_input=True)
    # the shell is in wg1's namespace: no eth0 there, so the page can only come through wg1
    links = boot.shell(
        "echo links=$(tail -n +3 /proc/net/dev | cut -d: -f1 | tr -d ' ' | sort | tr '\\n' ,)"
    )
    assert "links=lo,wg1," in links, links
    # (busybox nc: busybox-static's wget segfaulted on this request in the guest)
    request = "printf 'GET / HTTP/1.0\\r\\n\\r\\n' | nc -w 10 192.168.2.1 80"
    page = boot.shell(f"{request} | tr a-z A-Z; cat /var/log/onboot/wg1.log", timeout=120)
    assert "WELCOME TO NGINX ON DISTROKIT" in page, page
    assert "lk-wg-config: wg1 configured from /etc/wireguard/wg1.conf" in page


def test_dm_crypt_loop_example_mounts_ext4_from_an_encrypted_file(
    built: Path, boots: list[Boot], tmp_path: Path
) -> None:
    disk = f"file={tmp_path / 'loop.img'},size=256M"
    boot = _boot(boots, built / "dm-crypt-loop", "--disk", disk, console_input=True)
    out = boot.shell(
        "grep -e ' /var/secure_storage ' -e ' /var/external ' /proc/1/mounts; "
        'echo "backing=$(cat /sys/block/loop0/loop/backing_file)'
        ' on=$(ls /sys/block/dm-0/slaves)"; tr a-z A-Z </proc/1/root/var/secure_storage/secrets; '
        "cat /var/log/onboot/*loop.log /var/log/onboot/*dm-crypt.log /var/log/onboot/*mount.log"
    )
    assert "/dev/vda1 /var/external ext4" in out, out
    assert "/dev/mapper/crypt_loop_dev /var/secure_storage ext4" in out, out
    # (the getty does not see /var/external: the path is the one inside that mount)
    assert "backing=/storage_file on=loop0" in out, out
    assert "SECRET THINGS" in out, out


def _contains(path: Path, needle: bytes) -> bool:
    """Whether the file holds `needle`, read in 1 MiB pieces (a disk image is large)."""
    tail = b""
    with path.open("rb") as f:
        while piece := f.read(1 << 20):
            if needle in tail + piece:
                return True
            tail = piece[-len(needle) :]
    return False


def test_swap_example_turns_on_a_swap_file_on_its_disk(
    built: Path, boots: list[Boot], tmp_path: Path
) -> None:
    disk = f"file={tmp_path / 'swap.img'},size=1G"
    boot = _boot(boots, built / "swap", "--disk", disk, console_input=True)
    # the getty's root shell runs in the host's pid namespace: /proc/1 is the host's init
    swaps = boot.shell("cat /proc/swaps; grep ' /var/external ' /proc/1/mounts")
    files = [row.split() for row in swaps.splitlines() if row.split()[1:2] == ["file"]]
    assert len(files) == 1 and 261000 < int(files[0][2]) <= 262144, swaps
    assert "/dev/vda1 /var/external ext4" in swaps, swaps


def test_dm_crypt_example_mounts_ext4_on_the_encrypted_disk(
    built: Path, boots: list[Boot], tmp_path: Path
) -> None:
    disk = tmp_path / "crypt.img"
    data = json.dumps({"dm-crypt": {"entries": {"key": {"content": KEY}}}})
    boot = _boot(
        boots, built / "dm-crypt", "--disk", f"file={disk},size=256M,format=raw",
        "--data", data, console_input=True,
    )  # fmt: skip
    mounts = boot.shell("grep ' /var/lib/docker ' /proc/1/mounts")
    assert "/dev/mapper/dm-crypt /var/lib/docker ext4 rw" in mounts, mounts
    # what the shell computes never matches the echoed input (upper case, expanded)
    mapping = boot.shell(
        'echo "name=$(cat /sys/block/dm-0/dm/name) on=$(ls /sys/block/dm-0/slaves)"'
    )
    assert "name=dm-crypt on=vda" in mapping, mapping
    probe = "/proc/1/root/var/lib/docker/probe"
    wrote = boot.shell(f"echo {PROBE} >{probe}; sync; tr a-z A-Z <{probe}")
    assert PROBE.upper() in wrote, wrote
    boot.stop()
    # on the disk itself: neither the text nor an ext4 superblock (magic 0xEF53 at 1080)
    assert not _contains(disk, PROBE.encode())
    with disk.open("rb") as f:
        f.seek(1080)
        assert f.read(2) != b"\x53\xef"


def test_volumes_example_shares_a_writable_volume_and_a_read_only_one(
    built: Path, boots: list[Boot]
) -> None:
    boot = _boot(boots, built / "volumes", console_input=True)
    assert "distrokit: volume vola mounted" in boot.text()
    vola = "/containers/volumes/vola"
    # values the guest's shell computes, so the echoed command line cannot match them
    out = boot.shell(
        'echo "note=$(cat /vola/note) certs=$(ls /volb/etc/ssl/certs | grep -c .)'
        f' lower=$(ls {vola}/lower | grep -c .) upper=$(cat {vola}/tmp/upper/note)"; '
        'touch /volb/x 2>/dev/null; echo "touch=$?"; '
        f"grep ' {vola}/merged ' /proc/1/mounts | cut -d ' ' -f 1-3"
    )
    found = re.search(r"note=written-by-onboot certs=(\d+) lower=(\d+) upper=(\S+)", out)
    assert found, out
    # the onboot container's write is in the getty's bind of the same volume, and lives in
    # the overlay's upper layer: the volume's lower layer in the image stays empty
    assert int(found[1]) > 0 and found[2] == "0" and found[3] == "written-by-onboot", out
    assert re.search(r"touch=[1-9]", out), out  # volb is bound read-only
    assert f"overlay {vola}/merged overlay" in out, out


def test_docker_example_runs_dockerd_on_its_formatted_disk(
    built: Path, boots: list[Boot], tmp_path: Path
) -> None:
    disk = f"file={tmp_path / 'docker.img'},size=1G"
    # open-vm-tools stops by itself outside VMware
    boot = _boot(
        boots, built / "docker", "--mem", "1536", "--disk", disk,
        console_input=True, may_stop=("open-vm-tools",),
    )  # fmt: skip
    out = boot.shell(
        "grep ' /var/lib/docker ' /proc/1/mounts | cut -d ' ' -f 1-3; "
        'echo "docker-state=$(ls /proc/1/root/var/lib/docker | grep -c .)"; '
        "ctr -n services.linuxkit tasks ls | grep -w docker | tr a-z A-Z"
    )
    assert "/dev/vda1 /var/lib/docker ext4" in out, out
    assert re.search(r"docker-state=[1-9]", out), out  # dockerd made its state there
    assert re.search(r"DOCKER\s+\d+\s+RUNNING", out), out


def test_containerd_debug_example_logs_containerd_at_trace_level(
    built: Path, boots: list[Boot]
) -> None:
    boot = _boot(boots, built / "containerd-debug", console_input=True)
    # values the guest's shell computes, so the echoed command line cannot match them
    out = boot.shell(
        'echo "args=$(tr "\\0" , </proc/$(pidof containerd)/cmdline)'
        " debug=$(grep -c -e level=debug -e level=trace /var/log/containerd.err.log)"
        ' default=$(ls /var/log/containerd.log 2>/dev/null | grep -c .)"'
    )
    found = re.search(r"args=(\S+) debug=(\d+) default=(\d+)", out)
    assert found, out
    assert found[1].endswith(",--log-level,trace,"), out
    assert int(found[2]) > 0 and found[3] == "0", out


def test_hostmount_writeable_overlay_example_writes_privately_over_the_host_etc(
    built: Path, boots: list[Boot]
) -> None:
    boot = _boot(boots, built / "hostmount-writeable-overlay", console_input=True)
    # values the guest's shell computes, so the echoed command line cannot match them
    out = boot.shell(
        "echo changed >/writeable-host-etc/from-getty; "
        'echo "mine=$(cat /writeable-host-etc/from-getty)'
        " upper=$(cat /run/hostetc/upper/from-getty)"
        " host=$(ls /proc/1/root/etc/from-getty 2>/dev/null | grep -c .)"
        ' inittab=$(grep -c sysinit /writeable-host-etc/inittab)"'
    )
    found = re.search(r"mine=(\S+) upper=(\S+) host=(\d+) inittab=(\d+)", out)
    assert found, out
    # the host's /etc shows through, the write lands in the upper layer, not in the host's /etc
    assert found.groups()[:3] == ("changed", "changed", "0") and int(found[4]) > 0, out
