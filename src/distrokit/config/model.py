"""Validated configuration as frozen dataclasses: the only form code past the config layer sees.

Field names are the snake_case forms of LinuxKit's YAML keys (``capabilities.add`` ->
``capabilities_add``, ``oomScoreAdj`` -> ``oom_score_adj``). ``None`` always means "not set", which
is not the same as an empty list: an explicitly empty YAML value clears the image label's value
(see `distrokit.system.container`).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

# uid/gid values: a number, or the name of a container whose allocated id is used.
IdValue = int | str


@dataclass(frozen=True)
class Origin:
    """Where a value came from: file, 1-based line and column, and YAML path."""

    file: str
    line: int
    column: int
    path: str

    def __str__(self) -> str:
        return f"{self.file}:{self.line}:{self.column}: {self.path}"


@dataclass(frozen=True, kw_only=True)
class Kernel:
    image: str | None = None
    cmdline: str | None = None
    binary: str | None = None
    tar: str | None = None
    ucode: str | None = None


@dataclass(frozen=True, kw_only=True)
class IdMapping:
    host_id: int
    container_id: int
    size: int


@dataclass(frozen=True, kw_only=True)
class Mount:
    destination: str | None = None
    type: str | None = None
    source: str | None = None
    options: tuple[str, ...] | None = None
    uid_mappings: tuple[IdMapping, ...] | None = None
    gid_mappings: tuple[IdMapping, ...] | None = None


@dataclass(frozen=True, kw_only=True)
class Device:
    path: str
    type: str
    major: int | None = None
    minor: int | None = None
    mode: str | None = None


@dataclass(frozen=True, kw_only=True)
class DeviceRule:
    allow: bool
    type: str | None = None
    major: int | None = None
    minor: int | None = None
    access: str | None = None


@dataclass(frozen=True, kw_only=True)
class Memory:
    limit: int | None = None
    reservation: int | None = None
    swap: int | None = None
    kernel: int | None = None
    kernel_tcp: int | None = None
    swappiness: int | None = None
    disable_oom_killer: bool | None = None


@dataclass(frozen=True, kw_only=True)
class CPU:
    shares: int | None = None
    quota: int | None = None
    period: int | None = None
    realtime_runtime: int | None = None
    realtime_period: int | None = None
    cpus: str | None = None
    mems: str | None = None


@dataclass(frozen=True, kw_only=True)
class WeightDevice:
    major: int
    minor: int
    weight: int | None = None
    leaf_weight: int | None = None


@dataclass(frozen=True, kw_only=True)
class ThrottleDevice:
    major: int
    minor: int
    rate: int


@dataclass(frozen=True, kw_only=True)
class BlockIO:
    weight: int | None = None
    leaf_weight: int | None = None
    weight_device: tuple[WeightDevice, ...] | None = None
    throttle_read_bps_device: tuple[ThrottleDevice, ...] | None = None
    throttle_write_bps_device: tuple[ThrottleDevice, ...] | None = None
    throttle_read_iops_device: tuple[ThrottleDevice, ...] | None = None
    throttle_write_iops_device: tuple[ThrottleDevice, ...] | None = None


@dataclass(frozen=True, kw_only=True)
class HugepageLimit:
    page_size: str
    limit: int


@dataclass(frozen=True, kw_only=True)
class InterfacePriority:
    name: str
    priority: int


@dataclass(frozen=True, kw_only=True)
class Network:
    class_id: int | None = None
    priorities: tuple[InterfacePriority, ...] | None = None


@dataclass(frozen=True, kw_only=True)
class Resources:
    devices: tuple[DeviceRule, ...] | None = None
    memory: Memory | None = None
    cpu: CPU | None = None
    pids_limit: int | None = None
    block_io: BlockIO | None = None
    hugepage_limits: tuple[HugepageLimit, ...] | None = None
    network: Network | None = None


@dataclass(frozen=True, kw_only=True)
class Interface:
    name: str | None = None
    add: str | None = None
    peer: str | None = None
    create_in_root: bool | None = None


@dataclass(frozen=True, kw_only=True)
class BindNS:
    cgroup: str | None = None
    ipc: str | None = None
    mnt: str | None = None
    net: str | None = None
    pid: str | None = None
    user: str | None = None
    uts: str | None = None


@dataclass(frozen=True, kw_only=True)
class Runtime:
    cgroups: tuple[str, ...] | None = None
    mounts: tuple[Mount, ...] | None = None
    mkdir: tuple[str, ...] | None = None
    interfaces: tuple[Interface, ...] | None = None
    bind_ns: BindNS | None = None
    namespace: str | None = None


@dataclass(frozen=True, kw_only=True)
class ImageConfig:
    """The per-image fields that a YAML entry and the ``org.mobyproject.config`` label share."""

    capabilities: tuple[str, ...] | None = None
    capabilities_add: tuple[str, ...] | None = None
    ambient: tuple[str, ...] | None = None
    mounts: tuple[Mount, ...] | None = None
    binds: tuple[str, ...] | None = None
    binds_add: tuple[str, ...] | None = None
    devices: tuple[Device, ...] | None = None
    tmpfs: tuple[str, ...] | None = None
    command: tuple[str, ...] | None = None
    env: tuple[str, ...] | None = None
    cwd: str | None = None
    net: str | None = None
    pid: str | None = None
    ipc: str | None = None
    uts: str | None = None
    userns: str | None = None
    hostname: str | None = None
    readonly: bool | None = None
    masked_paths: tuple[str, ...] | None = None
    readonly_paths: tuple[str, ...] | None = None
    uid: IdValue | None = None
    gid: IdValue | None = None
    additional_gids: tuple[IdValue, ...] | None = None
    no_new_privileges: bool | None = None
    oom_score_adj: int | None = None
    rlimits: tuple[str, ...] | None = None
    uid_mappings: tuple[IdMapping, ...] | None = None
    gid_mappings: tuple[IdMapping, ...] | None = None
    annotations: Mapping[str, str] | None = None
    sysctl: Mapping[str, str] | None = None
    rootfs_propagation: str | None = None
    cgroups_path: str | None = None
    resources: Resources | None = None
    runtime: Runtime | None = None


@dataclass(frozen=True, kw_only=True)
class Image(ImageConfig):
    """An entry of ``onboot``, ``onshutdown`` or ``services``."""

    name: str
    image: str
    origin: Origin | None = field(default=None, compare=False)


@dataclass(frozen=True, kw_only=True)
class File:
    """An entry of ``files``."""

    path: str
    directory: bool = False
    symlink: str | None = None
    contents: str | None = None
    # Absolute host path: the config layer resolves ``~/`` and paths relative to the YAML file.
    source: str | None = None
    metadata: str | None = None
    optional: bool = False
    mode: str | None = None
    uid: IdValue | None = None
    gid: IdValue | None = None
    origin: Origin | None = field(default=None, compare=False)
    # `source` as the YAML spells it (what LinuxKit records in ``metadata:`` files).
    written_source: str | None = field(default=None, compare=False)


@dataclass(frozen=True, kw_only=True)
class Volume:
    """An entry of ``volumes``."""

    name: str
    image: str | None = None
    readonly: bool = False
    format: str = "filesystem"
    platforms: tuple[str, ...] = ()
    origin: Origin | None = field(default=None, compare=False)


@dataclass(frozen=True, kw_only=True)
class Config:
    """A whole system description, after validation and merging of every input file."""

    kernel: Kernel = field(default_factory=Kernel)
    init: tuple[str, ...] = ()
    onboot: tuple[Image, ...] = ()
    onshutdown: tuple[Image, ...] = ()
    services: tuple[Image, ...] = ()
    files: tuple[File, ...] = ()
    volumes: tuple[Volume, ...] = ()
    # Formats named by the legacy ``outputs:`` section; used when the CLI names none.
    default_formats: tuple[str, ...] = ()
    # Non-fatal findings (e.g. ``trust:`` is ignored); the CLI prints them.
    warnings: tuple[str, ...] = ()
    # The input files, in merge order ("-" for stdin, URLs as given).
    sources: tuple[str, ...] = ()
