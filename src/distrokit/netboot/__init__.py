"""Network boot of kernel+initrd builds: the iPXE script (`ipxe`), an HTTP server for a build
directory (`http`) and a PXE answerer for a real LAN, dnsmasq in proxy-DHCP mode with its TFTP
server (`pxe`).

The path a machine takes: its firmware's PXE asks DHCP; the site's DHCP server gives it an
address and the proxy (dnsmasq) the name of an iPXE binary on TFTP (``undionly.kpxe`` for BIOS,
``ipxe.efi`` for UEFI); iPXE asks again, now as an iPXE client, and is given the URL of the
script on the HTTP server; the script loads NAME-kernel and NAME-initrd.img over HTTP and boots.
"""
