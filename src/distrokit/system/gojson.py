"""JSON bytes as Go's ``encoding/json`` writes them, for files LinuxKit writes with it.

``json.MarshalIndent(v, "", indent)``: keys in the order given (Go's struct field order is
kept by building dicts in that order), empty arrays and objects as ``[]`` and ``{}``, UTF-8
left as it is, ``<``, ``>``, ``&``, U+2028 and U+2029 escaped as ``\\u003c``-style sequences
(Go's HTML-safe default) and no trailing newline.
"""

from __future__ import annotations

import json
from typing import Any

# Only ever inside strings in JSON text, so a plain replacement is exact.
_GO_ESCAPES = {
    "<": "\\u003c",
    ">": "\\u003e",
    "&": "\\u0026",
    "\u2028": "\\u2028",
    "\u2029": "\\u2029",
}


def marshal_indent(data: Any, indent: str = "    ") -> bytes:
    """`data` as Go's ``json.MarshalIndent(data, "", indent)`` output."""
    text = json.dumps(data, indent=indent, ensure_ascii=False)
    for char, escaped in _GO_ESCAPES.items():
        text = text.replace(char, escaped)
    return text.encode("utf-8", "surrogatepass")


def marshal(data: Any) -> bytes:
    """`data` as Go's compact ``json.Marshal(data)`` output."""
    text = json.dumps(data, separators=(",", ":"), ensure_ascii=False)
    for char, escaped in _GO_ESCAPES.items():
        text = text.replace(char, escaped)
    return text.encode("utf-8", "surrogatepass")
