"""The root finder initramfs and the rootfs staging, on small tars made in tmp_path."""

from __future__ import annotations

import gzip
import io
import lzma
import struct
import subprocess
import sys
import tarfile
import zlib
from pathlib import Path

import pytest

from distrokit.errors import BuildError
from distrokit.formats import rootfinder, staging

DEP = (
    "kernel/fs/isofs/isofs.ko: kernel/drivers/cdrom/cdrom.ko\n"
    "kernel/drivers/cdrom/cdrom.ko:\n"
    "kernel/fs/other/other.ko:\n"
)


def _tar(path: Path, entries: list[tuple[str, bytes | None, str | None]]) -> Path:
    with tarfile.open(path, "w") as tar:
        for name, data, link in entries:
            info = tarfile.TarInfo(name)
            info.mtime = 1000
            if link is not None:
                info.type, info.linkname = tarfile.SYMTYPE, link
                tar.addfile(info)
            elif data is None:
                info.type, info.mode = tarfile.DIRTYPE, 0o755
                tar.addfile(info)
            else:
                info.size = len(data)
                tar.addfile(info, io.BytesIO(data))
    return path


def _names(initrd: bytes) -> dict[str, bytes]:
    data = gzip.decompress(initrd)
    out: dict[str, bytes] = {}
    pos = 0
    while True:
        head = data[pos : pos + 110]
        size, namesize = int(head[54:62], 16), int(head[94:102], 16)
        name = data[pos + 110 : pos + 110 + namesize - 1].decode()
        start = pos + 110 + namesize
        start += -start % 4
        if name == "TRAILER!!!":
            return out
        out[name] = data[start : start + size]
        pos = start + size + (-(start + size) % 4)


def test_modules_and_dependencies_in_load_order(tmp_path: Path) -> None:
    rel = "lib/modules/6.1.0-test"
    dep = DEP.replace("cdrom.ko", "cdrom.ko.xz")
    entries: list[tuple[str, bytes | None, str | None]] = [
        (f"{rel}/modules.dep", dep.encode(), None),
        (f"{rel}/kernel/fs/isofs/isofs.ko", b"ISOFS", None),
        (f"{rel}/kernel/drivers/cdrom/cdrom.ko.xz", lzma.compress(b"CDROM"), None),
        (f"{rel}/kernel/fs/other/other.ko", b"OTHER", None),
    ]
    tar = _tar(tmp_path / "root.tar", entries)
    files = _names(rootfinder.rootfinder_initrd(tar, epoch=0, modules=("isofs",)))
    assert (
        files["lib/modules/order"] == b"kernel/drivers/cdrom/cdrom.ko\nkernel/fs/isofs/isofs.ko\n"
    )
    assert files["lib/modules/kernel/drivers/cdrom/cdrom.ko"] == b"CDROM"
    assert "lib/modules/kernel/fs/other/other.ko" not in files
    assert "bin/busybox" in files and files["init"].startswith(b"#!/bin/busybox sh")
    again = rootfinder.rootfinder_initrd(tar, epoch=0, modules=("isofs",))
    assert rootfinder.rootfinder_initrd(tar, epoch=0, modules=("isofs",)) == again


def test_no_modules_means_nothing_to_load(tmp_path: Path) -> None:
    tar = _tar(tmp_path / "root.tar", [("init", b"#!/bin/sh\n", None)])
    files = _names(rootfinder.rootfinder_initrd(tar, epoch=0))
    assert files["lib/modules/order"] == b""


def test_staging_skips_boot_and_refuses_writing_through_symlinks(tmp_path: Path) -> None:
    good = _tar(
        tmp_path / "good.tar",
        [("boot", None, None), ("boot/kernel", b"K", None), ("etc", None, None),
         ("etc/hostname", b"h", None), ("sbin", None, None), ("sbin/init", None, "/bin/busybox")],
    )  # fmt: skip
    root = tmp_path / "root"
    staging.unpack_rootfs(good, root, epoch=5)
    assert not (root / "boot").exists()
    assert (root / "etc/hostname").read_bytes() == b"h"
    assert (root / "sbin/init").is_symlink()
    assert (root / "sbin/init").lstat().st_mtime == 1000
    assert root.stat().st_mtime == 5
    bad = _tar(tmp_path / "bad.tar", [("etc", None, str(tmp_path / "host")), ("etc/x", b"!", None)])
    (tmp_path / "host").mkdir()
    with pytest.raises(BuildError, match="below the symlink"):
        staging.unpack_rootfs(bad, tmp_path / "root2", epoch=5)
    assert not (tmp_path / "host" / "x").exists()


def test_without_modules_dep_reads_depends_from_the_system_only(tmp_path: Path) -> None:
    rel = "lib/modules/6.1.0-test"
    isofs = (f"{rel}/kernel/fs/isofs/isofs.ko", b"\0name=isofs\0depends=cdrom\0", None)
    cdrom = (f"{rel}/kernel/drivers/cdrom/cdrom.ko", b"\0name=cdrom\0depends=\0", None)
    tar = _tar(tmp_path / "root.tar", [isofs, cdrom])
    files = _names(rootfinder.rootfinder_initrd(tar, epoch=0, modules=("isofs",)))
    assert (
        files["lib/modules/order"] == b"kernel/drivers/cdrom/cdrom.ko\nkernel/fs/isofs/isofs.ko\n"
    )
    assert files["lib/modules/kernel/drivers/cdrom/cdrom.ko"].startswith(b"\0name=cdrom")


