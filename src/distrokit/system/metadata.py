"""``files: metadata: yaml|json``: the merged config as LinuxKit writes it into the system.

LinuxKit marshals its own config struct, so the file has that struct's shape, not the YAML's:
every top-level section (``null`` in JSON / ``[]`` in YAML when empty), ``kernel`` always
(with ``image: ""`` when there is none), ``directory`` and ``optional`` on every file, a
file's ``source`` as written in the YAML, image references expanded. JSON is written as Go's
``json.MarshalIndent(v, "", "    ")`` writes it.
"""

from __future__ import annotations

from typing import Any

from distrokit.config.dump import config_data
from distrokit.config.model import Config, File
from distrokit.system import goyaml
from distrokit.system.gojson import marshal_indent

_SECTIONS = ("init", "onboot", "onshutdown", "services")
_KERNEL_KEYS = ("image", "cmdline", "binary", "tar", "ucode")
_VOLUME_KEYS = ("name", "image", "readonly", "format", "platforms")


def _file(f: File) -> dict[str, Any]:
    out: dict[str, Any] = {"path": f.path, "directory": f.directory}
    optional = {
        "symlink": f.symlink,
        "contents": f.contents,
        "source": f.written_source if f.written_source is not None else f.source,
        "metadata": f.metadata,
    }
    out.update({k: v for k, v in optional.items() if v})
    out["optional"] = f.optional
    out.update({k: v for k, v in (("mode", f.mode), ("uid", f.uid), ("gid", f.gid)) if v})
    return out


# LinuxKit's Image struct: name, image, then its image config, in field order.
_IMAGE_KEYS = (
    *("name", "image", "capabilities", "capabilities.add", "ambient", "mounts", "binds"),
    *("binds.add", "devices", "tmpfs", "command", "env", "cwd", "net", "pid", "ipc", "uts"),
    *("userns", "hostname", "readonly", "maskedPaths", "readonlyPaths", "uid", "gid"),
    *("additionalGids", "noNewPrivileges", "oomScoreAdj", "rootfsPropagation", "cgroupsPath"),
    *("resources", "sysctl", "rlimits", "uidMappings", "gidMappings", "annotations", "runtime"),
)
_RUNTIME_KEYS = ("cgroups", "mounts", "mkdir", "interfaces", "bindNS", "namespace")
_MAPS = ("sysctl", "annotations")


def _image(data: dict[str, Any]) -> dict[str, Any]:
    out = {k: data[k] for k in _IMAGE_KEYS if k in data}
    out.update({k: v for k, v in data.items() if k not in out})
    for key in _MAPS:
        if key in out:
            out[key] = dict(sorted(out[key].items()))  # Go writes map keys sorted
    if isinstance(out.get("resources"), dict):  # the runtime-spec's JSON name
        out["resources"] = {
            ("blockIO" if k == "blockio" else k): v for k, v in out["resources"].items()
        }
    runtime = out.get("runtime")
    if isinstance(runtime, dict):
        # bindNS is a struct: JSON always has it, YAML leaves it out when empty.
        full = {**runtime, "bindNS": runtime.get("bindNS") or {}}
        if "interfaces" in full:
            full["interfaces"] = [
                {**i, "createInRoot": bool(i.get("createInRoot"))} for i in full["interfaces"]
            ]
        out["runtime"] = {k: full[k] for k in _RUNTIME_KEYS if k in full}
    return out


def moby_data(config: Config) -> dict[str, Any]:
    """The config in the shape of LinuxKit's struct; None marks an empty (nil) section."""
    data = config_data(config)
    kernel = data.get("kernel") or {}
    out: dict[str, Any] = {"kernel": {"image": kernel.get("image", "")}}
    out["kernel"].update({k: kernel[k] for k in _KERNEL_KEYS[1:] if kernel.get(k)})
    out["init"] = data.get("init") or None
    for section in _SECTIONS[1:]:
        out[section] = [_image(i) for i in data.get(section) or []] or None
    out["files"] = [_file(f) for f in config.files] or None
    volumes = data.get("volumes") or []
    out["volumes"] = [{k: v[k] for k in _VOLUME_KEYS if v.get(k)} for v in volumes] or None
    return out


def metadata_json(config: Config) -> bytes:
    """``metadata: json``."""
    return marshal_indent(moby_data(config), "    ")


