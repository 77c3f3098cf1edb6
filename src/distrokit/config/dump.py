"""Writing a merged `Config` back as LinuxKit-style YAML or JSON.

Used by ``build --dry-run``; `config_data` also feeds ``files: metadata: yaml|json``, which
`distrokit.system.metadata` writes in LinuxKit's own shape. Keys are the schema's
(camelCase) keys in LinuxKit's order, unset values are left out (an explicitly empty list
stays, because it clears an image label's value), and image references are expanded as
LinuxKit records them (``nginx:1.13`` -> ``docker.io/library/nginx:1.13``).
"""

from __future__ import annotations

import json
from typing import Any

import yaml

from distrokit.config.model import Config
from distrokit.config.schema import DUMP_ORDER


def config_data(config: Config) -> dict[str, Any]:
    """The config as plain data (dicts, lists, scalars) with YAML keys."""
    out: dict[str, Any] = {}
    for spec in DUMP_ORDER:
        value = getattr(config, spec.attr)
        data = spec.kind.dump(value)
        if data:
            out[spec.key] = data
    return out


class _Dumper(yaml.SafeDumper):
    """Block style, lists indented under their key as LinuxKit's YAML writer does.

    The pure-Python dumper, because the C emitter cannot be told to indent lists.
    """

    def increase_indent(self, flow: bool = False, indentless: bool = False) -> None:
        super().increase_indent(flow, False)


def _str_representer(dumper: _Dumper, value: str) -> yaml.Node:
    # Multi-line contents (files: contents) read best as literal blocks.
    style = "|" if "\n" in value else None
    return dumper.represent_scalar("tag:yaml.org,2002:str", value, style=style)


_Dumper.add_representer(str, _str_representer)


def dump_yaml(config: Config) -> str:
    """The merged config as YAML text."""
    return yaml.dump(
        config_data(config),
        Dumper=_Dumper,
        sort_keys=False,
        default_flow_style=False,
        allow_unicode=True,
        width=1000,
    )


def dump_json(config: Config) -> str:
    """The merged config as JSON text (two-space indented, trailing newline)."""
    return json.dumps(config_data(config), indent=2) + "\n"
