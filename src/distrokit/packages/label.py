"""The ``org.mobyproject.config`` label of a package, as LinuxKit's ``pkg build`` writes it.

LinuxKit decodes ``config:`` of ``build.yml`` into its image-config struct with its YAML
library and writes ``json.Marshal`` of that struct as the label. The label therefore follows Go,
not the YAML as written, and this module reproduces that decoding for every field:

- A string field takes any scalar's text (``mode: 0666`` is the string ``"0666"``); a number or
  boolean field takes its YAML value (``yes`` is true); a field of any type (``uid``, ``gid``,
  ``additionalGids``) takes the YAML 1.2 value, where ``0666`` is octal (438).
- Fields come out in the struct's order, unset ones are left out, map keys are sorted, and
  ``<``, ``>``, ``&`` are escaped as Go escapes them.
- The runtime-spec types (``mounts``, ``resources``, ID mappings) have no YAML names, so only
  their lower-cased field names are read: ``resources.memory.limit`` is kept, but camelCase keys
  (``hugepageLimits``, ``realtimePeriod``, ``uidMappings`` of a mount, ``containerID``) are
  dropped, as LinuxKit drops them.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

import yaml

from distrokit.system.gojson import marshal

_INT_TAG = "tag:yaml.org,2002:int"
_NULL_TEXT = frozenset({"", "~", "null", "Null", "NULL"})
_TRUE = frozenset(["y", "Y", "yes", "Yes", "YES", "true", "True", "TRUE", "on", "On", "ON"])
_FALSE = frozenset(["n", "N", "no", "No", "NO", "false", "False", "FALSE", "off", "Off", "OFF"])
_GO_INT = re.compile(r"[-+]?(0[bB][01_]+|0[oO][0-7_]+|0[xX][0-9a-fA-F_]+|0[0-7_]*|[1-9][0-9_]*)")
_GO_FLOAT = re.compile(r"[-+]?(\.[0-9]+|[0-9]+(\.[0-9]*)?)([eE][-+]?[0-9]+)?")


class LabelError(ValueError):
    """A value LinuxKit's decoder would refuse; the message names the field."""


def go_int(text: str) -> int | None:
    """``strconv.ParseInt(text, 0, 64)``: 0x, 0o, 0b and a leading 0 (octal), underscores."""
    if not _GO_INT.fullmatch(text):
        return None
    sign = -1 if text.startswith("-") else 1
    digits = text.lstrip("+-").replace("_", "")
    if len(digits) > 1 and digits[0] == "0" and digits[1] not in "xXoObB":
        return sign * int(digits, 8)
    return sign * int(digits, 0)


@dataclass(frozen=True)
class Kind:
    """A Go type: ``str``, ``int``, ``bool``, ``any``, or a list/map/struct of kinds."""

    name: str
    item: Kind | None = None
    fields: tuple[Field, ...] = ()


@dataclass(frozen=True)
class Field:
    """A struct field: its YAML name, JSON name, type, and how Go leaves it out."""

    yaml: str
    json: str
    kind: Kind
    # "empty": json omitempty on a value (omitted when zero); "nil": a pointer or slice with
    # omitempty (omitted only when absent); "never": always written.
    omit: str = "empty"


STR, INT, BOOL, ANY = Kind("str"), Kind("int"), Kind("bool"), Kind("any")
STRS = Kind("list", STR)
STR_MAP = Kind("map", STR)


def struct(*fields: Field) -> Kind:
    """A Go struct type."""
    return Kind("struct", fields=fields)


def _f(name: str, kind: Kind, omit: str = "nil", json_name: str | None = None) -> Field:
    """A field LinuxKit tags with the same YAML and JSON name."""
    return Field(name, json_name or name, kind, omit)


def _spec(json_name: str, kind: Kind, omit: str = "nil") -> Field:
    """A runtime-spec field: no YAML tag, so YAML sees the lower-cased Go name."""
    return Field(json_name.lower(), json_name, kind, omit)


