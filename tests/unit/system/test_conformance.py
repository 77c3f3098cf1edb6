"""LinuxKit conformance: every case of tests/data/conformance built and compared with the output
of the real LinuxKit (v1.8.2, see golden/VERSION).

Each valid case is built as ``tar`` with ``--no-sbom`` from fixture images imported with
``distrokit cache import``, then compared entry by entry, in order, with LinuxKit's
normalized description (every header field, LinuxKit's PAX records, file contents by sha256,
JSON and metadata YAML parsed), and byte for byte with the sha256 of LinuxKit's tar. The three
kernel+initrd cases compare the kernel, the cmdline and every uncompressed cpio stream. The
cases where distrokit deliberately differs (LinuxKit bugs, docs/compatibility.md) are listed in
DELIBERATE with the exact differences allowed; anything else that differs fails.
"""

from __future__ import annotations

import fnmatch
import hashlib
import json
import lzma
import os
import tarfile
import zlib
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest
import yaml

from distrokit.cli import main

DATA = Path(__file__).resolve().parents[2] / "data" / "conformance"
CASES = DATA / "cases"
INDEX = json.loads((DATA / "golden" / "index.json").read_text())
VALID = sorted(p.name for p in (CASES / "valid").iterdir())
INVALID = sorted(p.name for p in (CASES / "invalid").iterdir())
INITRD = (CASES / "initrd-cases.txt").read_text().split()
LK_SOURCE, LK_LOCATION = "LINUXKIT.source", "LINUXKIT.location"
# PAX records tar readers derive from header fields (compared through those fields).
FIELD_RECORDS = {"path", "linkpath", "size", "uid", "gid", "uname", "gname", "mtime"}
TYPES = {
    tarfile.REGTYPE: "file",
    tarfile.AREGTYPE: "file",
    tarfile.LNKTYPE: "hardlink",
    tarfile.SYMTYPE: "symlink",
    tarfile.CHRTYPE: "char",
    tarfile.BLKTYPE: "block",
    tarfile.DIRTYPE: "dir",
    tarfile.FIFOTYPE: "fifo",
}
FIELDS: tuple[str, ...] = ("type", "mode", "uid", "gid", "size", "sha256", "linkname", "mtime")
FIELDS += ("uname", "gname", "devmajor", "devminor", "source", "location", "pax")

# LinuxKit bugs distrokit does not copy: golden paths it leaves out, and parsed-file fields
# that differ. docs/compatibility.md explains each one.
_RESOURCES = "linux.resources"
DELIBERATE: dict[str, dict[str, Any]] = {
    # LinuxKit ignores opaque whiteouts (.wh..wh..opq).
    "p12-whiteout-volume-service": {"missing": ["*/opq/a.txt", "*/opq/sub", "*/opq/sub/b.txt"]},
    # LinuxKit leaves a bind-type `mounts:` entry's volume name as the mount source.
    "p06-volumes-platforms": {
        "fields": {"containers/onshutdown/000-save/config.json": ["mounts[2].source"]}
    },
    # LinuxKit's YAML decoder drops camelCase keys of `resources:`.
    "p09-resources-devices": {
        "fields": {
            "containers/services/limited/config.json": [
                f"{_RESOURCES}.blockIO.leafWeight",
                f"{_RESOURCES}.blockIO.weightDevice",
                f"{_RESOURCES}.blockIO.throttleReadBpsDevice",
                f"{_RESOURCES}.cpu.realtimePeriod",
                f"{_RESOURCES}.network.classID",
                f"{_RESOURCES}.hugepageLimits",
            ]
        }
    },
}


def _sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def _golden(name: str) -> dict[str, Any]:
    loaded: dict[str, Any] = json.loads(lzma.decompress((DATA / "golden" / name).read_bytes()))
    return loaded


@contextmanager
def _cwd(path: Path) -> Iterator[None]:
    old = Path.cwd()
    os.chdir(path)
    try:
        yield
    finally:
        os.chdir(old)


