"""YAML text as LinuxKit writes ``metadata: yaml`` (``gopkg.in/yaml.v2``, ``yaml.Marshal``).

PyYAML's emitter is a port of the same libyaml emitter, so it lays text out the same way:
2-space indentation, sequences not indented under their key, long plain text folded at 80
columns. What is chosen here is yaml.v2's scalar style: plain where the text reads back as a
string, double quotes where it would read as another type (numbers, YAML 1.1 booleans, null,
timestamps), literal blocks for text with line breaks; UTF-8 kept.
"""

from __future__ import annotations

import re
from typing import Any

import yaml

_NULLS = frozenset({"", "~", "null", "Null", "NULL"})
_BOOLS = frozenset({"true", "True", "TRUE", "false", "False", "FALSE"})
# YAML 1.1 booleans.
_OLD_BOOLS = frozenset(
    [
        "y",
        "Y",
        "yes",
        "Yes",
        "YES",
        "n",
        "N",
        "no",
        "No",
        "NO",
        "on",
        "On",
        "ON",
        "off",
        "Off",
        "OFF",
    ]
)
_INT = re.compile(r"[-+]?(0b[01_]+|0o[0-7_]+|0x[0-9a-fA-F_]+|[0-9][0-9_]*)")
_FLOAT = re.compile(r"[-+]?(\.[0-9]+|[0-9]+(\.[0-9]*)?)([eE][-+]?[0-9]+)?")
_SPECIAL_FLOAT = frozenset(
    [
        ".inf",
        ".Inf",
        ".INF",
        "+.inf",
        "+.Inf",
        "+.INF",
        "-.inf",
        "-.Inf",
        "-.INF",
        ".nan",
        ".NaN",
        ".NAN",
    ]
)
_BASE60 = re.compile(r"[-+]?[0-9][0-9_]*(?::[0-5]?[0-9])+(?:\.[0-9_]*)?")
_TIMESTAMP = re.compile(r"[0-9]{4}-[0-9]{1,2}-[0-9]{1,2}([Tt ].*)?")


def _reads_as_other_type(text: str) -> bool:
    if text in _NULLS or text in _BOOLS or text in _OLD_BOOLS or text in _SPECIAL_FLOAT:
        return True
    if _INT.fullmatch(text) and not text.endswith("_"):
        return True
    return bool(_FLOAT.fullmatch(text) or _BASE60.fullmatch(text) or _TIMESTAMP.fullmatch(text))


class _Dumper(yaml.Dumper):
    """PyYAML's emitter, with libyaml's folding of long double-quoted text."""

    def write_double_quoted(self, text: str, split: bool = True) -> None:
        # libyaml breaks at the first space past the width and drops that space; PyYAML
        # breaks earlier and escapes it.
        self.write_indicator('"', True)
        spaces = False
        i = 0
        while i < len(text):
            ch = text[i]
            if ch == " ":
                past = self.column > self.best_width
                if split and not spaces and past and 0 < i < len(text) - 1:
                    self.write_indent()
                    if text[i + 1] == " ":
                        self._put("\\")
                else:
                    self._put(ch)
                spaces = True
            elif ch in '"\\' or not _printable(ch, bool(self.allow_unicode)):
                self._put("\\" + _escape(ch))
                spaces = False
            else:
                self._put(ch)
                spaces = False
            i += 1
        self.write_indicator('"', False)

    def _put(self, data: str) -> None:
        self.column += len(data)
        self.stream.write(data)


_ESCAPES = {
    "\0": "0",
    "\x07": "a",
    "\x08": "b",
    "\x09": "t",
    "\x0a": "n",
    "\x0b": "v",
    "\x0c": "f",
    "\x0d": "r",
    "\x1b": "e",
    '"': '"',
    "\\": "\\",
    "\x85": "N",
    "\xa0": "_",
    "\u2028": "L",
    "\u2029": "P",
}


def _printable(ch: str, unicode: bool) -> bool:
    code = ord(ch)
    if ch in "\x85\xa0\u2028\u2029\ufeff":
        return False
    if 0x20 <= code <= 0x7E:
        return True
    return unicode and (0xA0 <= code <= 0xD7FF or 0xE000 <= code <= 0xFFFD or code >= 0x10000)


def _escape(ch: str) -> str:
    if ch in _ESCAPES:
        return _ESCAPES[ch]
    code = ord(ch)
    if code <= 0xFF:
        return f"x{code:02X}"
    if code <= 0xFFFF:
        return f"u{code:04X}"
    return f"U{code:08X}"


def _represent_str(dumper: _Dumper, text: str) -> yaml.Node:
    style: str | None = None
    if "\n" in text:
        style = "|"
    elif _reads_as_other_type(text) or not all(_printable(c, True) or c == "\t" for c in text):
        style = '"'
    return dumper.represent_scalar("tag:yaml.org,2002:str", text, style=style)


def _represent_none(dumper: _Dumper, _: None) -> yaml.Node:
    return dumper.represent_scalar("tag:yaml.org,2002:null", "null")


_Dumper.add_representer(str, _represent_str)
_Dumper.add_representer(type(None), _represent_none)


def marshal(data: Any) -> bytes:
    """`data` (dicts in the order to write, lists, str, int, bool, None) as yaml.v2 text."""
    text = yaml.dump(
        data,
        Dumper=_Dumper,
        indent=2,
        width=80,
        allow_unicode=True,
        sort_keys=False,
        default_flow_style=False,
    )
    return text.encode()
