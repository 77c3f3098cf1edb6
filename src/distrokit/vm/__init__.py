"""``distrokit vm``: microVMs from any OCI image, booted by QEMU microvm (`manager.py` for the
lifecycle, `store.py` for ids, names and state, `rootfs.py` for disks, `kernel.py` for kernels
and the VM init's initramfs, `guest.py` for the VM init, `machine.py` for QEMU and QMP)."""
