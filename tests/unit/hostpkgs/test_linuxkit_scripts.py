"""The scripts of the LinuxKit-named packages (binfmt, sysfs, kmsg, swap, acpid's power button,
trim-after-delete, dm-crypt's crypto, memlogd's logwrite, ip's lk-wg-config, losetup's loopy)
run with busybox sh on the host, against fake binfmt_misc and sysfs trees, recording stand-ins
and real files."""

from __future__ import annotations

import os
import subprocess
import time
from pathlib import Path

import pytest
from shell import PKG, run_script

BINFMT_CONF = (
    r":qemu-aarch64:M::\x7fELF\x02\x01\x01:\xff\xff\xff\xff\xff\xff\xff"
    r":/usr/libexec/qemu-binfmt/aarch64-binfmt-P:OPF"
)


def test_binfmt_registers_each_entry_once(tmp_path: Path) -> None:
    mnt, conf = tmp_path / "binfmt_misc", tmp_path / "binfmt.d"
    mnt.mkdir()
    conf.mkdir()
    (mnt / "register").write_text("")
    (mnt / "qemu-arm").write_text("enabled\n")  # registered before
    (conf / "qemu-aarch64.conf").write_text(f"# comment\n{BINFMT_CONF}\n")
    (conf / "qemu-arm.conf").write_text(":qemu-arm:M::\\x7fELF\\x01:\\xff\\xff:/q-arm:OPF")
    r = run_script(PKG / "binfmt" / "binfmt", ["-dir", str(conf)], {"BINFMT_DIR": str(mnt)})
    assert r.status == 0, r.out
    assert r.out.splitlines() == [
        "binfmt: registered qemu-aarch64",
        "binfmt: qemu-arm already registered",
    ]
    # the kernel gets the line as it is: backslash escapes are binfmt_misc's to decode
    assert (mnt / "register").read_text() == BINFMT_CONF


def test_binfmt_reports_a_refused_registration(tmp_path: Path) -> None:
    mnt, conf = tmp_path / "binfmt_misc", tmp_path / "binfmt.d"
    (mnt / "register").mkdir(parents=True)  # writing to it fails, as a bad entry does
    conf.mkdir()
    (conf / "x.conf").write_text(BINFMT_CONF)
    r = run_script(PKG / "binfmt" / "binfmt", ["-dir", str(conf)], {"BINFMT_DIR": str(mnt)})
    assert r.status == 1
    assert "registering qemu-aarch64 from" in r.out


def test_sysfs_writes_settings_and_reports_bad_lines(tmp_path: Path) -> None:
    sys, conf = tmp_path / "sys", tmp_path / "sysfs.d"
    (sys / "kernel/mm/transparent_hugepage").mkdir(parents=True)
    (sys / "block/vda/queue").mkdir(parents=True)
    conf.mkdir()
    (conf / "10-thp.conf").write_text(
        "# comment\nkernel/mm/transparent_hugepage/enabled = never\n"
        "/sys/block/vda/queue/scheduler=none\n"
        "no equals sign\nclass/../../etc/passwd = x\nmissing/dir/file = 1\n"
    )
    env = {"SYSFS_ROOT": str(sys), "SYSFS_CONF": str(conf)}
    r = run_script(PKG / "sysfs" / "sysfs", [], env)
    assert r.status == 1
    assert (sys / "kernel/mm/transparent_hugepage/enabled").read_text() == "never\n"
    assert (sys / "block/vda/queue/scheduler").read_text() == "none\n"
    assert "10-thp.conf:4: expected 'path = value'" in r.out
    assert "10-thp.conf:5: '..' is not allowed" in r.out
    assert "10-thp.conf:6: cannot write '1'" in r.out
    assert not (tmp_path / "etc").exists()


def test_kmsg_formats_records_and_skips_continuations(tmp_path: Path) -> None:
    kmsg = tmp_path / "kmsg"
    kmsg.write_text(
        "6,1,1500000,-;virtio_net virtio0 eth0: link up\n SUBSYSTEM=net\n"
        "27,2,2000001,-;a daemon: it failed; badly\n3,3,5,c;oops\n"
    )
    r = run_script(PKG / "kmsg" / "kmsg", [], {"KMSG_DEVICE": str(kmsg)})
    assert r.status == 0
    assert r.out.splitlines() == [
        "[    1.500000] kern.info virtio_net virtio0 eth0: link up",
        "[    2.000001] daemon.err a daemon: it failed; badly",
        "[    0.000005] kern.err oops",
    ]


