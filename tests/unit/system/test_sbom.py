"""The SBOM: SPDX 2.3 validated by the SPDX tools, reproducible, with images, Debian packages
and the SPDX attestations images carry merged."""

from __future__ import annotations

import datetime
import json
from pathlib import Path
from typing import Any

import pytest
from buildfix import PLATFORM, F, Images, members, new_images, read_member
from spdx_tools.spdx.parser.parse_anything import parse_file
from spdx_tools.spdx.validation.document_validator import validate_full_spdx_document

from distrokit.cli import main
from distrokit.oci.image import OCI_INDEX, OCI_MANIFEST, Descriptor, canonical_json
from distrokit.system.sbom import DEBIAN_VERSIONS_LABEL

SYSTEM = """
init:
  - example.org/base:1
services:
  - name: web
    image: example.org/web:1
  - name: att
    image: example.org/att:1
"""
ATTESTED = {
    "spdxVersion": "SPDX-2.3",
    "dataLicense": "CC0-1.0",
    "SPDXID": "SPDXRef-DOCUMENT",
    "name": "att",
    "documentNamespace": "https://example.org/att",
    "creationInfo": {"created": "2024-01-01T00:00:00Z", "creators": ["Tool: buildkit"]},
    "packages": [
        {
            "name": "musl",
            "SPDXID": "SPDXRef-Package-musl",
            "versionInfo": "1.2.4-r2",
            "downloadLocation": "NOASSERTION",
            "filesAnalyzed": False,
            "externalRefs": [
                {
                    "referenceCategory": "PACKAGE-MANAGER",
                    "referenceType": "purl",
                    "referenceLocator": "pkg:apk/alpine/musl@1.2.4-r2",
                }
            ],
        }
    ],
    "files": [
        {
            "fileName": "/lib/ld-musl-x86_64.so.1",
            "SPDXID": "SPDXRef-File-ld",
            "checksums": [{"algorithm": "SHA1", "checksumValue": "0" * 40}],
        }
    ],
    "relationships": [
        {
            "spdxElementId": "SPDXRef-DOCUMENT",
            "relationshipType": "DESCRIBES",
            "relatedSpdxElement": "SPDXRef-Package-musl",
        },
        {
            "spdxElementId": "SPDXRef-Package-musl",
            "relationshipType": "CONTAINS",
            "relatedSpdxElement": "SPDXRef-File-ld",
        },
    ],
}


def _attest(images: Images, ref: str, manifest_digest: str, doc: dict[str, Any]) -> None:
    """Give `ref` an index with a buildkit-style SPDX attestation for its manifest."""
    cache = images.cache
    manifest = cache.lookup(ref)
    assert manifest is not None
    statement = canonical_json(
        {
            "_type": "https://in-toto.io/Statement/v0.1",
            "predicateType": "https://spdx.dev/Document",
            "subject": [],
            "predicate": doc,
        }
    )
    layer = cache.put_bytes(statement)
    config = cache.put_bytes(b"{}")
    att = canonical_json(
        {
            "schemaVersion": 2,
            "mediaType": OCI_MANIFEST,
            "config": {
                "mediaType": "application/vnd.oci.image.config.v1+json",
                "digest": config,
                "size": 2,
            },
            "layers": [
                {
                    "mediaType": "application/vnd.in-toto+json",
                    "digest": layer,
                    "size": len(statement),
                    "annotations": {"in-toto.io/predicate-type": "https://spdx.dev/Document"},
                }
            ],
        }
    )
    att_digest = cache.put_bytes(att)
    index = canonical_json(
        {
            "schemaVersion": 2,
            "mediaType": OCI_INDEX,
            "manifests": [
                Descriptor(OCI_MANIFEST, manifest.digest, manifest.size, PLATFORM).to_json(),
                {
                    "mediaType": OCI_MANIFEST,
                    "digest": att_digest,
                    "size": len(att),
                    "platform": {"architecture": "unknown", "os": "unknown"},
                    "annotations": {
                        "vnd.docker.reference.type": "attestation-manifest",
                        "vnd.docker.reference.digest": manifest_digest,
                    },
                },
            ],
        }
    )
    cache.record(ref, Descriptor(OCI_INDEX, cache.put_bytes(index), len(index)))


@pytest.fixture
def system(tmp_path: Path) -> tuple[Images, Path]:
    images = new_images(tmp_path)
    images.add("example.org/base:1", [F("init", data=b"#!/bin/sh", mode=0o755)])
    labels = {DEBIAN_VERSIONS_LABEL: "nginx-light=1.22.1-9+deb12u3 libc6=2.36-9+deb12u14"}
    images.add("example.org/web:1", [F("usr", "dir")], labels=labels)
    digest = images.add("example.org/att:1", [F("lib", "dir")])
    _attest(images, "example.org/att:1", digest, ATTESTED)
    (tmp_path / "system.yml").write_text(SYSTEM)
    return images, tmp_path / "system.yml"