def test_a_module_the_system_lacks_is_an_error_naming_it(tmp_path: Path) -> None:
    rel = "lib/modules/6.1.0-test"
    isofs = (f"{rel}/kernel/fs/isofs/isofs.ko", b"\0name=isofs\0depends=cdrom\0", None)
    tar = _tar(tmp_path / "root.tar", [isofs])
    # The dependency is missing: however the build machine looks, the system must carry it.
    with pytest.raises(BuildError, match=r"cdrom \(needed by isofs\)") as err:
        rootfinder.rootfinder_initrd(tar, epoch=0, modules=("isofs",))
    assert err.value.hint is not None and "kernel image must carry" in err.value.hint
    with pytest.raises(BuildError, match=r"lacks: squashfs, sr_mod"):
        rootfinder.rootfinder_initrd(tar, epoch=0, modules=("sr_mod", "squashfs"))
    # modules.dep edges count too
    dep = f"{rel}/modules.dep", b"kernel/fs/isofs/isofs.ko: kernel/drivers/cdrom/cdrom.ko\n", None
    with pytest.raises(BuildError, match=r"cdrom \(needed by isofs\)"):
        rootfinder.rootfinder_initrd(
            _tar(tmp_path / "dep.tar", [isofs, dep]), epoch=0, modules=("isofs",)
        )


def test_builtin_modules_need_no_file(tmp_path: Path) -> None:
    rel = "lib/modules/6.1.0-test"
    tar = _tar(
        tmp_path / "root.tar",
        [
            (
                f"{rel}/modules.builtin",
                b"kernel/drivers/cdrom/cdrom.ko\nkernel/fs/ext4/ext4.ko\n",
                None,
            ),
            (f"{rel}/kernel/fs/isofs/isofs.ko", b"\0name=isofs\0depends=cdrom\0", None),
        ],
    )
    files = _names(rootfinder.rootfinder_initrd(tar, epoch=0, modules=("isofs", "ext4")))
    assert files["lib/modules/order"] == b"kernel/fs/isofs/isofs.ko\n"


def _gzip_bomb(size: int) -> bytes:
    """A gzip stream of `size` zero bytes (about size/1000 bytes long)."""
    encoder = zlib.compressobj(9, zlib.DEFLATED, 31)
    zeros = bytes(1 << 20)
    parts = [encoder.compress(zeros) for _ in range(size >> 20)]
    return b"".join(parts) + encoder.flush()


_BOMB_PROBE = """
import resource, sys
from pathlib import Path
from distrokit.errors import BuildError
from distrokit.formats import rootfinder
try:
    rootfinder.rootfinder_initrd(Path(sys.argv[1]), epoch=0, modules=("virtio_blk",))
except BuildError as err:
    print(err)
print(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss // 1024)
"""


def test_a_module_gzip_bomb_is_refused_with_bounded_memory(tmp_path: Path) -> None:
    rel = "lib/modules/6.1.0-test/kernel/drivers/block"
    tar = _tar(tmp_path / "root.tar", [(f"{rel}/virtio_blk.ko.gz", _gzip_bomb(1 << 30), None)])
    # In a process of its own, so its peak memory is the root finder's alone.
    out = subprocess.run(
        [sys.executable, "-c", _BOMB_PROBE, str(tar)],
        capture_output=True, text=True, check=True, timeout=120,
    ).stdout.splitlines()  # fmt: skip
    assert "virtio_blk.ko.gz decompresses to more than 128 MiB" in out[0]
    assert int(out[-1]) < 512, f"peak memory {out[-1]} MiB"


def test_a_truncated_module_is_an_error(tmp_path: Path) -> None:
    rel = "lib/modules/6.1.0-test/kernel"
    data = gzip.compress(b"\0name=isofs\0depends=\0" * 1000)[:-40]
    tar = _tar(tmp_path / "root.tar", [(f"{rel}/isofs.ko.gz", data, None)])
    with pytest.raises(BuildError, match=r"isofs\.ko\.gz cannot be decompressed"):
        rootfinder.rootfinder_initrd(tar, epoch=0, modules=("isofs",))


def _link_tar(path: Path, members: list[tarfile.TarInfo]) -> Path:
    with tarfile.open(path, "w", format=tarfile.PAX_FORMAT) as tar:
        for info in members:
            tar.addfile(info, io.BytesIO(b"x" * info.size) if info.isreg() else None)
    return path


def _info(
    name: str, kind: bytes = tarfile.REGTYPE, link: str = "", size: int = 1
) -> tarfile.TarInfo:
    info = tarfile.TarInfo(name)
    info.type, info.linkname, info.mtime = kind, link, 1000
    info.size = size if kind == tarfile.REGTYPE else 0
    return info


