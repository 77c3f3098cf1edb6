"""Runners that boot distrokit outputs, one module per VMM, registered by name."""
