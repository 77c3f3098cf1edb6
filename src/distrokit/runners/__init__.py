"""Runners that boot distrokit outputs, one module per VMM, registered by name.

`RUNNERS` is the table the CLI reads: each entry names its module, the host platforms it runs
on and the host tools it needs. A new backend adds one `Runner` here and one module with a
``run_vm(host, run, ...)`` function; nothing else changes.
"""

from __future__ import annotations

import importlib
import platform
from dataclasses import dataclass
from types import ModuleType

from distrokit.errors import UsageError


@dataclass(frozen=True, kw_only=True)
class Runner:
    """One backend of `distrokit run`."""

    name: str
    module: str
    summary: str
    platforms: tuple[str, ...]
    tools: tuple[str, ...] = ()

    def load(self) -> ModuleType:
        """Import the module that implements this runner."""
        return importlib.import_module(self.module)


RUNNERS: dict[str, Runner] = {
    r.name: r
    for r in (
        Runner(
            name="qemu",
            module="distrokit.runners.qemu",
            summary="boot locally with QEMU (microvm fast path for kernel+initrd)",
            platforms=("Linux", "Darwin"),
            tools=("qemu-img",),
        ),
        Runner(
            name="vcenter",
            module="distrokit.runners.vcenter",
            summary="create a VM on vCenter/ESXi, or rebuild existing ones (--replace)",
            platforms=("Linux", "Darwin", "Windows"),
        ),
    )
}

# Which backend `distrokit run` uses when none is named, per host OS (as LinuxKit).
DEFAULT_RUNNER = {"Linux": "qemu"}


def get_runner(name: str) -> Runner:
    """The runner called `name`, or a usage error listing the known ones."""
    try:
        return RUNNERS[name]
    except KeyError:
        known = ", ".join(sorted(RUNNERS))
        raise UsageError(f"unknown runner {name!r}", hint=f"known runners: {known}") from None


def default_runner(system: str | None = None) -> Runner:
    """The runner for this host OS when none is given."""
    system = system or platform.system()
    name = DEFAULT_RUNNER.get(system)
    if name is None:
        raise UsageError(f"no default runner on {system}; name one: {', '.join(RUNNERS)}")
    return RUNNERS[name]
