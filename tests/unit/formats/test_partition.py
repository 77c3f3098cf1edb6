"""MBR and GPT bytes written by formats.partition, read back field by field."""

from __future__ import annotations

import struct
import uuid
import zlib

import pytest

from distrokit.formats import partition
from distrokit.formats.partition import Partition

GUID = uuid.UUID("11111111-2222-4333-8444-555555555555")
PART_GUID = uuid.UUID("66666666-7777-4888-9999-aaaaaaaaaaaa")


def test_mbr_fields() -> None:
    part = Partition(start=2048, sectors=10000, bootable=True)
    data = partition.mbr([part], signature=0xDEADBEEF, bootcode=b"\xfa" * 440)
    assert len(data) == 512 and data[510:] == b"\x55\xaa"
    assert data[:440] == b"\xfa" * 440
    assert struct.unpack_from("<I", data, 440)[0] == 0xDEADBEEF
    entry = data[446:462]
    assert entry[0] == 0x80 and entry[4] == partition.MBR_FAT32_LBA
    assert struct.unpack_from("<II", entry, 8) == (2048, 10000)
    assert data[462:510] == bytes(48)


def test_mbr_rejects_oversized_bootcode() -> None:
    with pytest.raises(ValueError, match="440"):
        partition.mbr([], signature=1, bootcode=bytes(441))


def test_gpt_headers_and_crcs() -> None:
    total = 20480
    esp = Partition(start=2048, sectors=16384, guid=PART_GUID, name="ESP", attributes=4)
    layout = partition.gpt([esp], total_sectors=total, disk_guid=GUID)
    head, tail = layout.head, layout.tail
    assert len(head) == 34 * 512 and len(tail) == 33 * 512
    assert head[450] == partition.MBR_PROTECTIVE
    primary = head[512:1024]
    assert primary[:8] == b"EFI PART"
    (size,) = struct.unpack_from("<I", primary, 12)
    zeroed = primary[:16] + b"\0\0\0\0" + primary[20:size]
    assert struct.unpack_from("<I", primary, 16)[0] == zlib.crc32(zeroed)
    current, backup, first, last = struct.unpack_from("<QQQQ", primary, 24)
    assert (current, backup, first, last) == (1, total - 1, 34, total - 34)
    assert uuid.UUID(bytes_le=primary[56:72]) == GUID
    entries = head[1024:]
    assert struct.unpack_from("<I", primary, 88)[0] == zlib.crc32(entries)
    assert uuid.UUID(bytes_le=entries[:16]) == partition.ESP_TYPE
    assert uuid.UUID(bytes_le=entries[16:32]) == PART_GUID
    assert struct.unpack_from("<QQQ", entries, 32) == (2048, 2048 + 16384 - 1, 4)
    assert entries[56:62].decode("utf-16-le") == "ESP"
    backup_header = tail[-512:]
    assert struct.unpack_from("<QQ", backup_header, 24) == (total - 1, 1)
    assert struct.unpack_from("<Q", backup_header, 72)[0] == total - 33
    assert tail[:-512] == entries


def test_gpt_rejects_partition_past_the_end() -> None:
    part = Partition(start=2048, sectors=100000, guid=PART_GUID)
    with pytest.raises(ValueError, match="outside"):
        partition.gpt([part], total_sectors=20480, disk_guid=GUID)
