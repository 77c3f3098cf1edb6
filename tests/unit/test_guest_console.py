"""tests/support/guest.py's console reader (`Boot.wait_for`, `Boot.wait_until`) on a real pipe:
a small Python child stands in for `distrokit run qemu` and writes console lines in pieces."""

from __future__ import annotations

import subprocess
import sys
import time
from collections.abc import Iterator

import pytest
from guest import Boot

# each piece is written and flushed, then the child sleeps PAUSE: a line may end in a later
# piece than it began, and two lines may end in one piece
PIECES = (b"first li", b"ne\r\nsecond\nthi", b"rd\n", b"tail")
PAUSE = 0.2
CHILD = f"""
import sys, time
for piece in {PIECES!r}:
    sys.stdout.buffer.write(piece)
    sys.stdout.buffer.flush()
    time.sleep({PAUSE})
"""


def _start(code: str) -> Boot:
    started = time.monotonic()
    proc = subprocess.Popen(
        [sys.executable, "-c", code], stdout=subprocess.PIPE, start_new_session=True
    )
    return Boot(proc=proc, started=started)


@pytest.fixture
def boot() -> Iterator[Boot]:
    boot = _start(CHILD)
    yield boot
    boot.stop()


def test_each_line_is_reported_once_when_it_ends(boot: Boot) -> None:
    seen: list[tuple[float, str]] = []
    boot.wait_until(
        lambda: len(seen) == 3, 30, "three lines", lambda at, line: seen.append((at, line))
    )
    assert [line for _, line in seen] == ["first line", "second", "third"]
    (first, _), (second, _), (third, _) = seen
    # "first line" and "second" end in one piece, written a pause after the child started
    assert first == second >= PAUSE
    assert third >= second
    boot.wait_for("tail", 30)
    assert boot.text() == b"".join(PIECES).decode()


def test_lines_read_by_an_earlier_wait_are_not_reported_again(boot: Boot) -> None:
    boot.wait_for("second", 30)
    seen: list[str] = []
    boot.wait_until(lambda: "third" in seen, 30, "third", lambda _, line: seen.append(line))
    assert seen == ["third"]


def test_the_end_of_the_console_fails_the_wait(boot: Boot) -> None:
    with pytest.raises(AssertionError, match=r"VM ended before 'never'; output:\nfirst line"):
        boot.wait_for("never", 30)


def test_a_quiet_console_fails_the_wait_at_its_timeout() -> None:
    boot = _start("import time; time.sleep(30)")
    try:
        begin = time.monotonic()
        with pytest.raises(AssertionError, match=r"no 'never' within 0.3s"):
            boot.wait_for("never", 0.3)
        assert time.monotonic() - begin < 10
    finally:
        boot.stop()
