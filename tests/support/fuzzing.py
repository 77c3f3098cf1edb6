"""Shared pieces of the fuzz tier: fixed hypothesis settings and hostile-input strategies.

Every fuzz test runs with `FUZZ`: derandomized (the same examples on every run and machine),
no example database, and a fixed budget, so the tier takes the same few minutes in CI each
time. `FUZZ_EXAMPLES` in the environment scales the budget for a longer local hunt.
"""

from __future__ import annotations

import os
from typing import Any

from hypothesis import HealthCheck, settings
from hypothesis import strategies as st

EXAMPLES = int(os.environ.get("FUZZ_EXAMPLES", "150"))

FUZZ = settings(
    max_examples=EXAMPLES,
    derandomize=True,
    database=None,
    deadline=None,
    suppress_health_check=list(HealthCheck),
)

SCALARS = (
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**70), max_value=2**70)
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=12)
    | st.sampled_from(["sha256:" + "a" * 64, "sha256:", "application/vnd.oci.image.index.v1+json"])
)

JSON = st.recursive(
    SCALARS,
    lambda children: st.lists(children, max_size=4)
    | st.dictionaries(
        st.sampled_from(
            ["mediaType", "digest", "size", "platform", "manifests", "layers", "config",
             "annotations", "os", "architecture", "Labels", "Cmd", "Env", "x"]
        )
        | st.text(max_size=6),
        children,
        max_size=5,
    ),
    max_leaves=12,
)  # fmt: skip


def _paths(doc: Any, prefix: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    """Every path to a value inside `doc` (dict keys and list indexes), `doc` itself first."""
    out = [prefix]
    if isinstance(doc, dict):
        for key, value in doc.items():
            out += _paths(value, (*prefix, key))
    elif isinstance(doc, list):
        for i, value in enumerate(doc):
            out += _paths(value, (*prefix, i))
    return out


def _replace(doc: Any, path: tuple[Any, ...], value: Any, delete: bool) -> Any:
    if not path:
        return value
    head, rest = path[0], path[1:]
    if isinstance(doc, dict):
        out = dict(doc)
        if delete and not rest:
            out.pop(head, None)
        else:
            out[head] = _replace(doc[head], rest, value, delete)
        return out
    out_list = list(doc)
    if delete and not rest:
        del out_list[head]
    else:
        out_list[head] = _replace(doc[head], rest, value, delete)
    return out_list


@st.composite
def mutated_json(draw: st.DrawFn, doc: Any, rounds: int = 3) -> Any:
    """`doc` with up to `rounds` values replaced by arbitrary JSON, or deleted."""
    for _ in range(draw(st.integers(1, rounds))):
        path = draw(st.sampled_from(_paths(doc)))
        delete = bool(path) and draw(st.booleans())
        doc = _replace(doc, path, None if delete else draw(JSON), delete)
    return doc


@st.composite
def mutated_bytes(draw: st.DrawFn, data: bytes, rounds: int = 4) -> bytes:
    """`data` truncated, with bytes flipped, inserted or removed (a damaged download)."""
    out = bytearray(data)
    for _ in range(draw(st.integers(1, rounds))):
        kind = draw(st.sampled_from(["flip", "truncate", "insert", "delete", "zero"]))
        if not out:
            out += draw(st.binary(min_size=1, max_size=64))
            continue
        at = draw(st.integers(0, len(out) - 1))
        if kind == "flip":
            out[at] ^= draw(st.integers(1, 255))
        elif kind == "truncate":
            del out[at:]
        elif kind == "insert":
            out[at:at] = draw(st.binary(min_size=1, max_size=64))
        elif kind == "delete":
            del out[at : at + draw(st.integers(1, 512))]
        else:
            out[at : at + 512] = bytes(len(out[at : at + 512]))
    return bytes(out)