def _build(images: Images, yml: Path, out: Path, *flags: str) -> Path:
    argv = ["build", "--cache", str(images.cache.root), "-f", "tar", "-o", str(out), *flags]
    assert main([*argv, str(yml)]) == 0
    return out


def test_sbom_is_valid_spdx_and_reproducible(
    system: tuple[Images, Path], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    images, yml = system
    monkeypatch.delenv("SOURCE_DATE_EPOCH", raising=False)
    first = read_member(_build(images, yml, tmp_path / "a.tar"), "sbom.spdx.json")
    second = read_member(_build(images, yml, tmp_path / "b.tar"), "sbom.spdx.json")
    assert first == second
    (tmp_path / "sbom.spdx.json").write_bytes(first)
    document = parse_file(str(tmp_path / "sbom.spdx.json"))
    assert validate_full_spdx_document(document) == []
    doc = json.loads(first)
    assert doc["creationInfo"]["created"] == "2017-04-18T16:30:00Z"
    # every image by reference and digest
    described = {r["relatedSpdxElement"] for r in doc["relationships"]
                 if r["relationshipType"] == "DESCRIBES"}  # fmt: skip
    images_in = {p["name"]: p for p in doc["packages"] if p["SPDXID"] in described}
    assert set(images_in) == {"example.org/base:1", "example.org/web:1", "example.org/att:1"}
    web = images_in["example.org/web:1"]
    assert web["versionInfo"] == images.cache.image("example.org/web:1", PLATFORM).digest
    # the Debian packages of a package built by `distrokit pkg build`, with purls
    purls = {p["name"]: p["externalRefs"][0]["referenceLocator"] for p in doc["packages"]}
    assert purls["nginx-light"] == "pkg:deb/debian/nginx-light@1.22.1-9%2Bdeb12u3?arch=amd64"
    assert purls["libc6"] == "pkg:deb/debian/libc6@2.36-9%2Bdeb12u14?arch=amd64"
    # the attested document, merged under the image and its place in the tree
    assert purls["musl"] == "pkg:apk/alpine/musl@1.2.4-r2"
    (ld,) = doc["files"]
    assert ld["fileName"] == "containers/services/att/lower/lib/ld-musl-x86_64.so.1"
    att_id = images_in["example.org/att:1"]["SPDXID"]
    musl_id = next(p["SPDXID"] for p in doc["packages"] if p["name"] == "musl")
    assert {"spdxElementId": att_id, "relationshipType": "CONTAINS",
            "relatedSpdxElement": musl_id} in doc["relationships"]  # fmt: skip


def test_sbom_time_follows_source_date_epoch(
    system: tuple[Images, Path], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    images, yml = system
    monkeypatch.setenv("SOURCE_DATE_EPOCH", "1700000000")
    doc = json.loads(read_member(_build(images, yml, tmp_path / "a.tar"), "sbom.spdx.json"))
    assert doc["creationInfo"]["created"] == "2023-11-14T22:13:20Z"


def test_sbom_current_time(system: tuple[Images, Path], tmp_path: Path) -> None:
    images, yml = system
    before = datetime.datetime.now(datetime.UTC).replace(microsecond=0)
    out = _build(images, yml, tmp_path / "a.tar", "--sbom-current-time")
    created = json.loads(read_member(out, "sbom.spdx.json"))["creationInfo"]["created"]
    when = datetime.datetime.strptime(created, "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=datetime.UTC)
    assert before <= when <= datetime.datetime.now(datetime.UTC)


def test_no_sbom_and_sbom_output(system: tuple[Images, Path], tmp_path: Path) -> None:
    images, yml = system
    names = [m.name for m in members(_build(images, yml, tmp_path / "a.tar", "--no-sbom"))]
    assert "sbom.spdx.json" not in names
    out = _build(images, yml, tmp_path / "b.tar", "--sbom-output", "var/lib/sbom.json")
    names = [m.name for m in members(out)]
    assert names[-1] == "var/lib/sbom.json"  # the last entry, as LinuxKit writes it
    docker = tmp_path / "c.docker"
    argv = ["build", "--cache", str(images.cache.root), "-f", "docker", "-o", str(docker)]
    assert main([*argv, str(yml)]) == 0
    assert [m.name for m in members(docker)][-2:] == ["Dockerfile", "sbom.spdx.json"]
