"""pkg/kernel-vm: Debian's linux-source compiled with vm.config, everything built in.

The package is built once into the boot tests' image cache (tagged with its content hash, so
the boot tests reuse it), then: the image holds /kernel, a bzImage whose version string is this
configuration's, stamped with the package's fixed user, host and time, and an empty
/kernel.tar (LinuxKit's kernel layout); a second build into a fresh cache, in another
temporary directory, gives the same digest; a build into the same cache builds nothing; and a
fragment the kernel's Kconfig cannot take stops the build naming the option.
"""

from __future__ import annotations

import io
import re
import struct
import tarfile
from pathlib import Path

import pytest
from hosts_systems import PKG, build_images, content_hash, image_cache
from hosttools import require_tools

from distrokit.cli import main
from distrokit.errors import PackageError
from distrokit.host import Host
from distrokit.oci.cache import Cache
from distrokit.oci.image import host_platform
from distrokit.packages import debian
from distrokit.packages.kernelbuild import TOOLS, build_kernel

TOOLS_NEEDED = ("apt-get", "apt-cache", "dpkg-deb", *TOOLS)


@pytest.fixture(scope="module")
def ref() -> str:
    require_tools(*TOOLS_NEEDED)
    return build_images(["kernel-vm"])["kernel-vm"]


def _files(ref: str) -> dict[str, bytes]:
    image = Cache(image_cache()).image(ref, host_platform())
    out: dict[str, bytes] = {}
    for layer in image.layers:
        with tarfile.open(image.blob_path(layer), mode="r:gz") as tar:
            for member in tar:
                data = tar.extractfile(member) if member.isfile() else None
                if data is not None:
                    out[member.name.lstrip("./")] = data.read()
    return out


def _version(bzimage: bytes) -> str:
    """The kernel_version string a bzImage's setup header points at (boot protocol 2.0+)."""
    assert bzimage[0x202:0x206] == b"HdrS", "not a bzImage"
    (offset,) = struct.unpack_from("<H", bzimage, 0x20E)
    return bzimage[offset + 0x200 :].split(b"\0", 1)[0].decode()


def test_the_image_is_a_stamped_bzimage_and_an_empty_module_tar(ref: str) -> None:
    files = _files(ref)
    version = _version(files["kernel"])
    assert re.match(r"6\.1\.\d+-distrokit-vm \(distrokit@distrokit\) #1 SMP ", version), version
    assert version.endswith("1970-01-01 00:00:00 UTC"), version
    with tarfile.open(fileobj=io.BytesIO(files["kernel.tar"])) as tar:
        assert tar.getmembers() == []
    assert "usr/share/distrokit/kernel-vm.packages" in files


def test_a_second_build_elsewhere_gives_the_same_digest(
    ref: str, tmp_path_factory: pytest.TempPathFactory
) -> None:
    first = Cache(image_cache()).lookup(ref)
    assert first is not None
    fresh = tmp_path_factory.mktemp("kernel-vm-again")
    tag_hash = content_hash(PKG / "kernel-vm")
    argv = ["pkg", "build", "--hash", tag_hash, "--cache", str(fresh), str(PKG / "kernel-vm")]
    assert main(argv) == 0
    second = Cache(fresh).lookup(ref)
    assert second is not None and second.digest == first.digest


def test_a_build_into_the_same_cache_builds_nothing(
    ref: str, capsys: pytest.CaptureFixture[str]
) -> None:
    tag_hash = content_hash(PKG / "kernel-vm")
    argv = ["pkg", "build", "--hash", tag_hash, "--cache", str(image_cache())]
    assert main([*argv, str(PKG / "kernel-vm")]) == 0
    assert "already in the cache" in capsys.readouterr().out


def test_an_option_kconfig_drops_is_named(ref: str, tmp_path: Path) -> None:
    # ext4 depends on block devices: with CONFIG_BLOCK off, Kconfig drops it without a word
    host = Host()
    info = debian.lookup(host, "linux-source-6.1")
    deb = debian.fetch(host, info, debian.default_cache_dir())
    debian.unpack(host, deb, tmp_path / "root")
    (tarball,) = (tmp_path / "root" / "usr" / "src").glob("linux-source-*.tar.xz")
    fragment = tmp_path / "bad.config"
    fragment.write_text("CONFIG_64BIT=y\nCONFIG_BLOCK=n\nCONFIG_EXT4_FS=y\n")
    with pytest.raises(PackageError, match=r"did not take CONFIG_EXT4_FS=y") as err:
        build_kernel(
            host, tarball=tarball, fragment=fragment, work=tmp_path / "w", epoch=0,
            say=lambda _m: None,
        )  # fmt: skip
    assert err.value.hint and "dependencies" in err.value.hint
