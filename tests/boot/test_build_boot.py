"""`distrokit build -format kernel+initrd` output boots under plain QEMU (TCG) to a marker.

The system is made here: the host's Debian kernel (with overlay.ko in kernel.tar), an init
image of busybox-static + runc (with its shared-library closure from ldd) + a small /init that
sets up each onboot bundle's overlay as runtime.json describes and runs it with
``runc run --no-pivot`` (pivot_root does not work on the initramfs), and an onboot busybox
image whose command prints the marker. The second build changes one ``files:`` entry and
reuses the cached segments of everything else, which checks that the kernel accepts a
concatenation of separately compressed cpio segments.
"""

from __future__ import annotations

import io
import re
import select
import subprocess
import tarfile
import time
from collections.abc import Iterable
from pathlib import Path
from types import MappingProxyType

import pytest
from hosttools import require_tools

from distrokit.cli import main
from distrokit.host import Host
from distrokit.oci.cache import Cache
from distrokit.oci.image import ImageConfigBlob, Platform

MARKER = "DISTROKIT-ONBOOT-MARKER"
PLATFORM = Platform("linux", "amd64")
BOOT_TIMEOUT = 120.0

INIT = """#!/bin/busybox sh
/bin/busybox mkdir -p /proc /sys /dev /run /tmp
/bin/busybox --install -s /bin
mount -t proc proc /proc
mount -t sysfs sysfs /sys
mount -t devtmpfs devtmpfs /dev
mount -t cgroup2 cgroup2 /sys/fs/cgroup
insmod /lib/modules/*/kernel/fs/overlayfs/overlay.ko* && grep -q overlay /proc/filesystems \\
  && echo DISTROKIT-OVERLAY-LOADED
for d in /containers/onboot/*; do
  lower=$(sed -n 's/.*"lowerdir=\\([^"]*\\)".*/\\1/p' "$d/runtime.json")
  mount -t tmpfs tmpfs "$d/tmp"
  mkdir -p "$d/tmp/upper" "$d/tmp/work"
  mount -t overlay overlay \\
    -o "lowerdir=$lower,upperdir=$d/tmp/upper,workdir=$d/tmp/work" "$d/rootfs"
  runc --root /run/runc run --no-pivot --bundle "$d" "$(basename "$d")" </dev/null
done
echo "FILES-ENTRY: $(cat /etc/distrokit-test)"
poweroff -f
"""


def _tar(path: Path, files: Iterable[tuple[str, bytes | str, int]]) -> Path:
    """A tar of (name, content or symlink target via '->', mode) with parent dirs."""
    with tarfile.open(path, "w", format=tarfile.PAX_FORMAT) as tar:
        dirs: set[str] = set()
        for name, content, mode in files:
            parts = name.split("/")[:-1]
            for i in range(1, len(parts) + 1):
                d = "/".join(parts[:i])
                if d not in dirs:
                    dirs.add(d)
                    info = tarfile.TarInfo(d)
                    info.type, info.mode = tarfile.DIRTYPE, 0o755
                    tar.addfile(info)
            info = tarfile.TarInfo(name)
            info.mode = mode
            if isinstance(content, str):
                info.type, info.linkname = tarfile.SYMTYPE, content
                tar.addfile(info)
            else:
                info.size = len(content)
                tar.addfile(info, io.BytesIO(content))
    return path


def _closure(binary: str) -> list[str]:
    """The binary plus every shared library ldd lists for it (and the loader)."""
    out = Host().output(["ldd", binary])
    found = [binary]
    for line in out.splitlines():
        match = re.search(r"(/\S+) \(0x", line)
        if match:
            found.append(match.group(1))
    return found


