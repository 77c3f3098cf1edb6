"""pkg/firmware: LinuxKit's firmware image from Debian's free firmware. Two builds give one
digest; the image is an `init:` image (no config label) whose files are all under
/lib/firmware; and every firmware file that the named drivers of Debian's kernel ask the
firmware loader for (the modules' own ``firmware=`` entries) is there."""

from __future__ import annotations

import re
import tarfile
from pathlib import Path

import pytest
from guest import host_kernel
from hosttools import build_twice

from distrokit.oci.cache import Cache
from distrokit.oci.image import host_platform

PKG = Path(__file__).resolve().parents[3] / "pkg"
HASH = "firmware-tool-test"
REF = f"distrokit/firmware:{HASH}"
# drivers whose firmware Debian's main section carries (wireless, SCSI, USB serial, PCMCIA)
DRIVERS = ("carl9170", "ath9k_htc", "isci", "usbdux", "usbduxfast", "usbduxsigma",
           "keyspan_pda", "pcnet_cs")  # fmt: skip


@pytest.fixture(scope="module")
def caches(tmp_path_factory: pytest.TempPathFactory) -> tuple[Cache, Cache]:
    return build_twice(tmp_path_factory, HASH, PKG / "firmware")


@pytest.fixture(scope="module")
def files(caches: tuple[Cache, Cache]) -> dict[str, tarfile.TarInfo]:
    """Path (no leading ./ or /) -> entry, over the image's layers."""
    image = caches[0].image(REF, host_platform())
    out: dict[str, tarfile.TarInfo] = {}
    for layer in image.layers:
        with tarfile.open(image.blob_path(layer), mode="r:gz") as tar:
            for member in tar:
                out[member.name.removeprefix("./").lstrip("/")] = member
    return out


def _requested(driver: str) -> list[str]:
    """The firmware files the host kernel's module DRIVER names (modinfo's firmware field)."""
    _, release = host_kernel()
    found = sorted((Path("/lib/modules") / release / "kernel").rglob(f"{driver}.ko"))
    assert found, f"no {driver}.ko in the host's Debian kernel {release}"
    return [m.decode() for m in re.findall(rb"(?:^|\0)firmware=([^\0]+)", found[0].read_bytes())]


def test_two_builds_give_one_digest(caches: tuple[Cache, Cache]) -> None:
    a, b = (c.lookup(REF) for c in caches)
    assert a is not None and b is not None
    assert a.digest == b.digest


def test_an_init_image_with_its_files_under_lib_firmware(
    caches: tuple[Cache, Cache], files: dict[str, tarfile.TarInfo]
) -> None:
    labels = dict(caches[0].image(REF, host_platform()).config.labels)
    assert "org.mobyproject.config" not in labels
    regular = [name for name, entry in files.items() if entry.isfile()]
    stray = [n for n in regular if not n.startswith(("lib/firmware/", "usr/share/distrokit/"))]
    assert stray == []
    for licence in ("LICENSE.firmware-linux-free", "LICENSE.firmware-ath9k-htc"):
        assert files[f"lib/firmware/{licence}"].size > 1000


@pytest.mark.parametrize("driver", DRIVERS)
def test_the_firmware_a_driver_requests_is_shipped(
    files: dict[str, tarfile.TarInfo], driver: str
) -> None:
    requested = _requested(driver)
    assert requested, f"{driver} names no firmware"
    missing = [fw for fw in requested if f"lib/firmware/{fw}" not in files]
    assert missing == [], f"{driver} requests {missing}, not in the image"
