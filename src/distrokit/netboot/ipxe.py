"""The iPXE script of a kernel+initrd build, as LinuxKit's ``push equinixmetal`` writes it.

A build directory holds NAME-kernel, NAME-initrd.img and NAME-cmdline. The script of NAME
configures the NIC with ``dhcp``, sets ``base-url`` and ``kernel-params`` and loads
``${base-url}/NAME-kernel`` and ``${base-url}/NAME-initrd.img``. Unlike LinuxKit, distrokit
adds no Equinix Metal console (``console=ttyS1``) of its own: the system's command line is used
as it is, plus ``initrd=NAME-initrd.img``, which a UEFI kernel's EFI stub needs to find the
initrd iPXE registered under that name (BIOS kernels ignore it).
"""

from __future__ import annotations

import os
import re
import tempfile
from dataclasses import dataclass
from pathlib import Path

from distrokit.errors import UsageError

KERNEL_SUFFIX = "-kernel"
INITRD_SUFFIX = "-initrd.img"
CMDLINE_SUFFIX = "-cmdline"
SCRIPT_SUFFIX = ".ipxe"
# The script of the only system in a directory is also served under this name.
DEFAULT_SCRIPT = "boot.ipxe"

# What LinuxKit's push equinixmetal puts before the system's own command line (x86_64).
EQUINIXMETAL_PARAMS = ("ip=dhcp", "nomodeset", "ro", "serial", "console=ttyS1,115200")

# A name iPXE and a URL path take without quoting.
_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._+-]*$")


@dataclass(frozen=True, kw_only=True)
class NetbootSystem:
    """One kernel+initrd build in a directory: NAME-kernel, NAME-initrd.img, NAME-cmdline."""

    name: str
    kernel: Path
    initrd: Path
    cmdline: str = ""

    @property
    def script_name(self) -> str:
        """The script's file name (and URL path): NAME.ipxe."""
        return self.name + SCRIPT_SUFFIX


def load_system(prefix: Path) -> NetbootSystem:
    """The build at `prefix` (``DIR/NAME``); a usage error names the missing file."""
    name = prefix.name
    if not _NAME.match(name):
        raise UsageError(f"system name {name!r} cannot be used in a URL or an iPXE script")
    kernel = prefix.with_name(name + KERNEL_SUFFIX)
    initrd = prefix.with_name(name + INITRD_SUFFIX)
    for path in (kernel, initrd):
        if not path.is_file():
            hint = "netboot needs a kernel+initrd build (-format kernel+initrd)"
            raise UsageError(f"{path} not found", hint=hint)
    cmdline_file = prefix.with_name(name + CMDLINE_SUFFIX)
    cmdline = cmdline_file.read_text().strip() if cmdline_file.is_file() else ""
    return NetbootSystem(name=name, kernel=kernel, initrd=initrd, cmdline=cmdline)


def find_systems(directory: Path) -> list[NetbootSystem]:
    """Every kernel+initrd build in `directory`, sorted by name."""
    found = []
    for kernel in sorted(directory.glob("*" + KERNEL_SUFFIX)):
        name = kernel.name.removesuffix(KERNEL_SUFFIX)
        if _NAME.match(name) and (directory / (name + INITRD_SUFFIX)).is_file():
            found.append(load_system(directory / name))
    return found


def script(system: NetbootSystem, base_url: str, params: tuple[str, ...] = ()) -> str:
    """The iPXE script that boots `system` from `base_url` (its directory on an HTTP server).

    `params` go before the system's command line (LinuxKit puts its console settings there,
    see `EQUINIXMETAL_PARAMS`)."""
    if any(c.isspace() for c in base_url) or "${" in base_url:
        raise UsageError(f"base URL {base_url!r} cannot go into an iPXE script")
    initrd = system.name + INITRD_SUFFIX
    kernel_params = " ".join([*params, system.cmdline, f"initrd={initrd}"]).strip()
    kernel_params = re.sub(r"\s+", " ", kernel_params)
    return (
        "#!ipxe\n\n"
        "dhcp\n"
        f"set base-url {base_url.rstrip('/')}\n"
        f"set kernel-params {kernel_params}\n"
        f"kernel ${{base-url}}/{system.name}{KERNEL_SUFFIX} ${{kernel-params}}\n"
        f"initrd ${{base-url}}/{initrd}\n"
        "boot\n"
    )


def write_script(
    system: NetbootSystem, base_url: str, directory: Path, params: tuple[str, ...] = ()
) -> Path:
    """Write NAME.ipxe into `directory` atomically (temporary name, then rename)."""
    directory.mkdir(parents=True, exist_ok=True)
    target = directory / system.script_name
    fd, tmp = tempfile.mkstemp(prefix=f".{target.name}.", dir=directory)
    try:
        with os.fdopen(fd, "w") as f:
            f.write(script(system, base_url, params))
        Path(tmp).chmod(0o644)
        Path(tmp).replace(target)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return target
