"""The bootable formats' entries in the format registry, and the adapter from a built system.

Each writer (raw.py, convert.py, gcp.py, iso.py, squashfs.py, erofs.py) takes plain files:
kernel, initrd, command line and, for formats whose root lives on the medium, the root file
system tar. This module makes those from the assembled `System` in the build's scratch space
(initrd as for kernel+initrd, rootfs tar as for tar minus ``boot/``), runs the writer into a
scratch file and streams the result into the build's atomic outputs.
"""

from __future__ import annotations

import contextlib
import dataclasses
import os
import tempfile
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

from distrokit.errors import BuildError
from distrokit.formats import convert, erofs, fat, gcp, iso, raw, rootfinder, squashfs
from distrokit.formats.disk import BootFiles, data_ranges, round_up, source_date_epoch
from distrokit.formats.kernel_initrd import write_initrd
from distrokit.formats.outputs import Outputs
from distrokit.formats.registry import BuildSettings, Format, register
from distrokit.host import Host
from distrokit.system.assemble import System, all_entries
from distrokit.tarstream import TarWriter

DYNAMIC_VHD_SIZE_MIB = 25 * 1024  # LinuxKit's dynamic-vhd is 25G (sparse)
GIB_IN_MIB = 1024
_BUSYBOX = {rootfinder.BUSYBOX: rootfinder.BUSYBOX_PACKAGE}


def check_files(files: dict[Path, str]) -> None:
    """Fail before any work when a boot loader file from a Debian package is missing."""
    for path, package in sorted(files.items()):
        if not path.is_file():
            raise BuildError(
                f"required file {path} is missing",
                hint=f"install it with: apt-get install {package}",
            )


@contextlib.contextmanager
def boot_files(
    system: System, settings: BuildSettings, scratch: Path, *, rootfs: bool
) -> Iterator[BootFiles]:
    """Kernel, initrd, cmdline (and the rootfs tar when `rootfs`) of `system` as files."""
    if system.kernel is None:
        raise BuildError("this format needs a kernel: the configuration has no kernel.image")
    initrd = scratch / "initrd.img"
    with initrd.open("wb") as out:
        # the progress lines were printed by the kernel+initrd step already, or need not be
        write_initrd(system, out, dataclasses.replace(settings, progress=None))
    tar_path = None
    if rootfs:
        tar_path = scratch / "rootfs.tar"
        parts = [p for p in system.parts if p.kind != "boot"]
        with tar_path.open("wb") as out, TarWriter(out) as tar:
            tar.write_all(all_entries(parts, None))
    yield BootFiles(
        kernel=Path(system.kernel.binary.path),
        initrd=initrd,
        cmdline=system.cmdline,
        rootfs=tar_path,
        epoch=source_date_epoch(),
    )


def _stream(src: Path, out: BinaryIO) -> None:
    """Append the file `src` to the fresh output `out`, keeping its holes: a 1 GiB aws or vhd
    disk is mostly holes, and copying them as zeros would write the whole size."""
    out.flush()
    fout = out.fileno()
    base = out.tell()
    with src.open("rb") as f:
        fin = f.fileno()
        size = os.fstat(fin).st_size
        for start, end in data_ranges(fin, size):
            pos = start
            while pos < end:
                # copy_file_range lets the kernel copy (or reflink) without passing through Python
                done = os.copy_file_range(fin, fout, end - pos, pos, base + pos)
                if done == 0:
                    break
                pos += done
    out.truncate(base + size)
    out.seek(0, os.SEEK_END)


# A writer gets the host, the inputs, the scratch dir and the build settings and returns
# {output file suffix: scratch file}.
Writer = Callable[[Host, BootFiles, Path, BuildSettings], dict[str, Path]]


@dataclass(frozen=True)
class _Spec:
    name: str
    suffixes: tuple[str, ...]
    writer: Writer
    help: str
    tools: tuple[str, ...]
    files: dict[Path, str]
    rootfs: bool = False


def _builder(spec: _Spec) -> Callable[[System, Outputs, BuildSettings], None]:
    def build(system: System, outputs: Outputs, settings: BuildSettings) -> None:
        check_files(spec.files)
        host = settings.host or Host()
        base = settings.workdir or outputs.directory
        base.mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryDirectory(prefix=".distrokit-format.", dir=base) as name:
            scratch = Path(name)
            with boot_files(system, settings, scratch, rootfs=spec.rootfs) as boot:
                made = spec.writer(host, boot, scratch, settings)
            for suffix in spec.suffixes:
                _stream(made[suffix], outputs.open(outputs.name + suffix))

    return build


