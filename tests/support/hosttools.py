"""Helpers the tool and boot tiers share: host programs a test needs, and image contents."""

from __future__ import annotations

import tarfile

import pytest

from distrokit.host import Host
from distrokit.oci.cache import Cache
from distrokit.oci.image import host_platform


def require_tools(*tools: str) -> None:
    """Fail (never skip) when a host program the test needs is missing."""
    h = Host()
    missing = [t for t in tools if not h.has(t)]
    if missing:
        pytest.fail(f"host programs missing: {', '.join(missing)} (run scripts/setup)")


def image_members(cache: Cache, ref: str) -> dict[str, tarfile.TarInfo]:
    """Every tar member of a cached image's (gzip) layers by name, later layers winning."""
    image = cache.image(ref, host_platform())
    out: dict[str, tarfile.TarInfo] = {}
    for layer in image.layers:
        with tarfile.open(image.blob_path(layer), mode="r:gz") as tar:
            out.update({m.name: m for m in tar.getmembers()})
    return out
