"""The iPXE script of a kernel+initrd build and how builds are found in a directory."""

from __future__ import annotations

from pathlib import Path

import pytest

from distrokit.errors import UsageError
from distrokit.netboot import ipxe


def _build(directory: Path, name: str, cmdline: str | None = "console=ttyS0 quiet") -> Path:
    (directory / f"{name}-kernel").write_bytes(b"K" * 10)
    (directory / f"{name}-initrd.img").write_bytes(b"I" * 20)
    if cmdline is not None:
        (directory / f"{name}-cmdline").write_text(cmdline + "\n")
    return directory / name


def test_script_as_equinixmetal_push_writes_it(tmp_path: Path) -> None:
    system = ipxe.load_system(_build(tmp_path, "hook"))
    text = ipxe.script(system, "http://10.0.0.5:8080/", ipxe.EQUINIXMETAL_PARAMS)
    assert text == (
        "#!ipxe\n\n"
        "dhcp\n"
        "set base-url http://10.0.0.5:8080\n"
        "set kernel-params ip=dhcp nomodeset ro serial console=ttyS1,115200 "
        "console=ttyS0 quiet initrd=hook-initrd.img\n"
        "kernel ${base-url}/hook-kernel ${kernel-params}\n"
        "initrd ${base-url}/hook-initrd.img\n"
        "boot\n"
    )


def test_script_without_cmdline_file_names_only_the_initrd(tmp_path: Path) -> None:
    system = ipxe.load_system(_build(tmp_path, "bare", cmdline=None))
    assert system.cmdline == ""
    assert "set kernel-params initrd=bare-initrd.img\n" in ipxe.script(system, "http://h/x")
    assert "set base-url http://h/x\n" in ipxe.script(system, "http://h/x")


def test_write_script_is_atomic_and_readable(tmp_path: Path) -> None:
    system = ipxe.load_system(_build(tmp_path, "demo"))
    out = ipxe.write_script(system, "http://h", tmp_path / "www")
    assert out == tmp_path / "www" / "demo.ipxe"
    assert out.read_text() == ipxe.script(system, "http://h")
    assert out.stat().st_mode & 0o777 == 0o644
    assert [p.name for p in out.parent.iterdir()] == ["demo.ipxe"]


def test_find_systems_needs_kernel_and_initrd(tmp_path: Path) -> None:
    _build(tmp_path, "b")
    _build(tmp_path, "a")
    (tmp_path / "lonely-kernel").write_bytes(b"K")  # no initrd: not a netboot build
    (tmp_path / "a.iso").write_bytes(b"")
    assert [s.name for s in ipxe.find_systems(tmp_path)] == ["a", "b"]
    assert ipxe.find_systems(tmp_path)[0].script_name == "a.ipxe"


@pytest.mark.parametrize(
    ("name", "message"),
    [
        ("missing", "missing-kernel not found"),
        ("has space", "cannot be used in a URL"),
    ],
)
def test_load_system_errors(tmp_path: Path, name: str, message: str) -> None:
    with pytest.raises(UsageError, match=message):
        ipxe.load_system(tmp_path / name)


def test_initrd_missing_is_named(tmp_path: Path) -> None:
    (tmp_path / "k-kernel").write_bytes(b"K")
    with pytest.raises(UsageError, match=r"k-initrd\.img not found") as err:
        ipxe.load_system(tmp_path / "k")
    assert err.value.hint is not None and "kernel+initrd" in err.value.hint


def test_base_url_that_would_break_the_script(tmp_path: Path) -> None:
    system = ipxe.load_system(_build(tmp_path, "x"))
    for bad in ("http://h/a b", "http://h/${x}"):
        with pytest.raises(UsageError, match="cannot go into an iPXE script"):
            ipxe.script(system, bad)
