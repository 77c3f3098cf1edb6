"""Kernel compiles (distrokit.packages.kernelbuild): reading configurations, checking that a
fragment's options were taken, the fixed build stamps, and what is refused before any work."""

from __future__ import annotations

from pathlib import Path

import pytest

from distrokit.errors import PackageError
from distrokit.host import Host
from distrokit.packages.kernelbuild import build_env, build_kernel, not_taken, parse_config

PKG = Path(__file__).resolve().parents[3] / "pkg" / "kernel-vm"


def test_parse_config_reads_set_unset_and_skips_comments() -> None:
    text = '# a comment\nCONFIG_A=y\n# CONFIG_B is not set\nCONFIG_C="x y"\nCONFIG_D=64\n\n'
    assert parse_config(text) == {
        "CONFIG_A": "y",
        "CONFIG_B": "n",
        "CONFIG_C": '"x y"',
        "CONFIG_D": "64",
    }


def test_not_taken_names_options_that_came_out_otherwise() -> None:
    wanted = {"CONFIG_A": "y", "CONFIG_B": "n", "CONFIG_C": "n", "CONFIG_D": "64", "CONFIG_E": "y"}
    got = {"CONFIG_A": "y", "CONFIG_B": "n", "CONFIG_D": "32", "CONFIG_X": "y"}
    # C is absent (so off, as asked); D has another value; E was dropped
    assert not_taken(wanted, got) == ["CONFIG_D=64", "CONFIG_E=y"]


def test_build_stamps_are_fixed_by_the_epoch() -> None:
    env = build_env(0)
    assert env["KBUILD_BUILD_TIMESTAMP"] == "1970-01-01 00:00:00 UTC"
    assert env["KBUILD_BUILD_USER"] == env["KBUILD_BUILD_HOST"] == "distrokit"
    assert env["KBUILD_BUILD_VERSION"] == "1" and env["SOURCE_DATE_EPOCH"] == "0"
    assert build_env(86400)["KBUILD_BUILD_TIMESTAMP"] == "1970-01-02 00:00:00 UTC"


def test_the_shipped_fragment_builds_everything_in() -> None:
    options = parse_config((PKG / "vm.config").read_text())
    assert options["CONFIG_MODULES"] == "n"
    for needed in ("CONFIG_PVH", "CONFIG_VIRTIO_MMIO", "CONFIG_VIRTIO_BLK", "CONFIG_EXT4_FS",
                   "CONFIG_OVERLAY_FS", "CONFIG_VIRTIO_NET", "CONFIG_VIRTIO_CONSOLE"):  # fmt: skip
        assert options[needed] == "y", needed


def test_a_fragment_with_modules_is_refused_before_any_work(tmp_path: Path) -> None:
    fragment = tmp_path / "m.config"
    fragment.write_text("CONFIG_MODULES=y\nCONFIG_EXT4_FS=m\n")
    with pytest.raises(PackageError, match="CONFIG_MODULES is on") as err:
        build_kernel(
            Host(), tarball=tmp_path / "none.tar.xz", fragment=fragment, work=tmp_path / "w",
            epoch=0, say=lambda _m: None,
        )  # fmt: skip
    assert err.value.hint and "CONFIG_MODULES=n" in err.value.hint
    assert not (tmp_path / "w").exists()


def test_a_missing_fragment_is_named(tmp_path: Path) -> None:
    with pytest.raises(PackageError, match=r"nope\.config does not exist"):
        build_kernel(
            Host(), tarball=tmp_path / "x.tar.xz", fragment=tmp_path / "nope.config",
            work=tmp_path / "w", epoch=0, say=lambda _m: None,
        )  # fmt: skip
