"""Output naming, -o, stdout, defaults, the docker and tar-kernel-initrd formats,
reproducibility, SOURCE_DATE_EPOCH and atomicity, through the real CLI."""

from __future__ import annotations

import tarfile
from pathlib import Path

import pytest
from buildfix import F, Images, members, new_images, read_member

from distrokit.cli import main
from distrokit.formats import registry
from distrokit.tarstream import DEFAULT_MTIME

YAML = """kernel:
  image: example.org/kernel:1
  cmdline: console=ttyS0
init:
  - example.org/init:1
onboot:
  - name: one
    image: example.org/init:1
files:
  - path: etc/greeting
    contents: hi
"""


@pytest.fixture
def setup(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> tuple[Images, Path]:
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    monkeypatch.delenv("SOURCE_DATE_EPOCH", raising=False)
    monkeypatch.chdir(tmp_path)
    images = new_images(tmp_path)
    images.add("example.org/kernel:1", [F("kernel", data=b"KERNEL"), F("kernel.tar", data=b"")])
    images.add("example.org/init:1", [F("init", data=b"#!/bin/sh\n", mode=0o755)])
    yml = tmp_path / "mysys.yml"
    yml.write_text(YAML.replace("kernel:1\n", "kernel:1\n  tar: none\n", 1))
    return images, yml


def _build(images: Images, *args: str) -> int:
    return main(["build", "--cache", str(images.cache.root), *args])


def test_default_format_is_kernel_initrd_named_after_the_yaml(
    setup: tuple[Images, Path], tmp_path: Path
) -> None:
    images, yml = setup
    assert _build(images, str(yml)) == 0
    assert sorted(p.name for p in tmp_path.glob("mysys*")) == [
        "mysys-cmdline",
        "mysys-initrd.img",
        "mysys-kernel",
        "mysys.yml",
    ]


def test_name_dir_and_several_formats(setup: tuple[Images, Path], tmp_path: Path) -> None:
    images, yml = setup
    assert (
        _build(
            images,
            "-format",
            "kernel+initrd,tar-kernel-initrd",
            "-name",
            "x",
            "-dir",
            str(tmp_path / "o"),
            str(yml),
        )
        == 0
    )
    assert sorted(p.name for p in (tmp_path / "o").iterdir()) == [
        "x-cmdline",
        "x-initrd.img",
        "x-initrd.tar",
        "x-kernel",
    ]
    with tarfile.open(tmp_path / "o" / "x-initrd.tar") as tar:
        ms = tar.getmembers()
        assert [m.name for m in ms] == ["kernel", "initrd.img", "cmdline"]
        assert all(m.mode == 0o644 for m in ms)
        kernel = tar.extractfile("kernel")
        initrd = tar.extractfile("initrd.img")
        assert kernel is not None and initrd is not None
        assert kernel.read() == b"KERNEL"
        assert initrd.read() == (tmp_path / "o" / "x-initrd.img").read_bytes()


def test_output_file_defaults_to_tar_and_stdout(
    setup: tuple[Images, Path], tmp_path: Path, capfdbinary: pytest.CaptureFixture[bytes]
) -> None:
    images, yml = setup
    assert _build(images, "-o", str(tmp_path / "sys.tar"), str(yml)) == 0
    names = [m.name for m in members(tmp_path / "sys.tar")]
    assert names[:3] == ["boot", "boot/cmdline", "boot/kernel"]
    capfdbinary.readouterr()
    assert _build(images, "-format", "tar", "-o", "-", str(yml)) == 0
    assert capfdbinary.readouterr().out == (tmp_path / "sys.tar").read_bytes()


def test_docker_format_appends_a_dockerfile(setup: tuple[Images, Path], tmp_path: Path) -> None:
    images, yml = setup
    assert _build(images, "-format", "docker", str(yml)) == 0
    ms = members(tmp_path / "mysys.docker")
    # after the tree; the SBOM comes last, as LinuxKit writes them
    assert [m.name for m in ms[-2:]] == ["Dockerfile", "sbom.spdx.json"]
    assert read_member(tmp_path / "mysys.docker", "Dockerfile").startswith(b"FROM scratch\n")


def test_builds_are_byte_reproducible(setup: tuple[Images, Path], tmp_path: Path) -> None:
    images, yml = setup
    for d in ("a", "b"):
        assert _build(images, "-format", "kernel+initrd", "-dir", d, str(yml)) == 0
        assert _build(images, "-format", "tar", "-dir", d, str(yml)) == 0
    for name in ("mysys.tar", "mysys-initrd.img", "mysys-kernel", "mysys-cmdline"):
        assert (tmp_path / "a" / name).read_bytes() == (tmp_path / "b" / name).read_bytes()


def test_source_date_epoch_sets_generated_mtimes(
    setup: tuple[Images, Path], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    images, yml = setup
    assert _build(images, "-format", "tar", "-dir", "a", str(yml)) == 0
    monkeypatch.setenv("SOURCE_DATE_EPOCH", "1700000000")
    assert _build(images, "-format", "tar", "-dir", "b", str(yml)) == 0
    a = {m.name: m.mtime for m in members(tmp_path / "a" / "mysys.tar")}
    b = {m.name: m.mtime for m in members(tmp_path / "b" / "mysys.tar")}
    assert a["etc/greeting"] == DEFAULT_MTIME and b["etc/greeting"] == 1700000000
    assert b["boot/cmdline"] == 1700000000
    assert a["init"] == b["init"]  # image entries keep the image's mtime


def test_failed_build_leaves_nothing(setup: tuple[Images, Path], tmp_path: Path) -> None:
    images, yml = setup
    yml.write_text(yml.read_text() + "  - path: etc/x\n    source: does-not-exist\n")
    out = tmp_path / "out"
    out.mkdir()
    assert (
        _build(images, "-format", "kernel+initrd,tar-kernel-initrd", "-dir", str(out), str(yml))
        == 1
    )
    assert list(out.iterdir()) == []


def test_format_rules(setup: tuple[Images, Path], capsys: pytest.CaptureFixture[str]) -> None:
    images, yml = setup
    assert _build(images, "-format", "nope", str(yml)) == 2
    assert "unknown format type nope" in capsys.readouterr().err
    assert _build(images, "-format", "tar,kernel+initrd", str(yml)) == 2
    assert "must be the only format" in capsys.readouterr().err
    assert _build(images, "-format", "kernel+initrd", "-o", "x", str(yml)) == 2
    assert "cannot be streamed" in capsys.readouterr().err


def test_registry_describes_formats() -> None:
    table = registry.formats()
    for name in ("tar", "kernel+initrd", "tar-kernel-initrd", "docker"):
        assert name in table
    assert table["tar"].files("n") == ("n.tar",)
    assert table["docker"].streamable and not table["kernel+initrd"].streamable
    assert table["kernel+initrd"].files("n") == ("n-kernel", "n-initrd.img", "n-cmdline")
    help_lines = registry.help_text().splitlines()
    assert [line.split()[0] for line in help_lines] == sorted(table)


def test_unwritable_build_cache_only_costs_speed(
    setup: tuple[Images, Path], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    images, yml = setup
    blocker = tmp_path / "not-a-dir"
    blocker.write_text("a file where the cache directory should be")
    monkeypatch.setenv("XDG_CACHE_HOME", str(blocker))
    assert _build(images, "-format", "kernel+initrd", "-dir", "a", str(yml)) == 0
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "fresh"))
    assert _build(images, "-format", "kernel+initrd", "-dir", "b", str(yml)) == 0
    for name in ("mysys-initrd.img", "mysys-kernel"):
        assert (tmp_path / "a" / name).read_bytes() == (tmp_path / "b" / name).read_bytes()
