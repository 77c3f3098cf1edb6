"""Run the host packages' busybox sh scripts on the host, against real disk image files.

The scripts take DK_SYS / DK_DEV / DK_MOUNTS / DK_ROOT to look at a fake sysfs tree and a
directory of image files instead of the machine's devices, and a DK_*_LIB=1 switch that only
defines their functions, so a test can call one function with real sfdisk, blkid, jq and
ssh-keygen behind it.
"""

from __future__ import annotations

import subprocess
from dataclasses import dataclass
from pathlib import Path

import pytest
from hosttools import require_tools

PKG = Path(__file__).resolve().parents[2] / "pkg"
BUSYBOX = "/bin/busybox"
LINUX_GPT = "0FC63DAF-8483-4772-8E79-3D69D8477DE4"


@dataclass(frozen=True)
class Result:
    """What a script run printed and returned."""

    status: int
    out: str


def run_script(
    script: Path, args: list[str], env: dict[str, str], lib: str | None = None, body: str = ""
) -> Result:
    """Run `script` with busybox sh; with `lib` (its DK_*_LIB variable) source it and run
    `body` instead of its main."""
    require_tools("busybox", "sfdisk", "blkid")
    full = {"PATH": "/usr/sbin:/usr/bin:/sbin:/bin", **env}
    if lib is not None:
        full[lib] = "1"
        argv = [BUSYBOX, "sh", "-c", f'. "{script}"\n{body}', "sh", *args]
    else:
        argv = [BUSYBOX, "sh", str(script), *args]
    proc = subprocess.run(
        argv,
        env=full,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        timeout=60,
        check=False,
    )
    return Result(proc.returncode, proc.stdout)


@dataclass(frozen=True)
class Machine:
    """A fake machine: `sys` (sysfs with block/NAME/size) and `dev` (NAME = image file)."""

    root: Path

    @property
    def sys(self) -> Path:
        return self.root / "sys"

    @property
    def dev(self) -> Path:
        return self.root / "dev"

    def env(self) -> dict[str, str]:
        """Environment pointing the scripts at this machine."""
        return {"DK_SYS": str(self.sys), "DK_DEV": str(self.dev)}

    def disk(self, name: str, size_mb: int = 8) -> Path:
        """A zero-filled (sparse) disk image registered as /sys/block/NAME."""
        block = self.sys / "block" / name
        block.mkdir(parents=True, exist_ok=True)
        (block / "size").write_text(f"{size_mb * 2048}\n")
        self.dev.mkdir(parents=True, exist_ok=True)
        path = self.dev / name
        with path.open("wb") as f:
            f.truncate(size_mb * 1024 * 1024)
        return path


def partition(disk: Path, label: str, *types: str) -> None:
    """Write a partition table with one partition per type (sfdisk, real)."""
    script = "".join(f"size=2M, type={t}\n" for t in types)
    subprocess.run(
        ["sfdisk", "--quiet", "--label", label, str(disk)],
        input=script,
        text=True,
        check=True,
        stdout=subprocess.DEVNULL,
    )


def dump(disk: Path) -> str:
    """sfdisk's dump of `disk` ('' when it has no table)."""
    proc = subprocess.run(
        ["sfdisk", "--dump", str(disk)], capture_output=True, text=True, check=False
    )
    return proc.stdout if proc.returncode == 0 else ""


@pytest.fixture
def machine(tmp_path: Path) -> Machine:
    """An empty fake machine (no disks yet)."""
    (tmp_path / "sys" / "block").mkdir(parents=True)
    (tmp_path / "dev").mkdir()
    return Machine(tmp_path)