def _raw_bios(host: Host, boot: BootFiles, scratch: Path, s: BuildSettings) -> dict[str, Path]:
    raw.write_raw_bios(host, boot, scratch / "out")
    return {"-bios.img": scratch / "out"}


def _raw_efi(host: Host, boot: BootFiles, scratch: Path, s: BuildSettings) -> dict[str, Path]:
    raw.write_raw_efi(host, boot, scratch / "out")
    return {"-efi.img": scratch / "out"}


def _aws(host: Host, boot: BootFiles, scratch: Path, s: BuildSettings) -> dict[str, Path]:
    raw.write_raw_bios(host, boot, scratch / "out", s.size_mb)
    return {".raw": scratch / "out"}


def _converted(kind: str, suffix: str, efi: bool, size: int | None) -> Writer:
    def write(host: Host, boot: BootFiles, scratch: Path, s: BuildSettings) -> dict[str, Path]:
        disk = scratch / "disk.raw"
        mib = s.size_mb if size == -1 else size
        (raw.write_raw_efi if efi else raw.write_raw_bios)(host, boot, disk, mib)
        convert.convert(
            host, disk, scratch / f"out{suffix}", kind, epoch=boot.epoch, seed=boot.seed()
        )
        return {suffix: scratch / f"out{suffix}"}

    return write


def _gcp(host: Host, boot: BootFiles, scratch: Path, s: BuildSettings) -> dict[str, Path]:
    disk = scratch / "disk.raw"
    # Compute Engine wants a whole number of GiB
    raw.write_raw_bios(host, boot, disk, round_up(s.size_mb, GIB_IN_MIB))
    gcp.write_gcp(disk, scratch / "out", boot.epoch)
    return {".img.tar.gz": scratch / "out"}


def _iso(write: Callable[[Host, BootFiles, Path], None], suffix: str) -> Writer:
    def run(host: Host, boot: BootFiles, scratch: Path, s: BuildSettings) -> dict[str, Path]:
        write(host, boot, scratch / "out.iso")
        return {suffix: scratch / "out.iso"}

    return run


def _medium(kind: str) -> Writer:
    def run(host: Host, boot: BootFiles, scratch: Path, s: BuildSettings) -> dict[str, Path]:
        prefix = str(scratch / "out")
        if kind == "squashfs":
            squashfs.write_kernel_squashfs(host, boot, prefix)
            image = ("-squashfs.img", Path(f"{prefix}-squashfs.img"))
        elif kind == "erofs":
            erofs.write_kernel_erofs(host, boot, prefix)
            image = ("-erofs.img", Path(f"{prefix}-erofs.img"))
        else:
            iso.write_root_iso(host, boot, Path(f"{prefix}.iso"))
            squashfs.write_kernel_files(boot, prefix, root=iso.ROOT_LABEL)
            image = (".iso", Path(f"{prefix}.iso"))
        files = {s_: Path(prefix + s_) for s_ in ("-kernel", "-cmdline", "-initrd.img")}
        return {**files, image[0]: image[1]}

    return run


