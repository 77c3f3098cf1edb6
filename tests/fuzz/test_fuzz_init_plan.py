"""The guest init's two bundle planners (pkg/init/lib.sh) against each other.

PLAN_AWK (busybox awk, the guest's) plans the runtime.json LinuxKit writes without a jq
start; PLAN_JQ plans any runtime.json. On generated runtime.json files, in Go's indented
layout or compact, with hostile values: whenever awk gives a plan it is jq's, byte for byte;
awk refuses what jq refuses; and the plain files LinuxKit writes are always awk's to plan.
"""

from __future__ import annotations

import json
import subprocess
from pathlib import Path
from typing import Any

import pytest
from fuzzing import FUZZ, JSON
from hosttools import require_tools
from hypothesis import given
from hypothesis import strategies as st

LIB = Path(__file__).resolve().parents[2] / "pkg" / "init" / "lib.sh"
KEYS = ["cgroups", "mounts", "mkdir", "interfaces", "bindNS", "namespace"]
NAMESPACES = ["cgroup", "ipc", "mnt", "net", "pid", "user", "uts"]

# Paths and options as they come: quotes, blanks, commas, '$', non-ASCII; no escapes needed
# in JSON apart from the ones json.dumps adds for non-ASCII when asked to.
PLAIN = st.text(
    st.characters(blacklist_categories=("Cs", "Cc"), blacklist_characters='"\\'), max_size=10
)
MOUNT = st.fixed_dictionaries(
    {"destination": PLAIN},
    optional={"type": PLAIN, "source": PLAIN, "options": st.lists(PLAIN, max_size=3)},
)
LINUXKIT = st.fixed_dictionaries(
    {},
    optional={
        "cgroups": st.lists(PLAIN, max_size=2),
        "mounts": st.lists(MOUNT, max_size=3),
        "mkdir": st.lists(PLAIN, max_size=2),
        "interfaces": st.lists(st.fixed_dictionaries({"name": PLAIN}), max_size=1),
        "bindNS": st.fixed_dictionaries({}, optional=dict.fromkeys(NAMESPACES, PLAIN)),
        "namespace": PLAIN | st.none(),
    },
)
HOSTILE = st.dictionaries(st.sampled_from(KEYS) | st.text(max_size=4), JSON, max_size=6)


def _plan(program: str, path: Path) -> subprocess.CompletedProcess[bytes]:
    script = {
        "awk": f'. {LIB}; busybox awk -v Q="\'" "$PLAN_AWK" "$1"',
        "jq": f'. {LIB}; jq -r "\\"#@\\" + input_filename, $PLAN_JQ" "$1"',
    }[program]
    return subprocess.run(
        ["sh", "-c", script, "sh", str(path)], capture_output=True, check=False, timeout=30
    )


def _write(tmp: Path, doc: Any, indent: bool, ascii_only: bool) -> Path:
    path = tmp / "runtime.json"
    path.write_text(
        json.dumps(doc, indent=4 if indent else None, ensure_ascii=ascii_only), encoding="utf-8"
    )
    return path


@pytest.fixture(scope="module")
def tmp(tmp_path_factory: pytest.TempPathFactory) -> Path:
    require_tools("busybox", "jq")
    return tmp_path_factory.mktemp("plan")


@FUZZ
@given(doc=LINUXKIT, indent=st.booleans())
def test_linuxkit_runtime_json_is_planned_by_awk_as_jq_plans_it(
    tmp: Path, doc: dict[str, Any], indent: bool
) -> None:
    path = _write(tmp, doc, indent, ascii_only=False)
    awk, jq = _plan("awk", path), _plan("jq", path)
    assert jq.returncode == 0, jq.stderr
    assert awk.returncode == 0, awk.stderr
    assert awk.stdout == jq.stdout


@FUZZ
@given(doc=HOSTILE | LINUXKIT, indent=st.booleans(), ascii_only=st.booleans())
def test_awk_plans_hostile_json_as_jq_or_not_at_all(
    tmp: Path, doc: dict[str, Any], indent: bool, ascii_only: bool
) -> None:
    path = _write(tmp, doc, indent, ascii_only)
    awk, jq = _plan("awk", path), _plan("jq", path)
    if awk.returncode == 0:
        assert jq.returncode == 0 and awk.stdout == jq.stdout
    if jq.returncode != 0:
        assert awk.returncode != 0


@pytest.mark.parametrize(
    "text",
    ['{"mkdir": ["/a"]', '{"mkdir": ["/a"]} {}', "[]", '{"mkdir": "/a"}', '{"a": tru}'],
)
def test_awk_refuses_what_it_cannot_plan(tmp: Path, text: str) -> None:
    path = tmp / "runtime.json"
    path.write_text(text)
    assert _plan("awk", path).returncode != 0


def test_an_empty_file_has_no_plan_from_either(tmp: Path) -> None:
    path = tmp / "runtime.json"
    path.write_text("")
    assert _plan("awk", path).stdout == _plan("jq", path).stdout == b""
