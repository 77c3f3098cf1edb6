"""Pull throughput: distrokit vs ``skopeo copy`` for a ~200 MB multi-layer image.

Builds an image of several incompressible layers (so it really is ~200 MB on the wire), pushes it
with distrokit to a loopback docker-registry, then times, three times each, a distrokit pull into
an empty cache and ``skopeo copy docker://... oci:DIR``. Prints both medians and the ratio and
writes benchmarks/results/pull.json. Target: distrokit's time <= 1.25x skopeo's.

    .venv/bin/python benchmarks/pull.py [--mb 200] [--layers 5] [--runs 3]
"""

from __future__ import annotations

import argparse
import random
import shutil
import statistics
import sys
import tarfile
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests" / "support"))

from registry import start_registry  # noqa: E402

from benchlib import write_result  # noqa: E402
from distrokit.host import Host  # noqa: E402
from distrokit.oci.cache import Cache  # noqa: E402
from distrokit.oci.image import ImageConfigBlob, Platform  # noqa: E402
from distrokit.oci.pull import PullOptions, pull  # noqa: E402
from distrokit.oci.push import PushOptions, push  # noqa: E402

AMD64 = Platform.parse("linux/amd64")


def _layer(path: Path, seed: int, size: int) -> Path:
    """A tar of one file of incompressible bytes, written in 1 MiB pieces."""
    rng = random.Random(seed)
    data = path.with_suffix(".bin")
    with data.open("wb") as f:
        left = size
        while left:
            n = min(left, 1 << 20)
            f.write(rng.randbytes(n))
            left -= n
    with tarfile.open(path, "w") as tar:
        info = tar.gettarinfo(str(data), arcname=f"layer-{seed}.bin")
        info.mtime = 0
        with data.open("rb") as f:
            tar.addfile(info, f)
    data.unlink()
    return path


def _publish(work: Path, ref: str, mb: int, layer_count: int) -> int:
    """Build the image in a scratch cache, push it as `ref`; return its compressed size."""
    build = Cache(work / "build")
    per_layer = mb * 1_000_000 // layer_count
    layers = [_layer(work / f"l{i}.tar", i, per_layer) for i in range(layer_count)]
    build.add_image(ref, layers, ImageConfigBlob(cmd=("/bin/true",)), AMD64)
    push(build, ref, options=PushOptions())
    size = sum(d.size for d in build.image(ref, AMD64).layers)
    shutil.rmtree(work / "build")
    for p in layers:
        p.unlink()
    return size


def _time(fn: object, runs: int) -> list[float]:
    out = []
    for _ in range(runs):
        start = time.perf_counter()
        fn()  # type: ignore[operator]
        out.append(time.perf_counter() - start)
    return out


def main() -> int:
    """Run the benchmark and print a table."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--mb", type=int, default=200, help="image size in MB")
    parser.add_argument("--layers", type=int, default=5, help="number of layers")
    parser.add_argument("--runs", type=int, default=3, help="runs of each tool")
    args = parser.parse_args()
    host = Host()
    host.check_tools(["docker-registry", "skopeo"])
    with tempfile.TemporaryDirectory(prefix="bench-pull-") as tmp:
        work = Path(tmp)
        with start_registry(work / "registry") as reg:
            ref = f"{reg.host}/bench/big:1"
            size = _publish(work, ref, args.mb, args.layers)

            def ours() -> None:
                target = work / "ours"
                shutil.rmtree(target, ignore_errors=True)
                pull(Cache(target), [ref], AMD64, options=PullOptions())

            def skopeo() -> None:
                target = work / "skopeo"
                shutil.rmtree(target, ignore_errors=True)
                host.run(
                    [
                        "skopeo",
                        "copy",
                        "--quiet",
                        "--src-tls-verify=false",
                        f"docker://{ref}",
                        f"oci:{target}:big",
                    ]
                )

            skopeo()  # warm the registry's page cache equally for both
            ours_t = _time(ours, args.runs)
            skopeo_t = _time(skopeo, args.runs)
    ours_m, skopeo_m = statistics.median(ours_t), statistics.median(skopeo_t)
    result = {
        "image_bytes": size,
        "layers": args.layers,
        "runs": args.runs,
        "distrokit_seconds": ours_t,
        "skopeo_seconds": skopeo_t,
        "distrokit_median_s": ours_m,
        "skopeo_median_s": skopeo_m,
        "distrokit_mb_per_s": size / ours_m / 1e6,
        "skopeo_mb_per_s": size / skopeo_m / 1e6,
        "time_ratio": ours_m / skopeo_m,
        "target_met": ours_m <= 1.25 * skopeo_m,
    }
    print(f"{'tool':<10} {'median s':>9} {'MB/s':>8}")
    print(f"{'distrokit':<10} {ours_m:>9.2f} {result['distrokit_mb_per_s']:>8.1f}")
    print(f"{'skopeo':<10} {skopeo_m:>9.2f} {result['skopeo_mb_per_s']:>8.1f}")
    print(f"image {size / 1e6:.0f} MB in {args.layers} layers; time ratio {ours_m / skopeo_m:.2f}")
    print("target (<= 1.25x skopeo's time): " + ("met" if result["target_met"] else "NOT met"))
    write_result("pull", result)
    return 0


if __name__ == "__main__":
    sys.exit(main())
