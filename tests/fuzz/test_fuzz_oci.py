"""Fuzz the OCI parsers: descriptors, image configs, manifests and indexes, the cache's own
index.json, `cache import` and the layer reader, with generated and mutated inputs.

A real image is built once (two layers, exported as an OCI layout tar); each example damages
a copy of it. Every call must succeed or raise a `DistrokitError`; the CLI must exit with
one of its codes and never print a traceback.
"""

from __future__ import annotations

import functools
import gzip
import hashlib
import io
import json
import shutil
import sys
import tarfile
import tempfile
from collections.abc import Iterator
from contextlib import closing, contextmanager, suppress
from pathlib import Path
from typing import Any

import pytest
from fuzzing import FUZZ, JSON, mutated_bytes, mutated_json
from hypothesis import example, given
from hypothesis import strategies as st
from registry import make_layer

from distrokit.cli import main
from distrokit.errors import DistrokitError
from distrokit.oci.cache import Cache
from distrokit.oci.flatten import flatten
from distrokit.oci.image import (
    OCI_LAYER_GZIP,
    OCI_MANIFEST,
    CachedImage,
    Descriptor,
    ImageConfigBlob,
    Platform,
)
from distrokit.oci.layout import export_image, import_layout

AMD64 = Platform.parse("linux/amd64")
REF = "example.org/fuzz/image:1"


@functools.cache
def _built() -> tuple[Path, bytes]:
    """A cache holding one image, and that image exported as an OCI layout tar."""
    work = Path(tempfile.mkdtemp(prefix="fuzz-oci-"))
    cache = Cache(work / "cache")
    layers = [
        make_layer(work / "a.tar", seed=5, size=3000),
        make_layer(work / "b.tar", seed=6, size=2000, name="etc/other"),
    ]
    labels = {"org.mobyproject.config": '{"capabilities": ["CAP_CHOWN"]}'}
    config = ImageConfigBlob(cmd=("/bin/sh",), env=("A=1",), labels=labels)
    cache.add_image(REF, layers, config, AMD64)
    out = io.BytesIO()
    export_image(cache, REF, AMD64, out)
    return work / "cache", out.getvalue()


def _layout_json() -> tuple[dict[str, Any], dict[str, Any], dict[str, Any]]:
    root, _ = _built()
    cache = Cache(root)
    desc = cache.lookup(REF)
    assert desc is not None
    manifest = cache.read_json(desc.digest)
    config = cache.read_json(manifest["config"]["digest"])
    index = json.loads((root / "index.json").read_text())
    return index, manifest, config


@contextmanager
def _cache_copy() -> Iterator[Path]:
    root, _ = _built()
    with tempfile.TemporaryDirectory(prefix="fuzz-cache-") as tmp:
        copy = Path(tmp) / "cache"
        shutil.copytree(root, copy)
        yield copy


def _quiet_main(argv: list[str], stdin: bytes = b"") -> tuple[int, str]:
    with pytest.MonkeyPatch.context() as mp:
        err = io.StringIO()
        mp.setattr(sys, "stderr", err)
        mp.setattr(sys, "stdout", io.StringIO())
        mp.setattr(sys, "stdin", io.TextIOWrapper(io.BytesIO(stdin)))
        code = main(argv)
    return code, err.getvalue()


INDEX, MANIFEST, CONFIG = _layout_json()
DESCRIPTOR = MANIFEST["layers"][0]


@FUZZ
@given(JSON | mutated_json(DESCRIPTOR))
def test_descriptors(data: Any) -> None:
    for parse in (Descriptor.from_json, lambda d: Descriptor.list_from_json(d, "layers")):
        with suppress(DistrokitError):
            parse(data)


@FUZZ
@given(mutated_json(CONFIG).map(lambda c: json.dumps(c).encode()) | st.binary(max_size=200))
def test_image_configs(raw: bytes) -> None:
    with suppress(DistrokitError):
        ImageConfigBlob.from_bytes(raw)


def _use_cache(root: Path) -> None:
    """Everything a build or `cache ls` does with a cache, which must end cleanly."""
    try:
        cache = Cache(root)
        cache.list_entries()
        image = cache.image(REF, AMD64)
        for layer in image.layers:
            with closing(image.open_layer(layer)) as stream:
                stream.read()
    except DistrokitError:
        pass
    code, err = _quiet_main(["cache", "ls", "--cache", str(root)])
    assert code in (0, 1) and "Traceback" not in err, err


