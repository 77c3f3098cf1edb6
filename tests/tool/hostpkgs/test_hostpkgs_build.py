"""`distrokit pkg build` of the host packages (format, mount, metadata, sshd, docker,
open-vm-tools) from Debian packages: each builds, carries its LinuxKit config label and the
programs its scripts call, with their libraries."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from hosttools import image_members, require_tools

from distrokit.cli import main
from distrokit.oci.cache import Cache
from distrokit.oci.image import host_platform

PKG = Path(__file__).resolve().parents[3] / "pkg"
HASH = "hosts-tool-test"
CASES = {
    "format": ("usr/bin/format", "sbin/sfdisk", "sbin/blkid", "sbin/mke2fs", "sbin/wipefs"),
    "mount": ("usr/bin/mountie", "sbin/sfdisk", "sbin/blkid", "bin/mount"),
    "metadata": ("usr/bin/metadata", "usr/bin/jq", "sbin/blkid", "bin/base64"),
    "sshd": ("usr/sbin/sshd", "usr/bin/ssh-keygen", "usr/bin/start-sshd", "etc/ssh/sshd_config"),
    "docker": ("usr/sbin/dockerd", "usr/bin/docker", "usr/bin/containerd", "usr/sbin/runc"),
    "open-vm-tools": (
        "usr/bin/vmtoolsd",
        "usr/bin/vmware-checkvm",
        "usr/lib/x86_64-linux-gnu/open-vm-tools/plugins/vmsvc/libguestInfo.so",
    ),
}


@pytest.fixture(scope="module")
def cache(tmp_path_factory: pytest.TempPathFactory) -> Cache:
    """All six packages built into a fresh cache with one `pkg build` run."""
    require_tools("apt-get", "apt-cache", "dpkg-deb")
    directory = tmp_path_factory.mktemp("images")
    dirs = [str(PKG / name) for name in CASES]
    assert main(["pkg", "build", "--hash", HASH, "--cache", str(directory), *dirs]) == 0
    return Cache(directory)


@pytest.mark.parametrize("name", sorted(CASES))
def test_package_has_its_programs_and_libraries(cache: Cache, name: str) -> None:
    members = image_members(cache, f"distrokit/{name}:{HASH}")
    missing = [p for p in CASES[name] if p not in members]
    assert not missing, f"{name}: missing {missing}"
    assert "lib64/ld-linux-x86-64.so.2" in members
    assert members["bin/sh"].linkname == "busybox"
    config = json.loads(
        dict(cache.image(f"distrokit/{name}:{HASH}", host_platform()).config.labels)[
            "org.mobyproject.config"
        ]
    )
    assert config["command"][0].startswith("/usr/bin/")


def test_mount_shares_var_with_the_host(cache: Cache) -> None:
    image = cache.image(f"distrokit/mount:{HASH}", host_platform())
    config = json.loads(dict(image.config.labels)["org.mobyproject.config"])
    assert "/var:/var:rshared,rbind" in config["binds"]
    assert config["rootfsPropagation"] == "shared"
