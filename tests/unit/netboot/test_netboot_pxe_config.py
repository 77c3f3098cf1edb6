"""dnsmasq's configuration for proxy DHCP + TFTP, and the checks before it starts."""

from __future__ import annotations

import ipaddress
from pathlib import Path

import pytest

from distrokit.errors import DistrokitError, UsageError
from distrokit.netboot import pxe


def _config(tmp_path: Path, url: str = "http://192.168.7.2:8080/boot.ipxe") -> pxe.PxeConfig:
    return pxe.PxeConfig(
        interface="br-lan",
        network=ipaddress.IPv4Interface("192.168.7.2/24"),
        script_url=url,
        tftp_root=tmp_path / "tftp",
        lease_file=tmp_path / "leases",
        user="nobody",
    )


def test_proxy_dhcp_without_dns_on_one_interface(tmp_path: Path) -> None:
    lines = pxe.dnsmasq_config(_config(tmp_path)).splitlines()
    for wanted in (
        "port=0",
        "interface=br-lan",
        "bind-interfaces",
        "user=nobody",
        "dhcp-range=192.168.7.0,proxy,255.255.255.0",
        f"tftp-root={tmp_path / 'tftp'}",
        "enable-tftp",
        f"dhcp-leasefile={tmp_path / 'leases'}",
        "log-facility=-",
    ):
        assert wanted in lines
    assert not [line for line in lines if line.startswith("dhcp-range") and "proxy" not in line]


def test_firmware_gets_ipxe_and_ipxe_gets_the_script(tmp_path: Path) -> None:
    services = [
        line for line in pxe.dnsmasq_config(_config(tmp_path)).splitlines()
        if line.startswith("pxe-service=")
    ]  # fmt: skip
    assert 'pxe-service=tag:!ipxe,x86PC,"distrokit (BIOS)",undionly.kpxe' in services
    assert 'pxe-service=tag:!ipxe,X86-64_EFI,"distrokit (UEFI)",ipxe.efi' in services
    url = "http://192.168.7.2:8080/boot.ipxe"
    assert f'pxe-service=tag:ipxe,x86PC,"distrokit",{url}' in services
    assert f'pxe-service=tag:ipxe,X86-64_EFI,"distrokit",{url}' in services
    assert len(services) == 6


def test_url_that_would_break_the_config(tmp_path: Path) -> None:
    with pytest.raises(UsageError, match="cannot go into dnsmasq"):
        pxe.dnsmasq_config(_config(tmp_path, 'http://h/a",b'))


def test_missing_ipxe_binaries_name_the_package(tmp_path: Path) -> None:
    with pytest.raises(DistrokitError, match=r"undionly\.kpxe not found") as err:
        pxe.boot_files(tmp_path)
    assert err.value.hint == "install it with: apt-get install ipxe"


def test_interface_without_address(tmp_path: Path) -> None:
    with pytest.raises(UsageError, match="interface no-such-if0 has no IPv4 address"):
        pxe.interface_address("no-such-if0")
    with pytest.raises(UsageError, match="invalid interface name"):
        pxe.interface_address("a/b")


def test_loopback_address_and_prefix() -> None:
    assert pxe.interface_address("lo") == ipaddress.IPv4Interface("127.0.0.1/8")
