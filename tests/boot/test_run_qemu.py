"""`distrokit run qemu` booting real systems under TCG: the guest's own /init prints markers.

Each test builds a small system (Debian kernel + busybox initramfs, see guest.py) and runs the
real CLI in a subprocess. Timeouts are generous: two shared cores, software emulation.
"""

from __future__ import annotations

import gzip
import os
import secrets
import signal
import socket
import time
import urllib.request
from pathlib import Path

import pytest
from guest import MARKER, Boot, make_guest, make_iso, start
from hosttools import require_tools

from distrokit.runners import state

BOOT_TIMEOUT = 120.0
TCG = ("--accel", "tcg", "--mem", "256")
WAIT_FOR_VDA = "for i in $(seq 100); do [ -b /dev/vda ] && break; sleep 0.1; done"


@pytest.fixture(autouse=True)
def _tools() -> None:
    require_tools("qemu-system-x86_64", "qemu-img")


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


def test_fast_path_boots_pvh_on_microvm(tmp_path: Path, boots: list[Boot]) -> None:
    prefix = make_guest(tmp_path, "fast")
    built = Path(f"{prefix}-initrd.img")
    raw = built.read_bytes()
    built.write_bytes(gzip.compress(raw, mtime=0))  # as `build` writes it
    cache = tmp_path / "cache"
    boot = start(*TCG, prefix, debug=True, env={"XDG_CACHE_HOME": str(cache)})
    boots.append(boot)
    boot.wait_for(MARKER, BOOT_TIMEOUT)
    assert boot.finish(BOOT_TIMEOUT) == 0  # the guest powered off: a clean exit
    out = boot.text()
    assert "-M microvm,acpi=on,x-option-roms=off" in out
    assert ".vmlinux -initrd" in out and "tsc_early_khz=" in out
    # under TCG the guest gets the initrd uncompressed (inflated once on the host), and the
    # file that was built stays as it was
    (plain,) = (cache / "distrokit" / "initrd").glob("*.cpio")
    assert f"-initrd {plain} " in out
    assert plain.read_bytes() == raw and built.read_bytes() == gzip.compress(raw, mtime=0)


def test_same_system_on_q35_with_bzimage(tmp_path: Path, boots: list[Boot]) -> None:
    prefix = make_guest(tmp_path, "q35")
    boot = start(*TCG, "--machine", "q35", "--no-pvh", prefix, debug=True)
    boots.append(boot)
    boot.wait_for(MARKER, BOOT_TIMEOUT)
    assert boot.finish(BOOT_TIMEOUT) == 0
    out = boot.text()
    assert "-M q35" in out and f"-kernel {prefix}-kernel" in out
    assert "virtio-net-pci" in out


def test_default_accel_probes_then_boots(tmp_path: Path, boots: list[Boot]) -> None:
    """``--accel auto`` (the default): a probe decides KVM or TCG, and the system boots."""
    prefix = make_guest(tmp_path, "auto")
    cache = tmp_path / "cache"
    boot = start("--mem", "256", prefix, debug=True, env={"XDG_CACHE_HOME": str(cache)})
    boots.append(boot)
    boot.wait_for(MARKER, BOOT_TIMEOUT)
    assert boot.finish(BOOT_TIMEOUT) == 0
    assert "accelerator" in boot.text()
    # without /dev/kvm there is nothing to probe and nothing to cache
    assert (cache / "distrokit" / "accel.json").is_file() == Path("/dev/kvm").exists()
    assert list((cache / "distrokit" / "vmlinux").glob("*.vmlinux"))


@pytest.mark.parametrize("kind", ["iso", "disk"])
def test_iso_and_disk_image_boot_on_q35(tmp_path: Path, boots: list[Boot], kind: str) -> None:
    """A hybrid isolinux ISO boots from the CD (``x.iso``) and as a raw disk (``x.img``)."""
    require_tools("xorriso")
    prefix = make_guest(tmp_path, "hybrid", f"{WAIT_FOR_VDA}\nls /dev/vda 2>/dev/null")
    image = make_iso(prefix, tmp_path / "hybrid.iso")
    if kind == "disk":
        image = image.rename(tmp_path / "hybrid.img")
    boot = start(*TCG, str(image), debug=True)
    boots.append(boot)
    boot.wait_for(MARKER, BOOT_TIMEOUT)
    assert boot.finish(BOOT_TIMEOUT) == 0
    out = boot.text()
    assert "-M q35" in out
    if kind == "iso":
        assert "ide-cd,drive=cd0,bus=ide.1,bootindex=0" in out
    else:
        assert "format=raw,if=none,id=boot" in out
        assert "virtio-blk-pci,drive=boot,bootindex=0" in out


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _fetch(url: str, timeout: float) -> bytes:
    deadline = time.monotonic() + timeout
    while True:
        try:
            with urllib.request.urlopen(url, timeout=10) as resp:
                return bytes(resp.read())
        except OSError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.5)


