"""Parsing LinuxKit's run flags (--disk, --publish, --networking, --console) and the CLI."""

from __future__ import annotations

from pathlib import Path

import pytest

from distrokit.cli import _long_options, build_parser, main, normalise_single_dash
from distrokit.cli.run import config_from_args
from distrokit.errors import UsageError
from distrokit.runners import RUNNERS, default_runner, get_runner
from distrokit.runners.config import (
    BootMode,
    Console,
    DiskSpec,
    NetMode,
    Networking,
    Publish,
    parse_console,
    parse_disk,
    parse_networking,
    parse_publish,
    parse_size_mb,
)


@pytest.mark.parametrize(
    ("text", "spec"),
    [
        ("disk.img", DiskSpec(path=Path("disk.img"))),
        ("file=/x/d.qcow2", DiskSpec(path=Path("/x/d.qcow2"))),
        ("size=4", DiskSpec(size_mb=4096)),
        ("size=4G", DiskSpec(size_mb=4096)),
        ("size=300M", DiskSpec(size_mb=300)),
        ("d.img,size=1G,format=raw", DiskSpec(path=Path("d.img"), size_mb=1024, format="raw")),
        ("file=d.vhd,format=vhd", DiskSpec(path=Path("d.vhd"), format="vpc")),
    ],
)
def test_parse_disk(text: str, spec: DiskSpec) -> None:
    assert parse_disk(text) == spec


@pytest.mark.parametrize(
    ("text", "error"),
    [
        ("d.img,size=1T", "invalid disk size '1T'"),
        ("d.img,size=", "invalid disk size ''"),
        ("d.img,format=ext4", "unknown format 'ext4'"),
        ("d.img,colour=red", "unknown key 'colour'"),
    ],
)
def test_parse_disk_errors(text: str, error: str) -> None:
    with pytest.raises(UsageError, match=error):
        parse_disk(text)


def test_parse_size_mb() -> None:
    assert parse_size_mb("2") == 2048
    assert parse_size_mb("16m") == 16


@pytest.mark.parametrize(
    ("text", "publish"),
    [
        ("8080:80", Publish(host_port=8080, guest_port=80)),
        ("8080:80/tcp", Publish(host_port=8080, guest_port=80)),
        ("5353:53/udp", Publish(host_port=5353, guest_port=53, protocol="udp")),
    ],
)
def test_parse_publish(text: str, publish: Publish) -> None:
    assert parse_publish(text) == publish


@pytest.mark.parametrize("text", ["8080", "a:b", "1:2/sctp", "0:80", "80:70000"])
def test_parse_publish_errors(text: str) -> None:
    with pytest.raises(UsageError, match="--publish"):
        parse_publish(text)


@pytest.mark.parametrize(
    ("text", "net"),
    [
        ("user", Networking()),
        ("none", Networking(mode=NetMode.NONE)),
        ("tap,tap0", Networking(mode=NetMode.TAP, name="tap0")),
        ("bridge,virbr0", Networking(mode=NetMode.BRIDGE, name="virbr0")),
    ],
)
def test_parse_networking(text: str, net: Networking) -> None:
    assert parse_networking(text) == net


@pytest.mark.parametrize(
    ("text", "error"),
    [("tap", "needs a name"), ("user,x", "takes no name"), ("vpnkit", "invalid --networking")],
)
def test_parse_networking_errors(text: str, error: str) -> None:
    with pytest.raises(UsageError, match=error):
        parse_networking(text)


def test_parse_console() -> None:
    assert parse_console("stdio") == Console()
    assert parse_console("none") == Console(kind="none")
    assert parse_console("file:/tmp/x.log") == Console(kind="file", path=Path("/tmp/x.log"))
    with pytest.raises(UsageError, match="invalid --console 'file:'"):
        parse_console("file:")


def test_registry() -> None:
    assert default_runner("Linux") is RUNNERS["qemu"]
    assert get_runner("qemu").load().__name__ == "distrokit.runners.qemu"
    with pytest.raises(UsageError, match="unknown runner 'vbox'"):
        get_runner("vbox")
    with pytest.raises(UsageError, match="no default runner"):
        default_runner("Plan9")


def _system(tmp_path: Path) -> str:
    prefix = tmp_path / "demo"
    for suffix, text in (("-kernel", "k"), ("-initrd.img", "i"), ("-cmdline", "console=ttyS0\n")):
        Path(f"{prefix}{suffix}").write_text(text)
    return str(prefix)


def test_run_without_backend_is_qemu_and_single_dash_flags(tmp_path: Path) -> None:
    prefix = _system(tmp_path)
    parser = build_parser()
    argv = ["run", "-mem", "256", prefix, "-disk", "size=1", "--publish", "2222:22"]
    args = parser.parse_args(normalise_single_dash(argv, _long_options(parser)))
    assert args.backend == "qemu"
    run = config_from_args(args)
    assert run.mem_mb == 256
    assert run.source.mode is BootMode.KERNEL
    assert run.source.cmdline == "console=ttyS0"
    assert run.state_dir == Path(f"{prefix}-state")
    assert run.disks == (DiskSpec(size_mb=1024),)
    assert run.publish == (Publish(host_port=2222, guest_port=22),)


def test_run_qemu_with_backend_and_data(tmp_path: Path) -> None:
    prefix = _system(tmp_path)
    args = build_parser().parse_args(
        ["run", "qemu", "--data", "{}", "--state", str(tmp_path / "s"), "--kernel", prefix]
    )
    run = config_from_args(args)
    assert run.data == b"{}"
    assert run.state_dir == tmp_path / "s"


def test_run_missing_system_is_a_usage_error(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["run", "qemu", str(tmp_path / "nothing")]) == 2
    assert "nothing to boot at" in capsys.readouterr().err


def test_run_alone_prints_help(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["run"]) == 2
    assert "BACKEND" in capsys.readouterr().err
