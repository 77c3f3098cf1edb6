"""Range header parsing of the HTTP server, table-driven (RFC 9110 section 14)."""

from __future__ import annotations

import pytest

from distrokit.netboot.http import RangeNotSatisfiable, RequestLog, parse_range


@pytest.mark.parametrize(
    ("header", "size", "expected"),
    [
        ("bytes=0-9", 100, (0, 9)),
        ("bytes=10-", 100, (10, 99)),
        ("bytes=-10", 100, (90, 99)),
        ("bytes=-500", 100, (0, 99)),  # suffix longer than the file: the whole file
        ("bytes=90-500", 100, (90, 99)),  # last byte past the end is clamped
        ("bytes=99-99", 100, (99, 99)),
        ("BYTES = 1-2", 100, (1, 2)),
        ("bytes=0-0,5-9", 100, None),  # several ranges: the whole file
        ("items=0-9", 100, None),  # unknown unit: ignored
        ("bytes=9-1", 100, None),  # invalid: ignored
        ("bytes=a-b", 100, None),
        ("bytes=-", 100, None),
        ("bytes", 100, None),
    ],
)
def test_parse_range(header: str, size: int, expected: tuple[int, int] | None) -> None:
    assert parse_range(header, size) == expected


@pytest.mark.parametrize(
    ("header", "size"), [("bytes=100-", 100), ("bytes=-0", 100), ("bytes=-5", 0)]
)
def test_unsatisfiable(header: str, size: int) -> None:
    with pytest.raises(RangeNotSatisfiable):
        parse_range(header, size)


def test_log_line() -> None:
    entry = RequestLog(
        client="10.0.2.15", method="GET", path="/x-initrd.img", status=206, sent=10,
        seconds=0.25, range="bytes=0-9",
    )  # fmt: skip
    assert entry.line() == '10.0.2.15 "GET /x-initrd.img" 206 10 0.250s range=bytes=0-9'
