"""`run qemu --netboot`: the QEMU command line of a network boot and the flag's checks."""

from __future__ import annotations

from pathlib import Path

import pytest

from distrokit.cli import build_parser
from distrokit.cli.run import config_from_args
from distrokit.errors import UsageError
from distrokit.runners.config import (
    BootMode,
    BootSource,
    NetMode,
    Networking,
    RunConfig,
    parse_netboot_url,
)
from distrokit.runners.qemu import HostFacts, qemu_argv

NET = BootSource(mode=BootMode.NETWORK, prefix="netboot")
FACTS = HostFacts(qemu="qemu-system-x86_64", accel="tcg", mac="02:00:00:00:00:07")
USER = Networking()


def _after(argv: list[str], flag: str) -> list[str]:
    return [argv[i + 1] for i, a in enumerate(argv) if a == flag]


def _run(**kw: object) -> RunConfig:
    return RunConfig(source=NET, state_dir=Path("/st"), **kw)  # type: ignore[arg-type]


@pytest.mark.parametrize("uefi", [False, True])
def test_user_networking_boots_the_nic_through_qemu_tftp(uefi: bool) -> None:
    argv = qemu_argv(_run(netboot_url="http://10.0.2.2:8080/boot.ipxe", uefi=uefi), FACTS)
    assert _after(argv, "-M") == ["q35"]
    assert _after(argv, "-netdev") == ["user,id=net0,tftp=/st/tftp,bootfile=netboot.ipxe"]
    assert "virtio-net-pci,netdev=net0,mac=02:00:00:00:00:07,bootindex=0" in _after(argv, "-device")
    assert "-kernel" not in argv and "-initrd" not in argv
    assert any("if=pflash" in d for d in _after(argv, "-drive")) == uefi


def test_tap_networking_leaves_pxe_to_the_lan() -> None:
    run = _run(networking=Networking(mode=NetMode.TAP, name="tap0"))
    argv = qemu_argv(run, FACTS)
    assert _after(argv, "-netdev") == ["tap,id=net0,ifname=tap0,script=no,downscript=no"]
    assert "virtio-net-pci,netdev=net0,mac=02:00:00:00:00:07,bootindex=0" in _after(argv, "-device")


@pytest.mark.parametrize(
    ("run", "message"),
    [
        (_run(), "needs the script's URL"),
        (_run(networking=Networking(mode=NetMode.NONE)), "needs a network"),
        (_run(machine="microvm", netboot_url="http://h/x"), "microvm cannot boot from the net"),
    ],
)
def test_impossible_network_boots(run: RunConfig, message: str) -> None:
    with pytest.raises(UsageError, match=message):
        qemu_argv(run, FACTS)


@pytest.mark.parametrize(
    ("text", "networking", "expected"),
    [
        ("http://127.0.0.1:8080/boot.ipxe", USER, "http://10.0.2.2:8080/boot.ipxe"),
        ("http://localhost/x.ipxe", USER, "http://10.0.2.2/x.ipxe"),
        ("http://192.168.1.5:81/a/b.ipxe", USER, "http://192.168.1.5:81/a/b.ipxe"),
        ("", Networking(mode=NetMode.TAP, name="t"), None),
    ],
)
def test_parse_netboot_url(text: str, networking: Networking, expected: str | None) -> None:
    assert parse_netboot_url(text, networking) == expected


@pytest.mark.parametrize(
    ("text", "networking", "message"),
    [
        ("", USER, "needs the script's URL"),
        ("ftp://h/x", USER, "invalid --netboot URL"),
        ("boot.ipxe", USER, "invalid --netboot URL"),
        ("http://h/x", Networking(mode=NetMode.TAP, name="t"), "only works with user"),
        ("http://h/x", Networking(mode=NetMode.NONE), "needs a network"),
    ],
)
def test_bad_netboot_url(text: str, networking: Networking, message: str) -> None:
    with pytest.raises(UsageError, match=message):
        parse_netboot_url(text, networking)


def _config(*argv: str) -> RunConfig:
    args = build_parser("run").parse_args(["run", "qemu", *argv])
    return config_from_args(args)


def test_cli_netboot_needs_no_path() -> None:
    run = _config("--netboot", "http://127.0.0.1:9000/boot.ipxe", "--uefi")
    assert run.source.mode is BootMode.NETWORK
    assert run.netboot_url == "http://10.0.2.2:9000/boot.ipxe"
    assert run.state_dir == Path("netboot-state") and run.uefi
    tap = _config("--netboot", "--networking", "tap,tap9")
    assert tap.netboot_url is None and tap.networking.name == "tap9"


def test_cli_netboot_with_a_path_or_nothing_at_all(tmp_path: Path) -> None:
    with pytest.raises(UsageError, match="give no PATH"):
        _config("--netboot", "http://h/x", str(tmp_path / "x"))
    with pytest.raises(UsageError, match="give a PATH or --netboot"):
        _config()