ID_MAPPING = struct(
    _spec("containerID", INT, "never"), _spec("hostID", INT, "never"), _spec("size", INT, "never")
)
MOUNT = struct(
    _spec("destination", STR, "never"),
    _spec("type", STR, "empty"),
    _spec("source", STR, "empty"),
    _spec("options", STRS, "empty"),
    _spec("uidMappings", Kind("list", ID_MAPPING), "empty"),
    _spec("gidMappings", Kind("list", ID_MAPPING), "empty"),
)
_BLOCK_DEVICE = (_spec("major", INT, "never"), _spec("minor", INT, "never"))
RESOURCES = struct(
    _spec(
        "devices",
        Kind(
            "list",
            struct(
                _spec("allow", BOOL, "never"),
                _spec("type", STR, "empty"),
                _spec("major", INT),
                _spec("minor", INT),
                _spec("access", STR, "empty"),
            ),
        ),
        "empty",
    ),
    _spec(
        "memory",
        struct(
            *(_spec(k, INT) for k in ("limit", "reservation", "swap", "kernel", "kernelTCP")),
            _spec("swappiness", INT),
            *(_spec(k, BOOL) for k in ("disableOOMKiller", "useHierarchy", "checkBeforeUpdate")),
        ),
    ),
    _spec(
        "cpu",
        struct(
            *(_spec(k, INT) for k in ("shares", "quota", "burst", "period")),
            *(_spec(k, INT) for k in ("realtimeRuntime", "realtimePeriod")),
            _spec("cpus", STR, "empty"),
            _spec("mems", STR, "empty"),
            _spec("idle", INT),
        ),
    ),
    _spec("pids", struct(_spec("limit", INT, "never"))),
    _spec(
        "blockIO",
        struct(
            _spec("weight", INT),
            _spec("leafWeight", INT),
            _spec(
                "weightDevice",
                Kind(
                    "list",
                    struct(*_BLOCK_DEVICE, _spec("weight", INT), _spec("leafWeight", INT)),
                ),
                "empty",
            ),
            *(
                _spec(k, Kind("list", struct(*_BLOCK_DEVICE, _spec("rate", INT, "never"))), "empty")
                for k in (
                    "throttleReadBpsDevice",
                    "throttleWriteBpsDevice",
                    "throttleReadIOPSDevice",
                    "throttleWriteIOPSDevice",
                )
            ),
        ),
    ),
    _spec(
        "hugepageLimits",
        Kind("list", struct(_spec("pageSize", STR, "never"), _spec("limit", INT, "never"))),
        "empty",
    ),
    _spec(
        "network",
        struct(
            _spec("classID", INT),
            _spec(
                "priorities",
                Kind("list", struct(_spec("name", STR, "never"), _spec("priority", INT, "never"))),
                "empty",
            ),
        ),
    ),
    _spec("rdma", Kind("map", struct(_spec("hcaHandles", INT), _spec("hcaObjects", INT))), "empty"),
    _spec("unified", STR_MAP, "empty"),
)
DEVICE = struct(
    _f("path", STR, "never"),
    _f("type", STR, "never"),
    _f("major", INT, "never"),
    _f("minor", INT, "never"),
    _f("mode", STR, "empty"),
)
INTERFACE = struct(
    _f("name", STR, "empty"),
    _f("add", STR, "empty"),
    _f("peer", STR, "empty"),
    _f("createInRoot", BOOL, "never"),
)
RUNTIME = struct(
    _f("cgroups", STRS),
    _f("mounts", Kind("list", MOUNT)),
    _f("mkdir", STRS),
    _f("interfaces", Kind("list", INTERFACE)),
    # a struct value: JSON always writes it, even empty
    _f(
        "bindNS",
        struct(*(_f(k, STR) for k in ("cgroup", "ipc", "mnt", "net", "pid", "user", "uts"))),
        "never",
    ),
    _f("namespace", STR),
)
IMAGE_CONFIG = struct(
    _f("capabilities", STRS),
    _f("capabilities.add", STRS),
    _f("ambient", STRS),
    _f("mounts", Kind("list", MOUNT)),
    _f("binds", STRS),
    _f("binds.add", STRS),
    _f("devices", Kind("list", DEVICE)),
    _f("tmpfs", STRS),
    _f("command", STRS),
    _f("env", STRS),
    *(_f(k, STR, "empty") for k in ("cwd", "net", "pid", "ipc", "uts", "userns", "hostname")),
    _f("readonly", BOOL),
    _f("maskedPaths", STRS),
    _f("readonlyPaths", STRS),
    _f("uid", ANY),
    _f("gid", ANY),
    _f("additionalGids", Kind("list", ANY)),
    _f("noNewPrivileges", BOOL),
    _f("oomScoreAdj", INT),
    _f("rootfsPropagation", STR),
    _f("cgroupsPath", STR),
    _f("resources", RESOURCES),
    _f("sysctl", STR_MAP),
    _f("rlimits", STRS),
    _f("uidMappings", Kind("list", ID_MAPPING)),
    _f("gidMappings", Kind("list", ID_MAPPING)),
    _f("annotations", STR_MAP),
    _f("runtime", RUNTIME),
)

