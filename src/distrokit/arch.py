"""Architecture names: OCI's (amd64, arm64) and the kernel's (x86_64, aarch64), both accepted.

LinuxKit's build takes OCI names and QEMU takes kernel names; users type either, so every
``--arch`` goes through here and each layer gets the spelling it needs.
"""

from __future__ import annotations

from distrokit.errors import UsageError

# OCI name -> kernel (uname -m, QEMU) name
_KERNEL = {"amd64": "x86_64", "arm64": "aarch64", "riscv64": "riscv64"}
_OCI = {kernel: oci for oci, kernel in _KERNEL.items()}
SPELLINGS = tuple(sorted({*_KERNEL, *_OCI}))


def oci_arch(name: str) -> str:
    """`name` in OCI's spelling (amd64, arm64, riscv64)."""
    if name in _KERNEL:
        return name
    if name in _OCI:
        return _OCI[name]
    raise UsageError(f"unknown architecture {name!r}", hint=f"use one of {', '.join(SPELLINGS)}")


def kernel_arch(name: str) -> str:
    """`name` in the kernel's and QEMU's spelling (x86_64, aarch64, riscv64)."""
    return _KERNEL[oci_arch(name)]