def test_published_guest_port_is_reachable(tmp_path: Path, boots: list[Boot]) -> None:
    token = secrets.token_hex(8)
    body = f"""
ip link set lo up
ip link set eth0 up
ip addr add 10.0.2.15/24 dev eth0
echo {token} > /www/index.html
httpd -p 8080 -h /www
echo GUEST-LISTENING
sleep 600
"""
    prefix = make_guest(tmp_path, "web", body)
    port = _free_port()
    boot = start(*TCG, "--publish", f"{port}:8080", prefix)
    boots.append(boot)
    boot.wait_for("GUEST-LISTENING", BOOT_TIMEOUT)
    assert _fetch(f"http://127.0.0.1:{port}/index.html", 60).strip() == token.encode()


def test_disk_is_created_then_found_with_its_data(tmp_path: Path, boots: list[Boot]) -> None:
    token = secrets.token_hex(8)
    body = f"""{WAIT_FOR_VDA}
if [ "$(head -c 5 /dev/vda)" = "DKIT:" ]; then
  echo "FOUND-$(head -n 1 /dev/vda)"
else
  printf 'DKIT:{token}\\n' | dd of=/dev/vda conv=fsync 2>/dev/null && echo WROTE-DISK
fi
"""
    prefix = make_guest(tmp_path, "disk", body)
    state_dir = tmp_path / "vm-state"
    args = (*TCG, "--state", str(state_dir), "--disk", "size=16M", prefix)
    first = start(*args)
    boots.append(first)
    first.wait_for("WROTE-DISK", BOOT_TIMEOUT)
    assert first.finish(BOOT_TIMEOUT) == 0
    assert (state_dir / "disk.img").is_file()
    mac = (state_dir / "mac-addr").read_text()
    second = start(*args)
    boots.append(second)
    second.wait_for(f"FOUND-DKIT:{token}", BOOT_TIMEOUT)
    assert second.finish(BOOT_TIMEOUT) == 0
    assert (state_dir / "mac-addr").read_text() == mac


def test_metadata_cd_is_readable_in_the_guest(tmp_path: Path, boots: list[Boot]) -> None:
    token = secrets.token_hex(8)
    body = """for i in $(seq 100); do [ -b /dev/sr0 ] && break; sleep 0.1; done
mount -t iso9660 -o ro /dev/sr0 /mnt && echo "CONFIG-$(cat /mnt/config)"
"""
    modules = ("virtio_mmio", "virtio_scsi", "sr_mod", "isofs")
    prefix = make_guest(tmp_path, "meta", body, modules=modules)
    boot = start(*TCG, "--networking", "none", "--data", token, prefix)
    boots.append(boot)
    boot.wait_for(f"CONFIG-{token}", BOOT_TIMEOUT)
    assert boot.finish(BOOT_TIMEOUT) == 0


@pytest.mark.parametrize("signum", [signal.SIGINT, signal.SIGTERM])
def test_interrupt_stops_the_vm(tmp_path: Path, boots: list[Boot], signum: int) -> None:
    prefix = make_guest(tmp_path, "stop", "echo GUEST-WAITING\nsleep 600")
    boot = start(*TCG, prefix)
    boots.append(boot)
    boot.wait_for("GUEST-WAITING", BOOT_TIMEOUT)
    pid = state.read_pid(Path(f"{prefix}-state"))
    assert pid is not None and _alive(pid)
    boot.proc.send_signal(signum)  # only distrokit, not its group: it must stop QEMU itself
    assert boot.finish(60) == 130
    assert not _alive(pid)


def test_detach_records_pid_and_logs_console(tmp_path: Path) -> None:
    prefix = make_guest(tmp_path, "bg", "echo GUEST-DETACHED\nsleep 600")
    state_dir = Path(f"{prefix}-state")
    boot = start(*TCG, "--detach", prefix)
    pid = None
    try:
        assert boot.finish(60) == 0
        pid = state.read_pid(state_dir)
        assert pid is not None and _alive(pid)
        again = start(*TCG, "--detach", prefix)
        assert again.finish(60) == 1
        assert f"already running (pid {pid})" in again.text()
        log = state_dir / "console.log"
        deadline = time.monotonic() + BOOT_TIMEOUT
        while b"GUEST-DETACHED" not in (log.read_bytes() if log.exists() else b""):
            assert time.monotonic() < deadline, "no marker in console.log"
            assert _alive(pid), "detached VM died"
            time.sleep(0.5)
    finally:
        boot.stop()
        if pid is not None and _alive(pid):
            os.kill(pid, signal.SIGTERM)
            for _ in range(100):
                if not _alive(pid):
                    break
                time.sleep(0.1)