@pytest.fixture(scope="session")
def lk_cache(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A cache holding the fixture images, imported as a LinuxKit user would."""
    root = tmp_path_factory.mktemp("conformance")
    fixtures = root / "fixtures"
    with tarfile.open(DATA / "fixtures.tar.xz") as tar:
        tar.extractall(fixtures, filter="data")
    cache = root / "cache"
    for name, digest in sorted(INDEX["fixtures"].items()):
        archive = fixtures / Path(name).name
        assert _sha256(archive.read_bytes()) == digest, f"fixture {name} is not the golden's"
        assert main(["cache", "import", "--cache", str(cache), str(archive)]) == 0
    return cache


@pytest.fixture(autouse=True)
def _own_build_cache(tmp_path_factory: pytest.TempPathFactory) -> Iterator[None]:
    # distrokit's build cache (kernels, initrd segments) is per session, never the user's.
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("XDG_CACHE_HOME", str(tmp_path_factory.getbasetemp() / "xdg"))
        mp.delenv("SOURCE_DATE_EPOCH", raising=False)  # LinuxKit's fixed time is the golden's
        yield


def _build(case: Path, cache: Path, *args: str) -> int:
    ymls = sorted(p.name for p in case.glob("*.yml"))
    with _cwd(case):
        return main(["build", "--no-sbom", "--cache", str(cache), *args, *ymls])


def _norm(name: str) -> str:
    while name.startswith("./"):
        name = name[2:]
    return name.strip("/") or "."


def describe(path: Path) -> dict[str, Any]:
    """Entries of a tar in LinuxKit's golden description, JSON and metadata YAML parsed."""
    entries: list[dict[str, Any]] = []
    parsed: dict[str, Any] = {}
    with tarfile.open(path, encoding="utf-8", errors="surrogateescape") as tar:
        for m in tar:
            pax = dict(m.pax_headers)
            e: dict[str, Any] = {
                "name": _norm(m.name),
                "type": TYPES.get(m.type, repr(m.type)),
                "mode": f"{m.mode & 0o7777:04o}",
                "uid": m.uid,
                "gid": m.gid,
                "size": m.size if m.isreg() else 0,
                "mtime": int(m.mtime),
                "source": pax.pop(LK_SOURCE, None),
                "location": pax.pop(LK_LOCATION, None),
            }
            e.update({k: v for k, v in (("uname", m.uname), ("gname", m.gname)) if v})
            if m.ischr() or m.isblk():
                e["devmajor"], e["devminor"] = m.devmajor, m.devminor
            if m.issym():
                e["linkname"] = m.linkname
            elif m.islnk():
                e["linkname"] = _norm(m.linkname)
            extra = {k: v for k, v in pax.items() if k not in FIELD_RECORDS}
            if extra:
                e["pax"] = extra
            if m.isreg():
                reader = tar.extractfile(m)
                assert reader is not None
                data = reader.read()
                e["sha256"] = _sha256(data)
                if e["name"].endswith(".json"):
                    parsed[e["name"]] = json.loads(data)
                elif e["name"].endswith((".yml", ".yaml")) and e["source"] == "linuxkit.files":
                    parsed[e["name"]] = yaml.safe_load(data)
            entries.append(e)
    return {"entries": entries, "parsed": parsed}


def json_diff(golden: Any, ours: Any, path: str = "") -> list[str]:
    """Paths (``a.b[2].c``) where two parsed documents differ."""
    if isinstance(golden, dict) and isinstance(ours, dict):
        out: list[str] = []
        for key in dict.fromkeys([*golden, *ours]):
            sub = f"{path}.{key}" if path else key
            if key not in golden or key not in ours:
                out.append(sub)
            else:
                out += json_diff(golden[key], ours[key], sub)
        return out
    if isinstance(golden, list) and isinstance(ours, list) and len(golden) == len(ours):
        return [
            d
            for i, (g, o) in enumerate(zip(golden, ours, strict=True))
            for d in json_diff(g, o, f"{path}[{i}]")
        ]
    return [] if golden == ours else [path]


def compare(case: str, golden: dict[str, Any], ours: dict[str, Any]) -> list[str]:
    """Every difference between LinuxKit's description and ours not allowed for `case`."""
    allowed = DELIBERATE.get(case, {})
    missing = allowed.get("missing", [])
    want = [
        e
        for e in golden["entries"]
        if not any(fnmatch.fnmatchcase(e["name"], glob) for glob in missing)
    ]
    got = ours["entries"]
    problems: list[str] = []
    golden_parsed = {**golden.get("json", {}), **golden.get("yaml", {})}
    if [e["name"] for e in want] != [e["name"] for e in got]:
        problems.append(f"entry names or order differ ({len(want)} golden, {len(got)} ours)")
    for g, o in zip(want, got, strict=False):  # a length mismatch is reported above
        for field in FIELDS:
            if field in ("size", "sha256") and g["name"] in golden_parsed:
                continue  # compared parsed, below
            if g.get(field) != o.get(field):
                problems.append(f"{g['name']}: {field} {g.get(field)!r} != {o.get(field)!r}")
    fields = allowed.get("fields", {})
    for name, doc in golden_parsed.items():
        diffs = json_diff(doc, ours["parsed"].get(name))
        if sorted(diffs) != sorted(fields.get(name, [])):
            problems.append(f"{name}: differs at {diffs}, allowed {fields.get(name, [])}")
    return problems


@pytest.mark.parametrize("case", VALID)
def test_tar_matches_linuxkit(case: str, lk_cache: Path, tmp_path: Path) -> None:
    out = tmp_path / f"{case}.tar"
    assert _build(CASES / "valid" / case, lk_cache, "--format", "tar", "-o", str(out)) == 0
    assert compare(case, _golden(f"{case}.json.xz"), describe(out)) == []
    want = INDEX["valid"][case]["tar_sha256"]
    if case in DELIBERATE:
        assert _sha256(out.read_bytes()) != want  # the difference is real, not stale
    else:
        assert _sha256(out.read_bytes()) == want


def cpio_streams(initrd: bytes) -> list[tuple[str, bytes]]:
    """(compression, uncompressed bytes) of each stream: raw cpio archives, gzip runs."""
    streams: list[tuple[str, bytes]] = []
    pos = 0
    while pos < len(initrd):
        if initrd[pos] == 0:
            pos += 1
        elif initrd[pos : pos + 2] == b"\x1f\x8b":
            raw = b""
            while initrd[pos : pos + 2] == b"\x1f\x8b":  # consecutive members: one stream
                d = zlib.decompressobj(wbits=31)
                raw += d.decompress(initrd[pos:]) + d.flush()
                pos = len(initrd) - len(d.unused_data)
            streams.append(("gzip", raw))
        else:
            start = pos
            while True:  # newc records up to and including the trailer
                fields = [int(initrd[pos + 6 + 8 * i : pos + 14 + 8 * i], 16) for i in range(13)]
                size, namesize = fields[6], fields[11]
                name = initrd[pos + 110 : pos + 110 + namesize - 1]
                pos += 110 + namesize
                pos += -pos % 4 + size
                pos += -pos % 4
                if name == b"TRAILER!!!":
                    break
            streams.append(("none", initrd[start:pos]))
    return streams


@pytest.mark.parametrize("case", INITRD)
def test_kernel_initrd_matches_linuxkit(case: str, lk_cache: Path, tmp_path: Path) -> None:
    args = ("--format", "kernel+initrd", "--dir", str(tmp_path), "--name", case)
    assert _build(CASES / "valid" / case, lk_cache, *args) == 0
    want = INDEX["initrd"][case]
    assert _sha256((tmp_path / f"{case}-kernel").read_bytes()) == want["kernel_sha256"]
    assert (tmp_path / f"{case}-cmdline").read_text() == want["cmdline"]
    streams = cpio_streams((tmp_path / f"{case}-initrd.img").read_bytes())
    got = [{"compression": c, "sha256": _sha256(d), "size": len(d)} for c, d in streams]
    assert got == want["cpio_streams"]


@pytest.mark.parametrize("case", INVALID)
def test_invalid_case_is_rejected(case: str, lk_cache: Path, tmp_path: Path) -> None:
    out = tmp_path / "out.tar"
    assert _build(CASES / "invalid" / case, lk_cache, "--format", "tar", "-o", str(out)) != 0
    assert not out.exists()


def test_oci_volume_is_an_oci_layout_of_the_chosen_platforms(
    lk_cache: Path, tmp_path: Path
) -> None:
    """``format: oci`` volumes hold the image as an OCI layout with only the listed platforms,
    every blob named by its digest, which ``cache import`` reads back."""
    out = tmp_path / "p06.tar"
    case = CASES / "valid" / "p06-volumes-platforms"
    assert _build(case, lk_cache, "--format", "tar", "-o", str(out)) == 0
    for volume, archs in (("oci-arm64", {"arm64"}), ("oci-both-ro", {"arm64", "amd64"})):
        lower = f"containers/volumes/{volume}/lower/"
        layout = tmp_path / volume
        with tarfile.open(out) as tar:
            for m in tar:
                if m.name.startswith(lower) and (m.isreg() or m.isdir()):
                    m.name = m.name[len(lower) :]
                    tar.extract(m, layout, filter="data")
        blobs = layout / "blobs" / "sha256"
        for blob in blobs.iterdir():
            assert _sha256(blob.read_bytes()) == blob.name
        (entry,) = json.loads((layout / "index.json").read_text())["manifests"]
        assert entry["annotations"]["org.opencontainers.image.ref.name"] == (
            "127.0.0.1:5000/conf/data:v1"
        )
        index = json.loads((blobs / entry["digest"].split(":")[1]).read_bytes())
        present = {
            m["platform"]["architecture"]
            for m in index["manifests"]
            if (blobs / m["digest"].split(":")[1]).exists()
        }
        assert present == archs
        archive = tmp_path / f"{volume}.tar"
        with tarfile.open(archive, "w") as tar:
            for path in sorted(layout.rglob("*")):
                tar.add(path, path.relative_to(layout).as_posix(), recursive=False)
        cache = str(tmp_path / f"cache-{volume}")
        assert main(["cache", "import", "--cache", cache, str(archive)]) == 0
