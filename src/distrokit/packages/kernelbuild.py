"""Kernels compiled from source: a kernel source tarball and a configuration fragment.

A build.yml's ``debian.kernels`` names the tarball among the unpacked packages (Debian's
``linux-source-*``) and a fragment in the package directory. The configuration is the
kernel's ``tinyconfig`` (everything off) with the fragment merged in by the kernel's own
``scripts/kconfig/merge_config.sh``, completed by ``make olddefconfig``. Kconfig silently
drops an option whose dependencies are off, so every option the fragment sets must come out
as set, or the build stops and names the ones that did not. Then ``make bzImage`` with the
build's user, host, time and version fixed, so one source and one fragment give the same
bytes in any directory on any machine.

Only kernels with everything built in: a fragment that turns modules on is refused (the
package would need a module tree, its indexes and a policy on signing them; a VM kernel
needs none of it).
"""

from __future__ import annotations

import os
import platform
import re
import subprocess
import time
from collections.abc import Callable
from pathlib import Path

from distrokit.errors import PackageError
from distrokit.host import Host

# The programs a kernel build runs besides the compiler driver's own (cc1, as, ld).
TOOLS = ("make", "gcc", "flex", "bison", "bc", "tar", "xz")

_SET = re.compile(r"^(CONFIG_[A-Za-z0-9_]+)=(.*)$")
_UNSET = re.compile(r"^# (CONFIG_[A-Za-z0-9_]+) is not set$")
# How often a running compile says how far it is.
PROGRESS_EVERY = 30.0


def parse_config(text: str) -> dict[str, str]:
    """A .config or fragment as option -> value, with "n" for ``# CONFIG_X is not set``."""
    options: dict[str, str] = {}
    for line in text.splitlines():
        line = line.strip()
        if m := _SET.match(line):
            options[m[1]] = m[2]
        elif m := _UNSET.match(line):
            options[m[1]] = "n"
    return options


def not_taken(wanted: dict[str, str], got: dict[str, str]) -> list[str]:
    """The fragment's options that the final configuration does not have as asked."""
    return [f"{name}={value}" for name, value in wanted.items() if got.get(name, "n") != value]


def build_env(epoch: int) -> dict[str, str]:
    """What kbuild stamps into the kernel (uname -v, /proc/version) fixed to the package's."""
    return {
        "KBUILD_BUILD_USER": "distrokit",
        "KBUILD_BUILD_HOST": "distrokit",
        "KBUILD_BUILD_VERSION": "1",
        "KBUILD_BUILD_TIMESTAMP": time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime(epoch)),
        "SOURCE_DATE_EPOCH": str(epoch),
    }


def build_kernel(
    host: Host,
    *,
    tarball: Path,
    fragment: Path,
    work: Path,
    epoch: int,
    say: Callable[[str], None],
    jobs: int | None = None,
) -> Path:
    """Configure and compile the kernel of `tarball` in `work`; the path of its bzImage."""
    if platform.machine() != "x86_64":
        machine = platform.machine()
        raise PackageError(f"kernels are compiled on x86-64 hosts only (this is {machine})")
    if not fragment.is_file():
        raise PackageError(f"debian.kernels: configuration fragment {fragment} does not exist")
    wanted = parse_config(fragment.read_text(encoding="utf-8"))
    if wanted.get("CONFIG_MODULES", "n") != "n":
        raise PackageError(
            f"{fragment.name}: CONFIG_MODULES is on; distrokit compiles kernels with everything "
            "built in",
            hint="set CONFIG_MODULES=n and the drivers =y",
        )
    host.check_tools(TOOLS)
    src = work / "linux"
    src.mkdir(parents=True)
    say(f"kernel: unpacking {tarball.name}")
    host.run(["tar", "-xf", tarball, "-C", src, "--strip-components=1"])
    env = build_env(epoch)
    make: list[str | Path] = ["make", "-C", src]
    host.run([*make, "tinyconfig"], capture=True, env=env)
    merge = src / "scripts" / "kconfig" / "merge_config.sh"
    host.run(["sh", merge, "-m", "-O", src, src / ".config", fragment], capture=True, env=env)
    host.run([*make, "olddefconfig"], capture=True, env=env)
    missing = not_taken(wanted, parse_config((src / ".config").read_text(encoding="utf-8")))
    if missing:
        raise PackageError(
            f"{fragment.name}: the kernel's Kconfig did not take {', '.join(missing)}",
            hint="an option whose dependencies are off is dropped: set those too in the fragment",
        )
    jobs = jobs or os.cpu_count() or 1
    say(f"kernel: compiling with {fragment.name} (make -j{jobs} bzImage, a few minutes)")
    _make(host, [*make, f"-j{jobs}", "bzImage"], env, work / "make.log", say)
    return src / "arch" / "x86" / "boot" / "bzImage"


def _make(
    host: Host, argv: list[str | Path], env: dict[str, str], log: Path, say: Callable[[str], None]
) -> None:
    """Run make with its output in `log`, saying every PROGRESS_EVERY s how many steps ran."""
    started = time.monotonic()
    with log.open("wb") as out:
        proc = host.popen(argv, env=env, stdout=out, stderr=subprocess.STDOUT)
        while True:
            try:
                status = proc.wait(timeout=PROGRESS_EVERY)
                break
            except subprocess.TimeoutExpired:
                steps = log.read_bytes().count(b"\n")
                say(f"kernel: {steps} build steps in {time.monotonic() - started:.0f} s")
    if status != 0:
        tail = log.read_text(errors="replace").splitlines()[-15:]
        raise PackageError(
            f"compiling the kernel failed (make exited {status}); its last lines:\n"
            + "\n".join(tail)
        )
    say(f"kernel: compiled in {time.monotonic() - started:.0f} s")
