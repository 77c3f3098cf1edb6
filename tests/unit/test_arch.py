"""Architecture names: both spellings are accepted by build and run, each layer gets its own."""

from __future__ import annotations

from pathlib import Path

import pytest

from distrokit.arch import kernel_arch, oci_arch
from distrokit.cli import main
from distrokit.errors import UsageError


@pytest.mark.parametrize(
    ("typed", "oci", "kernel"),
    [
        ("amd64", "amd64", "x86_64"),
        ("x86_64", "amd64", "x86_64"),
        ("arm64", "arm64", "aarch64"),
        ("aarch64", "arm64", "aarch64"),
        ("riscv64", "riscv64", "riscv64"),
    ],
)
def test_both_spellings(typed: str, oci: str, kernel: str) -> None:
    assert oci_arch(typed) == oci
    assert kernel_arch(typed) == kernel


def test_unknown_architecture_names_the_choices() -> None:
    with pytest.raises(UsageError) as err:
        oci_arch("sparc")
    assert "unknown architecture 'sparc'" in err.value.message
    assert err.value.hint is not None and "aarch64" in err.value.hint


def test_run_accepts_the_oci_spelling(capsys: pytest.CaptureFixture[str]) -> None:
    # amd64 is accepted (the error is about the missing system, not the architecture)
    assert main(["run", "qemu", "--arch", "amd64", "/nonexistent/system"]) != 0
    err = capsys.readouterr().err
    assert "nothing to boot at /nonexistent/system" in err and "arch" not in err
    assert main(["run", "qemu", "--arch", "sparc", "/nonexistent/system"]) == 2
    assert "unknown architecture 'sparc'" in capsys.readouterr().err


def test_build_accepts_the_kernel_spelling(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    yml = tmp_path / "s.yml"
    yml.write_text("kernel:\n  image: example.org/k:1\n  cmdline: console=ttyS0\n")
    assert main(["build", "--arch", "x86_64", "--dry-run", str(yml)]) == 0
    assert "example.org/k:1" in capsys.readouterr().out
    assert main(["build", "--arch", "mips", "--dry-run", str(yml)]) == 2
    assert "unknown architecture 'mips'" in capsys.readouterr().err
