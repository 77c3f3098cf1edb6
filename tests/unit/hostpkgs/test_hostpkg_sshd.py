"""pkg/sshd/start-sshd on the host: host keys (kept across boots), authorized_keys sources."""

from __future__ import annotations

import stat
from pathlib import Path

from hosttools import require_tools
from shell import PKG, run_script

SCRIPT = PKG / "sshd" / "start-sshd"
LIB = "DK_SSHD_LIB"


def _env(root: Path, mounts: str = "") -> dict[str, str]:
    table = root / "mounts"
    table.write_text(mounts)
    return {"DK_ROOT": str(root), "DK_MOUNTS": str(table)}


def test_host_keys_go_to_the_persistent_disk(tmp_path: Path) -> None:
    mounts = "tmpfs /var tmpfs rw 0 0\n/dev/vda1 /var/lib/docker ext4 rw 0 0\n"
    r = run_script(SCRIPT, [], _env(tmp_path, mounts), LIB, "host_key_dir")
    assert r.out.strip() == "/var/lib/docker/.ssh-host-keys"


def test_host_keys_in_run_without_a_disk(tmp_path: Path) -> None:
    mounts = "tmpfs /var tmpfs rw 0 0\n/dev/sr0 /mnt iso9660 ro 0 0\n"
    r = run_script(SCRIPT, [], _env(tmp_path, mounts), LIB, "host_key_dir")
    assert r.out.strip() == "/run/sshd-keys"
    env = {**_env(tmp_path, mounts), "SSH_HOST_KEY_DIR": "/etc/ssh/keys"}
    assert run_script(SCRIPT, [], env, LIB, "host_key_dir").out.strip() == "/etc/ssh/keys"


def test_host_keys_are_generated_once(tmp_path: Path) -> None:
    require_tools("ssh-keygen")
    body = 'ensure_host_keys /keys >"$DK_ROOT/opts"'
    r = run_script(SCRIPT, [], _env(tmp_path), LIB, body)
    assert r.status == 0, r.out
    keys = tmp_path / "keys"
    assert sorted(p.name for p in keys.iterdir()) == [
        "ssh_host_ecdsa_key",
        "ssh_host_ecdsa_key.pub",
        "ssh_host_ed25519_key",
        "ssh_host_ed25519_key.pub",
    ]
    assert stat.S_IMODE(keys.stat().st_mode) == 0o700
    assert (tmp_path / "opts").read_text().split() == [
        "-h",
        str(keys / "ssh_host_ed25519_key"),
        "-h",
        str(keys / "ssh_host_ecdsa_key"),
    ]
    before = (keys / "ssh_host_ed25519_key").read_bytes()
    r = run_script(SCRIPT, [], _env(tmp_path), LIB, body)
    assert r.status == 0 and "generated" not in r.out
    assert (keys / "ssh_host_ed25519_key").read_bytes() == before


def test_missing_authorized_keys_is_reported(tmp_path: Path) -> None:
    r = run_script(SCRIPT, [], _env(tmp_path), LIB, "ensure_authorized_keys")
    assert r.status == 1
    assert "WARNING: no /root/.ssh/authorized_keys" in r.out
    assert "nobody can log in" in r.out


def test_authorized_keys_from_files_are_used_as_they_are(tmp_path: Path) -> None:
    keys = tmp_path / "root" / ".ssh" / "authorized_keys"
    keys.parent.mkdir(parents=True)
    keys.write_text("ssh-ed25519 AAAA from-files\n")
    meta = tmp_path / "run" / "config" / "ssh" / "authorized_keys"
    meta.parent.mkdir(parents=True)
    meta.write_text("ssh-ed25519 BBBB from-metadata\n")
    r = run_script(SCRIPT, [], _env(tmp_path), LIB, "ensure_authorized_keys")
    assert r.status == 0 and r.out == ""
    assert keys.read_text() == "ssh-ed25519 AAAA from-files\n"


def test_authorized_keys_from_metadata(tmp_path: Path) -> None:
    meta = tmp_path / "run" / "config" / "ssh" / "authorized_keys"
    meta.parent.mkdir(parents=True)
    meta.write_text("ssh-ed25519 BBBB from-metadata\n")
    r = run_script(SCRIPT, [], _env(tmp_path), LIB, "ensure_authorized_keys")
    assert r.status == 0, r.out
    assert "taken from metadata" in r.out
    keys = tmp_path / "root" / ".ssh" / "authorized_keys"
    assert keys.read_text() == "ssh-ed25519 BBBB from-metadata\n"
    assert stat.S_IMODE(keys.stat().st_mode) == 0o600
