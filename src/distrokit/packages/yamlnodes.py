"""Strict reading of small YAML documents from PyYAML compose nodes, with file:line errors.

`build.yml` is decoded strictly (unknown keys rejected, as LinuxKit's strict decoder does), and
every problem is reported at once with the file, line, column and YAML path, plus a
"did you mean" for misspelt keys. The helpers here collect problems instead of raising at the
first one; `Reader.finish()` raises one `ConfigError` with all of them. Positions and
suggestions are the LinuxKit YAML reader's (`distrokit.config.nodes.Context`,
`distrokit.config.rules.did_you_mean`), so both kinds of file report problems alike; the
schema-driven reader of `config/` is for LinuxKit's large schema, this imperative one for
build.yml's few keys.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import yaml

from distrokit.config.nodes import Context
from distrokit.config.rules import did_you_mean
from distrokit.errors import ConfigError


class Reader:
    """Collects problems while a document is read; `finish` raises them together."""

    def __init__(self, file: str) -> None:
        self.file = file
        self._ctx = Context(file, record_refs=False)
        self.problems = self._ctx.problems

    def where(self, node: yaml.Node, path: str) -> str:
        """``file:line:col: path`` for messages (1-based)."""
        return self._ctx.where(node, path)

    def problem(self, node: yaml.Node, path: str, message: str) -> None:
        """Record one problem at `node`."""
        self._ctx.error(node, path, message)

    def finish(self) -> None:
        """Raise every recorded problem as one `ConfigError`."""
        if self.problems:
            raise ConfigError(self.problems)

    def compose(self, text: str) -> yaml.Node | None:
        """Parse `text` into a node tree; syntax errors become a `ConfigError` with a line."""
        try:
            return yaml.compose(text, Loader=yaml.SafeLoader)
        except yaml.MarkedYAMLError as err:
            mark = err.problem_mark
            line = f"{mark.line + 1}:{mark.column + 1}" if mark else "?"
            raise ConfigError([f"{self.file}:{line}: invalid YAML: {err.problem}"]) from err

    def mapping(
        self, node: yaml.Node, path: str, known: Iterable[str]
    ) -> dict[str, yaml.Node] | None:
        """The keys of a mapping node; unknown and duplicate keys are problems."""
        if not isinstance(node, yaml.MappingNode):
            self.problem(node, path, "must be a mapping")
            return None
        known = list(known)
        out: dict[str, yaml.Node] = {}
        for key_node, value in node.value:
            key = str(key_node.value)
            sub = f"{path}.{key}" if path else key
            if key in out:
                self.problem(key_node, sub, "duplicate key")
            elif key not in known:
                close = did_you_mean(key, known)
                hint = f" (did you mean '{close}'?)" if close else ""
                self.problem(key_node, sub, f"unknown key{hint}")
            else:
                out[key] = value
        return out

    def string(self, node: yaml.Node, path: str) -> str | None:
        """A scalar that must be a non-empty string (quoted or plain, not a number/bool)."""
        if not isinstance(node, yaml.ScalarNode) or node.tag != "tag:yaml.org,2002:str":
            self.problem(node, path, "must be a string")
            return None
        if not node.value:
            self.problem(node, path, "must not be empty")
            return None
        return str(node.value)

    def boolean(self, node: yaml.Node, path: str) -> bool | None:
        """A YAML boolean."""
        if not isinstance(node, yaml.ScalarNode) or node.tag != "tag:yaml.org,2002:bool":
            self.problem(node, path, "must be true or false")
            return None
        return bool(yaml.safe_load(node.value))

    def strings(self, node: yaml.Node, path: str) -> tuple[str, ...] | None:
        """A sequence of strings."""
        if not isinstance(node, yaml.SequenceNode):
            self.problem(node, path, "must be a list of strings")
            return None
        items = [self.string(item, f"{path}[{i}]") for i, item in enumerate(node.value)]
        return tuple(i for i in items if i is not None)

    def sequence(self, node: yaml.Node, path: str) -> list[yaml.Node]:
        """The items of a sequence node (empty, with a problem, when it is not one)."""
        if not isinstance(node, yaml.SequenceNode):
            self.problem(node, path, "must be a list")
            return []
        return list(node.value)


def plain(node: yaml.Node) -> Any:
    """Convert a node tree to plain Python values (for free-form blocks such as `config:`)."""
    return yaml.safe_load(yaml.serialize(node))
