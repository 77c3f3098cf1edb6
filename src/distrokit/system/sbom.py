"""The system's SBOM: an SPDX 2.3 JSON document written into the root tree (``sbom.spdx.json``).

Like LinuxKit's, it is written by default (``--no-sbom`` leaves it out) after every other entry,
and it merges the SPDX documents that images carry as attestations (buildkit's attestation
manifests in the image index, in-toto statements with an SPDX predicate), their file names
moved under the image's place in the tree. Unlike LinuxKit's, it is reproducible: the
document namespace is derived from its contents and the creation time is ``SOURCE_DATE_EPOCH``
or LinuxKit's fixed time (``--sbom-current-time`` uses the clock), and it is valid SPDX:
every image is a package (reference, digest, purl) the document describes, element ids of
merged documents are made unique, and for packages built by ``distrokit pkg build`` every
Debian package is listed with its version and a ``pkg:deb`` purl, for vulnerability scanners.
"""

from __future__ import annotations

import datetime
import hashlib
import json
import posixpath
import re
import uuid
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote

from distrokit import __version__
from distrokit.oci.cache import Cache
from distrokit.oci.image import INDEX_TYPES, CachedImage
from distrokit.tarstream import Entry, Origin, generated_mtime, regular

# The label `distrokit pkg build` records a package's Debian packages in ("name=version ...").
DEBIAN_VERSIONS_LABEL = "org.distrokit.debian.packages"
DEFAULT_PATH = "sbom.spdx.json"
REFERENCE_TYPE = "vnd.docker.reference.type"
REFERENCE_DIGEST = "vnd.docker.reference.digest"
ATTESTATION = "attestation-manifest"
PREDICATE_TYPE = "in-toto.io/predicate-type"
SPDX_PREDICATE = "https://spdx.dev/Document"
IN_TOTO = "application/vnd.in-toto+json"
NOASSERTION = "NOASSERTION"
_ID_CHARS = re.compile(r"[^A-Za-z0-9.-]")


@dataclass(frozen=True)
class SbomOptions:
    """``--no-sbom``, ``--sbom-output`` and ``--sbom-current-time``."""

    enabled: bool = True
    path: str = DEFAULT_PATH
    current_time: bool = False


@dataclass(frozen=True)
class ImageUse:
    """An image of the build, where it goes in the tree, and the YAML locations using it."""

    reference: str
    image: CachedImage
    prefix: str
    locations: tuple[str, ...]


def _spdx_id(*parts: str) -> str:
    return "SPDXRef-" + "-".join(_ID_CHARS.sub("-", p) for p in parts)


def _purl_oci(reference: str, digest: str) -> str:
    """``pkg:oci/NAME@DIGEST?repository_url=...&tag=...`` of an image reference."""
    name = reference.split("@", 1)[0]
    tag = ""
    if ":" in name.rsplit("/", 1)[-1]:
        name, tag = name.rsplit(":", 1)
    image = name.rsplit("/", 1)[-1]
    purl = f"pkg:oci/{image}@{quote(digest, safe='')}?repository_url={quote(name, safe='')}"
    return purl + (f"&tag={quote(tag, safe='')}" if tag else "")


def _package(spdx_id: str, name: str, version: str, purl: str, **extra: Any) -> dict[str, Any]:
    return {
        "name": name,
        "SPDXID": spdx_id,
        "versionInfo": version,
        "downloadLocation": NOASSERTION,
        "filesAnalyzed": False,
        "licenseConcluded": NOASSERTION,
        "licenseDeclared": NOASSERTION,
        "copyrightText": NOASSERTION,
        "externalRefs": [
            {
                "referenceCategory": "PACKAGE-MANAGER",
                "referenceType": "purl",
                "referenceLocator": purl,
            }
        ],
        **extra,
    }


def debian_packages(image: CachedImage) -> list[tuple[str, str]]:
    """(name, version) of the Debian packages `distrokit pkg build` made `image` from."""
    text = image.config.labels.get(DEBIAN_VERSIONS_LABEL, "")
    out = []
    for item in text.split():
        name, sep, version = item.partition("=")
        if sep and name and version:
            out.append((name, version))
    return out


def attested_documents(cache: Cache, image: CachedImage) -> list[dict[str, Any]]:
    """The SPDX documents attested for `image` in its index (buildkit's layout), if cached."""
    root = cache.lookup(image.reference)
    if root is None or root.media_type not in INDEX_TYPES:
        return []
    try:
        index = cache.read_json(root.digest, owner=image.reference)
        docs: list[dict[str, Any]] = []
        for child in index.get("manifests") or []:
            notes = child.get("annotations") or {}
            if notes.get(REFERENCE_TYPE) != ATTESTATION:
                continue
            if notes.get(REFERENCE_DIGEST) != image.digest:
                continue
            manifest = cache.read_json(str(child["digest"]), owner=image.reference)
            for layer in manifest.get("layers") or []:
                predicate = (layer.get("annotations") or {}).get(PREDICATE_TYPE)
                if layer.get("mediaType") != IN_TOTO or predicate != SPDX_PREDICATE:
                    continue
                statement = json.loads(cache.read_blob(str(layer["digest"])))
                if isinstance(statement.get("predicate"), dict):
                    docs.append(statement["predicate"])
        return docs
    except (OSError, ValueError, KeyError, TypeError):
        return []  # attestations are optional: a missing or odd one is left out


