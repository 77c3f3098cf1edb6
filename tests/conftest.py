"""Shared test configuration: tiers by directory, and host tools that must be present.

Tests under tests/unit are marked ``unit``, tests/tool ``tool``, tests/boot ``boot`` and
tests/fuzz ``fuzz`` (hostile inputs from hypothesis, with a fixed seed and example budget).
A tool or boot test whose host program is missing fails: CI installs everything with
scripts/setup.
"""

from __future__ import annotations

import signal
from collections.abc import Iterator
from pathlib import Path

import pytest
from guest import Boot

from distrokit.host import Host

_TIERS = ("unit", "tool", "boot", "fuzz")

pytest_plugins = ["registry"]


def pytest_configure(config: pytest.Config) -> None:
    # The tests that press Ctrl-C (SIGINT) on a distrokit command need it to arrive as a
    # user's shell delivers it. A suite started as a background job of a non-interactive
    # shell inherits SIGINT *ignored*, and an ignored signal stays ignored in every program
    # it starts; a handled one is reset to the default at exec. So handle it here.
    if signal.getsignal(signal.SIGINT) is signal.SIG_IGN:
        signal.signal(signal.SIGINT, signal.default_int_handler)


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        parts = Path(str(item.fspath)).parts
        for tier in _TIERS:
            if tier in parts:
                item.add_marker(getattr(pytest.mark, tier))


@pytest.fixture(scope="session")
def host() -> Host:
    """The real host-command runner."""
    return Host()


@pytest.fixture
def boots() -> Iterator[list[Boot]]:
    """VMs a test starts (it appends each); every one is stopped at the end, pass or fail."""
    started: list[Boot] = []
    yield started
    for boot in started:
        boot.stop()
