"""pkg/kernel: the modules a distrokit system needs on QEMU and on vSphere are in /kernel.tar,
each with the modules it depends on (read from the module's own ``depends=``), and the
modules.dep and modules.alias made at build time index exactly those (no depmod at boot)."""

from __future__ import annotations

import re
import tarfile
from pathlib import Path

import pytest
from hosttools import require_tools

from distrokit.cli import main
from distrokit.formats.rootfinder import rootfinder_initrd
from distrokit.oci.cache import Cache
from distrokit.oci.image import host_platform

PKG = Path(__file__).resolve().parents[3] / "pkg"
REF = "distrokit/kernel:kernel-tool-test"
# virtio (QEMU), e1000, and vSphere's virtual hardware: pvscsi disks, vmxnet3 NIC, IDE CD-ROM
WANTED = ("virtio_blk", "virtio_net", "virtio_scsi", "e1000", "vmw_pvscsi", "vmxnet3",
          "ata_piix", "sr_mod", "sd_mod", "ext4", "isofs", "squashfs", "overlay",
          "evdev", "button", "binfmt_misc", "dm_crypt", "essiv", "wireguard", "loop")  # fmt: skip


@pytest.fixture(scope="module")
def kernel_tar_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The built package's /kernel.tar, written to a file."""
    require_tools("apt-get", "apt-cache", "dpkg-deb", "depmod")
    cache_dir = tmp_path_factory.mktemp("kernel-images")
    args = ["pkg", "build", "--hash", "kernel-tool-test", "--cache", str(cache_dir)]
    assert main([*args, str(PKG / "kernel")]) == 0
    image = Cache(cache_dir).image(REF, host_platform())
    inner = None
    for layer in image.layers:
        with tarfile.open(image.blob_path(layer), mode="r:gz") as tar:
            for member in tar:
                if member.name.lstrip("./") == "kernel.tar":
                    extracted = tar.extractfile(member)
                    assert extracted is not None
                    inner = extracted.read()
    assert inner is not None, "the kernel package has no /kernel.tar"
    path = cache_dir / "kernel.tar"
    path.write_bytes(inner)
    return path


@pytest.fixture(scope="module")
def kernel_tar(kernel_tar_file: Path) -> dict[str, bytes]:
    """Every file of the built package's /kernel.tar by name."""
    out = {}
    with tarfile.open(kernel_tar_file) as tar:
        for member in tar:
            if member.isfile():
                data = tar.extractfile(member)
                assert data is not None
                out[member.name] = data.read()
    return out


def _name(path: str) -> str:
    return Path(path).name.removesuffix(".ko").replace("-", "_")


@pytest.fixture(scope="module")
def modules(kernel_tar: dict[str, bytes]) -> dict[str, bytes]:
    """Module name -> .ko bytes from the built package's /kernel.tar."""
    return {_name(name): data for name, data in kernel_tar.items() if name.endswith(".ko")}


def _depends(ko: bytes) -> list[str]:
    match = re.search(rb"(?:^|\0)depends=([^\0]*)\0", ko)
    names = match.group(1).decode().split(",") if match else []
    return [n.replace("-", "_") for n in names if n]


def test_the_needed_modules_are_shipped(modules: dict[str, bytes]) -> None:
    missing = [name for name in WANTED if name not in modules]
    assert not missing, f"not in /kernel.tar: {missing}"


def test_every_shipped_module_has_its_dependencies(modules: dict[str, bytes]) -> None:
    lacking = {
        name: [dep for dep in _depends(ko) if dep not in modules]
        for name, ko in modules.items()
        if any(dep not in modules for dep in _depends(ko))
    }
    assert lacking == {}


def test_modules_dep_indexes_exactly_the_shipped_modules(kernel_tar: dict[str, bytes]) -> None:
    (dep_path,) = [name for name in kernel_tar if name.endswith("/modules.dep")]
    base = dep_path.removesuffix("modules.dep")
    deps = {}
    for line in kernel_tar[dep_path].decode().splitlines():
        mod, _, rest = line.partition(":")
        deps[mod] = rest.split()
    shipped = {name.removeprefix(base) for name in kernel_tar if name.endswith(".ko")}
    assert set(deps) == shipped
    assert not {dep for listed in deps.values() for dep in listed} - shipped
    # modules.dep lists every dependency, direct (the module's depends=) or not
    for mod, listed in deps.items():
        names = {_name(dep) for dep in listed}
        direct = _depends(kernel_tar[base + mod])
        assert set(direct) <= names, mod
        for dep in listed:
            assert set(deps[dep]) <= set(listed), f"{mod}: {dep}'s dependencies"
    # the coldplug loads virtio_net for the virtio NIC's modalias through modules.alias
    aliases = kernel_tar[base + "modules.alias"].decode().splitlines()
    assert any(line.startswith("alias virtio:d00000001v") and line.endswith(" virtio_net")
               for line in aliases)  # fmt: skip


def _load_order(kernel_tar: Path) -> list[str]:
    """The modules the root finder built from `kernel_tar` loads, in order (its newc cpio's
    lib/modules/order)."""
    data = rootfinder_initrd(kernel_tar, epoch=0, compress=False)
    pos = 0
    while True:
        size, namesize = int(data[pos + 54 : pos + 62], 16), int(data[pos + 94 : pos + 102], 16)
        name = data[pos + 110 : pos + 109 + namesize].decode()
        start = pos + 110 + namesize
        start += -start % 4
        if name == "lib/modules/order":
            return [_name(mod) for mod in data[start : start + size].decode().split()]
        assert name != "TRAILER!!!", "the root finder has no lib/modules/order"
        pos = start + size + (-(start + size) % 4)


def test_the_root_finder_reads_the_built_modules_dep(kernel_tar_file: Path, tmp_path: Path) -> None:
    order = _load_order(kernel_tar_file)
    for mod, deps in (("ext4", ("jbd2", "mbcache", "crc16")), ("sr_mod", ("cdrom", "scsi_mod"))):
        assert all(order.index(dep) < order.index(mod) for dep in deps), order
    # the same modules as from each module's depends= (the kernel.tar without modules.dep)
    bare = tmp_path / "bare.tar"
    with tarfile.open(kernel_tar_file) as src, tarfile.open(bare, "w") as dst:
        for member in src:
            if not member.name.endswith("/modules.dep"):
                dst.addfile(member, src.extractfile(member) if member.isfile() else None)
    assert sorted(_load_order(bare)) == sorted(order)
