"""Fuzz the YAML loader and `distrokit validate -`: every input is a config or a clean error.

Inputs are generated (LinuxKit-shaped documents with arbitrary values, arbitrary text) and
mutated (the seed configurations and examples, damaged byte by byte). The loader must return
a `Config` or raise `ConfigError`; `validate -` must exit 0 or 2 and never print a traceback.
"""

from __future__ import annotations

import contextlib
import io
import sys
from pathlib import Path

import pytest
import yaml
from fuzzing import FUZZ, JSON, mutated_bytes
from hypothesis import given
from hypothesis import strategies as st

from distrokit.cli import main
from distrokit.config.load import load_config
from distrokit.config.schema import parse_image_config
from distrokit.errors import ConfigError

ROOT = Path(__file__).resolve().parents[2]
SEED_FILES = [*(ROOT / "tests/data/config").glob("*.yml"), *(ROOT / "examples").glob("*.yml")]
SEEDS = [p.read_bytes() for p in sorted(SEED_FILES)]
TOP_KEYS = ["kernel", "init", "onboot", "onshutdown", "services", "files", "volumes", "trust"]
IMAGE_KEYS = ["name", "image", "capabilities", "binds", "mounts", "uid", "env", "command",
              "devices", "rlimits", "resources", "runtime", "sysctl", "tmpfs", "net"]  # fmt: skip
FILE_KEYS = ["path", "contents", "source", "symlink", "directory", "mode", "metadata", "uid"]

IMAGE = st.dictionaries(st.sampled_from(IMAGE_KEYS), JSON, max_size=6)
FILE = st.dictionaries(st.sampled_from(FILE_KEYS), JSON, max_size=5)
DOCUMENT = st.fixed_dictionaries(
    {},
    optional={
        "kernel": st.dictionaries(st.sampled_from(["image", "cmdline", "tar", "binary"]), JSON),
        "init": st.lists(JSON, max_size=3),
        "onboot": st.lists(IMAGE, max_size=3),
        "services": st.lists(IMAGE, max_size=3),
        "files": st.lists(FILE, max_size=3),
        "volumes": st.lists(st.dictionaries(st.sampled_from(["name", "image", "format"]), JSON)),
        "trust": JSON,
    },
)


def _load(text: str) -> None:
    try:
        load_config(["-"], stdin=io.StringIO(text))
    except ConfigError as err:
        assert err.problems, "a ConfigError carries its problems"


@FUZZ
@given(DOCUMENT)
def test_generated_documents(doc: dict[str, object]) -> None:
    _load(yaml.safe_dump(doc))


@FUZZ
@given(st.sampled_from(SEEDS).flatmap(mutated_bytes))
def test_mutated_seed_documents(data: bytes) -> None:
    _load(data.decode("utf-8", errors="replace"))


@FUZZ
@given(
    st.text(max_size=400)
    | st.sampled_from(TOP_KEYS).map(lambda k: f"{k}: ")
    | st.binary(max_size=200).map(lambda b: b.decode("utf-8", errors="surrogateescape"))
)
def test_arbitrary_text(text: str) -> None:
    _load(text)


@FUZZ
@given(st.dictionaries(st.sampled_from(IMAGE_KEYS), JSON, max_size=6).map(yaml.safe_dump))
def test_image_labels(text: str) -> None:
    with contextlib.suppress(ConfigError):
        parse_image_config(text, "label of example/image")


@FUZZ
@given(st.binary(max_size=300) | st.sampled_from(SEEDS).flatmap(mutated_bytes))
def test_validate_stdin_bytes(data: bytes) -> None:
    # As sys.stdin is set up in a C or POSIX locale: invalid UTF-8 becomes surrogates.
    stdin = io.TextIOWrapper(io.BytesIO(data), encoding="utf-8", errors="surrogateescape")
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(sys, "stdin", stdin)
        mp.setattr(sys, "stderr", io.StringIO())
        mp.setattr(sys, "stdout", io.StringIO())
        code = main(["validate", "-"])
        err = sys.stderr.getvalue()
    assert code in (0, 2), err
    assert "Traceback" not in err
