"""The early initramfs for formats whose root file system lives on the medium.

LinuxKit's kernel has its disk, CD and file-system drivers built in and mounts ``root=/dev/sr0``
or ``root=/dev/sda`` itself. Debian's kernel has them as modules, so those formats carry this
small initramfs: busybox (from the host's busybox-static), the modules the root needs with their
dependencies and a script that loads them, waits for the ``root=`` device (a path, ``LABEL=``
or ``UUID=``), mounts it read-only under a RAM overlay, moves /dev over and ``switch_root``s
into the system's ``/init`` (or ``/sbin/init``). The system's init sees a non-ramfs root and
skips its tmpfs copy.

Modules come only from the system's own ``lib/modules`` in the rootfs tar (what the kernel
image's kernel.tar put there), never from the build machine, so the output depends on the
system alone and always matches its kernel. Dependencies come from its modules.dep (pkg/kernel's
is made when the package is built), else from each module's ``depends=``. A wanted module (or a
dependency) that is neither there nor listed in modules.builtin is a BuildError naming it: the
kernel image must carry it.
A system with no lib/modules at all (a kernel with everything built in) loads nothing.
"""

from __future__ import annotations

import gzip
import lzma
import re
import shutil
import stat
import tarfile
import zlib
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath

from distrokit.errors import BuildError
from distrokit.formats.cpio import cpio_header, pad4, trailer
from distrokit.formats.disk import BootFiles, atomic_output
from distrokit.formats.registry import BuildSettings
from distrokit.host import Host

BUSYBOX = Path("/bin/busybox")
BUSYBOX_PACKAGE = "busybox-static"
# What the root finder copies from the host, for the formats' host file checks.
HOST_FILES = {BUSYBOX: BUSYBOX_PACKAGE}
# The files next to a root image: kernel, command line, root finder initrd.
KERNEL_SUFFIXES = ("-kernel", "-cmdline", "-initrd.img")
# Controllers, buses and file systems a root medium may need under QEMU and on common hardware.
ROOT_MODULES = (
    "virtio_pci",
    "virtio_blk",
    "virtio_scsi",
    "ahci",
    "ata_piix",
    "sd_mod",
    "sr_mod",
    "isofs",
    "squashfs",
    # libcrc32c finds its implementation through the crypto API, not modules.dep
    "crc32c_generic",
    "erofs",
    "ext4",
    "vfat",
    "overlay",
)
# The most one module file (or its modules.* index) may take, compressed or not: the largest
# in-tree module (amdgpu) is under 20 MiB; a .ko.gz that inflates to GiBs must not fill memory.
MAX_MODULE_BYTES = 128 << 20
_EPOCH_DIRS = ("bin", "dev", "lib", "medium", "mnt", "proc", "root", "rw", "sys")

# The start of every initramfs /init made here (the root finder's, the VM init's): applet
# links, /dev, the console, /proc, /sys. The modules to load are in lib/modules/order, in the
# order written at build time.
PRELUDE = r"""/bin/busybox --install -s /bin
export PATH=/bin
mount -t devtmpfs -o mode=0755 devtmpfs /dev
exec 0</dev/console 1>/dev/console 2>&1
mount -t proc proc /proc
mount -t sysfs sysfs /sys
"""

INIT = r"""#!/bin/busybox sh
# distrokit root finder: load the root medium's drivers, mount it, switch_root into it.
@PRELUDE@while read -r mod; do insmod "/lib/modules/$mod" 2>/dev/null; done </lib/modules/order
root=; fstype=
for arg in $(cat /proc/cmdline); do
    case "$arg" in
    root=*) root="${arg#root=}" ;;
    rootfstype=*) fstype="-t ${arg#rootfstype=}" ;;
    esac
done
[ -n "$root" ] || root=/dev/sr0
mdev -s
i=0
while :; do
    case "$root" in
    LABEL=* | UUID=*) dev=$(findfs "$root" 2>/dev/null) ;;
    *) dev=$root ;;
    esac
    if [ -n "$dev" ] && [ -b "$dev" ] && mount -o ro $fstype "$dev" /medium 2>/dev/null; then
        break
    fi
    i=$((i + 1))
    if [ "$i" -ge 300 ]; then
        echo "distrokit: root device $root not found" >&2
        exec sh
    fi
    sleep 0.1
    mdev -s
done
# A RAM overlay makes the read-only medium writable. The init image carries its busybox applet
# links, but the system still writes to / at boot: mount points and container state are made
# on the fly (and rc.init runs depmod into /lib/modules for a kernel image without modules.dep;
# pkg/kernel's has one). Without overlayfs the medium itself becomes the root.
mount -t tmpfs -o mode=0755 tmpfs /rw
mkdir -p /rw/upper /rw/work
if ! mount -t overlay -o lowerdir=/medium,upperdir=/rw/upper,workdir=/rw/work overlay /root; then
    mount --move /medium /root
fi
init=/sbin/init
[ -x /root/init ] && init=/init
umount /sys
umount /proc
mount --move /dev /root/dev 2>/dev/null || umount /dev
exec switch_root /root "$init"
""".replace("@PRELUDE@", PRELUDE)


