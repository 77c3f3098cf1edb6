"""The twins of LinuxKit's examples validate and wire the packages as LinuxKit's do."""

from __future__ import annotations

from pathlib import Path

import pytest

from distrokit.config.load import load_config
from distrokit.config.model import Config

EXAMPLES = Path(__file__).resolve().parents[3] / "examples"
TWINS = ("getty", "logging", "node_exporter", "static-ip", "swap", "dm-crypt")


def _load(name: str) -> Config:
    # @pkg: templates name a package directory; its tag needs git, so stand in with the name.
    return load_config(
        [str(EXAMPLES / f"{name}.yml")], resolve_pkg=lambda d: f"distrokit/{d.name}:test"
    )


def _by_name(images: tuple[object, ...]) -> dict[str, object]:
    return {str(getattr(i, "name", "")): i for i in images}


@pytest.mark.parametrize("name", TWINS)
def test_twin_validates_and_uses_this_repositorys_packages(name: str) -> None:
    config = _load(name)
    assert config.kernel is not None
    images = [*config.onboot, *config.services]
    assert all(str(getattr(i, "image", "")).startswith("distrokit/") for i in images)


def test_static_ip_sets_the_address_with_ip_batch_mode_and_no_dhcp() -> None:
    config = _load("static-ip")
    onboot = _by_name(config.onboot)
    assert set(onboot) == {"ip"}
    assert onboot["ip"].command == ("ip", "-b", "/etc/ip/eth0.conf")
    files = {f.path: f.contents for f in config.files}
    assert "address add 10.0.2.15/24 dev eth0" in str(files["etc/ip/eth0.conf"])
    assert "dhcpcd" not in _by_name(config.services)


def test_swap_waits_for_the_data_disk() -> None:
    onboot = list(_by_name(_load("swap").onboot))
    assert onboot.index("format") < onboot.index("mount") < onboot.index("swap")
    command = _by_name(_load("swap").onboot)["swap"].command
    assert command[:3] == ("/swap.sh", "--path", "/var/external/swap")
    assert "part:/var/external" in command


def test_dm_crypt_opens_before_mount() -> None:
    onboot = _by_name(_load("dm-crypt").onboot)
    assert list(onboot) == ["metadata", "dm-crypt", "mount"]
    assert onboot["mount"].command[1] == "/dev/mapper/dm-crypt"
