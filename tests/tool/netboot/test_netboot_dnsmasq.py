"""`distrokit serve --pxe` with the real dnsmasq, asked by a PXE client in a network namespace.

Two namespaces made here: the server's (bridge br0, 10.77.1.1/24) and a client's, joined by a
veth pair. The client (pxe_client.py) speaks the first two PXE exchanges as firmware and as
iPXE do; TFTP is fetched with curl. Nothing leaves the namespaces.
"""

from __future__ import annotations

import json
import os
import secrets
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from hosttools import require_tools

from distrokit.netboot import pxe

CLIENT = Path(__file__).with_name("pxe_client.py")
SERVER_IP = "10.77.1.1"
CLIENT_IP = "10.77.1.200"
PORT = 8080


@dataclass
class Lan:
    server_ns: str
    client_ns: str
    proc: subprocess.Popen[bytes]
    state: Path

    def client(self, *argv: str, timeout: float = 30) -> subprocess.CompletedProcess[bytes]:
        return subprocess.run(
            ["ip", "netns", "exec", self.client_ns, *argv],
            capture_output=True, timeout=timeout, check=False,
        )  # fmt: skip


def _ip(*argv: str) -> None:
    subprocess.run(["ip", *argv], check=True, capture_output=True)


@pytest.fixture(scope="module")
def lan(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Lan]:
    require_tools("dnsmasq", "ip", "curl")
    if os.geteuid() != 0:
        pytest.fail("this test makes network namespaces: run it as root")
    tag = secrets.token_hex(3)
    srv, cli = f"dk-pxe-s-{tag}", f"dk-pxe-c-{tag}"
    base = tmp_path_factory.mktemp("pxe")
    (base / "www").mkdir()
    (base / "www" / "demo-kernel").write_bytes(b"kernel")
    (base / "www" / "demo-initrd.img").write_bytes(b"initrd")
    _ip("netns", "add", srv)
    _ip("netns", "add", cli)
    proc = None
    try:
        _ip("-n", srv, "link", "add", "br0", "type", "bridge")
        _ip("-n", srv, "addr", "add", f"{SERVER_IP}/24", "dev", "br0")
        _ip("-n", srv, "link", "add", "vs", "type", "veth", "peer", "name", "vc", "netns", cli)
        _ip("-n", srv, "link", "set", "vs", "master", "br0")
        for ns, dev in ((srv, "lo"), (srv, "br0"), (srv, "vs"), (cli, "lo"), (cli, "vc")):
            _ip("-n", ns, "link", "set", dev, "up")
        _ip("-n", cli, "addr", "add", f"{CLIENT_IP}/24", "dev", "vc")
        argv = ["ip", "netns", "exec", srv, sys.executable, "-m", "distrokit", "serve", "--pxe",
                "--interface", "br0", "--port", str(PORT), "--directory", str(base / "www"),
                "--state", str(base / "state")]  # fmt: skip
        proc = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
        assert proc.stdout is not None
        seen = b""
        while b"Ctrl-C stops" not in seen:
            line = proc.stdout.readline()
            assert line, seen.decode()
            seen += line
        time.sleep(1)  # the bridge forwards once its port has left the learning state
        yield Lan(server_ns=srv, client_ns=cli, proc=proc, state=base / "state")
    finally:
        if proc is not None:
            proc.terminate()
            proc.wait(timeout=30)
        _ip("netns", "del", cli)
        _ip("netns", "del", srv)


def _exchange(lan: Lan, arch: int, *extra: str) -> list[dict[str, object]]:
    done = lan.client(sys.executable, str(CLIENT), "vc", CLIENT_IP, str(arch), *extra)
    assert done.returncode == 0, done.stderr.decode()
    answers: list[dict[str, object]] = json.loads(done.stdout)
    return answers


@pytest.mark.parametrize(
    ("arch", "extra", "boot_file"),
    [
        (0, (), "undionly.kpxe"),  # BIOS firmware
        (7, (), "ipxe.efi"),  # x86-64 UEFI firmware (what OVMF sends)
        (9, (), "ipxe.efi"),
        (0, ("ipxe",), f"http://{SERVER_IP}:{PORT}/boot.ipxe"),  # iPXE itself: the script
        (7, ("ipxe",), f"http://{SERVER_IP}:{PORT}/boot.ipxe"),
    ],
)
def test_proxy_offer_then_boot_file(
    lan: Lan, arch: int, extra: tuple[str, ...], boot_file: str
) -> None:
    answers = _exchange(lan, arch, *extra)
    offers = [a for a in answers if a["step"] == "offer"]
    assert len(offers) == 1, answers
    offer = offers[0]
    # a proxy offer: PXE information, no address (the site's DHCP server gives that)
    assert offer["type"] == 2 and offer["yiaddr"] == "0.0.0.0"
    assert offer["vendor_class"] == "PXEClient" and offer["server"] == SERVER_IP
    acks = [a for a in answers if a["step"] == "ack"]
    assert [a["file"] for a in acks] == [boot_file], json.dumps(answers)
    assert acks[0]["siaddr"] == SERVER_IP


@pytest.mark.parametrize("name", [pxe.BIOS_BOOT_FILE, pxe.UEFI_BOOT_FILE])
def test_tftp_serves_debian_ipxe(lan: Lan, name: str) -> None:
    done = lan.client("curl", "-sS", "--max-time", "20", f"tftp://{SERVER_IP}/{name}")
    assert done.returncode == 0, done.stderr.decode()
    assert done.stdout == (pxe.IPXE_DIR / name).read_bytes()


def test_http_script_names_the_lan_address(lan: Lan) -> None:
    done = lan.client("curl", "-sS", "--max-time", "20", f"http://{SERVER_IP}:{PORT}/boot.ipxe")
    assert done.returncode == 0, done.stderr.decode()
    assert f"set base-url http://{SERVER_IP}:{PORT}\n" in done.stdout.decode()


def test_config_passes_dnsmasq_own_check(lan: Lan) -> None:
    conf = lan.state / pxe.CONFIG_NAME
    done = subprocess.run(
        ["dnsmasq", "--test", f"--conf-file={conf}"], capture_output=True, text=True, check=False
    )
    assert done.returncode == 0 and "syntax check OK" in done.stderr, done.stderr