def _make_images(tmp: Path, cache: Cache) -> None:
    kernel = sorted(Path("/boot").glob("vmlinuz-*"))[-1]
    release = kernel.name.removeprefix("vmlinuz-")
    overlay = next(Path(f"/lib/modules/{release}/kernel/fs/overlayfs").glob("overlay.ko*"))
    mod_tar = _tar(
        tmp / "kernel.tar",
        [
            (
                f"lib/modules/{release}/kernel/fs/overlayfs/{overlay.name}",
                overlay.read_bytes(),
                0o644,
            ),
        ],
    )
    klayer = _tar(
        tmp / "klayer.tar",
        [("kernel", kernel.read_bytes(), 0o644), ("kernel.tar", mod_tar.read_bytes(), 0o644)],
    )
    cache.add_image("example.org/test/kernel:boot", [klayer], ImageConfigBlob(), PLATFORM)
    runc = Host().which("runc")
    busybox = Path(Host().which("busybox")).read_bytes()
    init_files: list[tuple[str, bytes | str, int]] = [
        ("bin/busybox", busybox, 0o755),
        ("bin/sh", "busybox", 0o777),
        ("init", INIT.encode(), 0o755),
    ]
    for path in _closure(runc):
        init_files.append((path.lstrip("/"), Path(path).resolve().read_bytes(), 0o755))
    ilayer = _tar(tmp / "ilayer.tar", init_files)
    cache.add_image("example.org/test/init:boot", [ilayer], ImageConfigBlob(), PLATFORM)
    blayer = _tar(tmp / "blayer.tar", [("bin/busybox", busybox, 0o755)])
    cache.add_image(
        "example.org/test/hello:boot",
        [blayer],
        ImageConfigBlob(cmd=("/bin/busybox", "echo", "default"), labels=MappingProxyType({})),
        PLATFORM,
    )


YAML = """kernel:
  image: example.org/test/kernel:boot
  cmdline: console=ttyS0 panic=-1
init:
  - example.org/test/init:boot
onboot:
  - name: hello
    image: example.org/test/hello:boot
    command: ["/bin/busybox", "sh", "-c", "echo {marker}-$((6*7))"]
files:
  - path: etc/distrokit-test
    contents: "{content}"
    mode: "0644"
"""


def _boot(prefix: Path, want: list[str]) -> str:
    """Boot NAME-kernel/-initrd.img/-cmdline; return the console output once `want` is seen."""
    cmdline = Path(f"{prefix}-cmdline").read_text()
    argv = [
        "qemu-system-x86_64",
        "-accel",
        "tcg",
        "-m",
        "512",
        "-nographic",
        "-no-reboot",
        "-kernel",
        f"{prefix}-kernel",
        "-initrd",
        f"{prefix}-initrd.img",
        "-append",
        cmdline,
    ]
    proc = Host().popen(
        argv, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.STDOUT
    )
    output = b""
    try:
        assert proc.stdout is not None
        deadline = time.monotonic() + BOOT_TIMEOUT
        while time.monotonic() < deadline:
            ready, _, _ = select.select([proc.stdout], [], [], 1.0)
            if ready:
                chunk = proc.stdout.read1(65536)  # type: ignore[attr-defined]
                if not chunk:
                    break
                output += chunk
                text = output.decode(errors="replace")
                if all(w in text for w in want):
                    return text
        pytest.fail("marker not seen; console output:\n" + output.decode(errors="replace")[-4000:])
    finally:
        proc.kill()
        proc.wait(timeout=30)


def _build(yml: Path, cache: Path, out: Path, *extra: str) -> None:
    code = main(
        [
            "build",
            "-format",
            "kernel+initrd",
            "--cache",
            str(cache),
            "-dir",
            str(out),
            *extra,
            str(yml),
        ]
    )
    assert code == 0


@pytest.mark.parametrize("compress", ["gzip", "zstd"])
def test_kernel_initrd_boots_to_onboot_marker(
    tmp_path: Path, compress: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    require_tools("qemu-system-x86_64", "busybox", "runc", "ldd")
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    cache = Cache(tmp_path / "cache")
    _make_images(tmp_path, cache)
    yml = tmp_path / "boot.yml"
    yml.write_text(YAML.format(marker=MARKER, content="first"))
    out = tmp_path / "out"
    _build(yml, cache.root, out, "--compress", compress)
    text = _boot(out / "boot", [f"{MARKER}-42", "FILES-ENTRY: first", "DISTROKIT-OVERLAY-LOADED"])
    assert "FILES-ENTRY: first" in text
    if compress != "gzip":
        return
    # Rebuild after changing one files: entry: every other segment comes from the cache.
    yml.write_text(YAML.format(marker=MARKER, content="second"))
    _build(yml, cache.root, out)
    segments = list((tmp_path / "xdg" / "distrokit" / "build" / "segments").glob("*.seg"))
    assert len(segments) >= 3  # kernel modules, init, onboot image
    _boot(out / "boot", [f"{MARKER}-42", "FILES-ENTRY: second"])
