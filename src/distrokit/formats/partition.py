"""MBR and GPT partition tables, written in Python.

sfdisk and sgdisk would do, but both put random ids (disk signature, GUIDs) in the table unless
told otherwise, and writing the few hundred bytes here keeps every field under our control:
ids come from the caller (derived from the inputs), nothing depends on the clock.
"""

from __future__ import annotations

import struct
import uuid
import zlib
from collections.abc import Sequence
from dataclasses import dataclass

SECTOR = 512
GPT_ENTRIES = 128
GPT_ENTRY_SIZE = 128
GPT_ENTRY_SECTORS = GPT_ENTRIES * GPT_ENTRY_SIZE // SECTOR  # 32
ESP_TYPE = uuid.UUID("c12a7328-f81f-11d2-ba4b-00a0c93ec93b")
LINUX_TYPE = uuid.UUID("0fc63daf-8483-4772-8e79-3d69d8477de4")
MBR_FAT32_LBA = 0x0C
MBR_LINUX = 0x83
MBR_PROTECTIVE = 0xEE
# GPT attribute bit 2: "legacy BIOS bootable", set by LinuxKit on its ESP.
LEGACY_BIOS_BOOTABLE = 1 << 2


@dataclass(frozen=True, kw_only=True)
class Partition:
    """One partition: where it is (in 512-byte sectors) and how it is labelled."""

    start: int
    sectors: int
    mbr_type: int = MBR_FAT32_LBA
    bootable: bool = False
    gpt_type: uuid.UUID = ESP_TYPE
    guid: uuid.UUID | None = None
    name: str = ""
    attributes: int = 0

    @property
    def end(self) -> int:
        """Last sector, inclusive."""
        return self.start + self.sectors - 1


def _chs(lba: int) -> bytes:
    # 255 heads, 63 sectors; beyond 1024 cylinders the conventional "maximum" triple.
    if lba >= 1024 * 255 * 63:
        return b"\xfe\xff\xff"
    cylinder, rest = divmod(lba, 255 * 63)
    head, sector = divmod(rest, 63)
    return bytes((head, ((sector + 1) & 0x3F) | ((cylinder >> 2) & 0xC0), cylinder & 0xFF))


def _mbr_entry(part: Partition | None, *, kind: int | None = None) -> bytes:
    if part is None:
        return bytes(16)
    end = min(part.end, 0xFFFFFFFF)
    status = 0x80 if part.bootable else 0
    return (
        bytes((status,))
        + _chs(part.start)
        + bytes((kind if kind is not None else part.mbr_type,))
        + _chs(end)
        + struct.pack("<II", part.start, min(part.sectors, 0xFFFFFFFF))
    )


def mbr(partitions: Sequence[Partition], *, signature: int, bootcode: bytes = b"") -> bytes:
    """A 512-byte master boot record with up to four primary `partitions` and up to 440 bytes
    of `bootcode` (e.g. syslinux's mbr.bin)."""
    if len(partitions) > 4:
        raise ValueError("an MBR holds at most four primary partitions")
    if len(bootcode) > 440:
        raise ValueError(f"MBR boot code is {len(bootcode)} bytes, at most 440 fit")
    entries = [_mbr_entry(p) for p in partitions] + [bytes(16)] * (4 - len(partitions))
    head = bootcode.ljust(440, b"\0") + struct.pack("<IH", signature, 0)
    return head + b"".join(entries) + b"\x55\xaa"


def _gpt_entries(partitions: Sequence[Partition]) -> bytes:
    out = bytearray()
    for part in partitions:
        if part.guid is None:
            raise ValueError("a GPT partition needs a GUID")
        name = part.name.encode("utf-16-le")[:72].ljust(72, b"\0")
        out += part.gpt_type.bytes_le + part.guid.bytes_le
        out += struct.pack("<QQQ", part.start, part.end, part.attributes) + name
    return bytes(out).ljust(GPT_ENTRIES * GPT_ENTRY_SIZE, b"\0")


def _gpt_header(
    *, current: int, backup: int, first: int, last: int, disk: uuid.UUID, entries: int, crc: int
) -> bytes:
    fields = struct.pack(
        "<8sIIIIQQQQ16sQIII",
        b"EFI PART",
        0x00010000,
        92,
        0,
        0,
        current,
        backup,
        first,
        last,
        disk.bytes_le,
        entries,
        GPT_ENTRIES,
        GPT_ENTRY_SIZE,
        crc,
    )
    checksum = zlib.crc32(fields)
    fields = fields[:16] + struct.pack("<I", checksum) + fields[20:]
    return fields.ljust(SECTOR, b"\0")


@dataclass(frozen=True, kw_only=True)
class GptLayout:
    """The bytes of a GPT disk's metadata: `head` goes at sector 0 (protective MBR, header,
    entries), `tail` at the last `len(tail) // 512` sectors (backup entries and header)."""

    head: bytes
    tail: bytes


def gpt(
    partitions: Sequence[Partition],
    *,
    total_sectors: int,
    disk_guid: uuid.UUID,
    bootcode: bytes = b"",
) -> GptLayout:
    """Protective MBR plus primary and backup GPT for a disk of `total_sectors`."""
    first = 2 + GPT_ENTRY_SECTORS
    last = total_sectors - 2 - GPT_ENTRY_SECTORS
    for part in partitions:
        if part.start < first or part.end > last:
            raise ValueError(f"partition {part.start}-{part.end} outside {first}-{last}")
    entries = _gpt_entries(partitions)
    crc = zlib.crc32(entries)
    backup_lba = total_sectors - 1
    primary = _gpt_header(
        current=1, backup=backup_lba, first=first, last=last, disk=disk_guid, entries=2, crc=crc
    )
    backup = _gpt_header(
        current=backup_lba,
        backup=1,
        first=first,
        last=last,
        disk=disk_guid,
        entries=backup_lba - GPT_ENTRY_SECTORS,
        crc=crc,
    )
    whole = Partition(start=1, sectors=min(total_sectors - 1, 0xFFFFFFFF))
    protective = bytearray(mbr([], signature=0, bootcode=bootcode))
    protective[446:462] = _mbr_entry(whole, kind=MBR_PROTECTIVE)
    return GptLayout(head=bytes(protective) + primary + entries, tail=entries + backup)
