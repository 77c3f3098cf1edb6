"""LinuxKit's value rules, shared by static validation (`schema`) and spec resolution (`spec`).

LinuxKit only applies most of these while building (capability names, rlimits, device modes,
bind and tmpfs syntax, mount type inference). distrokit applies the same rules twice: once when
the YAML is validated, so every problem is reported with its line before any image is pulled,
and again when the effective container spec is resolved against an image label.

Every parse function raises `RuleError` with LinuxKit's message (lower-cased first letter).
"""

from __future__ import annotations

import difflib
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from distrokit.config.model import IdValue

# Every capability the Linux kernel knows, in bit order (what LinuxKit's `all` expands to).
CAPABILITIES: tuple[str, ...] = tuple(
    "CAP_" + name
    for name in [
        "CHOWN",
        "DAC_OVERRIDE",
        "DAC_READ_SEARCH",
        "FOWNER",
        "FSETID",
        "KILL",
        "SETGID",
        "SETUID",
        "SETPCAP",
        "LINUX_IMMUTABLE",
        "NET_BIND_SERVICE",
        "NET_BROADCAST",
        "NET_ADMIN",
        "NET_RAW",
        "IPC_LOCK",
        "IPC_OWNER",
        "SYS_MODULE",
        "SYS_RAWIO",
        "SYS_CHROOT",
        "SYS_PTRACE",
        "SYS_PACCT",
        "SYS_ADMIN",
        "SYS_BOOT",
        "SYS_NICE",
        "SYS_RESOURCE",
        "SYS_TIME",
        "SYS_TTY_CONFIG",
        "MKNOD",
        "LEASE",
        "AUDIT_WRITE",
        "AUDIT_CONTROL",
        "SETFCAP",
        "MAC_OVERRIDE",
        "MAC_ADMIN",
        "SYSLOG",
        "WAKE_ALARM",
        "BLOCK_SUSPEND",
        "AUDIT_READ",
        "PERFMON",
        "BPF",
        "CHECKPOINT_RESTORE",
    ]
)
_CAPABILITY_SET = frozenset(CAPABILITIES)

RLIMITS: tuple[str, ...] = tuple(
    "RLIMIT_" + name
    for name in [
        "CPU",
        "FSIZE",
        "DATA",
        "STACK",
        "CORE",
        "RSS",
        "NPROC",
        "NOFILE",
        "MEMLOCK",
        "AS",
        "LOCKS",
        "SIGPENDING",
        "MSGQUEUE",
        "NICE",
        "RTPRIO",
        "RTTIME",
    ]
)
RLIMIT_UNLIMITED = 2**64 - 1

# Unlike LinuxKit (`^[a-z0-9_-]*$`) the empty name is refused: it would be `containers/volumes/`.
VOLUME_NAME_RE = re.compile(r"^[a-z0-9_-]+$")
VOLUME_FORMATS = ("filesystem", "oci")
METADATA_FORMATS = ("yaml", "json")

# Where a mount of this type goes when `destination` is not given.
DEFAULT_MOUNTPOINTS: Mapping[str, str] = {
    "proc": "/proc",
    "devpts": "/dev/pts",
    "sysfs": "/sys",
    "cgroup": "/sys/fs/cgroup",
    "mqueue": "/dev/mqueue",
}
# Mount sources that name their own type when `type` is not given.
_SELF_TYPED_SOURCES = frozenset({"mqueue", "devpts", "proc", "sysfs", "cgroup"})

DEVICE_NODE_TYPES = ("b", "c", "u", "p")
DEVICE_RULE_TYPES = ("a", "b", "c")

# Containers live under /containers/volumes/<name>/merged once the volume is mounted at boot.
VOLUMES_DIR = "/containers/volumes"


