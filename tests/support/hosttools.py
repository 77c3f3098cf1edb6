"""Helpers the tool and boot tiers share: host programs a test needs, packages built twice,
and image contents."""

from __future__ import annotations

import tarfile
from pathlib import Path

import pytest

from distrokit.cli import main
from distrokit.host import Host
from distrokit.oci.cache import Cache
from distrokit.oci.image import host_platform


def require_tools(*tools: str) -> None:
    """Fail (never skip) when a host program the test needs is missing."""
    h = Host()
    missing = [t for t in tools if not h.has(t)]
    if missing:
        pytest.fail(f"host programs missing: {', '.join(missing)} (run scripts/setup)")


def build_twice(
    tmp: pytest.TempPathFactory, build_hash: str, *packages: Path
) -> tuple[Cache, Cache]:
    """`distrokit pkg build --hash BUILD_HASH PACKAGES...` run twice, into two empty caches:
    a reproducible package has one digest in both."""
    require_tools("apt-get", "apt-cache", "dpkg-deb")
    caches = []
    for run in ("first", "second"):
        directory = tmp.mktemp(run)
        argv = ["pkg", "build", "--hash", build_hash, "--cache", str(directory)]
        assert main([*argv, *map(str, packages)]) == 0
        caches.append(Cache(directory))
    return caches[0], caches[1]


def image_members(cache: Cache, ref: str) -> dict[str, tarfile.TarInfo]:
    """Every tar member of a cached image's (gzip) layers by name, later layers winning."""
    image = cache.image(ref, host_platform())
    out: dict[str, tarfile.TarInfo] = {}
    for layer in image.layers:
        with tarfile.open(image.blob_path(layer), mode="r:gz") as tar:
            out.update({m.name: m for m in tar.getmembers()})
    return out
