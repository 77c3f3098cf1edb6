"""Packages: `pkg build | push | show-tag` without a container engine."""
