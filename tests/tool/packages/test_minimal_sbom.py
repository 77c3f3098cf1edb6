"""examples/minimal.yml built from distrokit's own packages: its SBOM lists the Debian packages
nginx was made from, with their versions, valid SPDX, the same bytes on every build."""

from __future__ import annotations

import json
import tarfile
from pathlib import Path

from hosttools import require_tools
from minimal_system import _distrokit, build_packages
from spdx_tools.spdx.parser.parse_anything import parse_file
from spdx_tools.spdx.validation.document_validator import validate_full_spdx_document

from distrokit.oci.cache import Cache
from distrokit.oci.image import host_platform
from distrokit.system.sbom import DEBIAN_VERSIONS_LABEL

# the packages examples/minimal.yml names
PACKAGES = (
    "kernel", "init", "runc", "containerd", "ca-certificates", "sysctl", "getty", "rngd",
    "dhcpcd", "nginx",
)  # fmt: skip


def _sbom(tar: Path) -> bytes:
    with tarfile.open(tar) as t:
        reader = t.extractfile("sbom.spdx.json")
        assert reader is not None
        return reader.read()


def test_minimal_example_sbom_lists_nginx_debian_packages(tmp_path: Path) -> None:
    require_tools("apt-get", "apt-cache", "dpkg-deb", "git")
    repo, cache = build_packages(tmp_path, PACKAGES)
    tars = []
    for name in ("a", "b"):
        out = tmp_path / f"{name}.tar"
        _distrokit(
            "build", "--cache", cache, "-f", "tar", "-o", str(out), "examples/minimal.yml",
            cwd=repo,
        )  # fmt: skip
        tars.append(_sbom(out))
    assert tars[0] == tars[1]
    (tmp_path / "sbom.spdx.json").write_bytes(tars[0])
    assert validate_full_spdx_document(parse_file(str(tmp_path / "sbom.spdx.json"))) == []

    doc = json.loads(tars[0])
    by_id = {p["SPDXID"]: p for p in doc["packages"]}
    nginx = next(p for p in doc["packages"] if p["name"].startswith("docker.io/distrokit/nginx:"))
    contained = [
        by_id[r["relatedSpdxElement"]]
        for r in doc["relationships"]
        if r["spdxElementId"] == nginx["SPDXID"] and r["relationshipType"] == "CONTAINS"
    ]
    debs = {p["name"]: p["versionInfo"] for p in contained}
    # exactly the Debian packages, at the versions, the nginx package was built from
    built = Cache(Path(cache)).image(nginx["name"], host_platform())
    label = built.config.labels[DEBIAN_VERSIONS_LABEL]
    assert debs == dict(item.split("=", 1) for item in label.split())
    assert {"nginx", "libc6", "libssl3"} <= set(debs)
    for p in contained:
        locator = p["externalRefs"][0]["referenceLocator"]
        assert locator.startswith(f"pkg:deb/debian/{p['name']}@")
        assert p["versionInfo"] and p["versionInfo"] != "NOASSERTION"
