"""build.yml parsing: LinuxKit's fields, the debian: extension, strict errors with file:line."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from distrokit.errors import ConfigError
from distrokit.packages.buildyml import (
    DEFAULT_ARCHES,
    ArchiveSpec,
    CopySpec,
    KernelSpec,
    PathSpec,
    load_build_yml,
    parse_build_yml,
)

# The packages examples/minimal.yml and the boot test use.
MINIMAL_PACKAGES = (
    "ca-certificates",
    "containerd",
    "dhcpcd",
    "getty",
    "init",
    "kernel",
    "nginx",
    "poweroff",
    "rngd",
    "runc",
    "sysctl",
)


def test_defaults_match_linuxkit() -> None:
    spec = parse_build_yml("image: init\n", "build.yml")
    assert spec.image == "init"
    assert spec.org == "linuxkit"
    assert spec.tag == "{{.Hash}}"
    assert spec.dockerfile == "Dockerfile"
    assert spec.arches == DEFAULT_ARCHES
    assert spec.config_json is None
    assert spec.debian is None


def test_full_file() -> None:
    text = """\
image: nginx
org: distrokit
arches: [amd64]
network: true
disable-cache: true
extra-sources: ["../common:/common"]
buildArgs: [A=1]
config:
  capabilities: [CAP_NET_BIND_SERVICE]
  binds: [/etc/resolv.conf:/etc/resolv.conf]
debian:
  packages: [nginx-light, libc6]
  metapackages: [linux-image-amd64]
  binaries: [/usr/sbin/nginx]
  paths: [/etc/nginx, {src: "/boot/vmlinuz-*", dst: /kernel}]
  archives:
    - {src: /lib/modules, dst: /kernel.tar, include: ["*/virtio/*"]}
    - {src: /lib/modules, dst: /modules.tar, depmod: true}
  copy: [{src: nginx.conf, dst: /etc/nginx/nginx.conf, mode: "0600"}]
  symlinks: {/bin/sh: busybox}
  mkdir: [/var/log/nginx]
