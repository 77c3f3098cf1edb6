"""Typed walking of composed YAML nodes: every value checked, every error with its position.

The validator is hand-written instead of using jsonschema on the loaded data: a loaded dict has
lost the line and column of each value, and jsonschema's error list gives poor messages for
unions and cannot suggest field names. Walking PyYAML's composed nodes (the C composer,
``yaml.compose(..., Loader=yaml.CSafeLoader)``) keeps every position, finds duplicate keys
(which plain loading silently drops) and reports all problems of a document at once.

Scalars follow YAML 1.2 where it matters to LinuxKit users (whose files are read by a YAML 1.2
parser): only ``true``/``false`` are booleans, and ``yes``/``no``/``on``/``off`` are strings.
"""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from types import MappingProxyType
from typing import Any

import yaml
from yaml.nodes import MappingNode, Node, ScalarNode, SequenceNode

from distrokit.config.model import Origin
from distrokit.config.rules import did_you_mean
from distrokit.errors import DistrokitError

_TAG = "tag:yaml.org,2002:"
_BOOL_WORDS = ("true", "false")
_CONSTRUCTOR = yaml.constructor.SafeConstructor()
TEMPLATE_PREFIX = "@pkg:"


class _Invalid:
    """Marks a value that failed validation (its problem is already recorded)."""


INVALID: Any = _Invalid()

PkgResolver = Callable[[Path], str]


class Context:
    """Per-document state: the file name for messages, problems, and cross-references.

    Names used as uid/gid and volumes used in binds can only be checked once every file is
    merged, so they are recorded here with their position and checked by the loader.
    """

    def __init__(
        self,
        file: str,
        *,
        base_dir: Path | None = None,
        resolve_pkg: PkgResolver | None = None,
        record_refs: bool = True,
        host_files: bool = True,
    ) -> None:
        self.file = file
        self.base_dir = base_dir
        # Whether `files: source:` may read the host's files (not for remote or stdin YAML
        # unless the user says so).
        self.host_files = host_files
        self.resolve_pkg = resolve_pkg
        self.record_refs = record_refs
        self.problems: list[str] = []
        self.warnings: list[str] = []
        # (name, location) of every uid/gid/additionalGids naming a container
        self.id_refs: list[tuple[str, str]] = []
        # (volume name, read-only requested, location) of every bind/mount naming a volume
        self.volume_refs: list[tuple[str, bool, str]] = []
        # (object kind, name) of named entries dropped as invalid: still known to references
        self.invalid_names: list[tuple[str, str]] = []

    def where(self, node: Node, path: str) -> str:
        """``file:line:col: path`` for messages (1-based)."""
        mark = node.start_mark
        return f"{self.file}:{mark.line + 1}:{mark.column + 1}: {path or '(root)'}"

    def origin(self, node: Node, path: str) -> Origin:
        mark = node.start_mark
        return Origin(file=self.file, line=mark.line + 1, column=mark.column + 1, path=path)

    def error(self, node: Node, path: str, message: str, hint: str | None = None) -> None:
        self.problems.append(
            f"{self.where(node, path)}: {message}" + (f" ({hint})" if hint else "")
        )

    def warn(self, node: Node, path: str, message: str) -> None:
        self.warnings.append(f"{self.where(node, path)}: {message}")

    def template(self, node: Node, path: str, value: str) -> str:
        """Resolve an ``@pkg:<dir>`` template to the package's image reference."""
        if self.base_dir is None:
            self.error(node, path, f"{TEMPLATE_PREFIX} templates are only resolved in local files")
            return value
        if self.resolve_pkg is None:
            self.error(
                node,
                path,
                f"{value}: {TEMPLATE_PREFIX} templates need `distrokit pkg`",
                "package support is not available in this installation",
            )
            return value
        target = self.base_dir / value[len(TEMPLATE_PREFIX) :]
        try:
            return self.resolve_pkg(target)
        except DistrokitError as err:
            self.error(node, path, f"cannot resolve {value}: {err.message}", err.hint)
            return value


def describe(node: Node) -> str:
    """How a node reads in a type error: 'a list', 'null', "the integer 42"..."""
    if isinstance(node, MappingNode):
        return "a mapping"
    if isinstance(node, SequenceNode):
        return "a list"
    kind = node.tag.removeprefix(_TAG)
    if kind == "str" or (isinstance(node, ScalarNode) and _is_plain_word_bool(node)):
        return f"the string {node.value!r}"
    names = {"null": "null", "int": "an integer", "bool": "a boolean", "float": "a number"}
    return f"{names.get(kind, kind)} ({node.value})" if kind != "null" else "null"


