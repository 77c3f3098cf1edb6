"""Small test systems for boot tests: the host's Debian kernel plus an initramfs made here.

The initramfs holds busybox-static, the virtio modules (with their dependencies from
modules.dep, loaded in order with insmod: the Debian kernel has virtio, virtio_mmio,
virtio_blk and virtio_net as modules) and an /init script that prints a marker, runs the test's
body and powers off. Files are named NAME-kernel, NAME-initrd.img and NAME-cmdline, so
`distrokit run qemu NAME` boots them.
"""

from __future__ import annotations

import os
import select
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from distrokit.host import Host

MARKER = "DISTROKIT-GUEST-UP"
BUSYBOX = Path("/bin/busybox")
CMDLINE = "console=ttyS0 quiet rdinit=/init panic=-1"
# Load order matters: insmod does not resolve dependencies.
WANTED_MODULES = ("virtio_mmio", "virtio_pci", "virtio_blk", "virtio_net")


def host_kernel() -> tuple[Path, str]:
    """The newest Debian kernel in /boot and its release."""
    kernels = sorted(Path("/boot").glob("vmlinuz-*"))
    assert kernels, "no /boot/vmlinuz-* (install linux-image-amd64)"
    release = kernels[-1].name.removeprefix("vmlinuz-")
    return kernels[-1], release


def module_order(release: str, wanted: tuple[str, ...] = WANTED_MODULES) -> list[str]:
    """Paths (relative to /lib/modules/RELEASE) of `wanted` and their deps, deps first."""
    deps: dict[str, list[str]] = {}
    for line in (Path("/lib/modules") / release / "modules.dep").read_text().splitlines():
        mod, _, rest = line.partition(":")
        deps[mod] = rest.split()
    by_name = {Path(m).name.removesuffix(".ko"): m for m in deps}
    order: list[str] = []

    def visit(mod: str) -> None:
        if mod in order:
            return
        for dep in deps[mod]:
            visit(dep)
        order.append(mod)

    for name in wanted:
        visit(by_name[name])
    return order


@dataclass
class _Cpio:
    """A minimal newc cpio writer (the kernel's initramfs format)."""

    out: bytearray = field(default_factory=bytearray)
    ino: int = 1

    def _entry(self, name: str, mode: int, data: bytes = b"") -> None:
        fields = [self.ino, mode, 0, 0, 1, 0, len(data), 0, 0, 0, 0, len(name) + 1, 0]
        header = b"070701" + b"".join(f"{v:08X}".encode() for v in fields)
        self.out += header + name.encode() + b"\0"
        self.out += b"\0" * (-len(self.out) % 4) + data
        self.out += b"\0" * (-len(self.out) % 4)
        self.ino += 1

    def directory(self, name: str) -> None:
        self._entry(name, 0o040755)

    def file(self, name: str, data: bytes, mode: int = 0o644) -> None:
        self._entry(name, 0o100000 | mode, data)

    def finish(self) -> bytes:
        self._entry("TRAILER!!!", 0)
        return bytes(self.out)


def init_script(body: str, modules: list[str], release: str) -> str:
    """The guest's /init: mount, load modules, print the marker, run `body`, power off."""
    loads = "\n".join(f"insmod /lib/modules/{release}/{m}" for m in modules)
    return f"""#!/bin/busybox sh
/bin/busybox --install -s /bin
export PATH=/bin
mount -t proc proc /proc
mount -t sysfs sys /sys
mount -t devtmpfs dev /dev
{loads}
echo "{MARKER} $(cut -d' ' -f1 /proc/uptime)"
{body}
poweroff -f
"""