_ZERO: dict[str, Any] = {"str": "", "int": 0, "bool": False}


def _is_null(node: yaml.Node) -> bool:
    return isinstance(node, yaml.ScalarNode) and node.style is None and node.value in _NULL_TEXT


def _scalar(node: yaml.Node, kind: str, where: str) -> Any:
    if not isinstance(node, yaml.ScalarNode):
        raise LabelError(f"{where}: expected a {kind}, got a {type(node).__name__}")
    text: str = node.value
    if kind == "str":
        return "" if _is_null(node) else text
    if kind == "bool":
        if text in _TRUE or text in _FALSE:
            return text in _TRUE
        raise LabelError(f"{where}: cannot read {text!r} as a boolean")
    if kind == "int":
        number = go_int(text)
        if number is None:
            raise LabelError(f"{where}: cannot read {text!r} as an integer")
        return number
    # any: the YAML 1.2 value, as Go's YAML library resolves a plain scalar
    if node.style is not None:
        return text
    if text in _NULL_TEXT:
        return None
    if text in ("true", "True", "TRUE", "false", "False", "FALSE"):
        return text.lower() == "true"
    number = go_int(text)
    if number is not None:
        return number
    if _GO_FLOAT.fullmatch(text):
        return float(text)
    return text


def decode(node: yaml.Node, kind: Kind, where: str) -> Any:
    """`node` decoded into Go type `kind`, as JSON-ready data (dicts in field order)."""
    if kind.name in ("str", "int", "bool", "any"):
        return _scalar(node, kind.name, where)
    if kind.name == "list":
        if not isinstance(node, yaml.SequenceNode):
            raise LabelError(f"{where}: expected a list, got a {type(node).__name__}")
        assert kind.item is not None
        return [decode(item, kind.item, f"{where}[{i}]") for i, item in enumerate(node.value)]
    if not isinstance(node, yaml.MappingNode):
        raise LabelError(f"{where}: expected a mapping, got a {type(node).__name__}")
    if kind.name == "map":
        assert kind.item is not None
        items = {str(k.value): decode(v, kind.item, f"{where}.{k.value}") for k, v in node.value}
        return dict(sorted(items.items()))  # Go writes map keys sorted
    return _struct(node, kind, where)


def _struct(node: yaml.MappingNode, kind: Kind, where: str) -> dict[str, Any]:
    given = {str(k.value): v for k, v in node.value}  # unknown keys: ignored, as LinuxKit
    out: dict[str, Any] = {}
    problems: list[str] = []
    for field in kind.fields:
        value_node = given.get(field.yaml)
        present = value_node is not None and not _is_null(value_node)
        if present:
            assert value_node is not None
            try:
                value = decode(value_node, field.kind, f"{where}.{field.yaml}")
            except LabelError as err:
                problems.append(str(err))
                continue
        elif field.omit == "never":
            value = _ZERO.get(field.kind.name, {} if field.kind.name == "struct" else None)
        else:
            continue
        if field.omit == "empty" and value in ("", 0, False, [], {}, None):
            continue
        out[field.json] = value
    if problems:
        raise LabelError("; ".join(problems))
    return out


def config_label(node: yaml.MappingNode) -> str:
    """The label LinuxKit writes for `node` (the ``config:`` mapping of build.yml)."""
    return marshal(_struct(node, IMAGE_CONFIG, "config")).decode()
