"""LinuxKit's YAML schema as a table of typed fields, and parsing of one document with it.

Each `Obj` lists the YAML keys of one LinuxKit schema object, the `model` dataclass it builds
and the static checks LinuxKit only performs while building (capability and rlimit names,
device modes, bind/tmpfs syntax, mount types, files field combinations, volume names). The
tests check these tables against the dataclasses in `distrokit.config.model`.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import yaml
from yaml.nodes import MappingNode, Node, ScalarNode

from distrokit.config import model
from distrokit.config.nodes import (
    INVALID,
    Bool,
    Context,
    Field,
    Id,
    Int,
    Kind,
    ListOf,
    MapStr,
    Mode,
    Obj,
    PkgResolver,
    Str,
    item_nodes,
    value_node,
)
from distrokit.config.rules import (
    DEVICE_NODE_TYPES,
    DEVICE_RULE_TYPES,
    METADATA_FORMATS,
    VOLUME_FORMATS,
    VOLUME_NAME_RE,
    RuleError,
    check_capability,
    check_container_name,
    check_image_path,
    infer_mount,
    is_special_capability_list,
    parse_bind,
    parse_mode,
    parse_rlimit,
    parse_tmpfs,
)
from distrokit.errors import ConfigError
from distrokit.reference import ReferenceError, expand, parse_reference


class Ref(Str):
    """An image reference: checked on load, written expanded (``docker.io/library/...``)."""

    def convert(self, node: Node, path: str, ctx: Context) -> Any:
        value = super().convert(node, path, ctx)
        if value is not INVALID and not value.startswith("@pkg:"):
            try:
                parse_reference(value)
            except ReferenceError as err:
                ctx.error(node, path, err.message, err.hint)
        return value

    def dump(self, value: Any) -> Any:
        try:
            return expand(value)
        except ReferenceError:
            return value


class NumberText(Mode):
    """A string that may be written as an unquoted number, kept as its text (Go's YAML
    decoder fills a string field from any scalar): ``pageSize: 2097152``."""

    expected = "a string or a number"


class Pids(Obj):
    """``resources.pids`` is an object in YAML but a single number (`pids_limit`) in the model."""

    def dump(self, value: Any) -> Any:
        return {"limit": value}


STR, BOOL, INT, ID, MODE, REF = Str(), Bool(), Int(), Id(), Mode(), Ref()
STRINGS = ListOf(STR)


def _each(rule: Callable[[str], object]) -> Callable[[Any, Node, str, Context], None]:
    """A check applying `rule` to every string of a list, reporting at the item."""

    def check(value: Any, node: Node, path: str, ctx: Context) -> None:
        for i, (text, item) in enumerate(zip(value, item_nodes(node), strict=False)):
            try:
                rule(text)
            except RuleError as err:
                ctx.error(item, f"{path}[{i}]", err.message, err.hint)

    return check


def _check_capabilities(value: Any, node: Node, path: str, ctx: Context) -> None:
    if not is_special_capability_list(value):
        _each(check_capability)(value, node, path, ctx)


def _check_binds(value: Any, node: Node, path: str, ctx: Context) -> None:
    for i, (text, item) in enumerate(zip(value, item_nodes(node), strict=False)):
        try:
            bind = parse_bind(text)
        except RuleError as err:
            ctx.error(item, f"{path}[{i}]", err.message, err.hint)
            continue
        if bind.volume is not None and ctx.record_refs:
            ctx.volume_refs.append((bind.volume, bind.read_only, ctx.where(item, f"{path}[{i}]")))


def _check_mount(values: dict[str, Any], node: MappingNode, path: str, ctx: Context) -> None:
    try:
        target = infer_mount(values.get("type"), values.get("source"), values.get("destination"))
    except RuleError as err:
        ctx.error(node, path, err.message, err.hint)
        return
    if target.type == "bind" and not target.source.startswith("/") and ctx.record_refs:
        opts = [o for o in values.get("options") or () if o in ("ro", "rw")]
        read_only = bool(opts) and opts[0] == "ro"
        ctx.volume_refs.append((target.source, read_only, ctx.where(node, path)))


def _check_device(values: dict[str, Any], node: MappingNode, path: str, ctx: Context) -> None:
    is_rule = values["path"] == "all"
    allowed = DEVICE_RULE_TYPES if is_rule else DEVICE_NODE_TYPES
    if values["type"] not in allowed:
        ctx.error(
            value_node(node, "type"),
            f"{path}.type",
            f"invalid device type: {values['type']}",
            "one of " + ", ".join(allowed),
        )
    if is_rule:
        return
    if values.get("mode") is None:
        ctx.error(node, path, "missing required field 'mode'", "an octal string such as '0666'")
        return
    try:
        parse_mode(values["mode"])
    except RuleError:
        ctx.error(
            value_node(node, "mode"),
            f"{path}.mode",
            f"cannot parse device mode as octal value: {values['mode']!r}",
        )


def _check_image_name(values: dict[str, Any], node: MappingNode, path: str, ctx: Context) -> None:
    try:
        check_container_name(values["name"])
    except RuleError as err:
        ctx.error(value_node(node, "name"), f"{path}.name", err.message, err.hint)


def _check_file(values: dict[str, Any], node: MappingNode, path: str, ctx: Context) -> None:
    name = values.get("path", "")
    try:
        check_image_path(name)
    except RuleError as err:
        ctx.error(value_node(node, "path"), f"{path}.path", err.message, err.hint)
    has = {k for k in ("contents", "source", "metadata", "symlink") if values.get(k) is not None}
    if values.get("directory"):
        if "contents" in has:
            ctx.error(node, path, f"directory with contents not allowed: {name}")
    elif not has:
        ctx.error(
            node,
            path,
            f"contents of file ({name}) not specified",
            "give contents, source, metadata, symlink or directory",
        )
    for a, b in (("source", "metadata"), ("contents", "metadata"), ("contents", "source")):
        if a in has and b in has:
            ctx.error(node, path, f"specified {a.title()} and {b.title()}: {name}")
    if values.get("metadata") not in (None, *METADATA_FORMATS):
        ctx.error(
            value_node(node, "metadata"),
            f"{path}.metadata",
            f"unsupported metadata format: {values['metadata']}",
            "yaml or json",
        )
    if values.get("mode") is not None:
        try:
            parse_mode(values["mode"])
        except RuleError as err:
            ctx.error(value_node(node, "mode"), f"{path}.mode", err.message)
    source = values.get("source")
    if source is not None and not ctx.host_files:
        ctx.error(
            value_node(node, "source"),
            f"{path}.source",
            f"a configuration from {ctx.file} may not read host files ({source})",
            "pass --allow-host-files if you trust it to read any file you can read",
        )
    if source is not None:
        values["written_source"] = source
    if source is not None and ctx.base_dir is not None:
        values["source"] = str((ctx.base_dir / Path(source).expanduser()).absolute())
    elif source is not None:
        values["source"] = str(Path(source).expanduser().absolute())


def _check_volume(values: dict[str, Any], node: MappingNode, path: str, ctx: Context) -> None:
    if not VOLUME_NAME_RE.match(values["name"]):
        ctx.error(
            value_node(node, "name"),
            f"{path}.name",
            f"invalid volume name: {values['name']!r}",
            "use lower-case letters, digits, '_' and '-'",
        )
    fmt = values.get("format", "filesystem")
    if fmt not in VOLUME_FORMATS:
        ctx.error(
            value_node(node, "format"),
            f"{path}.format",
            f"unknown volume format: {fmt}",
            "filesystem or oci",
        )
    elif values.get("platforms") and fmt != "oci":
        ctx.error(
            value_node(node, "platforms"),
            f"{path}.platforms",
            "platforms are only used with format: oci",
        )


def _check_id_list(value: Any, node: Node, path: str, ctx: Context) -> None:
    """Nothing to do per item: `Id` records container names for the cross-file check."""


MOUNT_FIELDS = (
    Field("destination", STR),
    Field("type", STR),
    Field("source", STR),
    Field("options", STRINGS),
)
ID_MAPPING = Obj(
    "idmapping",
    (Field("hostID", INT), Field("containerID", INT), Field("size", INT)),
    model.IdMapping,
    required=("hostID", "containerID", "size"),
)
ID_MAPPINGS = ListOf(ID_MAPPING)
_MAPPING_FIELDS = (Field("uidMappings", ID_MAPPINGS), Field("gidMappings", ID_MAPPINGS))
MOUNT = Obj("mount", MOUNT_FIELDS + _MAPPING_FIELDS, model.Mount, check=_check_mount)
RUNTIME_MOUNT = Obj("mount", MOUNT_FIELDS + _MAPPING_FIELDS, model.Mount)
DEVICE = Obj(
    "device",
    (
        Field("path", STR),
        Field("type", STR),
        Field("major", INT),
        Field("minor", INT),
        Field("mode", MODE),
    ),
    model.Device,
    required=("path", "type"),
    check=_check_device,
)
DEVICE_RULE = Obj(
    "devicecgroup",
    (
        Field("allow", BOOL),
        Field("type", STR),
        Field("major", INT),
        Field("minor", INT),
        Field("access", STR),
    ),
    model.DeviceRule,
    required=("allow",),
)
MEMORY = Obj(
    "memory",
    (
        *tuple(
            Field(k, INT)
            for k in ("limit", "reservation", "swap", "kernel", "kernelTCP", "swappiness")
        ),
        Field("disableOOMKiller", BOOL),
    ),
    model.Memory,
)
CPU = Obj(
    "cpu",
    (
        *tuple(
            Field(k, INT)
            for k in ("shares", "quota", "period", "realtimeRuntime", "realtimePeriod")
        ),
        Field("cpus", STR),
        Field("mems", STR),
    ),
    model.CPU,
)
PIDS = Pids("pids", (Field("limit", INT),), lambda limit=None: limit)
WEIGHT_DEVICE = Obj(
    "weightdevice",
    (Field("major", INT), Field("minor", INT), Field("weight", INT), Field("leafWeight", INT)),
    model.WeightDevice,
    required=("major", "minor"),
)
THROTTLE_DEVICE = ListOf(
    Obj(
        "throttledevice",
        (Field("major", INT), Field("minor", INT), Field("rate", INT)),
        model.ThrottleDevice,
        required=("major", "minor", "rate"),
    )
)
BLOCK_IO = Obj(
    "blockio",
    (
        Field("weight", INT),
        Field("leafWeight", INT),
        Field("weightDevice", ListOf(WEIGHT_DEVICE)),
        Field("throttleReadBpsDevice", THROTTLE_DEVICE),
        Field("throttleWriteBpsDevice", THROTTLE_DEVICE),
        Field("throttleReadIOPSDevice", THROTTLE_DEVICE),
        Field("throttleWriteIOPSDevice", THROTTLE_DEVICE),
    ),
    model.BlockIO,
)
HUGEPAGE_LIMIT = Obj(
    "hugepagelimit",
    (Field("pageSize", NumberText()), Field("limit", INT)),
    model.HugepageLimit,
    required=("pageSize", "limit"),
)
NETWORK = Obj(
    "network",
    (
        Field("classID", INT),
        Field(
            "priorities",
            ListOf(
                Obj(
                    "interfacepriority",
                    (Field("name", STR), Field("priority", INT)),
                    model.InterfacePriority,
                    required=("name", "priority"),
                )
            ),
        ),
    ),
    model.Network,
)
RESOURCES = Obj(
    "resources",
    (
        Field("devices", ListOf(DEVICE_RULE)),
        Field("memory", MEMORY),
        Field("cpu", CPU),
        Field("pids", PIDS, attr="pids_limit"),
        Field("blockio", BLOCK_IO, attr="block_io"),
        Field("hugepageLimits", ListOf(HUGEPAGE_LIMIT)),
        Field("network", NETWORK),
    ),
    model.Resources,
)
INTERFACE = Obj(
    "interface",
    (Field("name", STR), Field("add", STR), Field("peer", STR), Field("createInRoot", BOOL)),
    model.Interface,
)
BIND_NS = Obj(
    "namespaces",
    tuple(Field(k, STR) for k in ("cgroup", "ipc", "mnt", "net", "pid", "user", "uts")),
    model.BindNS,
)
RUNTIME = Obj(
    "runtime",
    (
        Field("cgroups", STRINGS),
        Field("mounts", ListOf(RUNTIME_MOUNT)),
        Field("mkdir", STRINGS),
        Field("interfaces", ListOf(INTERFACE)),
        Field("bindNS", BIND_NS),
        Field("namespace", STR),
    ),
    model.Runtime,
)

IMAGE_CONFIG_FIELDS: tuple[Field, ...] = (
    Field("capabilities", STRINGS, _check_capabilities),
    Field("capabilities.add", STRINGS, _check_capabilities),
    Field("ambient", STRINGS, _check_capabilities),
    Field("mounts", ListOf(MOUNT)),
    Field("binds", STRINGS, _check_binds),
    Field("binds.add", STRINGS, _check_binds),
    Field("devices", ListOf(DEVICE)),
    Field("tmpfs", STRINGS, _each(parse_tmpfs)),
    Field("command", STRINGS),
    Field("env", STRINGS),
    Field("cwd", STR),
    Field("net", STR),
    Field("pid", STR),
    Field("ipc", STR),
    Field("uts", STR),
    Field("userns", STR),
    Field("hostname", STR),
    Field("readonly", BOOL),
    Field("maskedPaths", STRINGS),
    Field("readonlyPaths", STRINGS),
    Field("uid", ID),
    Field("gid", ID),
    Field("additionalGids", ListOf(ID), _check_id_list),
    Field("noNewPrivileges", BOOL),
    Field("oomScoreAdj", INT),
    Field("rlimits", STRINGS, _each(parse_rlimit)),
    Field("uidMappings", ID_MAPPINGS),
    Field("gidMappings", ID_MAPPINGS),
    Field("annotations", MapStr()),
    Field("sysctl", MapStr()),
    Field("rootfsPropagation", STR),
    Field("cgroupsPath", STR),
    Field("resources", RESOURCES),
    Field("runtime", RUNTIME),
)
IMAGE = Obj(
    "image",
    (Field("name", STR), Field("image", REF), *IMAGE_CONFIG_FIELDS),
    model.Image,
    required=("name", "image"),
    check=_check_image_name,
    with_origin=True,
)
IMAGE_CONFIG = Obj("image", IMAGE_CONFIG_FIELDS, model.ImageConfig)


def _label_config(name: str | None = None, image: str | None = None, **values: Any) -> Any:
    return model.ImageConfig(**values)


# A label may not set name or image; they are accepted here only to report that clearly.
LABEL = Obj("image", (Field("name", STR), Field("image", STR), *IMAGE_CONFIG_FIELDS), _label_config)
KERNEL = Obj(
    "kernel",
    (
        Field("image", REF),
        Field("cmdline", STR),
        Field("binary", STR),
        Field("tar", STR),
        Field("ucode", STR),
    ),
    model.Kernel,
)
FILE = Obj(
    "file",
    (
        Field("path", STR),
        Field("directory", BOOL),
        Field("symlink", STR),
        Field("contents", STR),
        Field("source", STR),
        Field("metadata", STR),
        Field("optional", BOOL),
        Field("mode", MODE),
        Field("uid", ID),
        Field("gid", ID),
    ),
    model.File,
    required=("path",),
    check=_check_file,
    with_origin=True,
)
VOLUME = Obj(
    "volume",
    (
        Field("name", STR),
        Field("image", STR),
        Field("readonly", BOOL),
        Field("format", STR),
        Field("platforms", STRINGS),
    ),
    model.Volume,
    required=("name",),
    check=_check_volume,
    with_origin=True,
)
TRUST = Obj("trust", (Field("image", STRINGS), Field("org", STRINGS)), dict)
OUTPUT = Obj("output", (Field("format", STR),), lambda format: format, required=("format",))

# The top level: `trust` and `outputs` are accepted but have no place in `model.Config`.
TOP_FIELDS: tuple[Field, ...] = (
    Field("kernel", KERNEL),
    Field("init", ListOf(REF)),
    Field("onboot", ListOf(IMAGE, keep_valid=True)),
    Field("onshutdown", ListOf(IMAGE, keep_valid=True)),
    Field("services", ListOf(IMAGE, keep_valid=True)),
    Field("files", ListOf(FILE, keep_valid=True)),
    Field("volumes", ListOf(VOLUME, keep_valid=True)),
    Field("trust", TRUST),
    Field("outputs", ListOf(OUTPUT), attr="default_formats"),
)
TOP = Obj("config", TOP_FIELDS, dict)
DUMP_ORDER: tuple[Field, ...] = TOP_FIELDS[:7]


class _Loader(yaml.CSafeLoader):
    """The C loader with memoised tag resolution.

    Resolving each plain scalar's implicit tag runs in Python and costs as much as parsing;
    keys and many values repeat, and the result only depends on the text, so it is cached.
    """

    _tags: dict[tuple[str, tuple[bool, bool]], str] = {}  # noqa: RUF012 (shared cache)

    def resolve(self, kind: Any, value: Any, implicit: Any) -> Any:
        if kind is not ScalarNode:
            return super().resolve(kind, value, implicit)  # type: ignore[no-untyped-call]
        key = (value, implicit)
        tag = self._tags.get(key)
        if tag is None:
            tag = super().resolve(kind, value, implicit)  # type: ignore[no-untyped-call]
            if len(self._tags) < 100_000:
                self._tags[key] = tag
        return tag


def compose(text: str, ctx: Context) -> Node | None:
    """Compose one YAML document with the C composer; syntax errors become problems."""
    try:
        return yaml.compose(text, Loader=_Loader)
    except yaml.MarkedYAMLError as err:
        mark = err.problem_mark or err.context_mark
        pos = f"{mark.line + 1}:{mark.column + 1}" if mark else "1:1"
        what = ", ".join(p for p in (err.context, err.problem) if p)
        ctx.problems.append(f"{ctx.file}:{pos}: invalid YAML: {what}")
    except yaml.YAMLError as err:
        ctx.problems.append(f"{ctx.file}: {err}")
    except UnicodeEncodeError:
        # Text decoded with surrogateescape (invalid UTF-8 bytes) reaches the parser this way.
        ctx.problems.append(f"{ctx.file}: invalid YAML: the text is not valid UTF-8")
    return None


def parse_document(text: str, ctx: Context) -> model.Config:
    """Validate one YAML document into a `Config` (its problems are left in `ctx`)."""
    node = compose(text, ctx)
    if node is None:
        return model.Config()
    if not isinstance(node, MappingNode):
        TOP.mismatch(node, "", ctx)
        return model.Config()
    values, _ = TOP.convert_fields(node, "", ctx)
    if "trust" in values:
        trust_node = next(k for k, _ in node.value if k.value == "trust")
        ctx.warn(trust_node, "trust", "content trust is no longer supported; section ignored")
        del values["trust"]
    if "kernel" not in values:
        values["kernel"] = model.Kernel()
    values["warnings"] = tuple(ctx.warnings)
    values["sources"] = (ctx.file,)
    return model.Config(**values)


def _label_spellings(node: MappingNode) -> None:
    """Labels written by LinuxKit's ``pkg build`` spell ``resources.blockio`` as its JSON name
    ``blockIO``; read it as the same field."""
    for key_node, value in node.value:
        if getattr(key_node, "value", None) == "resources" and isinstance(value, MappingNode):
            for inner_key, _ in value.value:
                if getattr(inner_key, "value", None) == "blockIO":
                    inner_key.value = "blockio"


def parse_image_config(text: str, where: str) -> model.ImageConfig:
    """Parse an ``org.mobyproject.config`` label; raise `ConfigError` with every problem."""
    ctx = Context(where, record_refs=False)
    node = compose(text, ctx)
    result: Any = INVALID
    if node is not None and not isinstance(node, MappingNode):
        LABEL.mismatch(node, "", ctx)
    elif node is not None:
        _label_spellings(node)
        for key_node, _ in node.value:
            if getattr(key_node, "value", None) in ("name", "image"):
                ctx.error(
                    key_node, key_node.value, f"{key_node.value} cannot be set in metadata label"
                )
        result = LABEL.convert(node, "", ctx)
    if ctx.problems:
        raise ConfigError(ctx.problems)
    return result if result is not INVALID else model.ImageConfig()


def object_kinds() -> list[Obj]:
    """Every object schema (for the consistency test against `model`)."""
    found: list[Obj] = []

    def visit(kind: Kind) -> None:
        if isinstance(kind, ListOf):
            visit(kind.item)
        elif isinstance(kind, Obj) and kind not in found:
            found.append(kind)
            for f in kind.fields:
                visit(f.kind)

    visit(TOP)
    visit(IMAGE_CONFIG)
    return found


def new_context(
    file: str, *, base_dir: Path | None = None, resolve_pkg: PkgResolver | None = None
) -> Context:
    """A context for one input file (`base_dir` None for stdin and URLs)."""
    return Context(file, base_dir=base_dir, resolve_pkg=resolve_pkg)