"""
    spec = parse_build_yml(text, "build.yml")
    assert spec.org == "distrokit"
    assert spec.arches == ("amd64",)
    assert spec.network is True and spec.disable_cache is True
    assert spec.extra_sources == ("../common:/common",)
    assert json.loads(spec.config_json or "") == {
        "capabilities": ["CAP_NET_BIND_SERVICE"],
        "binds": ["/etc/resolv.conf:/etc/resolv.conf"],
    }
    deb = spec.debian
    assert deb is not None
    assert deb.packages == ("nginx-light", "libc6")
    assert deb.metapackages == ("linux-image-amd64",)
    assert deb.binaries == ("/usr/sbin/nginx",)
    assert deb.paths == (PathSpec(src="/etc/nginx"), PathSpec(src="/boot/vmlinuz-*", dst="/kernel"))
    assert deb.archives == (
        ArchiveSpec(src="/lib/modules", dst="/kernel.tar", include=("*/virtio/*",)),
        ArchiveSpec(src="/lib/modules", dst="/modules.tar", depmod=True),
    )
    assert deb.copy == (CopySpec(src="nginx.conf", dst="/etc/nginx/nginx.conf", mode=0o600),)
    assert deb.symlinks == (("/bin/sh", "busybox"),)
    assert deb.mkdir == ("/var/log/nginx",)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("org: x\n", "build.yml:1:1: image: is required"),
        ("image: a\nimgae: b\n", "build.yml:2:1: imgae: unknown key (did you mean 'image'?)"),
        ("image: a\nnetwork: yes please\n", "build.yml:2:10: network: must be true or false"),
        ("image: 3\n", "build.yml:1:8: image: must be a string"),
        ("image: a\nimage: b\n", "build.yml:2:1: image: duplicate key"),
        ("image: a\nconfig: {name: x}\n", "config.name: cannot be set in the image label"),
        ("image: a\ntag: '{{.Arch}}'\n", "tag: only the {{.Hash}} placeholder is supported"),
        ("image: a\ndockerfile: ../Dockerfile\n", "must stay inside the package directory"),
        (
            "image: a\ndebian:\n  binaries: [usr/bin/x]\n",
            "build.yml:3:14: debian.binaries[0]: 'usr/bin/x' must be an absolute path",
        ),
        (
            "image: a\ndebian:\n  pakages: [x]\n",
            "build.yml:3:3: debian.pakages: unknown key (did you mean 'packages'?)",
        ),
        (
            "image: a\ndebian:\n  copy: [{src: ../x, dst: /x}]\n",
            "debian.copy[0].src: must be relative, inside the package dir",
        ),
        ("image: a\ndebian:\n  copy: [{src: x, dst: /x, mode: rwx}]\n", "is not an octal mode"),
        ("image: a\ndebian:\n  paths: [{src: /a}]\n", "debian.paths[0]: needs both src and dst"),
        (
            "image: a\ndebian:\n  archives: [{src: /a, dst: /a.tar, depmod: 1}]\n",
            "build.yml:3:45: debian.archives[0].depmod: must be true or false",
        ),
        ("image: [a\n", "build.yml:2:1: invalid YAML"),
        (
            "image: a\ndebian:\n  kernels: [{source: /s.tar.xz, dst: /kernel}]\n",
            "build.yml:3:13: debian.kernels[0]: needs config",
        ),
        (
            "image: a\ndebian:\n  kernels: [{source: /s, config: ../x, dst: /k}]\n",
            "debian.kernels[0].config: must be relative, inside the package dir",
        ),
        (
            "image: a\ndebian:\n  kernels: [{source: /s, config: c, dst: /k, tar: k.tar}]\n",
            "debian.kernels[0].tar: 'k.tar' must be an absolute path",
        ),
    ],
)
def test_bad_files(text: str, expected: str) -> None:
    with pytest.raises(ConfigError) as err:
        parse_build_yml(text, "build.yml")
    assert expected in str(err.value)


def test_all_problems_reported_together() -> None:
    with pytest.raises(ConfigError) as err:
        parse_build_yml("imgae: a\norg: 5\n", "b.yml")
    assert len(err.value.problems) == 3  # unknown key, org type, image missing


def test_missing_file(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="no such file"):
        load_build_yml(tmp_path)


def test_config_label_is_validated_with_the_yaml_schema() -> None:
    with pytest.raises(ConfigError) as err:
        parse_build_yml("image: a\nconfig:\n  capabilities: CAP_X\n  pid: [3]\n", "build.yml")
    text = str(err.value)
    assert "capabilities" in text and "pid" in text


def test_shipped_packages_parse() -> None:
    root = Path(__file__).resolve().parents[3] / "pkg"
    for name in MINIMAL_PACKAGES:
        spec = load_build_yml(root / name)
        assert spec.org == "distrokit" and spec.debian is not None
        for copy in spec.debian.copy:
            assert (root / name / copy.src).is_file(), f"{name}: {copy.src}"


def test_empty_arches_means_the_default_as_in_linuxkit() -> None:
    # LinuxKit's own pkg/bpftrace/build.yml has `arches:` with no value
    spec = parse_build_yml("image: bpftrace\nnetwork: true\narches:\n", "build.yml")
    assert spec.arches == parse_build_yml("image: x\n", "build.yml").arches


def test_kernels_block() -> None:
    text = (
        "image: k\ndebian:\n  packages: [linux-source-6.1]\n  kernels:\n"
        "    - {source: /usr/src/linux-*.tar.xz, config: vm.config, dst: /kernel, tar: /k.tar}\n"
        "    - {source: /usr/src/other.tar.xz, config: sub/b.config, dst: /boot/b}\n"
    )
    spec = parse_build_yml(text, "build.yml").debian
    assert spec is not None
    assert spec.kernels == (
        KernelSpec(
            source="/usr/src/linux-*.tar.xz", config="vm.config", dst="/kernel", tar="/k.tar"
        ),
        KernelSpec(source="/usr/src/other.tar.xz", config="sub/b.config", dst="/boot/b"),
    )


def test_the_vm_kernel_package_parses() -> None:
    pkg = Path(__file__).resolve().parents[3] / "pkg" / "kernel-vm"
    spec = load_build_yml(pkg).debian
    assert spec is not None and len(spec.kernels) == 1
    assert (pkg / spec.kernels[0].config).is_file()
