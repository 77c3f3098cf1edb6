"""The one exception hierarchy of distrokit.

Every error the library raises on purpose is a `DistrokitError`: a message a user can act on,
an optional hint, and an exit code the CLI uses. Causes are chained with ``raise ... from err``.
"""

from __future__ import annotations


class DistrokitError(Exception):
    """Base of all errors distrokit raises on purpose."""

    exit_code = 1

    def __init__(self, message: str, *, hint: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.hint = hint

    def __str__(self) -> str:
        return self.message


class UsageError(DistrokitError):
    """The command line itself is wrong."""

    exit_code = 2


class ConfigError(DistrokitError):
    """A YAML configuration is invalid. Carries every problem found, not just the first."""

    exit_code = 2

    def __init__(self, problems: list[str], *, hint: str | None = None) -> None:
        self.problems = list(problems)
        super().__init__("\n".join(self.problems), hint=hint)


class ToolMissingError(DistrokitError):
    """A host program distrokit needs is not installed."""

    def __init__(self, tool: str, package: str | None) -> None:
        hint = f"install it with: apt-get install {package}" if package else None
        super().__init__(f"required program '{tool}' was not found on PATH", hint=hint)
        self.tool = tool
        self.package = package


class CommandError(DistrokitError):
    """A host program exited with a failure status."""

    def __init__(self, argv: list[str], returncode: int, stderr: str = "") -> None:
        tail = stderr.strip().splitlines()[-5:]
        detail = ("\n  " + "\n  ".join(tail)) if tail else ""
        super().__init__(f"{argv[0]} exited with status {returncode}{detail}")
        self.argv = argv
        self.returncode = returncode
        self.stderr = stderr


class RegistryError(DistrokitError):
    """A registry refused or failed a request (names the registry, reference and status)."""


class CacheError(DistrokitError):
    """The local image cache is inconsistent or an image is missing from it."""


class BuildError(DistrokitError):
    """Assembling a system or writing an output format failed."""


class RunError(DistrokitError):
    """Starting or supervising a virtual machine failed."""


class PackageError(DistrokitError):
    """Building, tagging or pushing a package failed."""
