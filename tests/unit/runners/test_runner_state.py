"""The state directory: MAC kept across runs, metadata CD, OVMF variables, pid file."""

from __future__ import annotations

import io
import os
from pathlib import Path

import pycdlib
import pytest

from distrokit.errors import RunError
from distrokit.runners import state


def test_mac_is_made_once_and_kept(tmp_path: Path) -> None:
    first = state.mac_address(tmp_path)
    octets = [int(o, 16) for o in first.split(":")]
    assert len(octets) == 6
    assert octets[0] & 0x02 and not octets[0] & 0x01  # locally administered, unicast
    assert (tmp_path / "mac-addr").read_text().strip() == first
    assert state.mac_address(tmp_path) == first


def test_corrupt_mac_file_is_replaced(tmp_path: Path) -> None:
    (tmp_path / "mac-addr").write_text("garbage\n")
    mac = state.mac_address(tmp_path)
    assert len(mac.split(":")) == 6
    assert (tmp_path / "mac-addr").read_text().strip() == mac


def test_data_iso_has_config_file_and_cidata_label(tmp_path: Path) -> None:
    payload = b'{"ssh": {"authorized_keys": "k"}}'
    path = state.write_data_iso(tmp_path, payload)
    assert path == tmp_path / "data.iso"
    iso = pycdlib.PyCdlib()
    iso.open(str(path))
    try:
        out = io.BytesIO()
        iso.get_file_from_iso_fp(out, rr_path="/config")
        assert out.getvalue() == payload
        assert iso.pvd.volume_identifier.rstrip(b" ") == b"cidata"
    finally:
        iso.close()


def test_ovmf_vars_copied_once(tmp_path: Path) -> None:
    template = tmp_path / "VARS.fd"
    template.write_bytes(b"\x01" * 64)
    st = tmp_path / "state"
    st.mkdir()
    copy = state.ovmf_vars(st, template)
    assert copy.read_bytes() == template.read_bytes()
    copy.write_bytes(b"guest wrote variables")
    assert state.ovmf_vars(st, template).read_bytes() == b"guest wrote variables"
    with pytest.raises(RunError, match=r"UEFI variable store .* not found"):
        state.ovmf_vars(tmp_path / "other", tmp_path / "missing.fd")


def test_read_pid(tmp_path: Path) -> None:
    assert state.read_pid(tmp_path) is None
    (tmp_path / "qemu.pid").write_text("1234\n")
    assert state.read_pid(tmp_path) == 1234


def test_running_pid_needs_a_live_qemu(tmp_path: Path) -> None:
    assert state.running_pid(tmp_path) is None
    (tmp_path / "qemu.pid").write_text(f"{os.getpid()}\n")  # alive, but not a QEMU
    assert state.running_pid(tmp_path) is None
    (tmp_path / "qemu.pid").write_text("999999999\n")
    assert state.running_pid(tmp_path) is None


def test_state_dir_cannot_be_created(tmp_path: Path) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("")
    with pytest.raises(RunError, match="cannot create state directory"):
        state.ensure_state_dir(blocker / "state")
