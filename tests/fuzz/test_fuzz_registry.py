"""Fuzz what a registry answers: mutated manifests, indexes and image configs served over HTTP
on 127.0.0.1 must make `pull` succeed or raise a `DistrokitError`, never another exception.

The server is a few lines of http.server: a real registry refuses malformed manifests on push,
and a hostile one is exactly what is being imitated here.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import tempfile
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any, ClassVar

import pytest
from fuzzing import FUZZ, JSON, mutated_json
from hypothesis import given
from hypothesis import strategies as st

from distrokit.errors import DistrokitError
from distrokit.oci.cache import Cache
from distrokit.oci.image import OCI_CONFIG, OCI_INDEX, OCI_LAYER_GZIP, OCI_MANIFEST, Platform
from distrokit.oci.pull import PullOptions, pull

AMD64 = Platform.parse("linux/amd64")
FAST = PullOptions(retries=0, backoff=0.0, timeout=5.0)


def _blob(data: bytes) -> dict[str, Any]:
    return {"digest": "sha256:" + hashlib.sha256(data).hexdigest(), "size": len(data)}


CONFIG = json.dumps({"architecture": "amd64", "os": "linux", "config": {"Cmd": ["/bin/sh"]},
                     "rootfs": {"type": "layers", "diff_ids": []}}).encode()  # fmt: skip
LAYER = b"\x1f\x8b\x08\x00\x00\x00\x00\x00\x00\x03\x03\x00\x00\x00\x00\x00\x00\x00\x00\x00"
MANIFEST = {
    "schemaVersion": 2,
    "mediaType": OCI_MANIFEST,
    "config": {"mediaType": OCI_CONFIG, **_blob(CONFIG)},
    "layers": [{"mediaType": OCI_LAYER_GZIP, **_blob(LAYER)}],
}
INDEX = {
    "schemaVersion": 2,
    "mediaType": OCI_INDEX,
    "manifests": [{"mediaType": OCI_MANIFEST, **_blob(json.dumps(MANIFEST).encode()),
                   "platform": {"os": "linux", "architecture": "amd64"}}],
}  # fmt: skip


class _Registry(BaseHTTPRequestHandler):
    """Answers manifests and blobs from `content` (path -> (type, body))."""

    content: ClassVar[dict[str, tuple[str, bytes]]] = {}

    def do_GET(self) -> None:
        found = self.content.get(self.path)
        if found is None:
            self.send_response(404)
            self.send_header("Content-Length", "0")
            self.end_headers()
            return
        kind, body = found
        self.send_response(200)
        self.send_header("Content-Type", kind)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture(scope="module")
def server() -> Iterator[str]:
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), _Registry)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"127.0.0.1:{httpd.server_address[1]}"
    finally:
        httpd.shutdown()
        httpd.server_close()


def _serve(root: Any, manifest: Any, config: bytes) -> None:
    root_body = json.dumps(root).encode()
    manifest_body = json.dumps(manifest).encode()
    blobs = {_blob(b)["digest"]: b for b in (config, LAYER)}
    content = {"/v2/fuzz/image/manifests/1": (OCI_INDEX, root_body)}
    for digest, body in (
        (_blob(manifest_body)["digest"], manifest_body),
        (_blob(root_body)["digest"], root_body),
    ):
        content[f"/v2/fuzz/image/manifests/{digest}"] = (OCI_MANIFEST, body)
    for digest, body in blobs.items():
        content[f"/v2/fuzz/image/blobs/{digest}"] = ("application/octet-stream", body)
    _Registry.content = content


def _pull(server: str) -> None:
    with (
        tempfile.TemporaryDirectory(prefix="fuzz-pull-") as tmp,
        contextlib.suppress(DistrokitError),
    ):
        pull(Cache(Path(tmp)), [f"{server}/fuzz/image:1"], AMD64, options=FAST)


@FUZZ
@given(st.one_of(mutated_json(INDEX), mutated_json(MANIFEST), JSON))
def test_mutated_root_manifests(server: str, root: Any) -> None:
    _serve(root, MANIFEST, CONFIG)
    _pull(server)


@FUZZ
@given(mutated_json(MANIFEST))
def test_mutated_platform_manifests(server: str, manifest: Any) -> None:
    body = json.dumps(manifest).encode()
    index = {**INDEX, "manifests": [{**INDEX["manifests"][0], **_blob(body)}]}
    _serve(index, manifest, CONFIG)
    _pull(server)


@FUZZ
@given(mutated_json(json.loads(CONFIG)).map(lambda c: json.dumps(c).encode()))
def test_mutated_image_configs(server: str, config: bytes) -> None:
    manifest = {**MANIFEST, "config": {"mediaType": OCI_CONFIG, **_blob(config)}}
    body = json.dumps(manifest).encode()
    index = {**INDEX, "manifests": [{**INDEX["manifests"][0], **_blob(body)}]}
    _serve(index, manifest, config)
    _pull(server)
