"""Push targets: places a built system is uploaded to, one module per target, registered by name.

`PUSH_TARGETS` is the table the CLI reads, as `distrokit.runners.RUNNERS` is for ``run``. A new
target adds one `PushTarget` here and one module; nothing else changes.
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass
from types import ModuleType

from distrokit.errors import UsageError


@dataclass(frozen=True, kw_only=True)
class PushTarget:
    """One target of `distrokit push`."""

    name: str
    module: str
    summary: str
    tools: tuple[str, ...] = ()

    def load(self) -> ModuleType:
        """Import the module that implements this target."""
        return importlib.import_module(self.module)


PUSH_TARGETS: dict[str, PushTarget] = {
    t.name: t
    for t in (
        PushTarget(
            name="vcenter",
            module="distrokit.push.vcenter",
            summary="upload an ISO or a disk image (as a VMDK pair) to a vSphere datastore",
        ),
    )
}


def get_push_target(name: str) -> PushTarget:
    """The push target called `name`, or a usage error listing the known ones."""
    try:
        return PUSH_TARGETS[name]
    except KeyError:
        known = ", ".join(sorted(PUSH_TARGETS))
        raise UsageError(f"unknown push target {name!r}", hint=f"known targets: {known}") from None
