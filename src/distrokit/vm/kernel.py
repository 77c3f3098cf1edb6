"""Kernels for VMs: any OCI image carrying ``/kernel`` (+ ``/kernel.tar`` of modules, LinuxKit
and distrokit's pkg/kernel) or ``/boot/vmlinux`` (+ ``/lib/modules``, Ignite's kernel images).

Imported once per image digest into ``kernels/<digest>/``: ``kernel`` (the binary as found),
``vmlinux`` (the PVH ELF extracted from a bzImage, what QEMU boots), ``modules.tar`` (the
image's kernel.tar, or its loose /lib/modules) and
``initrd-<version>.img``, the VM init (`distrokit.vm.guest`) with the modules it needs in
dependency order, computed here and not at boot; a new version of the VM init (or of the host's
busybox) builds a new one at the next start. ``info.json`` names the image.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import tempfile
import time
from contextlib import closing
from dataclasses import dataclass
from pathlib import Path

from distrokit.errors import BuildError
from distrokit.formats.rootfinder import BUSYBOX, rootfinder_initrd
from distrokit.oci.flatten import flatten
from distrokit.oci.image import CachedImage
from distrokit.runners import pvh
from distrokit.tarstream import TarWriter
from distrokit.vm import guest
from distrokit.vm.store import Store, VmError

KERNEL_NAMES = ("kernel", "boot/vmlinux", "boot/vmlinuz")
MODULES_TAR = "kernel.tar"


@dataclass(frozen=True)
class VmKernel:
    """An imported kernel."""

    directory: Path
    reference: str
    digest: str

    @property
    def kernel(self) -> Path:
        return self.directory / "kernel"

    @property
    def boot_kernel(self) -> Path:
        """What QEMU boots: the PVH ELF extracted at import when the kernel has one (the
        runner then uses it as is, without hashing the bzImage at every start)."""
        elf = self.directory / "vmlinux"
        return elf if elf.is_file() else self.kernel

    @property
    def modules(self) -> Path:
        return self.directory / "modules.tar"

    @property
    def initrd(self) -> Path:
        """The VM init's initramfs for this kernel, named after the init's version."""
        return self.directory / f"initrd-{init_version()}.img"

    def ensure_initrd(self) -> Path:
        """`initrd`, built now if this version of the VM init has not been built yet."""
        if not self.initrd.is_file():
            if not self.modules.is_file():
                raise VmError(
                    f"kernel {self.reference} in {self.directory} has no modules.tar",
                    hint="remove it (vm kernel rm) and import it again",
                )
            try:
                data = rootfinder_initrd(
                    self.modules,
                    epoch=0,
                    modules=guest.VM_MODULES,
                    init=guest.init_script(),
                    programs={"bin/dk-exec": guest.EXEC},
                    compress=False,
                    lean=True,
                )
            except BuildError as err:
                raise VmError(f"kernel {self.reference}: {err.message}", hint=err.hint) from err
            fd, tmp = tempfile.mkstemp(dir=self.directory, prefix=".initrd-")
            with os.fdopen(fd, "wb") as f:
                f.write(data)
            Path(tmp).chmod(0o644)
            Path(tmp).replace(self.initrd)
        return self.initrd


def init_version() -> str:
    """What the initramfs depends on besides the kernel: the VM init's scripts, its module
    list, how its modules are written and the host's busybox (a Debian update of
    busybox-static makes a new one)."""
    h = hashlib.sha256(b"lean modules\0")
    for part in (guest.init_script(), guest.EXEC, " ".join(guest.VM_MODULES)):
        h.update(part.encode() + b"\0")
    h.update(BUSYBOX.read_bytes())
    return h.hexdigest()[:16]


def kernel_dir(store: Store, digest: str) -> Path:
    """Where the kernel of image `digest` is kept."""
    return store.kernels / digest.removeprefix("sha256:")


def _copy_out(image: CachedImage, work: Path) -> tuple[Path | None, Path]:
    """The kernel binary and a module tar from the flattened image (one pass)."""
    binary: Path | None = None
    modules: Path | None = None
    loose = work / "modules.tar"
    with loose.open("wb") as out, TarWriter(out) as writer:
        entries = flatten(len(image.layers), lambda i: image.open_layer(image.layers[i]))
        with closing(entries):
            for entry in entries:
                name = entry.info.name
                if entry.info.isreg() and name in KERNEL_NAMES and binary is None:
                    binary = work / "kernel"
                    assert entry.data is not None
                    with binary.open("wb") as f:
                        shutil.copyfileobj(entry.data, f, 1 << 20)
                elif entry.info.isreg() and name == MODULES_TAR:
                    modules = work / MODULES_TAR
                    assert entry.data is not None
                    with modules.open("wb") as f:
                        shutil.copyfileobj(entry.data, f, 1 << 20)
                elif name.startswith(("lib/modules/", "usr/lib/modules/")):
                    if name.startswith("usr/"):
                        entry.info.name = name.removeprefix("usr/")
                    writer.write(entry)
    return binary, modules or loose


def import_kernel(store: Store, image: CachedImage) -> VmKernel:
    """The kernel of `image`, imported once (kernel binary + the VM init's initramfs)."""
    directory = kernel_dir(store, image.digest)
    found = VmKernel(directory, image.reference, image.digest)
    if (directory / "info.json").is_file():
        return found
    store.kernels.mkdir(parents=True, exist_ok=True)
    work = Path(tempfile.mkdtemp(dir=store.kernels, prefix=".import-"))
    try:
        binary, modules = _copy_out(image, work)
        if binary is None:
            raise VmError(
                f"image {image.reference} carries no kernel",
                hint="a kernel image has /kernel (+ /kernel.tar) or /boot/vmlinux",
            )
        if modules != work / "modules.tar":
            modules.replace(work / "modules.tar")
        VmKernel(work, image.reference, image.digest).ensure_initrd()
        elf = pvh.pvh_kernel(binary, work / "pvh")
        if elf is not None and elf != binary:
            elf.replace(work / "vmlinux")
        shutil.rmtree(work / "pvh", ignore_errors=True)
        info = {"reference": image.reference, "digest": image.digest, "imported": time.time()}
        (work / "info.json").write_text(json.dumps(info, indent=2) + "\n")
        try:
            work.rename(directory)
        except OSError:
            if not (directory / "info.json").is_file():
                raise
    finally:
        shutil.rmtree(work, ignore_errors=True)
    return found


def list_kernels(store: Store) -> list[dict[str, object]]:
    """Every imported kernel's info.json, oldest first."""
    out = []
    if store.kernels.is_dir():
        for d in store.kernels.iterdir():
            try:
                out.append(json.loads((d / "info.json").read_text()))
            except (OSError, ValueError):
                continue
    return sorted(out, key=lambda i: float(str(i.get("imported", 0))))


def remove_kernel(store: Store, digest: str) -> None:
    """Delete the imported kernel of image `digest`."""
    shutil.rmtree(kernel_dir(store, digest), ignore_errors=True)
