"""Shared test configuration: tiers by directory, and host tools that must be present.

Tests under tests/unit are marked ``unit``, tests/tool ``tool``, tests/boot ``boot`` and
tests/fuzz ``fuzz`` (hostile inputs from hypothesis, with a fixed seed and example budget).
A tool or boot test whose host program is missing fails: CI installs everything with
scripts/setup.
"""

from __future__ import annotations

import tarfile
from collections.abc import Iterator
from pathlib import Path

import pytest
from guest import Boot

from distrokit.host import Host
from distrokit.oci.cache import Cache
from distrokit.oci.image import host_platform

_TIERS = ("unit", "tool", "boot", "fuzz")

pytest_plugins = ["registry"]


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        parts = Path(str(item.fspath)).parts
        for tier in _TIERS:
            if tier in parts:
                item.add_marker(getattr(pytest.mark, tier))


@pytest.fixture(scope="session")
def host() -> Host:
    """The real host-command runner."""
    return Host()


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


@pytest.fixture
def boots() -> Iterator[list[Boot]]:
    """VMs a test starts (it appends each); every one is stopped at the end, pass or fail."""
    started: list[Boot] = []
    yield started
    for boot in started:
        boot.stop()
