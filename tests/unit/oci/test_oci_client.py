"""Registry client pieces that need no registry: platforms, challenges, credentials, mirrors."""

from __future__ import annotations

import base64
import json
import os
from pathlib import Path

import pytest

from distrokit.errors import CacheError, UsageError
from distrokit.oci.auth import find_credentials, parse_challenge
from distrokit.oci.endpoints import RegistryOptions, is_loopback, parse_mirrors
from distrokit.oci.image import Descriptor, Platform, digest_hex
from distrokit.oci.registry import RegistryClient


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("linux/amd64", Platform("linux", "amd64")),
        ("linux/arm64/v8", Platform("linux", "arm64", "v8")),
        ("arm64", Platform("linux", "arm64")),
        ("x86_64", Platform("linux", "amd64")),
    ],
)
def test_platform_parse(text: str, expected: Platform) -> None:
    assert Platform.parse(text) == expected


def test_platform_parse_rejects_garbage() -> None:
    with pytest.raises(CacheError, match="invalid platform"):
        Platform.parse("linux//")


def test_descriptor_round_trip_and_digest_checks() -> None:
    data = {
        "mediaType": "application/vnd.oci.image.manifest.v1+json",
        "digest": "sha256:" + "a" * 64,
        "size": 12,
        "platform": {"os": "linux", "architecture": "arm64", "variant": "v8"},
    }
    desc = Descriptor.from_json(data)
    assert desc.platform == Platform("linux", "arm64", "v8")
    assert Descriptor.from_json(desc.to_json()) == desc
    with pytest.raises(CacheError):
        digest_hex("sha512:" + "a" * 128)
    with pytest.raises(CacheError):
        Descriptor.from_json({"mediaType": "x"})


def test_parse_bearer_challenge() -> None:
    c = parse_challenge(
        'Bearer realm="https://auth.example/token",service="reg.example",'
        'scope="repository:a/b:pull"'
    )
    assert c.scheme == "bearer"
    assert c.params == {
        "realm": "https://auth.example/token",
        "service": "reg.example",
        "scope": "repository:a/b:pull",
    }
    assert parse_challenge('Basic realm="x"').scheme == "basic"


def test_credentials_from_auths(tmp_path: Path) -> None:
    config = tmp_path / "config.json"
    auth = base64.b64encode(b"alice:pa:ss").decode()
    config.write_text(json.dumps({"auths": {"https://reg.example:5000": {"auth": auth}}}))
    creds = find_credentials("reg.example:5000", config_path=config)
    assert creds is not None
    assert (creds.username, creds.password) == ("alice", "pa:ss")
    assert "pa:ss" not in repr(creds)
    assert find_credentials("other.example", config_path=config) is None
    assert find_credentials("x", config_path=tmp_path / "missing.json") is None


def test_credentials_from_helper(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    helper = tmp_path / "bin" / "docker-credential-fake"
    helper.parent.mkdir()
    # A real helper program speaking the docker-credential protocol: server URL on stdin.
    helper.write_text(
        '#!/bin/sh\nread server\nprintf \'{"Username":"bob","Secret":"%s-tok"}\' "$server"\n'
    )
    helper.chmod(0o755)
    monkeypatch.setenv("PATH", f"{helper.parent}{os.pathsep}{os.environ['PATH']}")
    config = tmp_path / "config.json"
    config.write_text(json.dumps({"credHelpers": {"reg.example": "fake"}}))
    creds = find_credentials("reg.example", config_path=config)
    assert creds is not None
    assert (creds.username, creds.password) == ("bob", "reg.example-tok")


def test_parse_mirrors() -> None:
    assert parse_mirrors(["http://m1:5000", "docker.io=https://m2/"]) == {
        "*": ("http://m1:5000",),
        "docker.io": ("https://m2",),
    }
    with pytest.raises(UsageError, match="must start with http"):
        parse_mirrors(["m3:5000"])


def test_plain_http_only_for_loopback_or_insecure() -> None:
    assert is_loopback("127.0.0.1:5000")
    assert is_loopback("localhost:5000")
    assert is_loopback("[::1]:5000")
    assert not is_loopback("reg.example:5000")
    client = RegistryClient(
        RegistryOptions(
            insecure_registries=frozenset({"insecure.example"}),
            mirrors=parse_mirrors(["reg.example=https://mirror.example"]),
        )
    )
    with client:
        assert [e.base for e in client.endpoints("127.0.0.1:5000")] == ["http://127.0.0.1:5000"]
        secure = client.endpoints("reg.example")
        assert [(e.base, e.mirror) for e in secure] == [
            ("https://mirror.example", True),
            ("https://reg.example", False),
        ]
        assert all(e.verify for e in secure)
        insecure = client.endpoints("insecure.example")
        assert [(e.base, e.verify) for e in insecure] == [
            ("https://insecure.example", False),
            ("http://insecure.example", True),
        ]
