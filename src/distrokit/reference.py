"""Image references, normalised exactly as LinuxKit (and the Docker CLI) normalise them.

``nginx`` -> ``docker.io/library/nginx``, ``a/b`` -> ``docker.io/a/b``, ``host:port/a/b`` kept.
The first path component names a registry when it contains ``.`` or ``:``, is ``localhost``,
or has an upper-case letter. A reference may carry a tag, a ``@sha256:`` digest, or both.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from distrokit.errors import DistrokitError

DEFAULT_DOMAIN = "docker.io"
OFFICIAL_REPO_PREFIX = "library/"
DEFAULT_TAG = "latest"

_COMPONENT = r"[a-z0-9]+(?:(?:[._]|__|[-]+)[a-z0-9]+)*"
_PATH_RE = re.compile(rf"^{_COMPONENT}(?:/{_COMPONENT})*$")
_DOMAIN_RE = re.compile(
    r"^(?:[a-zA-Z0-9](?:[a-zA-Z0-9-]*[a-zA-Z0-9])?)(?:\.[a-zA-Z0-9](?:[a-zA-Z0-9-]*[a-zA-Z0-9])?)*"
    r"(?::[0-9]+)?$|^\[[0-9a-fA-F:]+\](?::[0-9]+)?$"
)
_TAG_RE = re.compile(r"^[\w][\w.-]{0,127}$")
_DIGEST_RE = re.compile(r"^[a-z0-9]+(?:[.+_-][a-z0-9]+)*:[a-fA-F0-9]{32,}$")


class ReferenceError(DistrokitError):
    """An image reference cannot be parsed."""

    exit_code = 2


@dataclass(frozen=True, order=True)
class Reference:
    """A normalised image reference."""

    domain: str
    path: str
    tag: str | None = None
    digest: str | None = None

    @property
    def name(self) -> str:
        """Repository with its registry, e.g. ``docker.io/library/nginx``."""
        return f"{self.domain}/{self.path}"

    def __str__(self) -> str:
        """The expanded form LinuxKit prints and records: no tag is invented."""
        out = self.name
        if self.tag is not None:
            out += f":{self.tag}"
        if self.digest is not None:
            out += f"@{self.digest}"
        return out

    @property
    def canonical(self) -> str:
        """The expanded form with ``:latest`` added when there is neither tag nor digest."""
        if self.tag is None and self.digest is None:
            return f"{self.name}:{DEFAULT_TAG}"
        return str(self)

    @property
    def identifier(self) -> str:
        """What to ask the registry for: the digest if pinned, else the tag (default latest)."""
        return self.digest or self.tag or DEFAULT_TAG

    def with_tag(self, tag: str) -> Reference:
        """The same repository with another tag and no digest."""
        return Reference(self.domain, self.path, tag, None)

    def with_digest(self, digest: str) -> Reference:
        """The same repository pinned to `digest` (tag kept for readability)."""
        return Reference(self.domain, self.path, self.tag, digest)


def _split_domain(name: str) -> tuple[str, str]:
    first, sep, rest = name.partition("/")
    if sep and ("." in first or ":" in first or first == "localhost" or first.lower() != first):
        domain, path = first, rest
    else:
        domain, path = DEFAULT_DOMAIN, name
    if domain == DEFAULT_DOMAIN and "/" not in path:
        path = OFFICIAL_REPO_PREFIX + path
    return domain, path


def parse_reference(text: str) -> Reference:
    """Parse and normalise `text`; raise `ReferenceError` saying what is wrong."""
    raw = text.strip()
    if not raw:
        raise ReferenceError("empty image reference")
    remainder, digest = raw, None
    if "@" in remainder:
        remainder, digest = remainder.split("@", 1)
        if not _DIGEST_RE.match(digest):
            raise ReferenceError(f"invalid digest in image reference '{text}'")
    tag = None
    slash = remainder.rfind("/")
    colon = remainder.rfind(":")
    if colon > slash:
        remainder, tag = remainder[:colon], remainder[colon + 1 :]
        if not _TAG_RE.match(tag):
            raise ReferenceError(f"invalid tag '{tag}' in image reference '{text}'")
    domain, path = _split_domain(remainder)
    if not _DOMAIN_RE.match(domain):
        raise ReferenceError(f"invalid registry '{domain}' in image reference '{text}'")
    if not _PATH_RE.match(path):
        hint = "repository names must be lower case" if path.lower() != path else None
        raise ReferenceError(f"invalid repository name in image reference '{text}'", hint=hint)
    return Reference(domain, path, tag, digest)


def expand(text: str) -> str:
    """LinuxKit's ReferenceExpand: the normalised reference as a string, no tag invented."""
    return str(parse_reference(text))
