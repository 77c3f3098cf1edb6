"""Where VMs, their root-disk bases and their kernels live, and how a VM is named and found.

Everything is under one data directory: ``$DISTROKIT_VM_HOME``, else
``$XDG_DATA_HOME/distrokit`` (``~/.local/share/distrokit``). Not the cache directory: a VM's
overlay disk is useless without its base, so the bases must not be cleaned with caches.

- ``vms/<id>/``: ``vm.json`` (what was asked for), ``lock`` (one command at a time),
  ``qemu.pid``, ``qmp.sock``, ``console.sock``, ``console.log``, ``agent.sock``,
  ``exit-status`` (the workload's status, written by the guest through its own channel),
  ``overlay.qcow2`` (the VM's writable layer) and ``config.tar`` (the guest's configuration).
- ``images/<digest>/``: one read-only ext4 base per size and what the image asked for.
- ``kernels/<digest>/``: the kernel, the VM init's initramfs and what was found.

Ids are 16 random hex digits, names are generated (adjective_noun) unless given, and every
command takes a name, an id or an unambiguous prefix of an id, as Docker and Ignite do.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import re
import secrets
import shutil
import tempfile
from collections.abc import Iterator
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any

from distrokit.errors import DistrokitError, UsageError

VM_HOME_ENV = "DISTROKIT_VM_HOME"
CONFIG_FILE = "vm.json"
LOCK_FILE = "lock"
NAME_RE = re.compile(r"^[a-zA-Z0-9][a-zA-Z0-9_.-]{0,62}$")

_ADJECTIVES = (
    "brave", "calm", "eager", "fancy", "gentle", "happy", "jolly", "keen", "lively", "merry",
    "nimble", "proud", "quiet", "rapid", "sharp", "swift", "tidy", "vivid", "witty", "zesty",
)  # fmt: skip
_NOUNS = (
    "otter", "falcon", "badger", "heron", "lynx", "marten", "newt", "orca", "panda", "quail",
    "raven", "stoat", "tapir", "viper", "walrus", "yak", "zebra", "bison", "crane", "dingo",
)  # fmt: skip


class VmError(DistrokitError):
    """A VM that does not exist, is ambiguous, or is in the wrong state for the command."""


@dataclass(frozen=True, kw_only=True)
class VmConfig:
    """What the user asked for one VM (``vm.json``); the base disk and kernel are resolved
    at create time so a VM never changes under a re-tagged image."""

    id: str
    name: str
    image: str  # the reference as given
    image_digest: str
    kernel_image: str
    kernel_digest: str
    size_mb: int
    cpus: int = 1
    memory_mb: int = 512
    command: tuple[str, ...] | None = None  # replaces the image's CMD (ENTRYPOINT kept)
    entrypoint: tuple[str, ...] | None = None  # replaces the image's ENTRYPOINT
    env: tuple[str, ...] = ()
    publish: tuple[str, ...] = ()  # HOST:GUEST[/PROTO] as given
    copy_files: tuple[str, ...] = ()  # SRC:DST as given
    interactive: bool = False  # -i: the workload's stdin is the console (attach writes to it)
    ssh_port: int | None = None  # --ssh: the host port forwarded to the guest's port 22
    created: float = 0.0
    started_once: bool = False

    def to_json(self) -> dict[str, Any]:
        """The JSON object written to ``vm.json``."""
        return asdict(self)

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> VmConfig:
        """Read ``vm.json`` back (lists become tuples; unknown keys are ignored)."""
        known = {f.name for f in fields(cls)}
        values: dict[str, Any] = {
            k: tuple(v) if isinstance(v, list) else v for k, v in data.items() if k in known
        }
        return cls(**values)


def vm_home(environ: dict[str, str] | None = None) -> Path:
    """The data directory (see the module docstring)."""
    env = dict(os.environ) if environ is None else environ
    if env.get(VM_HOME_ENV):
        return Path(env[VM_HOME_ENV])
    base = env.get("XDG_DATA_HOME") or str(Path.home() / ".local" / "share")
    return Path(base, "distrokit")


@dataclass(frozen=True)
class Store:
    """The data directory and the VMs in it."""

    root: Path = field(default_factory=vm_home)

    @property
    def vms(self) -> Path:
        return self.root / "vms"

    @property
    def images(self) -> Path:
        return self.root / "images"

    @property
    def kernels(self) -> Path:
        return self.root / "kernels"

    def vm_dir(self, vm_id: str) -> Path:
        """The state directory of VM `vm_id`."""
        return self.vms / vm_id

    def all(self) -> list[VmConfig]:
        """Every VM with a readable ``vm.json``, oldest first."""
        found = []
        if self.vms.is_dir():
            for path in self.vms.iterdir():
                try:
                    found.append(self.load(path.name))
                except VmError:
                    continue
        return sorted(found, key=lambda c: (c.created, c.id))

    def load(self, vm_id: str) -> VmConfig:
        """The config of VM `vm_id`."""
        path = self.vm_dir(vm_id) / CONFIG_FILE
        try:
            return VmConfig.from_json(json.loads(path.read_text()))
        except (OSError, ValueError, TypeError) as err:
            raise VmError(f"VM {vm_id}: cannot read {path}: {err}") from err

    def save(self, config: VmConfig) -> None:
        """Write ``vm.json`` atomically."""
        directory = self.vm_dir(config.id)
        fd, tmp = tempfile.mkstemp(dir=directory, prefix=".vm.json-")
        with os.fdopen(fd, "w") as f:
            json.dump(config.to_json(), f, indent=2, sort_keys=True)
            f.write("\n")
        Path(tmp).replace(directory / CONFIG_FILE)

    def new_id(self) -> str:
        """A fresh id that no VM has and that is not a prefix of one (nor one of its)."""
        known = [c.id for c in self.all()]
        while True:
            vm_id = secrets.token_hex(8)
            if not any(k.startswith(vm_id[:12]) for k in known):
                return vm_id

    def new_name(self, wanted: str | None) -> str:
        """`wanted` checked (valid, unused), or a generated name no VM has."""
        names = {c.name for c in self.all()}
        if wanted is not None:
            if not NAME_RE.match(wanted):
                raise UsageError(
                    f"invalid VM name {wanted!r}",
                    hint="use letters, digits, '_', '.' and '-' (at most 63, not first)",
                )
            if wanted in names:
                raise VmError(f"a VM named {wanted} already exists", hint=f"vm rm {wanted}")
            return wanted
        for _ in range(100):
            name = f"{secrets.choice(_ADJECTIVES)}_{secrets.choice(_NOUNS)}"
            if name not in names:
                return name
        return f"vm_{secrets.token_hex(4)}"

    def find(self, what: str) -> VmConfig:
        """The VM named `what`, or whose id is `what` or starts with it (if only one does)."""
        configs = self.all()
        for config in configs:
            if what in (config.name, config.id):
                return config
        matches = [c for c in configs if what and c.id.startswith(what)]
        if len(matches) == 1:
            return matches[0]
        if not matches:
            raise VmError(f"no VM named {what!r} or with an id starting with it", hint="vm ps -a")
        listed = ", ".join(f"{c.id[:12]} ({c.name})" for c in matches)
        raise VmError(f"{what!r} matches more than one VM id: {listed}", hint="give more digits")

    def create_dir(self, config: VmConfig) -> Path:
        """Make the VM's state directory and write its ``vm.json``."""
        directory = self.vm_dir(config.id)
        directory.mkdir(parents=True)
        self.save(config)
        return directory

    def remove_dir(self, vm_id: str) -> None:
        """Delete the VM's state directory and everything in it."""
        shutil.rmtree(self.vm_dir(vm_id), ignore_errors=True)

    @contextlib.contextmanager
    def locked(self, vm_id: str, *, wait: bool = True) -> Iterator[None]:
        """Hold the VM's lock: a second command on the same VM waits (or fails without
        `wait`) until this one is done. The kernel drops the lock if the holder dies."""
        path = self.vm_dir(vm_id) / LOCK_FILE
        try:
            f = path.open("a+b")
        except OSError as err:
            raise VmError(f"VM {vm_id}: cannot open its lock {path}: {err.strerror}") from err
        with f:
            try:
                fcntl.flock(f.fileno(), fcntl.LOCK_EX | (0 if wait else fcntl.LOCK_NB))
            except BlockingIOError as err:
                raise VmError(f"VM {vm_id} is busy: another vm command holds its lock") from err
            try:
                yield
            finally:
                fcntl.flock(f.fileno(), fcntl.LOCK_UN)
