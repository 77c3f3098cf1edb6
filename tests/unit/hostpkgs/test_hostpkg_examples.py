"""examples/sshd.yml, docker.yml and persistent.yml validate, and wire the host packages as
docs/hosts.md describes (templates resolved to each package directory's name)."""

from __future__ import annotations

from pathlib import Path

import pytest

from distrokit.config.load import load_config
from distrokit.config.model import Config

EXAMPLES = Path(__file__).resolve().parents[3] / "examples"


def _load(name: str) -> Config:
    # @pkg: templates name a package directory; its tag needs git, so stand in with the name.
    return load_config([str(EXAMPLES / name)], resolve_pkg=lambda d: f"distrokit/{d.name}:test")


def _names(images: tuple[object, ...]) -> list[str]:
    return [str(getattr(i, "name", "")) for i in images]


@pytest.mark.parametrize("name", ["sshd.yml", "docker.yml", "persistent.yml"])
def test_example_validates(name: str) -> None:
    config = _load(name)
    assert config.kernel is not None


def test_docker_example_formats_mounts_and_runs_dockerd() -> None:
    config = _load("docker.yml")
    onboot = _names(config.onboot)
    assert onboot.index("format") < onboot.index("mount")
    mount = config.onboot[onboot.index("mount")]
    assert mount.command == ("/usr/bin/mountie", "/var/lib/docker")
    assert {"docker", "sshd", "open-vm-tools", "getty", "dhcpcd"} <= set(_names(config.services))
    paths = {f.path for f in config.files}
    assert {"etc/docker/daemon.json", "root/.ssh/authorized_keys"} <= paths


def test_sshd_example_takes_the_key_from_files() -> None:
    config = _load("sshd.yml")
    keys = [f for f in config.files if f.path == "root/.ssh/authorized_keys"]
    assert keys and keys[0].mode == "0600"