def metadata_yaml(config: Config) -> bytes:
    """``metadata: yaml`` (empty sections as ``[]``)."""
    data = {k: ([] if v is None else v) for k, v in moby_data(config).items()}
    for section in _SECTIONS[1:]:
        data[section] = [_yaml_image(i) for i in data[section]]
    return goyaml.marshal(data)


def _id_maps(maps: list[dict[str, Any]] | None) -> list[dict[str, Any]]:
    return [
        {"containerid": m.get("containerID", 0), "hostid": m.get("hostID", 0), "size": m["size"]}
        for m in maps or []
    ]


def _yaml_mount(m: dict[str, Any]) -> dict[str, Any]:
    """An OCI mount as the YAML library writes the runtime-spec struct (no YAML tags: every
    field, lower-cased)."""
    return {
        "destination": m.get("destination", ""),
        "type": m.get("type", ""),
        "source": m.get("source", ""),
        "options": m.get("options") or [],
        "uidmappings": _id_maps(m.get("uidMappings")),
        "gidmappings": _id_maps(m.get("gidMappings")),
    }


def _lower_keys(value: Any) -> Any:
    if isinstance(value, dict):
        return {k.lower(): _lower_keys(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_lower_keys(v) for v in value]
    return value


# runtime-spec resource structs as the YAML library writes them: every field, lower-cased,
# with its zero value (null for pointers) when unset. Lists of structs: (fields) in a tuple.
_Shape = dict[str, Any]
_DEVICE_RULE: _Shape = {"allow": False, "type": "", "major": None, "minor": None, "access": ""}
_RESOURCES: _Shape = {
    "devices": (_DEVICE_RULE,),
    "memory": dict.fromkeys(
        [
            "limit",
            "reservation",
            "swap",
            "kernel",
            "kerneltcp",
            "swappiness",
            "disableoomkiller",
            "usehierarchy",
            "checkbeforeupdate",
        ]
    ),
    "cpu": dict.fromkeys(("shares", "quota", "burst", "period", "realtimeruntime"))
    | {"realtimeperiod": None, "cpus": "", "mems": "", "idle": None},
    "pids": {"limit": 0},
    "blockio": {"weight": None, "leafweight": None}
    | {f"{k}device": [] for k in ("weight", "throttlereadbps", "throttlewritebps")}
    | {f"{k}device": [] for k in ("throttlereadiops", "throttlewriteiops")},
    "hugepagelimits": ({"pagesize": "", "limit": 0},),
    "network": {"classid": None, "priorities": ({"name": "", "priority": 0},)},
    "rdma": {},
    "unified": {},
}


def _shaped(value: Any, shape: Any) -> Any:
    """`value` (keys in any case) laid out as `shape`: every field, zero values filled in."""
    if isinstance(shape, tuple):  # a list of structs
        return [_shaped(v, shape[0]) for v in value or []]
    if isinstance(shape, dict) and shape and isinstance(value, dict):
        given = {k.lower(): v for k, v in value.items()}
        out = {k: _shaped(given[k], sub) if k in given else _zero(sub) for k, sub in shape.items()}
        out.update({k: _lower_keys(v) for k, v in given.items() if k not in shape})
        return out
    return _lower_keys(value)


def _zero(shape: Any) -> Any:
    if isinstance(shape, tuple):
        return []
    if isinstance(shape, dict):
        return None if shape else {}  # a struct pointer is null, a map is empty
    return shape


def _yaml_image(image: dict[str, Any]) -> dict[str, Any]:
    out = dict(image)
    if "mounts" in out:
        out["mounts"] = [_yaml_mount(m) for m in out["mounts"]]
    for key in ("uidMappings", "gidMappings"):
        if key in out:
            out[key] = _id_maps(out[key])
    if "resources" in out:
        # runtime-spec structs have no YAML tags: lower-cased field names, every field
        out["resources"] = _shaped(out["resources"], _RESOURCES)
    runtime = out.get("runtime")
    if isinstance(runtime, dict):
        runtime = dict(runtime)
        if not runtime.get("bindNS"):
            runtime.pop("bindNS", None)
        if "mounts" in runtime:
            runtime["mounts"] = [_yaml_mount(m) for m in runtime["mounts"]]
        out["runtime"] = runtime
    return out