class RuleError(ValueError):
    """A value breaks one of LinuxKit's rules; `message` is what the user sees."""

    def __init__(self, message: str, hint: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.hint = hint


def did_you_mean(word: str, choices: Sequence[str]) -> str | None:
    """The closest of `choices` to `word`, if any is close enough to suggest."""
    by_case = {c.lower(): c for c in choices}
    if word.lower() in by_case:
        return by_case[word.lower()]
    close = difflib.get_close_matches(word, choices, n=1, cutoff=0.6)
    return close[0] if close else None


def check_capability(name: str) -> None:
    """Raise unless `name` is a capability the kernel knows (exact, upper-case ``CAP_`` form)."""
    if name not in _CAPABILITY_SET:
        # compare without the common prefix, which would make every name look alike
        short = [c.removeprefix("CAP_") for c in CAPABILITIES]
        guess = did_you_mean(name.upper().removeprefix("CAP_"), short)
        hint = f"did you mean 'CAP_{guess}'?" if guess else None
        raise RuleError(f"unknown capability: {name}", hint)


def is_special_capability_list(names: Sequence[str]) -> bool:
    """LinuxKit's `all`/`none` shorthand: a single entry, any case."""
    return len(names) == 1 and names[0].lower() in ("all", "none")


def expand_capabilities(names: Sequence[str]) -> tuple[str, ...]:
    """Apply the `all`/`none` shorthand and check each remaining name."""
    if len(names) == 1 and names[0].lower() == "none":
        return ()
    if len(names) == 1 and names[0].lower() == "all":
        return CAPABILITIES
    for name in names:
        check_capability(name)
    return tuple(names)


@dataclass(frozen=True, kw_only=True)
class Bind:
    """A parsed ``src:dst[:opt,opt]`` bind."""

    source: str
    destination: str
    options: tuple[str, ...] | None

    @property
    def volume(self) -> str | None:
        """The volume this bind refers to: LinuxKit treats any source not starting with /."""
        return None if self.source.startswith("/") else self.source

    @property
    def read_only(self) -> bool:
        """LinuxKit accepts a bind of a read-only volume only when the options are exactly ro."""
        return self.options == ("ro",)


def check_image_path(path: str) -> None:
    """Raise unless `path` names a place inside the image: no ``..`` part, no NUL, not empty.

    LinuxKit accepts ``../../x`` and writes it into the tar verbatim; a tool unpacking that
    tar then writes outside its target directory. A leading ``/`` is fine: it is dropped.
    """
    if "\0" in path:
        raise RuleError(f"path contains a NUL character: {path!r}")
    parts = [p for p in path.split("/") if p not in ("", ".")]
    if ".." in parts:
        raise RuleError(f"path leaves the image: {path}", "remove the '..' parts")
    if not parts:
        raise RuleError(f"path names no file: {path!r}")


def check_container_name(name: str) -> None:
    """Raise unless `name` can name a directory and a container: no ``/``, ``..`` or control.

    Names become ``containers/<section>/<name>`` in the image and runc/containerd ids.
    """
    if not name:
        raise RuleError("name is empty")
    if name in (".", "..") or "/" in name or any(ord(c) < 0x20 or c == "\x7f" for c in name):
        raise RuleError(
            f"invalid name: {name!r}", "use letters, digits, '.', '_', '+' and '-', no '/'"
        )


def parse_bind(text: str) -> Bind:
    """Parse a bind the way LinuxKit does: two or three ``:``-separated fields."""
    parts = text.split(":")
    if len(parts) < 2:
        raise RuleError(f"cannot parse bind, missing ':': {text}", "write source:destination")
    if len(parts) > 3:
        raise RuleError(f"cannot parse bind, too many ':': {text}")
    options = tuple(parts[2].split(",")) if len(parts) == 3 else None
    return Bind(source=parts[0], destination=parts[1], options=options)


def parse_tmpfs(text: str) -> tuple[str, tuple[str, ...]]:
    """Parse ``dst[:opt,opt]`` into destination and options."""
    parts = text.split(":")
    if len(parts) > 2:
        raise RuleError(f"cannot parse tmpfs, too many ':': {text}")
    options = tuple(parts[1].split(",")) if len(parts) == 2 else ()
    return parts[0], options


def _rlimit_value(text: str) -> int:
    value = text.strip()
    if value.lower() == "unlimited":
        return RLIMIT_UNLIMITED
    if not value.isdigit() or int(value) > RLIMIT_UNLIMITED:
        raise RuleError(f"cannot parse {value} as uint64", "use a number or 'unlimited'")
    return int(value)


def parse_rlimit(text: str) -> tuple[str, int, int]:
    """Parse ``name,soft,hard`` into (``RLIMIT_NAME``, soft, hard)."""
    parts = text.split(",", 2)
    if len(parts) != 3:
        raise RuleError(f"cannot parse rlimit: {text}", "write name,soft,hard")
    name = parts[0].strip().upper()
    if not name.startswith("RLIMIT_"):
        name = "RLIMIT_" + name
    if name not in RLIMITS:
        guess = did_you_mean(name, RLIMITS)
        raise RuleError(
            f"unknown limit: {parts[0].strip()}", f"did you mean '{guess}'?" if guess else None
        )
    return name, _rlimit_value(parts[1]), _rlimit_value(parts[2])


def parse_mode(text: str) -> int:
    """Parse an octal permission string such as ``0666``."""
    try:
        mode = int(text, 8)
    except ValueError:
        raise RuleError(f"cannot parse mode as octal value: {text!r}") from None
    if not 0 <= mode <= 0o7777:
        raise RuleError(f"mode out of range: {text}")
    return mode


@dataclass(frozen=True, kw_only=True)
class MountTarget:
    """Type, source and destination of a `mounts` entry after LinuxKit's inference."""

    type: str
    source: str
    destination: str


def infer_mount(type_: str | None, source: str | None, destination: str | None) -> MountTarget:
    """Fill in a mount's missing type, source or destination as LinuxKit does."""
    mount_type = type_ or ""
    src = source or ""
    dest = destination or ""
    if not mount_type and src in _SELF_TYPED_SOURCES:
        mount_type = src
    if not mount_type and dest == "/dev":
        mount_type = "tmpfs"
    if not mount_type:
        raise RuleError(f"mount for destination {dest} is missing type")
    if not src:
        src = mount_type
    if not dest:
        dest = DEFAULT_MOUNTPOINTS.get(mount_type, "")
    if not dest:
        raise RuleError(f"mount type {mount_type} is missing destination")
    return MountTarget(type=mount_type, source=src, destination=dest)


def is_named_id(value: IdValue | None) -> bool:
    """Whether a uid/gid value names a container (resolved through the id allocation)."""
    return isinstance(value, str) and value not in ("", "root")


def resolve_id(value: IdValue | None, ids: Mapping[str, int]) -> int:
    """A numeric uid/gid: numbers as is, ``""``/``root``/unset = 0, names through `ids`."""
    if value is None or value in ("", "root"):
        return 0
    if isinstance(value, int):
        return value
    if value not in ids:
        guess = did_you_mean(value, list(ids))
        raise RuleError(f"cannot find id: {value}", f"did you mean '{guess}'?" if guess else None)
    return ids[value]


def volume_merged_dir(name: str) -> str:
    """Where a volume is visible to containers once mounted at boot."""
    return f"{VOLUMES_DIR}/{name}/merged"
