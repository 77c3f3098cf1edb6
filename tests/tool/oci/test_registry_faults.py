"""A faulty registry (tests/support/faultproxy.py in front of a real docker-registry): every
fault ends within its stated deadline with a clear message, and Ctrl-C ends a stalled pull.

The deadline (docs/security.md): a registry that answers nothing, or sends less than 1 kB/s,
for ``--timeout`` seconds is abandoned. `TIMEOUT` is that flag here; `SLACK` covers starting
Python and the requests that went well.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from faultproxy import Fault, FaultProxy, fault_proxy, wait_for
from hosttools import require_tools
from registry import Registry, make_layer

from distrokit.oci.cache import Cache
from distrokit.oci.image import ImageConfigBlob, Platform
from distrokit.oci.push import push

AMD64 = Platform.parse("linux/amd64")
TIMEOUT = 2.0
SLACK = 4.0


LAYER_DIGESTS: list[str] = []


@pytest.fixture(scope="module")
def image(registry: Registry, tmp_path_factory: pytest.TempPathFactory) -> str:
    """A two-layer image (about 400 kB) pushed to the registry; its repository and tag.

    Its layers' digests are left in `LAYER_DIGESTS`.
    """
    require_tools("docker-registry")
    tmp = tmp_path_factory.mktemp("faults")
    cache = Cache(tmp / "build")
    ref = f"{registry.host}/faults/image:1"
    layers = [
        make_layer(tmp / "a.tar", seed=71, size=200_000),
        make_layer(tmp / "b.tar", seed=72, size=200_000, name="other"),
    ]
    cache.add_image(ref, layers, ImageConfigBlob(cmd=("/bin/true",)), AMD64)
    push(cache, ref)
    LAYER_DIGESTS[:] = [d.digest for d in cache.image(ref, AMD64).layers]
    return "faults/image:1"


@pytest.fixture
def proxy(registry: Registry) -> Iterator[FaultProxy]:
    with fault_proxy(registry.host) as p:
        yield p


def _pull(
    proxy: FaultProxy, image: str, cache: Path, *flags: str
) -> tuple[subprocess.CompletedProcess[str], float]:
    argv = [sys.executable, "-m", "distrokit", "cache", "pull", "--cache", str(cache)]
    argv += ["--timeout", str(TIMEOUT), *flags, f"{proxy.host}/{image}"]
    start = time.monotonic()
    done = subprocess.run(argv, capture_output=True, text=True, timeout=120, check=False)
    return done, time.monotonic() - start


def _partials(cache: Path) -> list[Path]:
    return list((cache / "blobs" / "sha256").glob(".partial-*"))


@pytest.mark.parametrize(
    ("fault", "message"),
    [
        (Fault("stall", "/manifests/"), "stalled: no answer, or less than 2 kB in 2 s"),
        (Fault("trickle", "/manifests/"), "stalled: no answer, or less than 2 kB in 2 s"),
        (Fault("stall-body", "/blobs/"), "stalled: no answer, or less than 2 kB in 2 s"),
        (Fault("trickle-body", "/blobs/"), "stalled: no answer, or less than 2 kB in 2 s"),
        (Fault("stall", "/blobs/"), "stalled: no answer, or less than 2 kB in 2 s"),
        (Fault("endless", "/manifests/"), "is larger than 8 MiB"),
        (Fault("endless", "/blobs/"), "is larger than its descriptor says"),
    ],
    ids=lambda v: f"{v.mode}-{v.match.strip('/')}" if isinstance(v, Fault) else "",
)
def test_faulty_registry_fails_within_the_deadline(
    proxy: FaultProxy, image: str, tmp_path: Path, fault: Fault, message: str
) -> None:
    proxy.faults = [fault]
    done, took = _pull(proxy, image, tmp_path / "cache")
    assert done.returncode == 1, done.stderr
    assert message in done.stderr
    assert "Traceback" not in done.stderr
    assert took < TIMEOUT + SLACK, f"took {took:.1f}s"
    assert any(mode == fault.mode for _, _, mode in proxy.hits)
    assert _partials(tmp_path / "cache") == []
    assert Cache(tmp_path / "cache").entries() == []


def test_blob_dropped_midway_is_resumed(proxy: FaultProxy, image: str, tmp_path: Path) -> None:
    proxy.faults = [Fault("drop", "/blobs/", times=2)]
    done, took = _pull(proxy, image, tmp_path / "cache")
    assert done.returncode == 0, done.stderr
    assert [m for _, _, m in proxy.hits].count("drop") == 2
    assert len(Cache(tmp_path / "cache").entries()) == 1
    assert _partials(tmp_path / "cache") == []
    assert took < TIMEOUT + SLACK + 2  # two resumes, each after a short backoff


@pytest.mark.parametrize("stalled", ["config", "layer"])
def test_ctrl_c_during_a_stalled_pull_ends_within_two_seconds(
    proxy: FaultProxy, image: str, tmp_path: Path, stalled: str
) -> None:
    cache = tmp_path / "cache"
    # The config is fetched first, by the main thread; layers by the download threads.
    match = "/blobs/" if stalled == "config" else LAYER_DIGESTS[0]
    proxy.faults = [Fault("stall-body", match)]
    argv = [sys.executable, "-m", "distrokit", "cache", "pull", "--cache", str(cache)]
    # The default deadline (30 s): only the interrupt can end this pull in time.
    proc = subprocess.Popen(
        [*argv, f"{proxy.host}/{image}"], stderr=subprocess.PIPE, text=True, env=os.environ
    )
    try:
        assert wait_for(lambda: any(m == "stall-body" for _, _, m in proxy.hits), 30)
        assert wait_for(lambda: bool(_partials(cache)), 30)
        time.sleep(0.3)
        start = time.monotonic()
        proc.send_signal(signal.SIGINT)
        rc = proc.wait(timeout=10)
        took = time.monotonic() - start
    finally:
        proc.kill()
        proc.wait()
    assert proc.stderr is not None
    err = proc.stderr.read()
    assert rc == 130, err
    assert "interrupted" in err and "Traceback" not in err
    assert took < 2.0, f"took {took:.2f}s"
    assert _partials(cache) == []