def _is_plain_word_bool(node: ScalarNode) -> bool:
    # YAML 1.1 booleans such as yes/no/on/off are strings for LinuxKit's YAML 1.2 parser.
    return node.tag == _TAG + "bool" and node.value.lower() not in _BOOL_WORDS


class Kind:
    """A value type: converts a node (recording problems) and dumps a value back to data."""

    expected = "a value"

    def convert(self, node: Node, path: str, ctx: Context) -> Any:
        raise NotImplementedError

    def dump(self, value: Any) -> Any:
        return value

    def mismatch(self, node: Node, path: str, ctx: Context, hint: str | None = None) -> Any:
        ctx.error(node, path, f"expected {self.expected}, got {describe(node)}", hint)
        return INVALID


class Str(Kind):
    expected = "a string"

    def convert(self, node: Node, path: str, ctx: Context) -> Any:
        if not isinstance(node, ScalarNode):
            return self.mismatch(node, path, ctx)
        if node.tag != _TAG + "str" and not _is_plain_word_bool(node):
            hint = "quote it" if node.tag != _TAG + "null" else None
            return self.mismatch(node, path, ctx, hint)
        value: str = node.value
        if value.startswith(TEMPLATE_PREFIX):
            value = ctx.template(node, path, value)
        return value


class Mode(Str):
    """An octal mode: a string, or an unquoted number read by its digits (``0644``)."""

    expected = "an octal mode string"

    def convert(self, node: Node, path: str, ctx: Context) -> Any:
        if isinstance(node, ScalarNode) and node.tag == _TAG + "int":
            return node.value
        return super().convert(node, path, ctx)


class Bool(Kind):
    expected = "a boolean (true or false)"

    def convert(self, node: Node, path: str, ctx: Context) -> Any:
        if not isinstance(node, ScalarNode) or node.tag != _TAG + "bool":
            return self.mismatch(node, path, ctx)
        if node.value.lower() not in _BOOL_WORDS:
            return self.mismatch(node, path, ctx, "only true and false are booleans")
        return node.value.lower() == "true"


class Int(Kind):
    expected = "an integer"

    def convert(self, node: Node, path: str, ctx: Context) -> Any:
        if not isinstance(node, ScalarNode) or node.tag != _TAG + "int":
            return self.mismatch(node, path, ctx)
        return _CONSTRUCTOR.construct_yaml_int(node)


class Id(Kind):
    """uid/gid: a number, or a container name (resolved through the id allocation)."""

    expected = "an integer or a container name"

    def convert(self, node: Node, path: str, ctx: Context) -> Any:
        if isinstance(node, ScalarNode) and node.tag == _TAG + "int":
            return _CONSTRUCTOR.construct_yaml_int(node)
        if isinstance(node, ScalarNode) and (node.tag == _TAG + "str" or _is_plain_word_bool(node)):
            value: str = node.value
            if value not in ("", "root") and ctx.record_refs:
                ctx.id_refs.append((value, ctx.where(node, path)))
            return value
        return self.mismatch(node, path, ctx)


@dataclass(frozen=True)
class ListOf(Kind):
    item: Kind
    # Top-level sections keep their valid entries when one is invalid, so checks across
    # entries (duplicate names, uid names) still see the rest instead of cascading.
    keep_valid: bool = False
    expected = "a list"

    def convert(self, node: Node, path: str, ctx: Context) -> Any:
        if not isinstance(node, SequenceNode):
            return self.mismatch(node, path, ctx, "write [] for an empty list")
        out = [self.item.convert(child, f"{path}[{i}]", ctx) for i, child in enumerate(node.value)]
        if self.keep_valid:
            return tuple(v for v in out if v is not INVALID)
        return INVALID if any(v is INVALID for v in out) else tuple(out)

    def dump(self, value: Any) -> Any:
        return [self.item.dump(v) for v in value]


def mapping_items(node: MappingNode, path: str, ctx: Context) -> Iterator[tuple[Node, str, Node]]:
    """(key node, key, value node) of a mapping; non-string and duplicate keys are errors."""
    seen: dict[str, Node] = {}
    for key_node, value_node in node.value:
        if not isinstance(key_node, ScalarNode) or key_node.tag not in (
            _TAG + "str",
            _TAG + "merge",
        ):
            ctx.error(key_node, path, f"keys must be strings, got {describe(key_node)}")
            continue
        key = key_node.value
        child = f"{path}.{key}" if path else key
        if key in seen:
            first = seen[key].start_mark
            ctx.error(key_node, child, f"duplicate key (first at line {first.line + 1})")
            continue
        seen[key] = key_node
        yield key_node, key, value_node


