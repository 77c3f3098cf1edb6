"""``files: metadata: yaml|json`` byte for byte as LinuxKit writes them.

tests/data/metadata holds a configuration and what LinuxKit's YAML (gopkg.in/yaml.v2) and JSON
libraries write for its config struct holding it: every section, struct field order, sorted
maps, the runtime-spec types with every field under lower-cased names in YAML, quoting and
literal blocks, HTML escapes in JSON.
"""

from __future__ import annotations

from pathlib import Path

from distrokit.config.load import load_config
from distrokit.system.metadata import metadata_json, metadata_yaml

DATA = Path(__file__).resolve().parents[2] / "data" / "metadata"


def test_metadata_yaml_is_linuxkits() -> None:
    config = load_config([str(DATA / "config.yml")])
    assert metadata_yaml(config) == (DATA / "linuxkit-metadata.yml").read_bytes()


def test_metadata_json_is_linuxkits() -> None:
    config = load_config([str(DATA / "config.yml")])
    assert metadata_json(config) == (DATA / "linuxkit-metadata.json").read_bytes()