def _merged(
    doc: Mapping[str, Any], owner: str, tag: str, prefix: str
) -> tuple[list[Any], list[Any], list[Any], list[Any]]:
    """Packages, files, relationships and licenses of an attested document, its ids made
    unique with `tag`, its file names under `prefix`, its DESCRIBES pointing from `owner`."""

    def rename(ref: str) -> str:
        if ref == "SPDXRef-DOCUMENT":
            return owner
        if ref.startswith("SPDXRef-"):
            return _spdx_id(tag, ref[len("SPDXRef-") :])
        return ref

    packages = []
    for p in doc.get("packages") or []:
        p = {**p, "SPDXID": rename(str(p.get("SPDXID", "")))}
        if "hasFiles" in p:
            p["hasFiles"] = [rename(str(f)) for f in p["hasFiles"]]
        if p.get("packageFileName"):
            p["packageFileName"] = posixpath.join(prefix, p["packageFileName"])
        packages.append(p)
    files = [
        {
            **f,
            "SPDXID": rename(str(f.get("SPDXID", ""))),
            "fileName": posixpath.join(prefix, str(f.get("fileName", "")).lstrip("./")),
        }
        for f in doc.get("files") or []
    ]
    relationships = []
    for r in doc.get("relationships") or []:
        kind = r.get("relationshipType")
        element, related = rename(str(r.get("spdxElementId"))), r.get("relatedSpdxElement")
        if kind == "DESCRIBES" and element == owner:
            kind = "CONTAINS"
        related = rename(str(related)) if related not in (NOASSERTION, "NONE") else related
        relationships.append(
            {**r, "spdxElementId": element, "relatedSpdxElement": related, "relationshipType": kind}
        )
    # License references keep their ids (package license expressions name them).
    licenses = list(doc.get("hasExtractedLicensingInfos") or [])
    # Scanners' documents often mark packages "files not analyzed" yet list files they
    # contain, which SPDX forbids: a package that contains files has had them analysed.
    file_ids = {f["SPDXID"] for f in files}
    holders = {
        r["spdxElementId"]
        for r in relationships
        if r["relationshipType"] == "CONTAINS" and r["relatedSpdxElement"] in file_ids
    }
    for p in packages:
        if p["SPDXID"] in holders:
            p["filesAnalyzed"] = True
    return packages, files, relationships, licenses


def _first_by_id(licenses: list[Any]) -> Iterator[Any]:
    """Each extracted license once (merged documents often carry the same ones)."""
    seen: set[str] = set()
    for lic in licenses:
        key = str(lic.get("licenseId"))
        if key not in seen:
            seen.add(key)
            yield lic


def sbom_document(uses: Sequence[ImageUse], cache: Cache | None, created: str) -> dict[str, Any]:
    """The SPDX 2.3 document of a build that uses `uses` (in build order)."""
    packages: list[Any] = []
    files: list[Any] = []
    relationships: list[Any] = []
    licenses: list[Any] = []
    for n, use in enumerate(uses, 1):
        image_id = _spdx_id("Image", str(n), use.reference)
        packages.append(
            _package(
                image_id,
                use.reference,
                use.image.digest,
                _purl_oci(use.reference, use.image.digest),
                primaryPackagePurpose="CONTAINER",
                comment="used at " + ", ".join(use.locations),
            )
        )
        relationships.append(
            {
                "spdxElementId": "SPDXRef-DOCUMENT",
                "relationshipType": "DESCRIBES",
                "relatedSpdxElement": image_id,
            }
        )
        for name, version in debian_packages(use.image):
            deb_id = _spdx_id("Deb", str(n), name)
            arch = use.image.config.architecture or "all"
            purl = f"pkg:deb/debian/{quote(name)}@{quote(version, safe='')}?arch={arch}"
            packages.append(_package(deb_id, name, version, purl, supplier="Organization: Debian"))
            relationships.append(
                {
                    "spdxElementId": image_id,
                    "relationshipType": "CONTAINS",
                    "relatedSpdxElement": deb_id,
                }
            )
        for m, doc in enumerate(attested_documents(cache, use.image) if cache else [], 1):
            more = _merged(doc, image_id, f"Image-{n}-{m}", use.prefix)
            for out, items in zip((packages, files, relationships, licenses), more, strict=True):
                out.extend(items)
    licenses = list(_first_by_id(licenses))
    body: dict[str, Any] = {
        "spdxVersion": "SPDX-2.3",
        "dataLicense": "CC0-1.0",
        "SPDXID": "SPDXRef-DOCUMENT",
        "name": "sbom",
        "creationInfo": {
            "created": created,
            "creators": [f"Tool: distrokit-{__version__}", "Organization: distrokit"],
            "licenseListVersion": "3.20",
        },
        "packages": packages,
        "files": files,
        "relationships": relationships,
        "hasExtractedLicensingInfos": licenses,
    }
    # The namespace is derived from everything else: the same inputs, the same document.
    digest = hashlib.sha256(json.dumps(body, sort_keys=True).encode()).hexdigest()
    namespace = f"urn:uuid:{uuid.UUID(digest[:32])}"
    return {**body, "documentNamespace": namespace}


def created_time(current: bool) -> str:
    """The document's creation time: the clock, or ``SOURCE_DATE_EPOCH``/LinuxKit's time."""
    if current:
        when = datetime.datetime.now(datetime.UTC)
    else:
        when = datetime.datetime.fromtimestamp(generated_mtime(), datetime.UTC)
    return when.strftime("%Y-%m-%dT%H:%M:%SZ")


def sbom_entries(
    uses: Sequence[ImageUse], cache: Cache | None, options: SbomOptions
) -> Iterator[Entry]:
    """The SBOM file as LinuxKit writes it: mode 0644, fixed mtime, no LinuxKit records."""
    doc = sbom_document(uses, cache, created_time(options.current_time))
    data = json.dumps(doc, indent=2, ensure_ascii=False).encode() + b"\n"
    entry = regular(options.path.lstrip("/"), data, Origin("", ""), mode=0o644)
    entry.info.pax_headers = {}
    yield entry
