"""The VM init's configuration read back by the shell that reads it in the guest (busybox sh)."""

from __future__ import annotations

import subprocess
from pathlib import Path

from hosttools import require_tools

from distrokit.vm import guest


def _sourced(config: guest.GuestConfig, tmp_path: Path) -> dict[str, str]:
    path = tmp_path / "config.sh"
    path.write_text(guest.config_sh(config))
    script = f'. {path}; eval "set -- $DK_ARGV"; printf "%s\\n" "$#" "$@"; echo "$DK_WORKDIR"'
    out = subprocess.run(
        ["busybox", "sh", "-c", script], capture_output=True, text=True, check=True
    )
    lines = out.stdout.splitlines()
    count = int(lines[0])
    return {"argv": "|".join(lines[1 : 1 + count]), "workdir": lines[1 + count]}


def test_config_sh_quotes_every_word(tmp_path: Path) -> None:
    require_tools("busybox")
    config = guest.GuestConfig(
        name="vm",
        mode="workload",
        argv=("sh", "-c", "echo 'it''s' \"$HOME\"; exit 3", "a b"),
        workdir="/srv/my dir",
    )
    got = _sourced(config, tmp_path)
    assert got["argv"] == "sh|-c|echo 'it''s' \"$HOME\"; exit 3|a b"
    assert got["workdir"] == "/srv/my dir"