def test_staging_takes_what_tar_and_initrd_take(tmp_path: Path) -> None:
    # A later entry replaces what an earlier one left at its name, even a whole directory.
    tar = _link_tar(
        tmp_path / "over.tar",
        [_info("etc", tarfile.DIRTYPE), _info("etc/a"), _info("etc", size=3),
         _info("x"), _info("x", tarfile.DIRTYPE), _info("x/y")],
    )  # fmt: skip
    root = tmp_path / "root"
    staging.unpack_rootfs(tar, root, epoch=5)
    assert (root / "etc").read_bytes() == b"xxx"
    assert (root / "x" / "y").is_file()


@pytest.mark.parametrize(
    ("members", "message"),
    [
        ([_info("a", tarfile.LNKTYPE, link="missing")], "points at 'missing', which is not an"),
        ([_info("d/" + "n" * 300)], "File name too long"),
    ],
    ids=["hard link to a missing target", "name too long"],
)
def test_staging_refuses_what_no_file_system_holds_with_an_error(
    tmp_path: Path, members: list[tarfile.TarInfo], message: str
) -> None:
    tar = _link_tar(tmp_path / "bad.tar", members)
    with pytest.raises(BuildError, match=message):
        staging.unpack_rootfs(tar, tmp_path / "root", epoch=5)


_SHDR = "<IIQQQQIIQQ"  # an ELF64 section header


def _elf(sections: list[tuple[str, bytes]]) -> bytes:
    """A little-endian ELF64 relocatable object holding `sections` (name, bytes)."""
    names = b"\0" + b"".join(n.encode() + b"\0" for n, _ in sections) + b".shstrtab\0"
    body = bytearray(64)
    offsets = []
    for _, data in sections:
        offsets.append(len(body))
        body += data
    names_at = len(body)
    body += names
    headers = bytearray(64)  # section 0: the null section
    name = 1
    for (label, data), offset in zip(sections, offsets, strict=True):
        headers += struct.pack(_SHDR, name, 1, 0, 0, offset, len(data), 0, 0, 1, 0)
        name += len(label) + 1
    headers += struct.pack(_SHDR, name, 3, 0, 0, names_at, len(names), 0, 0, 1, 0)
    count = len(sections) + 2
    fields = (1, 62, 1, 0, 0, len(body), 0, 64, 0, 0, 64, count, count - 1)
    body[:64] = b"\x7fELF\x02\x01\x01" + bytes(9) + struct.pack("<HHIQQQIHHHHHH", *fields)
    return bytes(body + headers)


def _section_names(elf: bytes) -> list[str]:
    shoff, shnum, shstrndx = struct.unpack_from("<Q", elf, 0x28)[0], elf[0x3C], elf[0x3E]
    table = struct.unpack_from(_SHDR, elf, shoff + shstrndx * 64)[4]
    out = []
    for i in range(1, shnum):
        at = table + struct.unpack_from(_SHDR, elf, shoff + i * 64)[0]
        out.append(elf[at : elf.index(b"\0", at)].decode())
    return out


def _signed(data: bytes) -> bytes:
    signature = b"S" * 300
    info = bytes([0, 0, 2, 0, 0, 0, 0, 0]) + len(signature).to_bytes(4, "big")
    return data + signature + info + rootfinder.SIG_MAGIC


def test_lean_module_drops_the_signature_and_hides_the_btf() -> None:
    elf = _elf([(".text", b"\x90" * 32), (".BTF", b"\x9f\xeb" * 40), (".modinfo", b"x=1\0")])
    assert _section_names(elf) == [".text", ".BTF", ".modinfo", ".shstrtab"]
    lean = rootfinder.lean_module(_signed(elf))
    assert len(lean) == len(elf)
    # the kernel finds module BTF by the name ".BTF": the section keeps its bytes, not its name
    assert _section_names(lean) == [".text", "", ".modinfo", ".shstrtab"]
    assert lean.count(b"\x9f\xeb" * 40) == 1
    changed = [i for i in range(len(elf)) if elf[i] != lean[i]]
    assert len(changed) <= 4  # one sh_name, nothing else moved
    # a module without BTF only loses its signature; anything not ELF64 LE is left as it is
    plain = _elf([(".text", b"\x90")])
    assert rootfinder.lean_module(_signed(plain)) == plain
    assert rootfinder.lean_module(b"not an ELF") == b"not an ELF"


def test_lean_initrd_writes_lean_modules(tmp_path: Path) -> None:
    rel = "lib/modules/6.1.0-test"
    module = _signed(_elf([(".BTF", b"btf"), (".modinfo", b"depends=\0")]))
    tar = _tar(tmp_path / "root.tar", [(f"{rel}/kernel/fs/a/a.ko", module, None)])
    files = _names(rootfinder.rootfinder_initrd(tar, epoch=0, modules=("a",), lean=True))
    assert files["lib/modules/kernel/fs/a/a.ko"] == rootfinder.lean_module(module) != module
    files = _names(rootfinder.rootfinder_initrd(tar, epoch=0, modules=("a",)))
    assert files["lib/modules/kernel/fs/a/a.ko"] == module
