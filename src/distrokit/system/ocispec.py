"""A container's ``config.json`` (OCI runtime spec, section 1.13) and ``runtime.json`` (1.5).

Input is the resolved `ContainerSpec`; this module adds LinuxKit's defaults (the five default
mounts, capability sets, ``linux.resources``), drops empty optional fields the way Go's
``omitempty`` does, and writes JSON as Go's ``json.MarshalIndent(v, "", "    ")`` does
(`distrokit.system.gojson`).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from distrokit.config.model import (
    BlockIO,
    DeviceRule,
    IdMapping,
    Interface,
    Mount,
    Resources,
    Runtime,
    ThrottleDevice,
)
from distrokit.system.container import ContainerSpec, MountSpec
from distrokit.system.gojson import marshal_indent

OCI_VERSION = "1.2.1"

_DEFAULT_MOUNTS: tuple[tuple[str, str, tuple[str, ...]], ...] = (
    ("/dev", "tmpfs", ("nosuid", "strictatime", "mode=755", "size=65536k")),
    ("/dev/pts", "devpts", ("nosuid", "noexec", "newinstance", "ptmxmode=0666", "mode=0620")),
    ("/proc", "proc", ("nosuid", "nodev", "noexec", "relatime")),
    ("/sys", "sysfs", ("nosuid", "noexec", "nodev")),
    ("/sys/fs/cgroup", "cgroup", ("nosuid", "noexec", "nodev", "relatime", "ro")),
)
_RO_WHEN_READONLY = ("/dev", "/sys")
_BIND_NS_KEYS = ("cgroup", "ipc", "mnt", "net", "pid", "user", "uts")


def dumps(data: Any) -> bytes:
    """Go's ``MarshalIndent(v, "", "    ")``: 4 spaces, ``\u003c``-style escapes, no newline."""
    return marshal_indent(data, "    ")


def _compact(data: dict[str, Any]) -> dict[str, Any]:
    """Drop None values and empty containers (Go ``omitempty``)."""
    return {k: v for k, v in data.items() if v is not None and v not in ([], {})}


def _idmaps(maps: Sequence[IdMapping]) -> list[dict[str, int]]:
    return [{"containerID": m.container_id, "hostID": m.host_id, "size": m.size} for m in maps]


def mount_json(m: MountSpec) -> dict[str, Any]:
    """One OCI mount."""
    return _compact(
        {
            "destination": m.destination,
            "type": m.type,
            "source": m.source,
            "options": list(m.options),
            "uidMappings": _idmaps(m.uid_mappings),
            "gidMappings": _idmaps(m.gid_mappings),
        }
    )


def merged_mounts(spec: ContainerSpec) -> list[MountSpec]:
    """Default mounts, replaced by user mounts with the same destination, sorted."""
    by_dest: dict[str, MountSpec] = {}
    for dest, kind, options in _DEFAULT_MOUNTS:
        if spec.readonly and dest in _RO_WHEN_READONLY:
            options = (*options, "ro")
        by_dest[dest] = MountSpec(destination=dest, type=kind, source=kind, options=options)
    for m in spec.mounts:
        by_dest[m.destination] = m
    return [by_dest[d] for d in sorted(by_dest)]


def _device_rule(rule: DeviceRule) -> dict[str, Any]:
    return {
        "allow": rule.allow,
        **_compact(
            {"type": rule.type, "major": rule.major, "minor": rule.minor, "access": rule.access}
        ),
    }


def _throttle(devices: Sequence[ThrottleDevice] | None) -> list[dict[str, int]] | None:
    if not devices:
        return None
    return [{"major": d.major, "minor": d.minor, "rate": d.rate} for d in devices]


def _block_io(b: BlockIO | None) -> dict[str, Any] | None:
    if b is None:
        return None
    weights = [
        _compact(
            {"major": w.major, "minor": w.minor, "weight": w.weight, "leafWeight": w.leaf_weight}
        )
        for w in b.weight_device or ()
    ]
    return _compact(
        {
            "weight": b.weight,
            "leafWeight": b.leaf_weight,
            "weightDevice": weights,
            "throttleReadBpsDevice": _throttle(b.throttle_read_bps_device),
            "throttleWriteBpsDevice": _throttle(b.throttle_write_bps_device),
            "throttleReadIOPSDevice": _throttle(b.throttle_read_iops_device),
            "throttleWriteIOPSDevice": _throttle(b.throttle_write_iops_device),
        }
    )


def resources_json(res: Resources, extra_rules: Sequence[DeviceRule]) -> dict[str, Any]:
    """``linux.resources``: always present, device rules of `devices:` appended."""
    mem, cpu, net = res.memory, res.cpu, res.network
    rules = [*(res.devices or ()), *extra_rules]
    return _compact(
        {
            "devices": [_device_rule(r) for r in rules],
            "memory": None
            if mem is None
            else _compact(
                {
                    "limit": mem.limit,
                    "reservation": mem.reservation,
                    "swap": mem.swap,
                    "kernel": mem.kernel,
                    "kernelTCP": mem.kernel_tcp,
                    "swappiness": mem.swappiness,
                    "disableOOMKiller": mem.disable_oom_killer,
                }
            ),
            "cpu": None
            if cpu is None
            else _compact(
                {
                    "shares": cpu.shares,
                    "quota": cpu.quota,
                    "period": cpu.period,
                    "realtimeRuntime": cpu.realtime_runtime,
                    "realtimePeriod": cpu.realtime_period,
                    "cpus": cpu.cpus,
                    "mems": cpu.mems,
                }
            ),
            "pids": None if res.pids_limit is None else {"limit": res.pids_limit},
            "blockIO": _block_io(res.block_io),
            "hugepageLimits": [
                {"pageSize": h.page_size, "limit": h.limit} for h in res.hugepage_limits or ()
            ],
            "network": None
            if net is None
            else _compact(
                {
                    "classID": net.class_id,
                    "priorities": [
                        {"name": p.name, "priority": p.priority} for p in net.priorities or ()
                    ],
                }
            ),
        }
    )


