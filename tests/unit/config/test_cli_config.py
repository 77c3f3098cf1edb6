"""`distrokit validate` and `distrokit build` (flags, --dry-run) through `main([...])`."""

from __future__ import annotations

import argparse
import io
import shutil
from pathlib import Path

import pytest

from distrokit.cli import build_parser, main
from distrokit.cli.build import output_name, requested_formats
from distrokit.config.model import Config

DATA = Path(__file__).resolve().parents[2] / "data" / "config"


@pytest.fixture
def workdir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.chdir(tmp_path)
    shutil.copy(DATA / "seed000.yml", tmp_path / "minimal.yaml")
    shutil.copy(DATA / "seed003.yml", tmp_path / "linuxkit.yml")
    return tmp_path


def test_validate_ok(workdir: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["validate", "minimal.yaml"]) == 0
    out = capsys.readouterr()
    assert out.out == "minimal.yaml: ok (5 containers)\n"
    assert out.err == ""


def test_validate_prints_warnings(workdir: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["-q", "validate", "linuxkit.yml"]) == 0
    out = capsys.readouterr()
    assert out.out == ""
    assert out.err == (
        "warning: linuxkit.yml:53:1: trust: content trust is no longer supported; section ignored\n"
    )


def test_validate_reports_every_problem(workdir: Path, capsys: pytest.CaptureFixture[str]) -> None:
    Path("bad.yml").write_text(
        "services:\n  - name: a\n    image: nginx\n  - name: b\n    image: nginx\n"
        "    capabilites:\n      - CAP_CHOWN\n    net: 1\n"
    )
    assert main(["validate", "minimal.yaml", "bad.yml"]) == 2
    assert capsys.readouterr().err == (
        "bad.yml:6:5: services[1].capabilites: unknown field (did you mean 'capabilities'?)\n"
        "bad.yml:8:10: services[1].net: expected a string, got an integer (1) (quote it)\n"
        "2 problems found\n"
    )


def test_build_dry_run_with_single_dash_flags(
    workdir: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    argv = ["build", "-format", "iso-bios", "-name", "linuxkitdemo", "minimal.yaml", "--dry-run"]
    assert main(argv) == 0
    out = capsys.readouterr().out
    assert out.startswith("kernel:\n  image: docker.io/linuxkit/kernel:5.10.92\n")
    assert "    image: docker.io/library/nginx:1.13.8-alpine\n" in out


def test_build_dry_run_merges_files(workdir: Path, capsys: pytest.CaptureFixture[str]) -> None:
    Path("extra.yml").write_text(
        "kernel:\n  cmdline: console=ttyS0\nservices:\n  - name: extra\n    image: busybox\n"
    )
    assert main(["build", "--dry-run", "minimal.yaml", "extra.yml"]) == 0
    out = capsys.readouterr().out
    assert "  cmdline: console=ttyS0\n" in out
    assert out.rstrip().endswith("- name: extra\n    image: docker.io/library/busybox")


def test_build_rejects_an_unknown_format_before_any_work(
    workdir: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["build", "-f", "tar,kernel+initrd", "--format", "no-such", "minimal.yaml"]) == 2
    assert "unknown format type no-such" in capsys.readouterr().err
    assert not list(workdir.glob("minimal*.tar"))


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["--input-tar", "old.tar", "--pull"], "cannot use --input-tar and --pull together"),
        (["--input-tar", "x.tar", "--o", "x.tar"], "input-tar and output file cannot be the same"),
        (["-o", "out.tar", "--name", "x"], "cannot be specified with --name or --dir"),
        (
            ["--output", "-", "-f", "tar,iso-bios"],
            "can only be specified when generating a single output format",
        ),
        (["--size", "big"], "invalid --size big"),
        (["--compress", "xz"], "invalid choice: 'xz'"),
    ],
)
def test_build_flag_errors(
    workdir: Path, argv: list[str], message: str, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["build", *argv, "--dry-run", "minimal.yaml"]) == 2
    assert message in capsys.readouterr().err


def test_build_accepts_every_linuxkit_flag(
    workdir: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    argv = [
        "build", "-f", "tar", "-dir", "out", "-size", "2G", "-pull", "-docker",
        "-decompress-kernel", "-arch", "amd64", "-cache", "cache", "-no-sbom",
        "-sbom-output", "s.json", "-sbom-current-time", "-compress", "zstd",
        "-mirror", "docker.io=http://127.0.0.1:5000", "-cert-file", "ca.pem",
        "--dry-run", "minimal.yaml",
    ]  # fmt: skip
    assert main(argv) == 0
    assert capsys.readouterr().out.startswith("kernel:")


def _args(*argv: str) -> argparse.Namespace:
    parser = build_parser()
    return parser.parse_args(["build", *argv])


@pytest.mark.parametrize(
    ("argv", "defaults", "expected"),
    [
        ((), (), ("kernel+initrd",)),
        (("--o", "x.tar"), (), ("tar",)),
        ((), ("iso-bios", "iso-efi"), ("iso-bios", "iso-efi")),
        (
            ("-f", "tar,iso-bios", "-f", "tar", "--format", "raw-efi"),
            ("x",),
            ("tar", "iso-bios", "raw-efi"),
        ),
    ],
)
def test_requested_formats(
    argv: tuple[str, ...], defaults: tuple[str, ...], expected: tuple[str, ...]
) -> None:
    config = Config(default_formats=defaults)
    assert requested_formats(_args(*argv, "m.yml"), config) == expected


@pytest.mark.parametrize(
    ("argv", "expected"),
    [
        (("conf/linuxkit.yml",), "linuxkit"),
        (("sys.yaml", "extra.yml"), "sys"),
        (("-",), "moby"),
        (("--name", "demo", "a.yml"), "demo"),
    ],
)
def test_output_name(argv: tuple[str, ...], expected: str) -> None:
    assert output_name(_args(*argv)) == expected


def test_validate_stdin(
    workdir: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setattr("sys.stdin", io.StringIO("onboot:\n  - name: a\n    image: alpine\n"))
    assert main(["validate", "-"]) == 0
    assert capsys.readouterr().out == "-: ok (1 container)\n"


def test_stdin_reads_host_files_only_when_allowed(
    workdir: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    text = "files:\n  - path: etc/stolen\n    source: /etc/hostname\n"
    monkeypatch.setattr("sys.stdin", io.StringIO(text))
    assert main(["validate", "-"]) == 2
    assert "may not read host files (/etc/hostname)" in capsys.readouterr().err
    monkeypatch.setattr("sys.stdin", io.StringIO(text))
    assert main(["build", "--dry-run", "-"]) == 2
    monkeypatch.setattr("sys.stdin", io.StringIO(text))
    assert main(["validate", "--allow-host-files", "-"]) == 0
    monkeypatch.setattr("sys.stdin", io.StringIO(text))
    assert main(["build", "--dry-run", "--allow-host-files", "-"]) == 0
    assert "source: /etc/hostname" in capsys.readouterr().out


def test_pkg_templates_resolved_through_the_package_layer(
    workdir: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    package = workdir / "pkg" / "hello"
    package.mkdir(parents=True)
    (package / "build.yml").write_text("org: example\nimage: hello\n")
    Path("m.yml").write_text("onboot:\n  - name: hello\n    image: '@pkg:./pkg/hello'\n")
    assert main(["build", "--dry-run", "m.yml"]) == 0
    # outside a git work tree a package has no hash, so its tag is `latest`
    assert "    image: docker.io/example/hello:latest\n" in capsys.readouterr().out