def make_guest(
    directory: Path,
    name: str,
    body: str = "",
    extra_files: dict[str, bytes] | None = None,
    modules: tuple[str, ...] = WANTED_MODULES,
) -> str:
    """Write NAME-kernel, NAME-initrd.img and NAME-cmdline into `directory`; return the prefix.

    `body` runs in /init after the marker; `modules` (names) are loaded with their deps."""
    kernel, release = host_kernel()
    modules_ = module_order(release, modules)
    cpio = _Cpio()
    for d in ("bin", "dev", "proc", "sys", "tmp", "www", "mnt", "lib", "lib/modules"):
        cpio.directory(d)
    dirs = sorted({str(Path(m).parent) for m in modules_})
    made: set[str] = set()
    for d in dirs:
        parts = Path(f"lib/modules/{release}/{d}").parts
        for i in range(3, len(parts) + 1):
            sub = "/".join(parts[:i])
            if sub not in made:
                made.add(sub)
                cpio.directory(sub)
    for mod in modules_:
        cpio.file(
            f"lib/modules/{release}/{mod}", (Path("/lib/modules") / release / mod).read_bytes()
        )
    cpio.file("bin/busybox", BUSYBOX.read_bytes(), 0o755)
    for path, data in sorted((extra_files or {}).items()):
        cpio.file(path, data)
    cpio.file("init", init_script(body, modules_, release).encode(), 0o755)
    prefix = directory / name
    shutil.copyfile(kernel, f"{prefix}-kernel")
    Path(f"{prefix}-initrd.img").write_bytes(cpio.finish())
    Path(f"{prefix}-cmdline").write_text(CMDLINE + "\n")
    return str(prefix)


@dataclass
class Boot:
    """A running `distrokit run qemu` (as a real subprocess) and what it has printed."""

    proc: subprocess.Popen[bytes]
    started: float
    output: bytearray = field(default_factory=bytearray)
    typed: int = 0
    # where the console line that has not ended yet starts in `output`
    _line_start: int = field(default=0, init=False, repr=False)

    def wait_for(self, text: str, timeout: float) -> float:
        """Read the console until `text` appears; seconds since start. Fails on exit/timeout."""
        self.wait_until(lambda: text.encode() in self.output, timeout, repr(text))
        return time.monotonic() - self.started

    def wait_until(
        self,
        done: Callable[[], bool],
        timeout: float,
        what: str,
        on_line: Callable[[float, str], None] | None = None,
    ) -> None:
        """Read the console until `done()` is true (asked after every read, and at least every
        20 ms while the console is quiet); fails when the VM ends or `timeout` passes first,
        naming `what` it waited for. `on_line(at, line)` is called for each console line that
        ends during the call (without its line end), `at` being the seconds since start at
        which the chunk that ended it arrived."""
        assert self.proc.stdout is not None
        deadline = time.monotonic() + timeout
        fd = self.proc.stdout.fileno()
        os.set_blocking(fd, False)
        while not done():
            if time.monotonic() > deadline:
                raise AssertionError(f"no {what} within {timeout}s; output:\n{self.text()}")
            # select wakes on the first byte, so a line's arrival time is not a poll late
            if not select.select([fd], [], [], 0.02)[0]:
                continue
            try:
                chunk = os.read(fd, 65536)
            except BlockingIOError:
                continue
            if not chunk:
                raise AssertionError(f"VM ended before {what}; output:\n{self.text()}")
            at = time.monotonic() - self.started
            self.output += chunk
            end = self.output.rfind(b"\n")
            if end < self._line_start:
                continue
            lines = self.output[self._line_start : end].split(b"\n")
            self._line_start = end + 1
            if on_line is not None:
                for line in lines:
                    on_line(at, line.decode(errors="replace").strip("\r"))

    def shell(self, command: str, timeout: float = 120) -> str:
        """Type `command` into the root shell on the guest's console (a getty with
        INSECURE=true; `start(..., console_input=True)`) and return what the console printed
        until it finished. The end marker is computed by the guest's shell, so the echoed
        input never matches it; the line is typed again every 15 s until the shell answers
        (the shell may not read its console yet)."""
        assert self.proc.stdin is not None, "start the boot with console_input=True"
        self.typed += 1
        number = self.typed
        marker = f"SHELL-DONE-{number}-{number * 7}"
        line = f"{command}; echo SHELL-DONE-{number}-$(({number} * 7))\n".encode()
        begin = len(self.output)
        deadline = time.monotonic() + timeout
        while True:
            self.proc.stdin.write(line)
            self.proc.stdin.flush()
            try:
                self.wait_for(marker, min(15.0, max(deadline - time.monotonic(), 1.0)))
                break
            except AssertionError:
                if time.monotonic() > deadline or self.proc.poll() is not None:
                    raise
        text = self.output[begin:].decode(errors="replace")
        return text[: text.index(marker)]

    def finish(self, timeout: float) -> int:
        """Wait for the run to end by itself and return its exit status."""
        assert self.proc.stdout is not None
        os.set_blocking(self.proc.stdout.fileno(), True)
        out, _ = self.proc.communicate(timeout=timeout)
        self.output += out
        return self.proc.returncode

    def stop(self) -> None:
        """Stop the whole process group (distrokit and its QEMU) if it still runs."""
        if self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGTERM)
            try:
                self.proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait()
        for stream in (self.proc.stdin, self.proc.stdout):
            if stream is not None:
                stream.close()

    def text(self) -> str:
        return self.output.decode(errors="replace")

    def send(self, line: str) -> None:
        """Type `line` (and Enter) on the serial console (needs start(..., console_input=True))."""
        assert self.proc.stdin is not None, "start the boot with console_input=True"
        self.proc.stdin.write(line.encode() + b"\n")
        self.proc.stdin.flush()


