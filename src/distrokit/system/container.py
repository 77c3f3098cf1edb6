"""The effective container spec: YAML entry + ``org.mobyproject.config`` label + image config.

Pure, typed functions implementing LinuxKit's precedence rules (reference section 1.9):
``command``/``env``/``cwd`` come from the YAML, else the label, else the image config;
``capabilities`` from the YAML, else the label's plus ``capabilities.add``; ``binds`` likewise
with ``binds.add``; every other field from the YAML if set (an explicit empty value clears the
label's), else the label, else the default. The result, `ContainerSpec`, holds resolved values
only. `container_spec` is the one entry point of the assembly: YAML entry + cached image in,
`ContainerSpec` out. Turning it into ``config.json``/``runtime.json`` (default mounts, sorting,
JSON) is `distrokit.system.ocispec`, and nothing else resolves containers.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import TypeVar

from distrokit.config.model import (
    BindNS,
    Config,
    DeviceRule,
    IdMapping,
    IdValue,
    Image,
    ImageConfig,
    Mount,
    Resources,
    Runtime,
    Volume,
)
from distrokit.config.rules import (
    RuleError,
    did_you_mean,
    expand_capabilities,
    infer_mount,
    parse_bind,
    parse_mode,
    parse_rlimit,
    parse_tmpfs,
    resolve_id,
    volume_merged_dir,
)
from distrokit.config.schema import parse_image_config
from distrokit.errors import ConfigError
from distrokit.oci.image import CachedImage
from distrokit.reference import expand

T = TypeVar("T")

LABEL = "org.mobyproject.config"
DEFAULT_BIND_OPTIONS = ("rw", "rbind", "rshared")


@dataclass(frozen=True, kw_only=True)
class ImageDefaults:
    """What the image's own OCI config provides (filled from the config blob by the builder)."""

    entrypoint: tuple[str, ...] = ()
    cmd: tuple[str, ...] = ()
    env: tuple[str, ...] = ()
    working_dir: str | None = None


@dataclass(frozen=True, kw_only=True)
class MountSpec:
    """One OCI mount with every field resolved."""

    destination: str
    type: str
    source: str
    options: tuple[str, ...] = ()
    uid_mappings: tuple[IdMapping, ...] = ()
    gid_mappings: tuple[IdMapping, ...] = ()


@dataclass(frozen=True, kw_only=True)
class DeviceNode:
    """A device node to create in the container (`linux.devices`)."""

    path: str
    type: str
    major: int
    minor: int
    file_mode: int


@dataclass(frozen=True, kw_only=True)
class Rlimit:
    """A POSIX rlimit; `type` is the ``RLIMIT_*`` name."""

    type: str
    soft: int
    hard: int


@dataclass(frozen=True, kw_only=True)
class Namespace:
    """A Linux namespace: `path` is None for a new one, else the namespace file to join."""

    type: str
    path: str | None = None


@dataclass(frozen=True, kw_only=True)
class ContainerSpec:
    """Everything the build layer needs to write one container's config.json and runtime.json.

    `mounts` holds the user's tmpfs, binds and mounts (later entries with the same destination
    replaced earlier ones), not yet merged with the five default mounts. `device_rules` are the
    cgroup rules implied by `devices`; the build layer appends them to `resources.devices`.
    """

    name: str
    image: str
    args: tuple[str, ...]
    env: tuple[str, ...]
    cwd: str
    uid: int
    gid: int
    additional_gids: tuple[int, ...]
    capabilities: tuple[str, ...]
    ambient: tuple[str, ...]
    mounts: tuple[MountSpec, ...]
    devices: tuple[DeviceNode, ...]
    device_rules: tuple[DeviceRule, ...]
    rlimits: tuple[Rlimit, ...]
    namespaces: tuple[Namespace, ...]
    readonly: bool
    hostname: str | None
    no_new_privileges: bool
    oom_score_adj: int | None
    masked_paths: tuple[str, ...]
    readonly_paths: tuple[str, ...]
    uid_mappings: tuple[IdMapping, ...]
    gid_mappings: tuple[IdMapping, ...]
    sysctl: Mapping[str, str] = field(default_factory=dict)
    annotations: Mapping[str, str] = field(default_factory=dict)
    rootfs_propagation: str | None = None
    cgroups_path: str | None = None
    resources: Resources = field(default_factory=Resources)
    runtime: Runtime = field(default_factory=Runtime)

    @property
    def bounding(self) -> tuple[str, ...]:
        """Bounding = permitted = inheritable set: sorted union of capabilities and ambient."""
        return tuple(sorted(set(self.capabilities) | set(self.ambient)))


