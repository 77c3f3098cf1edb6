"""Image references normalise exactly as LinuxKit normalises them."""

from __future__ import annotations

import pytest

from distrokit.reference import ReferenceError, expand, parse_reference


@pytest.mark.parametrize(
    ("text", "expanded", "canonical"),
    [
        ("nginx", "docker.io/library/nginx", "docker.io/library/nginx:latest"),
        ("nginx:1.13.8-alpine", "docker.io/library/nginx:1.13.8-alpine", None),
        ("linuxkit/init:v0.8", "docker.io/linuxkit/init:v0.8", None),
        ("docker.io/nginx", "docker.io/library/nginx", "docker.io/library/nginx:latest"),
        ("localhost/a", "localhost/a", "localhost/a:latest"),
        ("localhost:5000/a/b:t", "localhost:5000/a/b:t", None),
        ("127.0.0.1:5000/x", "127.0.0.1:5000/x", "127.0.0.1:5000/x:latest"),
        ("quay.io/org/img:tag", "quay.io/org/img:tag", None),
        (
            "alpine@sha256:" + "a" * 64,
            "docker.io/library/alpine@sha256:" + "a" * 64,
            None,
        ),
        (
            "a/b:t@sha256:" + "b" * 64,
            "docker.io/a/b:t@sha256:" + "b" * 64,
            None,
        ),
    ],
)
def test_normalisation(text: str, expanded: str, canonical: str | None) -> None:
    assert expand(text) == expanded
    assert parse_reference(text).canonical == (canonical or expanded)


def test_identifier_prefers_digest() -> None:
    ref = parse_reference("a/b:t@sha256:" + "c" * 64)
    assert ref.identifier == "sha256:" + "c" * 64
    assert parse_reference("a/b").identifier == "latest"


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("", "empty image reference"),
        ("Nginx", "invalid repository name in image reference 'Nginx'"),
        ("a/b:bad tag", "invalid tag 'bad tag'"),
        ("a/b@sha256:xyz", "invalid digest in image reference 'a/b@sha256:xyz'"),
    ],
)
def test_rejected(text: str, message: str) -> None:
    with pytest.raises(ReferenceError, match=message.replace("(", r"\(")):
        parse_reference(text)