def start(
    *args: str, debug: bool = False, env: dict[str, str] | None = None, console_input: bool = False
) -> Boot:
    """Start ``distrokit run qemu ARGS`` in its own process group, console (and, with `debug`,
    the QEMU command line) on a pipe; with `console_input` the console's input is a pipe too
    (`Boot.shell` types into it)."""
    flags = ["--debug"] if debug else []
    argv = [sys.executable, "-m", "distrokit", *flags, "run", "qemu", *args]
    proc = subprocess.Popen(
        argv,
        stdin=subprocess.PIPE if console_input else subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        start_new_session=True,
        env={**os.environ, **(env or {})},
    )
    return Boot(proc=proc, started=time.monotonic())


def make_iso(prefix: str, out: Path) -> Path:
    """A hybrid (CD and disk) BIOS-bootable ISO of the guest at `prefix`: isolinux + kernel +
    initrd, written with xorriso, so one file tests both ISO and disk-image boots."""
    root = out.parent / f"{out.stem}-root"
    (root / "isolinux").mkdir(parents=True)
    for name in ("isolinux.bin",):
        shutil.copyfile(Path("/usr/lib/ISOLINUX") / name, root / "isolinux" / name)
    shutil.copyfile("/usr/lib/syslinux/modules/bios/ldlinux.c32", root / "isolinux/ldlinux.c32")
    shutil.copyfile(f"{prefix}-kernel", root / "kernel")
    shutil.copyfile(f"{prefix}-initrd.img", root / "initrd.img")
    (root / "isolinux" / "isolinux.cfg").write_text(
        "DEFAULT linux\nSERIAL 0 115200\nLABEL linux\n  KERNEL /kernel\n"
        f"  APPEND {CMDLINE} initrd=/initrd.img\n"
    )
    Host().run(
        ["xorriso", "-as", "mkisofs", "-quiet", "-o", str(out),
         "-isohybrid-mbr", "/usr/lib/ISOLINUX/isohdpfx.bin",
         "-b", "isolinux/isolinux.bin", "-c", "isolinux/boot.cat",
         "-no-emul-boot", "-boot-load-size", "4", "-boot-info-table", str(root)]
    )  # fmt: skip
    return out
