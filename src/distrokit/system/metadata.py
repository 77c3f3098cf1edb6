"""``files: metadata: yaml|json``: the merged config as LinuxKit writes it into the system.

LinuxKit marshals its own config struct, so the file has that struct's shape, not the YAML's:
every top-level section (``null`` in JSON / ``[]`` in YAML when empty), ``kernel`` always
(with ``image: ""`` when there is none), ``directory`` and ``optional`` on every file, a
file's ``source`` as written in the YAML, image references expanded. JSON is written as Go's
``json.MarshalIndent(v, "", "    ")`` writes it.
"""

from __future__ import annotations

from typing import Any

from distrokit.config.dump import config_data, dump_yaml_data
from distrokit.config.model import Config, File
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


def moby_data(config: Config) -> dict[str, Any]:
    """The config in the shape of LinuxKit's struct; None marks an empty (nil) section."""
    data = config_data(config)
    kernel = data.get("kernel") or {}
    out: dict[str, Any] = {"kernel": {"image": kernel.get("image", "")}}
    out["kernel"].update({k: kernel[k] for k in _KERNEL_KEYS[1:] if kernel.get(k)})
    for section in _SECTIONS:
        out[section] = data.get(section) or None
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
    return dump_yaml_data(data).encode()
