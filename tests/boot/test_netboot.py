"""Network boots under TCG to a marker printed by an onboot container of a real system.

The system (the base packages' kernel, init and runc, an onboot container that writes the
marker to the console, then one that powers off) is built once for the module as
NAME-kernel + NAME-initrd.img in a directory that the real `distrokit serve` serves.

- User networking (no root): `distrokit serve` on 127.0.0.1, `distrokit run qemu --netboot
  URL`; QEMU's DHCP and TFTP give the NIC's iPXE ROM a script that chains to the URL, iPXE
  loads the build's script, kernel and initrd over HTTP. Under SeaBIOS and under OVMF.
- The real proxy-DHCP path: in a network namespace made here (a bridge with the test's own
  address and a tap), one dnsmasq plays the site's DHCP server and `distrokit serve --pxe`
  answers the guest's PXE with the script URL; the guest's address comes from the site server.
"""

from __future__ import annotations

import os
import secrets
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from guest import Boot
from hosttools import require_tools
from netboot_system import FULL_MARKER, NAME, Server, build_netboot_system, start_distrokit
from registry import free_port

TIMEOUT = 240.0
TCG = ("--accel", "tcg", "--mem", "512")


@pytest.fixture(scope="module")
def system(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The directory holding netboot-kernel, netboot-initrd.img and netboot-cmdline."""
    require_tools("qemu-system-x86_64", "qemu-img", "apt-get", "dpkg-deb", "dnsmasq", "ip")
    return build_netboot_system(tmp_path_factory.mktemp("netboot"))


def _sizes(system: Path) -> tuple[int, int]:
    kernel = (system / f"{NAME}-kernel").stat().st_size
    return kernel, (system / f"{NAME}-initrd.img").stat().st_size


@pytest.mark.parametrize("firmware", ["seabios", "ovmf"])
def test_user_networking_netboot_reaches_the_onboot_marker(
    system: Path, tmp_path: Path, boots: list[Boot], firmware: str
) -> None:
    port = free_port()
    server = Server(
        start_distrokit("serve", "--address", "127.0.0.1", "--port", str(port),
                   "--directory", str(system))
    )  # fmt: skip
    try:
        server.wait_for("Ctrl-C stops")
        uefi = ("--uefi",) if firmware == "ovmf" else ()
        url = f"http://127.0.0.1:{port}/boot.ipxe"
        state = str(tmp_path / "state")
        boot = Boot(
            proc=start_distrokit("--debug", "run", "qemu", *TCG, *uefi, "--state", state,
                            "--netboot", url),
            started=time.monotonic(),
        )  # fmt: skip
        boots.append(boot)
        boot.wait_for(FULL_MARKER, TIMEOUT)
        assert boot.finish(TIMEOUT) == 0  # the poweroff container powered the guest off
    finally:
        log = server.stop()
    text = boot.text()
    assert "distrokit: onboot marker: exited 0" in text
    assert f"tftp=/{state.lstrip('/')}/tftp,bootfile=netboot.ipxe" in text
    assert "-kernel" not in text.split("run: ", 1)[1].splitlines()[0]  # nothing booted locally
    if firmware == "ovmf":  # OVMF shows iPXE's own console on the serial line
        assert "tftp://10.0.2.2/netboot.ipxe... ok" in text
        assert f"http://10.0.2.2:{port}/boot.ipxe... ok" in text
    kernel, initrd = _sizes(system)
    assert '"GET /boot.ipxe" 200 ' in log
    assert f'"GET /{NAME}-kernel" 200 {kernel} ' in log
    assert f'"GET /{NAME}-initrd.img" 200 {initrd} ' in log


def _ns(name: str, *argv: str) -> tuple[str, ...]:
    return ("ip", "netns", "exec", name, *argv)


@pytest.fixture
def netns() -> Iterator[str]:
    """A network namespace with bridge br0 (10.77.0.1/24) and tap0 on it; deleted after."""
    if os.geteuid() != 0:
        pytest.fail("the proxy-DHCP boot test makes a network namespace: run it as root")
    name = f"dk-netboot-{secrets.token_hex(3)}"
    subprocess.run(["ip", "netns", "add", name], check=True)
    try:
        for cmd in (
            "link set lo up",
            "link add br0 type bridge",
            "addr add 10.77.0.1/24 dev br0",
            "tuntap add dev tap0 mode tap",
            "link set tap0 master br0",
            "link set br0 up",
            "link set tap0 up",
        ):
            subprocess.run(_ns(name, "ip", *cmd.split()), check=True)
        yield name
    finally:
        subprocess.run(["ip", "netns", "del", name], check=False)


def test_proxy_dhcp_netboot_in_a_namespace(
    system: Path, tmp_path: Path, boots: list[Boot], netns: str
) -> None:
    site_argv = _ns(
        netns, "dnsmasq", "--keep-in-foreground", "--conf-file=/dev/null", "--port=0",
        "--interface=br0", "--bind-interfaces", "--user=root",
        "--dhcp-range=10.77.0.50,10.77.0.99,255.255.255.0,1h",
        f"--dhcp-leasefile={tmp_path / 'site.leases'}", "--log-dhcp", "--log-facility=-",
    )  # fmt: skip
    site = subprocess.Popen(site_argv, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    port = free_port()
    server = Server(
        start_distrokit("serve", "--pxe", "--interface", "br0", "--port", str(port),
                   "--directory", str(system), "--state", str(tmp_path / "pxe"),
                   wrap=_ns(netns))
    )  # fmt: skip
    try:
        server.wait_for("Ctrl-C stops")
        state = tmp_path / "state"
        boot = Boot(
            proc=start_distrokit("run", "qemu", *TCG, "--state", str(state), "--netboot",
                            "--networking", "tap,tap0", wrap=_ns(netns)),
            started=time.monotonic(),
        )  # fmt: skip
        boots.append(boot)
        boot.wait_for(FULL_MARKER, TIMEOUT)
        assert boot.finish(TIMEOUT) == 0
    finally:
        log = server.stop()
        site.terminate()
        site_log = site.communicate(timeout=15)[0].decode(errors="replace")
    mac = (state / "mac-addr").read_text().strip()
    acks = [line.split() for line in site_log.splitlines() if "DHCPACK(br0)" in line]
    addresses = {fields[fields.index("DHCPACK(br0)") + 1] for fields in acks if mac in fields}
    assert len(addresses) == 1, site_log  # the site's server gave the guest its address
    address = addresses.pop()
    assert f"PXE(br0) {mac} proxy" in log  # distrokit's dnsmasq answered as proxy only
    assert f"bootfile name: http://10.77.0.1:{port}/boot.ipxe" in log
    assert "DHCPACK" not in log
    kernel, initrd = _sizes(system)
    assert f'{address} "GET /boot.ipxe" 200 ' in log
    assert f'{address} "GET /{NAME}-kernel" 200 {kernel} ' in log
    assert f'{address} "GET /{NAME}-initrd.img" 200 {initrd} ' in log
    assert "dnsmasq" in log and "exiting on receipt of SIGTERM" in log
