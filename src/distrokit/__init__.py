"""distrokit: build small, immutable Linux systems from OCI images described in LinuxKit YAML."""

__version__ = "0.1.0"