def parse_label(text: str, where: str) -> ImageConfig:
    """Parse and validate an ``org.mobyproject.config`` label (YAML or JSON object).

    `where` names the image in error messages. Raises `ConfigError` with every problem.
    """
    return parse_image_config(text, f"{where} ({LABEL} label)")


def allocate_ids(config: Config) -> Mapping[str, int]:
    """LinuxKit's uid/gid allocation: from 100, onboot, then onshutdown, then services."""
    # Every entry takes the next id; a repeated (onboot/onshutdown) name keeps the last one.
    entries = (*config.onboot, *config.onshutdown, *config.services)
    return {entry.name: 100 + i for i, entry in enumerate(entries)}


def _pick(yaml_value: T | None, label_value: T | None, default: T) -> T:
    if yaml_value is not None:
        return yaml_value
    if label_value is not None:
        return label_value
    return default


def _pick_nonempty(*values: str | None) -> str | None:
    """LinuxKit's assignStringEmpty: the last non-empty value wins (for namespace settings)."""
    out = None
    for value in values:
        if value:
            out = value
    return out


def _unique_merge(first: tuple[str, ...] | None, second: tuple[str, ...] | None) -> tuple[str, ...]:
    """Ordered union; LinuxKit means to drop duplicates here but keeps them (we drop them)."""
    merged: dict[str, None] = {}
    for value in (*(first or ()), *(second or ())):
        merged.setdefault(value, None)
    return tuple(merged)


class _Resolver:
    """Collects every problem while resolving one container."""

    def __init__(self, entry: Image, volumes: Mapping[str, Volume]) -> None:
        self.entry = entry
        self.volumes = volumes
        self.problems: list[str] = []
        origin = entry.origin
        where = f"{origin.path} ({entry.name})" if origin else entry.name
        self.where = f"{origin.file}:{origin.line}:{origin.column}: {where}" if origin else where

    def fail(self, message: str, hint: str | None = None) -> None:
        self.problems.append(f"{self.where}: {message}" + (f" ({hint})" if hint else ""))

    def attempt(self, func: Callable[[], T], default: T) -> T:
        try:
            return func()
        except RuleError as err:
            self.fail(err.message, err.hint)
            return default

    def volume_source(self, name: str, read_only_requested: bool) -> str:
        volume = self.volumes.get(name)
        if volume is None:
            guess = did_you_mean(name, list(self.volumes))
            self.fail(f"volume {name} not found", f"did you mean '{guess}'?" if guess else None)
            return name
        if volume.readonly and not read_only_requested:
            self.fail(
                f"volume {name} is read-only, but attempting to write into container read-write",
                "add :ro to the bind",
            )
        return volume_merged_dir(name)

    def substitute_binds(self, binds: tuple[str, ...] | None) -> tuple[str, ...] | None:
        """Rewrite YAML binds whose source is a volume name to the volume's merged dir."""
        if binds is None:
            return None
        out = []
        for text in binds:
            try:
                bind = parse_bind(text)
            except RuleError:
                bind = None  # reported once, when the mounts are built
            if bind is not None and bind.volume is not None:
                parts = text.split(":")
                parts[0] = self.volume_source(bind.volume, bind.read_only)
                text = ":".join(parts)
            out.append(text)
        return tuple(out)

    def substitute_mounts(self, mounts: tuple[Mount, ...] | None) -> tuple[Mount, ...] | None:
        """Volume names as the source of bind mounts (LinuxKit's no-op, done for real here)."""
        if mounts is None:
            return None
        out = []
        for mount in mounts:
            source = mount.source or ""
            if mount.type == "bind" and source and not source.startswith("/"):
                opts = [o for o in (mount.options or ()) if o in ("ro", "rw")]
                source = self.volume_source(source, bool(opts) and opts[0] == "ro")
                mount = Mount(
                    destination=mount.destination,
                    type=mount.type,
                    source=source,
                    options=mount.options,
                    uid_mappings=mount.uid_mappings,
                    gid_mappings=mount.gid_mappings,
                )
            out.append(mount)
        return tuple(out)


