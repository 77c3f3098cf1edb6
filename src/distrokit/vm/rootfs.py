"""Root disks: one read-only ext4 base per (image digest, size), one qcow2 overlay per VM.

The image's layers are flattened (`distrokit.oci.flatten`, whiteouts applied), unpacked into a
staging directory (`distrokit.formats.staging`) and turned into a file system by
``mkfs.ext4 -d`` in a sparse file: no loop device, no mount. Unpacking keeps owners, modes and
device nodes when distrokit runs as root; run rootless, every file belongs to the user who ran
it (mke2fs 1.47.0 copies owners from the staged tree), which is what the docs say.

Each VM's disk is ``qemu-img create -f qcow2 -b BASE -F raw``: copy-on-write, so a second VM
of an image costs a few hundred KiB until it writes.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import tempfile
import time
from contextlib import closing
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from distrokit.formats.staging import unpack_rootfs
from distrokit.host import Host
from distrokit.oci.flatten import flatten
from distrokit.oci.image import CachedImage
from distrokit.tarstream import TarWriter
from distrokit.vm.store import Store

IMAGE_INFO = "image.json"
# Programs an image's own init is looked for at, in order.
INIT_PATHS = ("sbin/init", "init")


@dataclass(frozen=True)
class BaseImage:
    """An imported image: its base disk of one size and what its config asks for."""

    directory: Path
    size_mb: int
    info: dict[str, Any]

    @property
    def disk(self) -> Path:
        return self.directory / f"{self.size_mb}M.ext4"


def image_dir(store: Store, digest: str) -> Path:
    """Where the bases of image `digest` are kept."""
    return store.images / digest.removeprefix("sha256:")


def _info(image: CachedImage, root: Path) -> dict[str, Any]:
    config = image.config
    own_init = next((f"/{p}" for p in INIT_PATHS if os.path.lexists(root / p)), None)
    return {
        "reference": image.reference,
        "digest": image.digest,
        "entrypoint": list(config.entrypoint) if config.entrypoint is not None else None,
        "cmd": list(config.cmd) if config.cmd is not None else None,
        "env": list(config.env),
        "working_dir": config.working_dir or "/",
        "user": config.user or "",
        "init": own_init,
        "imported": time.time(),
    }


def stage(image: CachedImage, work: Path) -> Path:
    """The image's flattened root unpacked into ``work/root``."""
    tar = work / "rootfs.tar"
    with tar.open("wb") as out, TarWriter(out) as writer:
        entries = flatten(len(image.layers), lambda i: image.open_layer(image.layers[i]))
        with closing(entries):
            writer.write_all(entries)
    root = work / "root"
    unpack_rootfs(tar, root, epoch=0, skip_boot=False)
    tar.unlink()
    return root


def import_image(host: Host, store: Store, image: CachedImage, size_mb: int) -> BaseImage:
    """The base disk of `image` at `size_mb`, built once and made read-only."""
    directory = image_dir(store, image.digest)
    directory.mkdir(parents=True, exist_ok=True)
    base = BaseImage(directory, size_mb, {})
    info_path = directory / IMAGE_INFO
    if base.disk.is_file() and info_path.is_file():
        return BaseImage(directory, size_mb, json.loads(info_path.read_text()))
    work = Path(tempfile.mkdtemp(dir=directory, prefix=".build-"))
    try:
        root = stage(image, work)
        info = _info(image, root)
        disk = work / "disk.ext4"
        with disk.open("wb") as f:
            f.truncate(size_mb << 20)
        host.run(
            [
                *("mkfs.ext4", "-q", "-F", "-L", "distrokit-root", "-b", "4096", "-m", "0"),
                *("-E", "lazy_itable_init=1,lazy_journal_init=1", "-d", str(root), str(disk)),
            ]
        )
        disk.chmod(0o444)
        (work / IMAGE_INFO).write_text(json.dumps(info, indent=2) + "\n")
        (work / IMAGE_INFO).replace(info_path)
        # never replace a base: overlays of VMs made meanwhile point at the one there
        with contextlib.suppress(FileExistsError):
            os.link(disk, base.disk)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    return BaseImage(directory, size_mb, info)


def load_image(store: Store, digest: str, size_mb: int) -> BaseImage:
    """An image imported before (for a VM that already exists)."""
    directory = image_dir(store, digest)
    info = json.loads((directory / IMAGE_INFO).read_text())
    return BaseImage(directory, size_mb, info)


def create_overlay(host: Host, base: BaseImage, overlay: Path) -> None:
    """A qcow2 overlay on `base` (the VM's writable disk, same virtual size)."""
    host.run(
        [
            *("qemu-img", "create", "-q", "-f", "qcow2", "-b", str(base.disk), "-F", "raw"),
            *(str(overlay), f"{base.size_mb}M"),
        ]
    )


def list_images(store: Store) -> list[dict[str, Any]]:
    """Every imported image's info, with the sizes of its bases and the bytes they use."""
    out = []
    if store.images.is_dir():
        for d in store.images.iterdir():
            try:
                info = json.loads((d / IMAGE_INFO).read_text())
            except (OSError, ValueError):
                continue
            disks = sorted(d.glob("*M.ext4"))
            info["sizes_mb"] = [int(p.name.removesuffix("M.ext4")) for p in disks]
            info["used_bytes"] = sum(p.stat().st_blocks * 512 for p in disks)
            out.append(info)
    return sorted(out, key=lambda i: float(i.get("imported", 0)))


def remove_image(store: Store, digest: str) -> None:
    """Delete every base of image `digest`."""
    directory = image_dir(store, digest)
    for disk in directory.glob("*"):
        disk.chmod(0o644)
    shutil.rmtree(directory, ignore_errors=True)
