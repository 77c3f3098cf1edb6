"""`pkg build` / `pkg push` with real apt, dpkg-deb, buildah and a real local registry."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import requests
from hosttools import image_members, require_tools

from distrokit.cli import main
from distrokit.errors import PackageError
from distrokit.host import Host
from distrokit.oci.cache import Cache
from distrokit.oci.image import Platform, host_platform
from distrokit.packages.builder import BuildOptions, build_package
from distrokit.packages.debian import default_cache_dir
from distrokit.packages.tag import TagOptions, package_info

BUSYBOX = """\
image: bb
org: test
arches: [amd64, arm64]
config:
  command: [/bin/busybox, echo, hi]
debian:
  packages: [busybox-static]
  binaries: [/bin/busybox]
  symlinks: {/bin/sh: busybox}
  copy: [{src: motd, dst: /etc/motd, mode: "0600"}]
  mkdir: [/var/empty]
"""

JQ = """\
image: jq
debian:
  packages: [jq, libjq1, libonig5, libc6]
  binaries: [/usr/bin/jq]
"""


def _pkg(root: Path, name: str, text: str) -> Path:
    path = root / name
    path.mkdir(parents=True)
    (path / "build.yml").write_text(text)
    (path / "motd").write_text("welcome\n")
    return path


def _build(pkg: Path, cache_dir: Path, **kw: object) -> tuple[Cache, str]:
    require_tools("apt-get", "apt-cache", "dpkg-deb")
    host = Host()
    info = package_info(pkg, host, TagOptions(hash="t1"))
    cache = Cache(cache_dir)
    options = BuildOptions(deb_cache=default_cache_dir(), **kw)  # type: ignore[arg-type]
    return cache, build_package(info, cache, host, options).digest


def test_build_twice_gives_the_same_digest(tmp_path: Path) -> None:
    pkg = _pkg(tmp_path, "bb", BUSYBOX)
    cache_a, first = _build(pkg, tmp_path / "a")
    _cache_b, second = _build(pkg, tmp_path / "b")
    assert first == second
    # already in the cache: not rebuilt; --force rebuilds to the same digest
    assert _build(pkg, tmp_path / "a")[1] == first
    assert _build(pkg, tmp_path / "a", force=True)[1] == first
    image = cache_a.image("test/bb:t1", host_platform())
    labels = dict(image.config.labels)
    assert json.loads(labels["org.mobyproject.config"]) == {
        "command": ["/bin/busybox", "echo", "hi"]
    }
    assert labels["org.distrokit.debian.packages"].startswith("busybox-static=1:1.35")
    assert cache_a.lookup("test/bb:t1-amd64") is not None
    members = image_members(cache_a, "test/bb:t1")
    assert sorted(members) == [
        "bin",
        "bin/busybox",
        "bin/sh",
        "etc",
        "etc/motd",
        "usr",
        "usr/share",
        "usr/share/distrokit",
        "usr/share/distrokit/bb.packages",
        "var",
        "var/empty",
    ]
    assert members["bin/sh"].linkname == "busybox"
    assert members["etc/motd"].mode == 0o600


def test_shared_library_closure(tmp_path: Path) -> None:
    pkg = _pkg(tmp_path, "jq", JQ)
    cache, _ = _build(pkg, tmp_path / "c")
    names = set(image_members(cache, "linuxkit/jq:t1"))
    assert {
        "usr/bin/jq",
        "usr/lib/x86_64-linux-gnu/libjq.so.1",
        "usr/lib/x86_64-linux-gnu/libonig.so.5",
        "lib/x86_64-linux-gnu/libc.so.6",
        "lib64/ld-linux-x86-64.so.2",
        "lib/x86_64-linux-gnu/ld-linux-x86-64.so.2",
    } <= names
    # nothing else from the debs (docs, other binaries) is kept
    assert not any(n.startswith("usr/share/doc") for n in names)


def test_missing_library_named(tmp_path: Path) -> None:
    pkg = _pkg(tmp_path, "jq", JQ.replace("libonig5, ", ""))
    with pytest.raises(PackageError, match=r"libonig\.so\.5, needed by .*libjq") as err:
        _build(pkg, tmp_path / "c")
    assert err.value.hint is not None and "dpkg -S" in err.value.hint


def test_unknown_debian_package(tmp_path: Path) -> None:
    pkg = _pkg(tmp_path, "x", "image: x\ndebian:\n  packages: [no-such-package-zz]\n")
    with pytest.raises(PackageError, match="'no-such-package-zz' is not known to apt"):
        _build(pkg, tmp_path / "c")


def test_foreign_arch_refused_for_debian_builds(tmp_path: Path) -> None:
    pkg = _pkg(tmp_path, "bb", BUSYBOX)
    with pytest.raises(PackageError, match="host architecture only"):
        _build(pkg, tmp_path / "c", platforms=(Platform("linux", "arm64"),))


def test_dockerfile_package_with_buildah(tmp_path: Path) -> None:
    require_tools("buildah")
    pkg = tmp_path / "df"
    pkg.mkdir()
    (pkg / "Dockerfile").write_text("FROM scratch\nCOPY hello /hello\n")
    (pkg / "hello").write_text("hi\n")
    (pkg / "build.yml").write_text("image: df\nconfig:\n  command: [/hello]\n")
    cache, _ = _build(pkg, tmp_path / "c")
    image = cache.image("linuxkit/df:t1", host_platform())
    assert json.loads(image.config.labels["org.mobyproject.config"]) == {"command": ["/hello"]}
    assert "hello" in image_members(cache, "linuxkit/df:t1")


def test_cli_build_and_push(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    require_tools("docker-registry")
    from registry import start_registry

    pkg = _pkg(tmp_path, "bb", BUSYBOX)
    with start_registry(tmp_path / "reg") as reg:
        org = f"{reg.host}/test"
        args = ["--cache", str(tmp_path / "cache"), "--hash", "t1", "--org", org, str(pkg)]
        assert main(["pkg", "push", *args]) == 0
        out = capsys.readouterr().out
        assert f"pushed {org}/bb:t1 sha256:" in out
        digest = out.strip().split()[-1]
        head = requests.head(
            f"{reg.url}/v2/test/bb/manifests/t1",
            headers={"Accept": "application/vnd.oci.image.index.v1+json"},
            timeout=10,
        )
        assert head.status_code == 200
        assert head.headers["Docker-Content-Digest"] == digest