def _process(spec: ContainerSpec) -> dict[str, Any]:
    bounding = list(spec.bounding)
    caps = _compact(
        {
            "bounding": bounding,
            "effective": list(spec.capabilities),
            "inheritable": bounding,
            "permitted": bounding,
            "ambient": list(spec.ambient),
        }
    )
    user: dict[str, Any] = {"uid": spec.uid, "gid": spec.gid}
    if spec.additional_gids:
        user["additionalGids"] = list(spec.additional_gids)
    process: dict[str, Any] = {"user": user}
    process.update(_compact({"args": list(spec.args), "env": list(spec.env)}))
    process["cwd"] = spec.cwd
    process["capabilities"] = caps
    process.update(
        _compact(
            {
                "rlimits": [{"type": r.type, "hard": r.hard, "soft": r.soft} for r in spec.rlimits],
                "noNewPrivileges": spec.no_new_privileges or None,
                "oomScoreAdj": spec.oom_score_adj,
            }
        )
    )
    return process


def config_json(spec: ContainerSpec) -> dict[str, Any]:
    """The OCI ``config.json`` of a container, as a JSON-ready dict."""
    linux = _compact(
        {
            "uidMappings": _idmaps(spec.uid_mappings),
            "gidMappings": _idmaps(spec.gid_mappings),
            # Go writes map keys sorted (struct fields keep their order).
            "sysctl": dict(sorted(spec.sysctl.items())),
        }
    )
    linux["resources"] = resources_json(spec.resources, spec.device_rules)
    linux.update(
        _compact(
            {
                "cgroupsPath": spec.cgroups_path,
                "namespaces": [_compact({"type": n.type, "path": n.path}) for n in spec.namespaces],
                "devices": [
                    {
                        "path": d.path,
                        "type": d.type,
                        "major": d.major,
                        "minor": d.minor,
                        "fileMode": d.file_mode,
                    }
                    for d in spec.devices
                ],
                "rootfsPropagation": spec.rootfs_propagation,
                "maskedPaths": list(spec.masked_paths),
                "readonlyPaths": list(spec.readonly_paths),
            }
        )
    )
    out: dict[str, Any] = {"ociVersion": OCI_VERSION, "process": _process(spec)}
    out["root"] = {"path": "rootfs", **({"readonly": True} if spec.readonly else {})}
    out.update(
        _compact(
            {
                "hostname": spec.hostname,
                "mounts": [mount_json(m) for m in merged_mounts(spec)],
                "annotations": dict(sorted(spec.annotations.items())),
            }
        )
    )
    out["linux"] = linux
    return out


def _runtime_mount(m: Mount) -> dict[str, Any]:
    return _compact(
        {
            "destination": m.destination,
            "type": m.type,
            "source": m.source,
            "options": list(m.options or ()),
            "uidMappings": _idmaps(m.uid_mappings or ()),
            "gidMappings": _idmaps(m.gid_mappings or ()),
        }
    )


def _interface(i: Interface) -> dict[str, Any]:
    return {
        **_compact({"name": i.name, "add": i.add, "peer": i.peer}),
        "createInRoot": bool(i.create_in_root),
    }


def runtime_json(runtime: Runtime, rootfs_mounts: Sequence[Mount]) -> dict[str, Any]:
    """``runtime.json``: every key present, `rootfs_mounts` before the user's mounts."""
    bind_ns = runtime.bind_ns
    return {
        "cgroups": list(runtime.cgroups or ()),
        "mounts": [_runtime_mount(m) for m in (*rootfs_mounts, *(runtime.mounts or ()))],
        "mkdir": list(runtime.mkdir or ()),
        "interfaces": [_interface(i) for i in runtime.interfaces or ()],
        "bindNS": {k: (getattr(bind_ns, k, None) or "") for k in _BIND_NS_KEYS},
        "namespace": runtime.namespace or "",
    }


def rootfs_mounts(bundle: str, lower: str, readonly: bool) -> tuple[Mount, ...]:
    """The mounts runtime.json starts with (2.4); `bundle` and `lower` are absolute paths."""
    rootfs = f"{bundle}/rootfs"
    if readonly:
        return (Mount(source=lower, destination=rootfs, options=("bind",)),)
    tmp = f"{bundle}/tmp"
    overlay = (f"lowerdir={lower}", f"upperdir={tmp}/upper", f"workdir={tmp}/work")
    return (
        Mount(source="tmpfs", type="tmpfs", destination=tmp),
        Mount(destination=tmp, options=("remount", "private")),
        Mount(source="overlay", type="overlay", destination=rootfs, options=overlay),
    )