def _swap(tmp_path: Path, *args: str, mounts: str = "") -> tuple[int, str]:
    (tmp_path / "mounts").write_text(mounts)
    env = {"SWAPON": "true", "SWAP_MOUNTS": str(tmp_path / "mounts")}
    r = run_script(PKG / "swap" / "swap.sh", list(args), env)
    return r.status, r.out


def test_swap_makes_a_swap_file_of_the_size(tmp_path: Path) -> None:
    path = tmp_path / "ext" / "swap"
    status, out = _swap(tmp_path, "--path", str(path), "--size", "2M")
    assert status == 0, out
    data = path.read_bytes()
    assert len(data) == 2 * 1024 * 1024
    assert data[4086:4096] == b"SWAPSPACE2"
    assert path.stat().st_mode & 0o777 == 0o600
    status, out = _swap(tmp_path, "--path", str(path), "--size", "2M")
    assert "reusing" in out


def test_swap_condition_and_bad_sizes(tmp_path: Path) -> None:
    path = tmp_path / "ext" / "swap"
    status, out = _swap(tmp_path, "--path", str(path), "--size", "1M",
                        "--condition", f"part:{tmp_path / 'ext'}")  # fmt: skip
    assert status == 0 and "is not a mount point, no swap file" in out
    assert not path.exists()
    mounts = f"/dev/vda1 {tmp_path / 'ext'} ext4 rw 0 0\n"
    status, out = _swap(tmp_path, "--path", str(path), "--size", "1M",
                        "--condition", f"part:{tmp_path / 'ext'}", mounts=mounts)  # fmt: skip
    assert status == 0 and path.stat().st_size == 1024 * 1024
    for size in ("1G2", "12", "x", "4K"):
        status, out = _swap(tmp_path, "--path", str(path), "--size", size)
        assert status == 2, size
    assert _swap(tmp_path, "--size", "1M")[0] == 2


def test_power_button_asks_init_for_poweroff() -> None:
    # a stand-in for init: busybox init powers off on SIGUSR2
    init = subprocess.Popen(
        ["busybox", "sh", "-c", "trap 'echo got-usr2; exit 0' USR2; while :; do sleep 0.1; done"],
        stdout=subprocess.PIPE, text=True,
    )  # fmt: skip
    time.sleep(0.3)
    r = run_script(PKG / "acpid" / "power-button", [], {"ACPID_INIT_PID": str(init.pid)})
    assert r.status == 0
    assert "power button pressed" in r.out
    out, _ = init.communicate(timeout=10)
    assert out.strip() == "got-usr2"


def test_trim_after_delete_runs_the_command_when_space_is_freed(tmp_path: Path) -> None:
    """On a tmpfs of its own (a private mount namespace), so other programs' writes to /tmp
    cannot hide the freed space."""
    if os.geteuid() != 0:
        pytest.fail("this test mounts a tmpfs in a private mount namespace: run it as root")
    script = PKG / "trim-after-delete" / "trim-after-delete"
    body = f"""
mount -t tmpfs -o size=32m none {tmp_path}
dd if=/dev/zero of={tmp_path}/big bs=1M count=8 2>/dev/null
busybox sh {script} -i 0.2 -t 1024 -- busybox touch {tmp_path}/trimmed {tmp_path} &
sleep 1
[ -e {tmp_path}/trimmed ] && echo "ran before anything was freed"
rm {tmp_path}/big
i=0
until [ -e {tmp_path}/trimmed ] || [ $i -gt 50 ]; do i=$((i + 1)); sleep 0.2; done
[ -e {tmp_path}/trimmed ] && echo TRIMMED
kill $!
"""
    run = subprocess.run(
        ["unshare", "-m", "--propagation", "private", "busybox", "sh", "-c", body],
        capture_output=True, text=True, timeout=60, check=False,
    )  # fmt: skip
    assert "watching" in run.stdout, run.stdout + run.stderr
    assert "ran before" not in run.stdout
    assert "KiB freed on" in run.stdout and "TRIMMED" in run.stdout


