"""Find what to boot from a path or prefix, exactly as `linuxkit run qemu` does.

If the path itself does not exist it is a prefix: ``P-kernel`` + ``P-squashfs.img`` is a squashfs
boot, ``P-kernel`` (+ ``P-initrd.img`` + ``P-cmdline``) a kernel+initrd boot. An existing path
ending in ``.iso`` is an ISO boot, any other existing file a disk image whose format is read from
its magic bytes (then its extension). ``--kernel``, ``--squashfs``, ``--iso`` and ``--disk-boot``
force a mode.
"""

from __future__ import annotations

from pathlib import Path

from distrokit.errors import UsageError
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


def _kernel_source(prefix: str, squashfs: bool) -> BootSource:
    kernel = Path(f"{prefix}-kernel")
    if not kernel.is_file():
        raise UsageError(f"kernel file {kernel} not found", hint="is the prefix right?")
    cmdline = _read_cmdline(prefix)
    if squashfs:
        image = Path(f"{prefix}-squashfs.img")
        if not image.is_file():
            raise UsageError(f"squashfs image {image} not found")
        return BootSource(
            mode=BootMode.SQUASHFS, prefix=prefix, kernel=kernel, squashfs=image, cmdline=cmdline
        )
    initrd = Path(f"{prefix}-initrd.img")
    return BootSource(
        mode=BootMode.KERNEL,
        prefix=prefix,
        kernel=kernel,
        initrd=initrd if initrd.is_file() else None,
        cmdline=cmdline,
    )


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
        return _kernel_source(argument, forced is BootMode.SQUASHFS)
    if forced is not None:
        return _file_source(path, forced)
    if path.is_file():
        iso = path.suffix.lower() == ".iso"
        return _file_source(path, BootMode.ISO if iso else BootMode.DISK)
    if path.exists():
        raise UsageError(f"{argument} is not a file, a kernel prefix or an image")
    if Path(f"{argument}-kernel").is_file():
        squashfs = Path(f"{argument}-squashfs.img").is_file()
        return _kernel_source(argument, squashfs)
    raise UsageError(
        f"nothing to boot at {argument}",
        hint=f"expected {argument}-kernel (+ -initrd.img or -squashfs.img), an .iso or a disk",
    )