def _mounts(
    r: _Resolver, tmpfs: tuple[str, ...], binds: tuple[str, ...], mounts: tuple[Mount, ...]
) -> tuple[MountSpec, ...]:
    """tmpfs, then binds, then mounts; a later entry replaces one with the same destination."""
    by_dest: dict[str, MountSpec] = {}
    for text in tmpfs:
        parsed = r.attempt(lambda text=text: parse_tmpfs(text), None)  # type: ignore[misc]
        if parsed is not None:
            dest, opts = parsed
            by_dest[dest] = MountSpec(destination=dest, type="tmpfs", source="tmpfs", options=opts)
    for text in binds:
        bind = r.attempt(lambda text=text: parse_bind(text), None)  # type: ignore[misc]
        if bind is not None:
            opts = DEFAULT_BIND_OPTIONS if bind.options is None else (*bind.options, "rbind")
            by_dest[bind.destination] = MountSpec(
                destination=bind.destination, type="bind", source=bind.source, options=opts
            )
    for m in mounts:
        target = r.attempt(lambda m=m: infer_mount(m.type, m.source, m.destination), None)  # type: ignore[misc]
        if target is not None:
            by_dest[target.destination] = MountSpec(
                destination=target.destination,
                type=target.type,
                source=target.source,
                options=m.options or (),
                uid_mappings=m.uid_mappings or (),
                gid_mappings=m.gid_mappings or (),
            )
    return tuple(by_dest.values())


def _devices(
    r: _Resolver, config: ImageConfig
) -> tuple[tuple[DeviceNode, ...], tuple[DeviceRule, ...]]:
    nodes: list[DeviceNode] = []
    rules: list[DeviceRule] = []
    for device in config.devices or ():
        if device.path == "all":
            rules.append(DeviceRule(allow=True, type=device.type, access="rwm"))
            continue
        mode = r.attempt(lambda d=device: parse_mode(d.mode or ""), None)  # type: ignore[misc]
        if mode is None:
            continue
        major, minor = device.major or 0, device.minor or 0
        nodes.append(
            DeviceNode(path=device.path, type=device.type, major=major, minor=minor, file_mode=mode)
        )
        rules.append(
            DeviceRule(allow=True, type=device.type, major=major, minor=minor, access="rwm")
        )
    return tuple(nodes), tuple(rules)


def _namespaces(entry: ImageConfig, label: ImageConfig) -> tuple[Namespace, ...]:
    """LinuxKit's order: network, ipc, uts, pid, user, mount (mount is always new)."""
    out: list[Namespace] = []
    settings = (
        ("network", _pick_nonempty("root", label.net, entry.net), ("none", "new")),
        ("ipc", _pick_nonempty("root", label.ipc, entry.ipc), ("new",)),
        ("uts", _pick_nonempty("root", label.uts, entry.uts), ("new",)),
        # pid is the one namespace that is new by default
        ("pid", _pick_nonempty(label.pid, entry.pid) or "new", ("new",)),
        ("user", _pick_nonempty("root", label.userns, entry.userns), ("new",)),
    )
    for ns_type, value, new_words in settings:
        if value in ("host", "root"):
            continue
        out.append(Namespace(type=ns_type, path=None if value in new_words else value))
    out.append(Namespace(type="mount"))
    return tuple(out)


def _runtime(entry: Runtime | None, label: Runtime | None) -> Runtime:
    """Whole-field precedence for runtime, per key for bindNS; every key present."""
    y, lb = entry or Runtime(), label or Runtime()
    ybind, lbind = y.bind_ns or BindNS(), lb.bind_ns or BindNS()
    keys = ("cgroup", "ipc", "mnt", "net", "pid", "user", "uts")
    bind_ns = BindNS(**{k: _pick(getattr(ybind, k), getattr(lbind, k), "") for k in keys})
    return Runtime(
        cgroups=_pick(y.cgroups, lb.cgroups, ()),
        mounts=_pick(y.mounts, lb.mounts, ()),
        mkdir=_pick(y.mkdir, lb.mkdir, ()),
        interfaces=_pick(y.interfaces, lb.interfaces, ()),
        bind_ns=bind_ns,
        namespace=_pick(y.namespace, lb.namespace, ""),
    )


def _ids(
    r: _Resolver, entry: ImageConfig, label: ImageConfig, ids: Mapping[str, int]
) -> tuple[int, int, tuple[int, ...]]:
    zero: IdValue = 0
    uid_value = _pick(entry.uid, label.uid, zero)
    gid_value = _pick(entry.gid, label.gid, zero)
    uid = r.attempt(lambda: resolve_id(uid_value, ids), 0)
    gid = r.attempt(lambda: resolve_id(gid_value, ids), 0)
    extra = _pick(entry.additional_gids, label.additional_gids, ())
    gids = tuple(r.attempt(lambda g=g: resolve_id(g, ids), 0) for g in extra)  # type: ignore[misc]
    return uid, gid, gids


def _rlimits(r: _Resolver, texts: tuple[str, ...]) -> tuple[Rlimit, ...]:
    out = []
    for text in texts:
        parsed = r.attempt(lambda t=text: parse_rlimit(t), None)  # type: ignore[misc]
        if parsed is not None:
            out.append(Rlimit(type=parsed[0], soft=parsed[1], hard=parsed[2]))
    return tuple(out)


