"""The vSphere command lines: sizes, URLs, LinuxKit's flag spellings and environment variables."""

from __future__ import annotations

import argparse
from pathlib import Path

import pytest

from distrokit.cli import _long_options, build_parser, main, normalise_single_dash
from distrokit.cli.run_vcenter import parse_size_mb
from distrokit.errors import UsageError
from distrokit.push.vsphere import parse_url


@pytest.mark.parametrize(
    ("text", "mib"),
    [("512M", 512), ("10G", 10240), ("10", 10240), ("1T", 1 << 20), ("10GiB", 10240),
     ("2g", 2048), ("100MB", 100)],
)  # fmt: skip
def test_sizes_mean_what_the_help_says(text: str, mib: int) -> None:
    assert parse_size_mb(text) == mib


@pytest.mark.parametrize("text", ["0", "10K", "abc", "-1G", ""])
def test_bad_sizes_are_refused(text: str) -> None:
    with pytest.raises(argparse.ArgumentTypeError, match="a bare number is GiB"):
        parse_size_mb(text)


def test_url_parts_are_decoded() -> None:
    ep = parse_url("https://administrator%40vsphere.local:p%40ss%20word@vc.example:8443/sdk")
    assert (ep.host, ep.port, ep.user, ep.password) == (
        "vc.example", 8443, "administrator@vsphere.local", "p@ss word",
    )  # fmt: skip
    assert parse_url("u:p@vc.example/sdk").port == 443
    assert "p@ss" not in repr(ep)


@pytest.mark.parametrize(
    ("url", "message"),
    [("http://u:p@vc/sdk", "must be an https:// URL"), ("https://vc/sdk", "has no user name")],
)
def test_bad_urls_are_refused(url: str, message: str) -> None:
    with pytest.raises(UsageError, match=message):
        parse_url(url)


def _parse(argv: list[str]) -> argparse.Namespace:
    parser = build_parser(argv[0])
    return parser.parse_args(normalise_single_dash(argv, _long_options(parser)))


def test_linuxkit_spellings_and_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("VCURL", "https://u:p@vc/sdk")
    monkeypatch.setenv("VCDATACENTER", "dc1")
    monkeypatch.setenv("VCDATASTORE", "ds1")
    monkeypatch.setenv("VCHOST", "esx1")
    monkeypatch.setenv("VCNETWORK", "lan")
    args = _parse(
        ["run", "vcenter", "-persistentSize", "2", "-powerOn", "-waitForIP", "-vmfolder", "web",
         "-cpus", "2", "-mem", "2048", "docker.iso"]
    )  # fmt: skip
    assert (args.url, args.datacenter, args.datastore) == ("https://u:p@vc/sdk", "dc1", "ds1")
    assert (args.hostname, args.network, args.name) == ("esx1", "lan", "web")
    assert (args.persistent_mb, args.power_on, args.wait_for_ip) == (2048, True, True)
    assert (args.cpus, args.mem, args.path) == (2, 2048, "docker.iso")
    push = _parse(["push", "vcenter", "-folder", "isos", "-hostname", "esx2", "docker.iso"])
    assert (push.folder, push.hostname, push.url) == ("isos", "esx2", "https://u:p@vc/sdk")


def test_usage_errors_exit_2(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.delenv("VCURL", raising=False)
    iso = tmp_path / "x.iso"
    iso.write_bytes(b"x")
    assert main(["push", "vcenter", str(iso)]) == 2  # no URL
    assert main(["push", "vcenter", "--insecure", "--cert-file", "ca.pem", str(iso)]) == 2
    url = ["--url", "https://u:p@127.0.0.1:9/sdk"]
    assert main(["run", "vcenter", *url, "--replace", "a", "--persistent-size", "1G", "x"]) == 2
    assert main(["run", "vcenter", *url, "--persistent-size", "1K", "x"]) == 2