@dataclass
class _Newc:
    """The root finder's cpio: a handful of small files, built in memory from the project's
    newc records (the system initrd streams its own through the same encoder)."""

    out: bytearray = field(default_factory=bytearray)
    ino: int = 721
    epoch: int = 0

    def entry(self, name: str, mode: int, data: bytes = b"") -> None:
        nlink = 2 if stat.S_ISDIR(mode) else 1
        self.out += cpio_header(
            name, mode, ino=self.ino, nlink=nlink, mtime=self.epoch, size=len(data)
        )
        self.out += data + pad4(len(data))
        self.ino += 1

    def finish(self) -> bytes:
        self.out += trailer(mtime=self.epoch)
        return bytes(self.out.ljust(-(-len(self.out) // 512) * 512, b"\0"))


def _module_tree(tar: tarfile.TarFile) -> tuple[str, dict[str, tarfile.TarInfo]] | None:
    """The kernel release and its module files from the rootfs tar (None: no modules)."""
    files: dict[str, tarfile.TarInfo] = {}
    releases: set[str] = set()
    for member in tar:
        parts = PurePosixPath(member.name.lstrip("/").removeprefix("./")).parts
        if len(parts) >= 4 and parts[:2] == ("lib", "modules") and member.isfile():
            releases.add(parts[2])
            files["/".join(parts[2:])] = member
    if not releases:
        return None
    release = sorted(releases)[-1]
    return release, {k.split("/", 1)[1]: v for k, v in files.items() if k.startswith(release)}


def _base(mod: str) -> str:
    return PurePosixPath(mod).name.split(".ko")[0].replace("-", "_")


def _closure(deps: dict[str, list[str]], wanted: Iterable[str]) -> list[str]:
    by_name = {_base(mod): mod for mod in deps}
    order: list[str] = []

    def visit(mod: str) -> None:
        if mod in order:
            return
        for dep in deps.get(mod, []):
            visit(dep)
        order.append(mod)

    for name in wanted:
        if name in by_name:
            visit(by_name[name])
    return order


def _inflate(name: str, data: bytes, decoder: zlib._Decompress | lzma.LZMADecompressor) -> bytes:
    """Decompress `data` without ever holding more than `MAX_MODULE_BYTES` of output."""
    try:
        out = decoder.decompress(data, MAX_MODULE_BYTES + 1)
    except (zlib.error, lzma.LZMAError) as err:
        raise BuildError(f"module {name} cannot be decompressed: {err}") from err
    if len(out) > MAX_MODULE_BYTES:
        raise BuildError(
            f"module {name} decompresses to more than {MAX_MODULE_BYTES >> 20} MiB",
            hint="a kernel module is a few MiB at most: the kernel image is damaged or hostile",
        )
    if not decoder.eof:
        raise BuildError(f"module {name} cannot be decompressed: the stream is truncated")
    return out


def _decompress(name: str, data: bytes) -> tuple[str, bytes]:
    # busybox insmod reads plain .ko files only.
    if name.endswith(".ko.xz"):
        return name.removesuffix(".xz"), _inflate(name, data, lzma.LZMADecompressor())
    if name.endswith(".ko.gz"):
        return name.removesuffix(".gz"), _inflate(name, data, zlib.decompressobj(31))
    if name.endswith(".ko.zst"):
        raise BuildError(f"module {name} is zstd-compressed; the root finder needs .ko or .ko.xz")
    return name, data


def _read(tar: tarfile.TarFile, member: tarfile.TarInfo) -> bytes:
    if member.size > MAX_MODULE_BYTES:
        raise BuildError(
            f"rootfs tar entry {member.name} is larger than {MAX_MODULE_BYTES >> 20} MiB",
            hint="a kernel module is a few MiB at most: the kernel image is damaged or hostile",
        )
    f = tar.extractfile(member)
    if f is None:
        raise BuildError(f"rootfs tar entry {member.name} has no data")
    return f.read()


def _parse_dep(text: str) -> dict[str, list[str]]:
    deps: dict[str, list[str]] = {}
    for line in text.splitlines():
        mod, _, rest = line.partition(":")
        deps[mod] = rest.split()
    return deps


def _modinfo_deps(data: bytes) -> list[str]:
    """Module names from the ``depends=`` field of a module's .modinfo section."""
    match = re.search(rb"(?:^|\0)depends=([^\0]*)\0", data)
    names = match.group(1).decode() if match else ""
    return [n.replace("-", "_") for n in names.split(",") if n]


SIG_MAGIC = b"~Module signature appended~\n"
_SIG_INFO = 12  # struct module_signature: 8 bytes of ids and lengths, then sig_len (big-endian)


def lean_module(data: bytes) -> bytes:
    """`data` (a plain .ko) without what costs at load time and a VM does not use: the
    appended signature (hashed and verified at every load; the kernel loads an unsigned module
    unless it enforces signatures) and the module's BTF (type information for BPF tools,
    parsed and checked at every load: ext4's is 140 KiB, a third of its load time under
    emulation). The kernel finds BTF by the section name ``.BTF``; the section keeps its bytes
    and loses its name (an empty name is ignored), so no offset in the file moves. Anything
    but a little-endian ELF64 comes back unsigned and otherwise unchanged."""
    if data.endswith(SIG_MAGIC):
        end = len(data) - len(SIG_MAGIC)
        sig_len = int.from_bytes(data[end - 4 : end], "big")
        start = end - _SIG_INFO - sig_len
        if start > 0:
            data = data[:start]
    if len(data) < 64 or data[:6] != b"\x7fELF\x02\x01":
        return data
    out = bytearray(data)
    shoff = int.from_bytes(data[0x28:0x30], "little")
    shentsize = int.from_bytes(data[0x3A:0x3C], "little")
    shnum = int.from_bytes(data[0x3C:0x3E], "little")
    shstrndx = int.from_bytes(data[0x3E:0x40], "little")
    if shentsize < 64 or shoff + shnum * shentsize > len(data) or shstrndx >= shnum:
        return data

    def header(index: int) -> int:
        return shoff + index * shentsize

    strings = header(shstrndx)
    str_off = int.from_bytes(data[strings + 0x18 : strings + 0x20], "little")
    for index in range(1, shnum):
        name = str_off + int.from_bytes(data[header(index) : header(index) + 4], "little")
        if data[name : name + 5] == b".BTF\0":
            out[header(index) : header(index) + 4] = bytes(4)  # offset 0: the empty name
    return bytes(out)


@dataclass
class _Modules:
    """The module files of the system's own kernel (from its rootfs tar) and their dependencies.

    ``missing`` maps a module name that a dependency names but the tree lacks to the modules
    that need it; ``builtin`` holds the names modules.builtin lists (nothing to load)."""

    release: str = ""
    data: dict[str, bytes] = field(default_factory=dict)
    deps: dict[str, list[str]] = field(default_factory=dict)
    builtin: set[str] = field(default_factory=set)
    missing: dict[str, list[str]] = field(default_factory=dict)


def _gather(tar: tarfile.TarFile) -> _Modules | None:
    # Only the system's own tree: modules taken from the build machine would make the output
    # depend on it (and on its kernel release).
    found = _module_tree(tar)
    if found is None:
        return None
    release, files = found
    mods = _Modules(release=release)
    for rel, member in files.items():
        if ".ko" in PurePosixPath(rel).name:
            mods.data[rel] = _read(tar, member)
    if "modules.builtin" in files:
        lines = _read(tar, files["modules.builtin"]).decode().split()
        mods.builtin = {_base(line) for line in lines}
    if "modules.dep" in files:
        deps = _parse_dep(_read(tar, files["modules.dep"]).decode())
        mods.deps = {rel: [d for d in dep if d in mods.data] for rel, dep in deps.items()}
        for rel, dep in deps.items():
            if rel in mods.data:
                for d in dep:
                    if d not in mods.data:
                        mods.missing.setdefault(_base(d), []).append(_base(rel))
    # pkg/kernel's modules.dep is made at build time (kmod's depmod, every dependency listed,
    # paths relative to the release directory as the keys here). A kernel image without one,
    # or a module it does not list, falls back on the module's depends=.
    by_name = {_base(rel): rel for rel in mods.data}
    for rel, data in mods.data.items():
        if rel not in mods.deps:
            names = _modinfo_deps(_decompress(rel, data)[1])
            mods.deps[rel] = [by_name[n] for n in names if n in by_name]
            for n in names:
                if n not in by_name and n not in mods.builtin:
                    mods.missing.setdefault(n, []).append(_base(rel))
    return mods


def _check_complete(mods: _Modules, wanted: Iterable[str], order: list[str]) -> None:
    """Raise a BuildError naming every wanted module (or dependency) the system lacks."""
    present = {_base(rel) for rel in mods.data} | mods.builtin
    lacking = sorted(name for name in wanted if name not in present)
    loaded = {_base(rel) for rel in order}
    for dep, users in sorted(mods.missing.items()):
        needed_by = sorted(set(users) & loaded)
        if needed_by:
            lacking.append(f"{dep} (needed by {', '.join(needed_by)})")
    if lacking:
        raise BuildError(
            f"the root finder needs kernel modules the system's lib/modules/{mods.release} "
            f"lacks: {', '.join(lacking)}",
            hint="the kernel image must carry them (in its kernel.tar) or have them built in",
        )


def _add_modules(cpio: _Newc, rootfs: Path, wanted: Iterable[str], lean: bool) -> None:
    wanted = tuple(wanted)
    with tarfile.open(rootfs, "r:*") as tar:
        mods = _gather(tar)
    if mods is None:
        cpio.entry("lib/modules/order", 0o100644)
        return
    order = _closure(mods.deps, wanted)
    _check_complete(mods, wanted, order)
    made: set[str] = set()
    names = []
    for mod in order:
        name, data = _decompress(mod, mods.data[mod])
        if lean:
            data = lean_module(data)
        for parent in list(PurePosixPath(name).parents)[-2::-1]:
            if str(parent) not in made:
                made.add(str(parent))
                cpio.entry(f"lib/modules/{parent}", 0o040755)
        cpio.entry(f"lib/modules/{name}", 0o100644, data)
        names.append(name)
    cpio.entry("lib/modules/order", 0o100644, "".join(f"{n}\n" for n in names).encode())


def rootfinder_initrd(
    rootfs: Path,
    *,
    epoch: int,
    modules: Iterable[str] = ROOT_MODULES,
    init: str = INIT,
    programs: Mapping[str, str] | None = None,
    compress: bool = True,
    lean: bool = False,
) -> bytes:
    """The gzip'd newc initramfs that finds and mounts the root medium (see module docstring).

    `init` replaces the root finder's script and `programs` adds scripts (path -> text): the
    VM init (`distrokit.vm`) is the same busybox and modules with its own /init, uncompressed
    (`compress` off: inflating under TCG costs more than loading a few more MiB) and `lean`
    modules (`lean_module`)."""
    cpio = _Newc(epoch=epoch)
    for d in _EPOCH_DIRS:
        cpio.entry(d, 0o040755)
    cpio.entry("lib/modules", 0o040755)
    _add_modules(cpio, rootfs, modules, lean)
    cpio.entry("bin/busybox", 0o100755, BUSYBOX.read_bytes())
    cpio.entry("init", 0o100755, init.encode())
    for name, text in sorted((programs or {}).items()):
        cpio.entry(name.lstrip("/"), 0o100755, text.encode())
    if not compress:
        return cpio.finish()
    return gzip.compress(cpio.finish(), compresslevel=9, mtime=0)


def with_root(cmdline: str, root: str) -> str:
    """`cmdline` plus ``root=`` unless it names one already."""
    if any(arg.startswith("root=") for arg in cmdline.split()):
        return cmdline
    return f"{cmdline} root={root}".strip()


def write_kernel_files(
    boot: BootFiles, out: Mapping[str, Path], *, root: str | None = None
) -> None:
    """NAME-kernel, NAME-cmdline and NAME-initrd.img (the root finder) for a medium root, at
    ``out[suffix]`` for each of `KERNEL_SUFFIXES`."""
    cmdline = boot.cmdline if root is None else with_root(boot.cmdline, root)
    with atomic_output(out["-kernel"]) as tmp:
        shutil.copyfile(boot.kernel, tmp)
    with atomic_output(out["-cmdline"]) as tmp:
        tmp.write_text(cmdline + "\n")
    with atomic_output(out["-initrd.img"]) as tmp:
        tmp.write_bytes(rootfinder_initrd(boot.root_tar(), epoch=boot.epoch))


def beside_kernel(
    write_image: Callable[[Host, BootFiles, Path], None], suffix: str, *, root: str | None = None
) -> Callable[[Host, BootFiles, Mapping[str, Path], Path, BuildSettings], None]:
    """The writer of a kernel+MEDIUM format: the root image (`write_image` at NAME`suffix`)
    and, beside it, NAME-kernel, NAME-cmdline (with `root`) and the root finder initrd."""

    def writer(
        host: Host, boot: BootFiles, out: Mapping[str, Path], scratch: Path, s: BuildSettings
    ) -> None:
        write_image(host, boot, out[suffix])
        write_kernel_files(boot, out, root=root)

    return writer
