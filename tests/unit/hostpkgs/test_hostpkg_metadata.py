"""pkg/metadata/metadata.sh on the host: JSON user data into files, finding the cidata CD."""

from __future__ import annotations

import json
import stat
import subprocess
from pathlib import Path

from hosttools import require_tools
from shell import PKG, Machine, machine, run_script

from distrokit.runners import state

SCRIPT = PKG / "metadata" / "metadata.sh"
LIB = "DK_METADATA_LIB"

__all__ = ["machine"]


def _expand(tmp_path: Path, data: str) -> tuple[int, str, Path]:
    require_tools("jq")
    src, out = tmp_path / "userdata", tmp_path / "config"
    src.write_text(data)
    out.mkdir()
    r = run_script(SCRIPT, [], {}, LIB, f'expand_json "{src}" "{out}"')
    return r.status, r.out, out


def test_linuxkit_json_expands_into_files(tmp_path: Path) -> None:
    data = {
        "ssh": {"entries": {"authorized_keys": {"perm": "0600", "content": "ssh-ed25519 AAA k\n"}}},
        "hostname": {"content": "web-1"},
        "deep": {"perm": "0700", "entries": {"a": {"entries": {"b": {"content": "x\ny\n"}}}}},
    }
    status, out, root = _expand(tmp_path, json.dumps(data))
    assert status == 0, out
    keys = root / "ssh" / "authorized_keys"
    assert keys.read_text() == "ssh-ed25519 AAA k\n"
    assert stat.S_IMODE(keys.stat().st_mode) == 0o600
    assert (root / "hostname").read_text() == "web-1"
    assert stat.S_IMODE((root / "hostname").stat().st_mode) == 0o644
    assert (root / "deep" / "a" / "b").read_text() == "x\ny\n"
    assert stat.S_IMODE((root / "deep").stat().st_mode) == 0o700


def test_names_escaping_the_directory_are_refused(tmp_path: Path) -> None:
    data = {"..": {"content": "bad"}, "a/b": {"content": "bad"}, "ok": {"content": "good"}}
    status, out, root = _expand(tmp_path, json.dumps(data))
    assert status == 0
    assert "skipping bad entry '/..'" in out and "skipping bad entry '/a/b'" in out
    assert sorted(p.name for p in root.iterdir()) == ["ok"]
    assert not (tmp_path / "bad").exists()


def test_plain_text_user_data_is_not_expanded(tmp_path: Path) -> None:
    status, _, root = _expand(tmp_path, "#!/bin/sh\necho hi\n")
    assert status == 1
    assert list(root.iterdir()) == []


def test_cidata_cd_is_found_among_devices(machine: Machine) -> None:
    machine.disk("vda")
    iso = state.write_data_iso(machine.root, b'{"a": {"content": "b"}}')
    block = machine.sys / "block" / "sr0"
    block.mkdir(parents=True)
    (block / "size").write_text("100\n")
    iso.rename(machine.dev / "sr0")
    r = run_script(SCRIPT, [], machine.env(), LIB, "find_cidata")
    assert r.status == 0, r.out
    assert r.out.strip() == str(machine.dev / "sr0")


def test_no_cidata_device(machine: Machine) -> None:
    machine.disk("vda")
    r = run_script(SCRIPT, [], machine.env(), LIB, "find_cidata")
    assert r.status == 1 and r.out == ""


def test_unknown_provider(machine: Machine) -> None:
    r = run_script(SCRIPT, ["aws"], machine.env())
    assert r.status == 1
    assert "provider 'aws' is not available (only cdrom)" in r.out


def test_data_disk_labelled_cidata_is_found(machine: Machine) -> None:
    require_tools("mkfs.vfat")
    machine.disk("vda")
    data = machine.disk("vdb")
    subprocess.run(["mkfs.vfat", "-n", "CIDATA", str(data)], check=True, capture_output=True)
    r = run_script(SCRIPT, [], machine.env(), LIB, "find_cidata")
    assert r.status == 0, r.out
    assert r.out.strip() == str(data)
