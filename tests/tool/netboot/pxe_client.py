"""A PXE client's first two DHCP exchanges, for the dnsmasq tool test (run inside a network
namespace): DISCOVER broadcast on port 67, then the boot-server REQUEST to the proxy on port
4011 with the first boot item of the offered menu (BIOS) or none (UEFI, which gets no menu).
Prints a JSON list of the answers.

    python pxe_client.py IFACE ADDRESS ARCH [ipxe]
"""

from __future__ import annotations

import json
import os
import socket
import struct
import sys
import time

MAGIC = b"\x63\x82\x53\x63"


def _options(pairs: list[tuple[int, bytes]]) -> bytes:
    return b"".join(bytes([code, len(value)]) + value for code, value in pairs) + b"\xff"


def packet(xid: int, mac: bytes, ciaddr: bytes, options: list[tuple[int, bytes]]) -> bytes:
    """A BOOTREQUEST (RFC 2131 layout) with the broadcast flag set."""
    head = struct.pack("!BBBBIHH", 1, 1, 6, 0, xid, 0, 0x8000)
    addrs = ciaddr + b"\0" * 12
    return head + addrs + mac.ljust(16, b"\0") + b"\0" * 192 + MAGIC + _options(options)


def parse(data: bytes) -> dict[str, object]:
    """The fields of a BOOTREPLY the test looks at; option 43's sub-options by number."""
    opts: dict[int, bytes] = {}
    i = 240
    while i < len(data) and data[i] != 255:
        if data[i] == 0:
            i += 1
            continue
        opts[data[i]] = data[i + 2 : i + 2 + data[i + 1]]
        i += 2 + data[i + 1]
    vendor: dict[int, bytes] = {}
    raw = opts.get(43, b"")
    j = 0
    while j < len(raw) and raw[j] != 255:
        vendor[raw[j]] = raw[j + 2 : j + 2 + raw[j + 1]]
        j += 2 + raw[j + 1]
    menu = vendor.get(9, b"")
    return {
        "type": opts.get(53, b"\0")[0],
        "yiaddr": socket.inet_ntoa(data[16:20]),
        "siaddr": socket.inet_ntoa(data[20:24]),
        "file": data[108:236].split(b"\0", 1)[0].decode(),
        "server": socket.inet_ntoa(opts[54]) if 54 in opts else None,
        "vendor_class": opts.get(60, b"").decode(),
        "menu_item": int.from_bytes(menu[:2], "big") if menu else None,
        "pxe_options": {str(k): v.hex() for k, v in sorted(vendor.items())},
    }


def receive(sock: socket.socket, xid: int, seconds: float) -> list[dict[str, object]]:
    answers = []
    deadline = time.monotonic() + seconds
    while (left := deadline - time.monotonic()) > 0:
        sock.settimeout(left)
        try:
            data = sock.recv(4096)
        except TimeoutError:
            break
        if len(data) > 240 and data[0] == 2 and struct.unpack("!I", data[4:8])[0] == xid:
            answers.append(parse(data))
            # a little longer for a second server's answer, which the test would see
            deadline = min(deadline, time.monotonic() + 0.5)
    return answers


def main() -> None:
    iface, address, arch = sys.argv[1], sys.argv[2], int(sys.argv[3])
    ipxe = sys.argv[4:] == ["ipxe"]
    mac, xid = b"\x02\x00\x00\x00\x77\x01", int.from_bytes(os.urandom(4), "big")
    common = [
        (60, f"PXEClient:Arch:{arch:05d}:UNDI:002001".encode()),
        (93, arch.to_bytes(2, "big")),
        (94, b"\x01\x02\x01"),
        (97, b"\0" + bytes(range(16))),
        (55, bytes([1, 3, 43, 60, 66, 67, 175])),
    ]
    if ipxe:
        common += [(77, b"iPXE"), (175, b"\x13\x01\x01")]
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_BROADCAST, 1)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_BINDTODEVICE, iface.encode())
    sock.bind(("0.0.0.0", 68))
    discover = packet(xid, mac, b"\0" * 4, [(53, b"\x01"), *common])
    sock.sendto(discover, ("255.255.255.255", 67))
    offers = receive(sock, xid, 3)
    result: list[dict[str, object]] = [{"step": "offer", **o} for o in offers]
    item = next((o["menu_item"] for o in offers if o["menu_item"] is not None), None)
    if offers:
        # BIOS clients pick the menu's first boot item; UEFI clients get no menu, only the
        # proxy's address (siaddr) to ask on port 4011
        options = [(53, b"\x03"), *common]
        if item is not None:
            boot_item = int(str(item)).to_bytes(2, "big") + b"\0\0"
            options.append((43, _options([(71, boot_item)])))
        server = str(offers[0]["server"] if item is not None else offers[0]["siaddr"])
        sock.sendto(packet(xid, mac, socket.inet_aton(address), options), (server, 4011))
        result += [{"step": "ack", **a} for a in receive(sock, xid, 3)]
    print(json.dumps(result))


if __name__ == "__main__":
    main()