class MapStr(Kind):
    expected = "a mapping of strings to strings"

    def convert(self, node: Node, path: str, ctx: Context) -> Any:
        if not isinstance(node, MappingNode):
            return self.mismatch(node, path, ctx)
        out: dict[str, str] = {}
        ok = True
        for _, key, value_node in mapping_items(node, path, ctx):
            value = Str().convert(value_node, f"{path}.{key}", ctx)
            ok = ok and value is not INVALID
            out[key] = value
        # read-only view: the config is immutable all the way down
        return MappingProxyType(out) if ok else INVALID

    def dump(self, value: Any) -> Any:
        return dict(value)


Check = Callable[[Any, Node, str, Context], None]


@dataclass(frozen=True)
class Field:
    """One YAML key of an object: its dataclass attribute, type and optional value check."""

    key: str
    kind: Kind
    check: Check | None = None
    attr: str = ""

    def __post_init__(self) -> None:
        if not self.attr:
            object.__setattr__(self, "attr", snake_case(self.key))


_CAMEL_1 = re.compile(r"(?<=[a-z0-9])(?=[A-Z])")
_CAMEL_2 = re.compile(r"(?<=[A-Z])(?=[A-Z][a-z])")


def snake_case(key: str) -> str:
    """``disableOOMKiller`` -> ``disable_oom_killer``, ``binds.add`` -> ``binds_add``."""
    return _CAMEL_2.sub("_", _CAMEL_1.sub("_", key)).lower().replace(".", "_")


ObjectCheck = Callable[[dict[str, Any], MappingNode, str, Context], None]


@dataclass(frozen=True)
class Obj(Kind):
    """An object with a fixed set of keys (unknown keys are errors), built into a dataclass."""

    name: str
    fields: tuple[Field, ...]
    build: Callable[..., Any]
    required: tuple[str, ...] = ()
    check: ObjectCheck | None = None
    with_origin: bool = False
    by_key: Mapping[str, Field] = field(init=False, compare=False, repr=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "by_key", {f.key: f for f in self.fields})

    expected = "a mapping"

    def convert(self, node: Node, path: str, ctx: Context) -> Any:
        if not isinstance(node, MappingNode):
            return self.mismatch(node, path, ctx)
        values, ok = self.convert_fields(node, path, ctx)
        if not ok:
            if isinstance(values.get("name"), str):
                ctx.invalid_names.append((self.name, values["name"]))
            return INVALID
        if self.check is not None:
            self.check(values, node, path, ctx)
        if self.with_origin:
            values["origin"] = ctx.origin(node, path)
        return self.build(**values)

    def convert_fields(
        self, node: MappingNode, path: str, ctx: Context
    ) -> tuple[dict[str, Any], bool]:
        """Attribute -> value for every known key; False if anything was wrong."""
        values: dict[str, Any] = {}
        present: set[str] = set()
        ok = True
        by_key = self.by_key
        prefix = f"{path}." if path else ""
        for key_node, key, value_node in mapping_items(node, path, ctx):
            child = prefix + key
            spec = by_key.get(key)
            present.add(key)
            if spec is None:
                guess = did_you_mean(key, list(self.by_key))
                ctx.error(
                    key_node, child, "unknown field", f"did you mean '{guess}'?" if guess else None
                )
                ok = False
                continue
            value = spec.kind.convert(value_node, child, ctx)
            if value is INVALID:
                ok = False
                continue
            if spec.check is not None:
                spec.check(value, value_node, child, ctx)
            values[spec.attr] = value
        for key in self.required:
            if key not in present:
                ctx.error(node, path, f"missing required field '{key}'")
                ok = False
        return values, ok

    def dump(self, value: Any) -> Any:
        """The object as plain data with YAML keys; unset (default) values left out."""
        defaults = {f.name: f.default for f in dataclasses.fields(value)}
        out: dict[str, Any] = {}
        for spec in self.fields:
            item = getattr(value, spec.attr)
            if item is None or (item == defaults.get(spec.attr) and not isinstance(item, tuple)):
                continue
            if item == () and defaults.get(spec.attr) == ():
                continue
            out[spec.key] = spec.kind.dump(item)
        return out


def value_node(node: MappingNode, key: str) -> Node:
    """The value node of `key` in a mapping (for checks that point at one field)."""
    for key_node, value in node.value:
        if key_node.value == key:
            return value  # type: ignore[no-any-return]
    return node


def item_nodes(node: Node) -> list[Node]:
    """The item nodes of a sequence node (for checks that point at one item)."""
    return list(node.value) if isinstance(node, SequenceNode) else []
