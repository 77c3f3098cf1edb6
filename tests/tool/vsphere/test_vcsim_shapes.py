"""Other inventories than the shared vcsim's: a standalone ESXi host, a datacenter kept in a
folder, and a server whose certificate comes from a CA the client was not given. Each starts
its own vcsim (about 0.1 s)."""

from __future__ import annotations

import hashlib
from pathlib import Path

import pytest
from vcsim_env import make_cert, make_iso, running_vcsim

from distrokit.host import Host


@pytest.fixture(scope="module")
def iso(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return make_iso(tmp_path_factory.mktemp("shapes"), "shape", 512 << 10)


def test_standalone_esxi_needs_no_hostname(dk, vcsim_bin, tmp_path, iso) -> None:
    with running_vcsim(vcsim_bin, tmp_path / "esx", "-esx") as sim:
        res = dk("run", "vcenter", *sim.args(), "--network", "VM Network", "--name", "esx", iso)
        assert res.code == 0, res.err
        assert "creating VM esx on host localhost.localdomain" in res.err
        uploaded = next(sim.datastore_dir.glob("shape-*/shape.iso"))
        assert (
            hashlib.sha256(uploaded.read_bytes()).digest()
            == hashlib.sha256(iso.read_bytes()).digest()
        )
        assert (sim.datastore_dir / "esx").is_dir()


def test_datacenter_in_a_folder_is_addressed_by_its_path(dk, vcsim_bin, tmp_path, iso) -> None:
    # distrokit sends dcPath=F0/DC0, the inventory path a real vCenter needs; vcsim would
    # also accept the bare name, so this checks that the full path is understood
    with running_vcsim(vcsim_bin, tmp_path / "folder", "-folder", "1", "-standalone-host", "1",
                       "-cluster", "0") as sim:  # fmt: skip
        res = dk("push", "vcenter", *sim.args(), "--datacenter", "DC0", iso)
        assert res.code == 0, res.err
        assert (sim.datastore_dir / "shape/shape.iso").read_bytes() == iso.read_bytes()


def test_certificate_of_another_ca_is_refused(dk, vcsim, tmp_path, iso) -> None:
    other, _ = make_cert(Host(), tmp_path, "other-ca")
    res = dk("push", "vcenter", "--url", vcsim.url(), "--cert-file", other, iso)
    assert res.code == 1
    assert f"cannot verify the TLS certificate of 127.0.0.1:{vcsim.port}" in res.err
    assert "--cert-file" in res.err and "--insecure" in res.err
