"""The configuration layer: LinuxKit YAML in, validated frozen dataclasses out."""