def _capabilities(
    r: _Resolver, entry: ImageConfig, label: ImageConfig
) -> tuple[tuple[str, ...], tuple[str, ...]]:
    if entry.capabilities is not None:
        requested = entry.capabilities
    else:
        requested = _unique_merge(label.capabilities, entry.capabilities_add)
    none: tuple[str, ...] = ()
    caps = r.attempt(lambda: expand_capabilities(requested), none)
    ambient_req = _pick(entry.ambient, label.ambient, none)
    ambient = r.attempt(lambda: expand_capabilities(ambient_req), none)
    return caps, ambient


def resolve_container(
    entry: Image,
    label: ImageConfig | None,
    defaults: ImageDefaults,
    ids: Mapping[str, int],
    volumes: Mapping[str, Volume],
) -> ContainerSpec:
    """The effective spec of one onboot/onshutdown/service container.

    `label` is the parsed ``org.mobyproject.config`` label (None if the image has none),
    `defaults` the image's own config, `ids` from `allocate_ids`, `volumes` by name (all
    files). Raises `ConfigError` listing every problem, each naming the container.
    """
    r = _Resolver(entry, volumes)
    lb = label or ImageConfig()
    # Volume names are only substituted in the YAML's own binds and mounts, as in LinuxKit.
    yaml_binds = r.substitute_binds(entry.binds)
    yaml_binds_add = r.substitute_binds(entry.binds_add)
    yaml_mounts = r.substitute_mounts(entry.mounts)
    binds = yaml_binds if yaml_binds is not None else _unique_merge(lb.binds, yaml_binds_add)
    caps, ambient = _capabilities(r, entry, lb)
    merged = ImageConfig(devices=_pick(entry.devices, lb.devices, ()))
    devices, device_rules = _devices(r, merged)
    uid, gid, gids = _ids(r, entry, lb, ids)
    mounts = _mounts(r, _pick(entry.tmpfs, lb.tmpfs, ()), binds, _pick(yaml_mounts, lb.mounts, ()))
    spec = ContainerSpec(
        name=entry.name,
        image=entry.image,
        args=_pick(entry.command, lb.command, (*defaults.entrypoint, *defaults.cmd)),
        env=_pick(entry.env, lb.env, defaults.env),
        cwd=_pick_nonempty("/", defaults.working_dir, lb.cwd, entry.cwd) or "/",
        uid=uid,
        gid=gid,
        additional_gids=gids,
        capabilities=caps,
        ambient=ambient,
        mounts=mounts,
        devices=devices,
        device_rules=device_rules,
        rlimits=_rlimits(r, _pick(entry.rlimits, lb.rlimits, ())),
        namespaces=_namespaces(entry, lb),
        readonly=_pick(entry.readonly, lb.readonly, False),
        hostname=_pick_nonempty(lb.hostname, entry.hostname),
        no_new_privileges=_pick(entry.no_new_privileges, lb.no_new_privileges, False),
        oom_score_adj=_pick(entry.oom_score_adj, lb.oom_score_adj, None),
        masked_paths=_pick(entry.masked_paths, lb.masked_paths, ()),
        readonly_paths=_pick(entry.readonly_paths, lb.readonly_paths, ()),
        uid_mappings=_pick(entry.uid_mappings, lb.uid_mappings, ()),
        gid_mappings=_pick(entry.gid_mappings, lb.gid_mappings, ()),
        sysctl=dict(_pick(entry.sysctl, lb.sysctl, {})),
        annotations=dict(_pick(entry.annotations, lb.annotations, {})),
        rootfs_propagation=_pick(entry.rootfs_propagation, lb.rootfs_propagation, None) or None,
        cgroups_path=_pick(entry.cgroups_path, lb.cgroups_path, None) or None,
        resources=_pick(entry.resources, lb.resources, Resources()),
        runtime=_runtime(entry.runtime, lb.runtime),
    )
    if r.problems:
        raise ConfigError(r.problems)
    return spec


def container_spec(
    entry: Image, image: CachedImage, ids: Mapping[str, int], volumes: Mapping[str, Volume]
) -> ContainerSpec:
    """Resolve one container: YAML `entry` + the image's label + the image's own config."""
    cfg = image.config
    label_text = cfg.labels.get(LABEL)
    label = parse_label(label_text, expand(entry.image)) if label_text else None
    defaults = ImageDefaults(
        entrypoint=cfg.entrypoint or (), cmd=cfg.cmd or (), env=cfg.env, working_dir=cfg.working_dir
    )
    return resolve_container(entry, label, defaults, ids, volumes)
