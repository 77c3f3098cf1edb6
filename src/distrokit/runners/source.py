"""Find what to boot from a path or prefix, as `linuxkit run qemu` does, plus distrokit's
medium-root outputs.

If the path itself does not exist it is a prefix: ``P-kernel`` + ``P-squashfs.img`` (or
``P-erofs.img``) is a root-image boot, ``P-kernel`` + ``P.iso`` with a ``root=`` in
``P-cmdline`` a kernel+iso boot (the ISO holds the root file system), ``P-kernel``
(+ ``P-initrd.img`` + ``P-cmdline``) a kernel+initrd boot. Every kernel boot passes
``P-initrd.img`` when it exists: distrokit's kernel+squashfs, kernel+erofs and kernel+iso write
a root-finder initramfs there that loads the root medium's modules. An existing path ending in
``.iso`` is an ISO boot, any other existing file a disk image whose format is read from its
magic bytes (then its extension). ``--kernel``, ``--squashfs``, ``--iso`` and ``--disk-boot``
force a mode; ``--iso`` with a prefix (no such file) forces a kernel+iso boot.
"""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

from distrokit.errors import UsageError
from distrokit.formats import erofs, squashfs
from distrokit.runners.config import BootMode, BootSource

# (offset, magic, qemu format). VHD "fixed" images carry their footer only at the end.
_MAGICS: tuple[tuple[int, bytes, str], ...] = (
    (0, b"QFI\xfb", "qcow2"),
    (0, b"KDMV", "vmdk"),
    (0, b"# Disk DescriptorFile", "vmdk"),
    (0, b"conectix", "vpc"),
    (0, b"vhdxfile", "vhdx"),
    (0, b"QED\x00", "qed"),
    (0x40, b"\x7f\x10\xda\xbe", "vdi"),
)
_EXTENSIONS = {
    ".qcow2": "qcow2",
    ".vmdk": "vmdk",
    ".vhd": "vpc",
    ".vhdx": "vhdx",
    ".vdi": "vdi",
    ".raw": "raw",
    ".img": "raw",
}


def detect_disk_format(path: Path) -> str:
    """The qemu format name of a disk image: magic bytes first, then extension, else raw."""
    with path.open("rb") as f:
        head = f.read(512)
        f.seek(0, 2)
        size = f.tell()
        footer = b""
        if size >= 512:
            f.seek(size - 512)
            footer = f.read(512)
    for offset, magic, fmt in _MAGICS:
        if head[offset : offset + len(magic)] == magic:
            return fmt
    if footer.startswith(b"conectix"):
        return "vpc"
    return _EXTENSIONS.get(path.suffix.lower(), "raw")


def _read_cmdline(prefix: str) -> str:
    path = Path(f"{prefix}-cmdline")
    return path.read_text().strip() if path.is_file() else ""


# Root images next to NAME-kernel, in the order they are looked for: the names the formats
# that write them give them.
ROOT_IMAGES = (squashfs.IMAGE_SUFFIX, erofs.IMAGE_SUFFIX)


def _root_image(prefix: str) -> Path | None:
    for suffix in ROOT_IMAGES:
        image = Path(prefix + suffix)
        if image.is_file():
            return image
    return None


def _kernel_source(prefix: str, mode: BootMode) -> BootSource:
    """A boot of ``prefix-kernel`` (+ initrd, cmdline) with the root image or ISO `mode` needs."""
    kernel = Path(f"{prefix}-kernel")
    if not kernel.is_file():
        raise UsageError(f"kernel file {kernel} not found", hint="is the prefix right?")
    initrd = Path(f"{prefix}-initrd.img")
    source = BootSource(
        mode=mode,
        prefix=prefix,
        kernel=kernel,
        initrd=initrd if initrd.is_file() else None,
        cmdline=_read_cmdline(prefix),
    )
    if mode is BootMode.SQUASHFS:
        image = _root_image(prefix)
        if image is None:
            wanted = " or ".join(prefix + suffix for suffix in ROOT_IMAGES)
            raise UsageError(f"root image {wanted} not found")
        return replace(source, squashfs=image)
    if mode is BootMode.ISO:
        iso = Path(f"{prefix}.iso")
        if not iso.is_file():
            raise UsageError(f"ISO {iso} not found next to {kernel}")
        return replace(source, iso=iso)
    return source


def _is_kernel_iso(prefix: str) -> bool:
    """kernel+iso: the ISO holds the root, so the command line names it with ``root=``. A
    kernel+initrd output next to an unrelated NAME.iso (iso-bios) has no ``root=``."""
    if not Path(f"{prefix}.iso").is_file():
        return False
    return any(arg.startswith("root=") for arg in _read_cmdline(prefix).split())


def _file_source(path: Path, mode: BootMode) -> BootSource:
    if not path.is_file():
        raise UsageError(f"{mode.value} image {path} not found")
    prefix = str(path.with_suffix("")) if path.suffix else str(path)
    if mode is BootMode.ISO:
        return BootSource(mode=mode, prefix=prefix, iso=path)
    return BootSource(mode=mode, prefix=prefix, disk=path, disk_format=detect_disk_format(path))


def resolve(argument: str, forced: BootMode | None = None) -> BootSource:
    """The boot source for `argument` (a path or a prefix), optionally forcing a mode."""
    path = Path(argument)
    if forced in (BootMode.KERNEL, BootMode.SQUASHFS):
        return _kernel_source(argument, forced)
    if forced is BootMode.ISO and not path.exists() and Path(f"{argument}-kernel").is_file():
        return _kernel_source(argument, BootMode.ISO)
    if forced is not None:
        return _file_source(path, forced)
    if path.is_file():
        iso = path.suffix.lower() == ".iso"
        return _file_source(path, BootMode.ISO if iso else BootMode.DISK)
    if path.exists():
        raise UsageError(f"{argument} is not a file, a kernel prefix or an image")
    if Path(f"{argument}-kernel").is_file():
        if _root_image(argument) is not None:
            return _kernel_source(argument, BootMode.SQUASHFS)
        if _is_kernel_iso(argument):
            return _kernel_source(argument, BootMode.ISO)
        return _kernel_source(argument, BootMode.KERNEL)
    raise UsageError(
        f"nothing to boot at {argument}",
        hint=f"expected {argument}-kernel (+ -initrd.img, -squashfs.img, -erofs.img or .iso), "
        "an .iso or a disk",
    )