def test_crypto_refuses_a_missing_key_and_bad_names(tmp_path: Path) -> None:
    script = PKG / "dm-crypt" / "crypto"
    device = tmp_path / "disk"
    device.write_bytes(b"\0" * 4096)
    r = run_script(script, ["-k", str(tmp_path / "nokey"), str(device)], {})
    assert r.status == 1 and f"no key in {tmp_path / 'nokey'}" in r.out
    assert run_script(script, ["-l", "a/b", str(device)], {}).status == 2
    assert run_script(script, [], {}).status == 2


def test_logwrite_usage() -> None:
    script = PKG / "memlogd" / "logwrite"
    assert run_script(script, ["-n"], {}).status == 2
    assert run_script(script, ["-n", "x"], {}).status == 2


WG_CONF = """\
[Interface]
# the tunnel's end on this side
Address = 192.168.2.1/24, fd00::1/64
DNS = 192.168.2.2
MTU = 1380
PrivateKey = kCfEw6prenSYqAx3r47LCFonWOg1Vd1BqRO5pZugyVY=
ListenPort = 51820
PostUp = echo never run

[Peer]
PublicKey = qJWrCGJUb66BT4Uhmb4d2QwE0paK/Kuobg99kJsMJgw=
AllowedIPs = 10.1.0.0/16,0.0.0.0/0
Endpoint = 127.0.0.1:51821

[Peer]
PublicKey = sIY7Kh13x5BzNYprYMqCUPROA1nXDsRLKc66Tp+qHHg=
AllowedIPs = ::/0
"""


def test_lk_wg_config_splits_a_wg_quick_file_between_wg_and_ip(tmp_path: Path) -> None:
    bin_, calls = tmp_path / "bin", tmp_path / "calls"
    bin_.mkdir()
    for tool in ("wg", "ip"):
        # records its argv, and what it reads when told to read stdin
        (bin_ / tool).write_text(
            f'#!/bin/sh\necho "{tool} $*" >>{calls}\n'
            f'case "$*" in *"/dev/stdin"*) cat >{tmp_path}/setconf ;; esac\n'
        )
        (bin_ / tool).chmod(0o755)
    conf = tmp_path / "wg0.conf"
    conf.write_text(WG_CONF)
    env = {"IP": str(bin_ / "ip"), "WG": str(bin_ / "wg")}
    r = run_script(PKG / "ip" / "lk-wg-config", ["configure", str(conf)], env)
    assert r.status == 0, r.out
    assert r.out.strip() == f"lk-wg-config: wg0 configured from {conf}"
    assert calls.read_text().splitlines() == [
        "wg setconf wg0 /dev/stdin",
        "ip address add 192.168.2.1/24 dev wg0",
        "ip address add fd00::1/64 dev wg0",
        "ip link set mtu 1380 dev wg0",
        "ip link set wg0 up",
        "ip route replace 10.1.0.0/16 dev wg0",
        "ip route replace default dev wg0",
        "ip -6 route replace default dev wg0",
    ]
    setconf = (tmp_path / "setconf").read_text()
    for kept in ("PrivateKey = kCf", "ListenPort = 51820", "Endpoint = 127.0.0.1:51821"):
        assert kept in setconf
    assert setconf.count("[Peer]") == 2
    for dropped in ("Address", "DNS", "MTU", "PostUp"):
        assert dropped not in setconf


def test_lk_wg_config_usage_and_a_missing_file(tmp_path: Path) -> None:
    script = PKG / "ip" / "lk-wg-config"
    assert run_script(script, ["setup", "x.conf"], {}).status == 2
    r = run_script(script, ["configure", str(tmp_path / "none.conf")], {})
    assert r.status == 1 and "cannot read" in r.out


def test_loopy_refuses_bad_arguments_and_a_missing_device(tmp_path: Path) -> None:
    script = PKG / "losetup" / "loopy"
    assert run_script(script, [], {}).status == 2
    assert run_script(script, ["--size"], {}).status == 2
    r = run_script(script, ["--size", "ten", "f"], {})
    assert r.status == 2 and "invalid size 'ten'" in r.out
    device = tmp_path / "loop9"  # not a block device
    r = run_script(script, ["--dev", str(device), "--create", str(tmp_path / "f")], {})
    assert r.status == 1 and f"{device} is not a block device" in r.out
    assert not (tmp_path / "f").exists()