@FUZZ
@given(mutated_json(INDEX))
def test_cache_index_json(index: Any) -> None:
    with _cache_copy() as root:
        (root / "index.json").write_text(json.dumps(index))
        _use_cache(root)


@FUZZ
@given(mutated_json(MANIFEST) | mutated_json({"schemaVersion": 2, "manifests": [DESCRIPTOR]}))
def test_cached_manifests_and_indexes(doc: Any) -> None:
    with _cache_copy() as root:
        cache = Cache(root)
        body = json.dumps(doc).encode()
        digest = cache.put_bytes(body)
        kind = doc.get("mediaType") if isinstance(doc, dict) else None
        cache.record(REF, Descriptor(str(kind or OCI_MANIFEST), digest, len(body)))
        _use_cache(root)


def _tar(members: dict[str, bytes]) -> bytes:
    out = io.BytesIO()
    with tarfile.open(fileobj=out, mode="w") as tar:
        for name, data in members.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    return out.getvalue()


def _layout_members() -> dict[str, bytes]:
    _, layout = _built()
    with tarfile.open(fileobj=io.BytesIO(layout)) as tar:
        return {m.name: tar.extractfile(m).read() for m in tar if m.isfile()}  # type: ignore[union-attr]


MEMBERS = _layout_members()


def _import(data: bytes) -> None:
    with tempfile.TemporaryDirectory(prefix="fuzz-import-") as tmp, suppress(DistrokitError):
        import_layout(Cache(Path(tmp) / "cache"), io.BytesIO(data), source="fuzz.tar")


@FUZZ
@given(mutated_json(INDEX))
def test_import_with_mutated_index(index: Any) -> None:
    _import(_tar({**MEMBERS, "index.json": json.dumps(index).encode()}))


@FUZZ
@given(mutated_json(MANIFEST))
def test_import_with_mutated_manifest(manifest: Any) -> None:
    # The manifest blob is stored under its new digest and index.json points at it, so the
    # import gets past digest checks to the manifest's shape.
    body = json.dumps(manifest).encode()
    digest = hashlib.sha256(body).hexdigest()
    entry = {**INDEX["manifests"][0], "digest": f"sha256:{digest}", "size": len(body)}
    entry["annotations"] = {"io.containerd.image.name": REF}
    index = {**INDEX, "manifests": [entry]}
    members = {**MEMBERS, f"blobs/sha256/{digest}": body, "index.json": json.dumps(index).encode()}
    _import(_tar(members))


@FUZZ
@given(
    st.sampled_from([_built()[1], gzip.compress(_built()[1], mtime=0)]).flatmap(mutated_bytes)
    | st.binary(max_size=2000)
)
@example(b"\x1f\x8b\x08")  # a gzip header cut short: tarfile raised TypeError
def test_cache_import_cli_with_damaged_archives(data: bytes) -> None:
    with tempfile.TemporaryDirectory(prefix="fuzz-import-") as tmp:
        path = Path(tmp) / "in.tar"
        path.write_bytes(data)
        code, err = _quiet_main(["cache", "import", "--cache", f"{tmp}/cache", str(path)])
        assert code in (0, 1, 2) and "Traceback" not in err, err
        code, err = _quiet_main(["cache", "import", "--cache", f"{tmp}/cache2", "-"], data)
        assert code in (0, 1, 2) and "Traceback" not in err, err


def _layer_tar() -> bytes:
    with tempfile.TemporaryDirectory() as tmp:
        return make_layer(Path(tmp) / "l.tar", seed=9, size=5000, name="usr/bin/tool").read_bytes()


LAYER = _layer_tar()


@FUZZ
@given(
    mutated_bytes(LAYER).map(lambda t: gzip.compress(t, mtime=0))
    | mutated_bytes(gzip.compress(LAYER, mtime=0))
)
def test_layer_reader(blob: bytes) -> None:
    with tempfile.TemporaryDirectory(prefix="fuzz-layer-") as tmp:
        cache = Cache(Path(tmp))
        digest = cache.put_bytes(blob)
        layer = Descriptor(OCI_LAYER_GZIP, digest, len(blob))
        image = CachedImage(REF, digest, layer, ImageConfigBlob(), layer, (layer,), cache.blob_dir)
        try:
            for entry in flatten(1, lambda i: image.open_layer(image.layers[i])):
                if entry.data is not None:
                    entry.data.read()
        except DistrokitError:
            pass
