"""A QMP client small enough for tests: connect to `distrokit run qemu --qmp SOCKET`, leave
capabilities negotiation, run one command and return its answer."""

from __future__ import annotations

import json
import socket
import time
from pathlib import Path
from typing import Any


def _read(stream: Any) -> dict[str, Any]:
    """The next reply or error (events are skipped)."""
    while True:
        line = stream.readline()
        if not line:
            raise AssertionError("QMP connection closed")
        message: dict[str, Any] = json.loads(line)
        if "return" in message or "error" in message or "QMP" in message:
            return message


def execute(path: Path, command: str, timeout: float = 30) -> dict[str, Any]:
    """Run `command` on the QMP socket at `path` (waiting for QEMU to create it)."""
    deadline = time.monotonic() + timeout
    while not path.exists():
        if time.monotonic() > deadline:
            raise AssertionError(f"no QMP socket at {path}")
        time.sleep(0.2)
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock:
        sock.settimeout(timeout)
        sock.connect(str(path))
        stream = sock.makefile("rw")
        assert "QMP" in _read(stream)
        for name in ("qmp_capabilities", command):
            stream.write(json.dumps({"execute": name}) + "\n")
            stream.flush()
            answer = _read(stream)
            if "error" in answer:
                raise AssertionError(f"QMP {name}: {answer['error']}")
        return answer