_BIOS = {**raw.BIOS_FILES}
_EFI = {**raw.EFI_FILES}
_SPECS = (
    _Spec(
        "raw-bios",
        ("-bios.img",),
        _raw_bios,
        "MBR disk, syslinux, kernel+initrd (NAME-bios.img)",
        raw.BIOS_TOOLS,
        _BIOS,
    ),
    _Spec(
        "raw-efi",
        ("-efi.img",),
        _raw_efi,
        "GPT disk, ESP with systemd-boot (NAME-efi.img)",
        raw.EFI_TOOLS,
        _EFI,
    ),
    _Spec(
        "aws", (".raw",), _aws, "raw-bios disk of --size for AWS (NAME.raw)", raw.BIOS_TOOLS, _BIOS
    ),
    _Spec(
        "gcp",
        (".img.tar.gz",),
        _gcp,
        "raw-bios disk.raw of --size (whole GiB) in a tar.gz (NAME.img.tar.gz)",
        raw.BIOS_TOOLS,
        _BIOS,
    ),
    _Spec(
        "qcow2-bios",
        (".qcow2",),
        _converted("qcow2", ".qcow2", False, -1),
        "raw-bios disk of --size as qcow2 (NAME.qcow2)",
        (*raw.BIOS_TOOLS, *convert.TOOLS),
        _BIOS,
    ),
    _Spec(
        "qcow2-efi",
        ("-efi.qcow2",),
        _converted("qcow2", "-efi.qcow2", True, None),
        "raw-efi disk as qcow2 (NAME-efi.qcow2)",
        (*raw.EFI_TOOLS, *convert.TOOLS),
        _EFI,
    ),
    _Spec(
        "vmdk",
        (".vmdk",),
        _converted("vmdk", ".vmdk", False, -1),
        "raw-bios disk of --size as stream-optimised vmdk (NAME.vmdk)",
        (*raw.BIOS_TOOLS, *convert.TOOLS),
        _BIOS,
    ),
    _Spec(
        "vhd",
        (".vhd",),
        _converted("vhd", ".vhd", False, -1),
        "raw-bios disk of --size as fixed VHD (NAME.vhd)",
        (*raw.BIOS_TOOLS, *convert.TOOLS),
        _BIOS,
    ),
    _Spec(
        "dynamic-vhd",
        (".vhd",),
        _converted("dynamic-vhd", ".vhd", False, DYNAMIC_VHD_SIZE_MIB),
        "25G raw-bios disk as dynamic VHD (NAME.vhd)",
        (*raw.BIOS_TOOLS, *convert.TOOLS),
        _BIOS,
    ),
    _Spec(
        "iso-bios",
        (".iso",),
        _iso(iso.write_iso_bios, ".iso"),
        "hybrid ISOLINUX ISO, root file system on the ISO (NAME.iso)",
        (*iso.TOOLS,),
        {**iso.BIOS_FILES, **_BUSYBOX},
        rootfs=True,
    ),
    _Spec(
        "iso-efi",
        ("-efi.iso",),
        _iso(iso.write_iso_efi, "-efi.iso"),
        "EFI ISO, root file system on the ISO (NAME-efi.iso)",
        (*iso.TOOLS, *fat.TOOLS),
        {**iso.EFI_FILES, **_BUSYBOX},
        rootfs=True,
    ),
    _Spec(
        "iso-efi-initrd",
        ("-efi-initrd.iso",),
        _iso(iso.write_iso_efi_initrd, "-efi-initrd.iso"),
        "EFI ISO booting kernel+initrd (NAME-efi-initrd.iso)",
        (*iso.TOOLS, *fat.TOOLS),
        dict(iso.EFI_FILES),
    ),
    _Spec(
        "kernel+squashfs",
        ("-kernel", "-cmdline", "-initrd.img", "-squashfs.img"),
        _medium("squashfs"),
        "kernel, root finder initrd, squashfs root (NAME-squashfs.img)",
        squashfs.TOOLS,
        _BUSYBOX,
        rootfs=True,
    ),
    _Spec(
        "kernel+erofs",
        ("-kernel", "-cmdline", "-initrd.img", "-erofs.img"),
        _medium("erofs"),
        "kernel, root finder initrd, erofs root (NAME-erofs.img)",
        erofs.TOOLS,
        _BUSYBOX,
        rootfs=True,
    ),
    _Spec(
        "kernel+iso",
        ("-kernel", "-cmdline", "-initrd.img", ".iso"),
        _medium("iso"),
        "kernel, root finder initrd, root file system ISO (NAME.iso)",
        iso.TOOLS,
        _BUSYBOX,
        rootfs=True,
    ),
)


SPECS: dict[str, _Spec] = {spec.name: spec for spec in _SPECS}


def write_from_files(
    name: str, host: Host, boot: BootFiles, scratch: Path, settings: BuildSettings
) -> dict[str, Path]:
    """Build format `name` from plain files into `scratch`; {output suffix: file}. The
    registered build function does the same from an assembled system."""
    spec = SPECS[name]
    check_files(spec.files)
    host.check_tools(spec.tools)
    return spec.writer(host, boot, scratch, settings)


def _names(spec: _Spec) -> Callable[[str], tuple[str, ...]]:
    def names(name: str) -> tuple[str, ...]:
        return tuple(name + suffix for suffix in spec.suffixes)

    return names


for _spec in _SPECS:
    register(
        Format(
            name=_spec.name,
            files=_names(_spec),
            build=_builder(_spec),
            help=_spec.help,
            tools=_spec.tools,
            host_files=tuple(sorted((str(path), pkg) for path, pkg in _spec.files.items())),
            arches=("amd64",),
        )
    )
