# The CRC frame of the lock's flash files (the journal's segments and acks,
# the two-copy state files), MicroPython and CPython:
#
#   frame = 0xA5 | u16 length (>= 1) | u32 CRC-32 of (length bytes + payload) | payload
#
# An erased run (0x00 or 0xFF, what a power loss leaves on many flash file
# systems) can never parse as a frame: the magic is neither byte, a length
# of 0 is refused, and the CRC covers the length.

import binascii
import struct

MAGIC = 0xA5
HEAD = ">BHI"
HEAD_LEN = 7


def crc(ln: bytes, payload) -> int:  # type: ignore[no-untyped-def]
    return binascii.crc32(payload, binascii.crc32(ln)) & 0xFFFFFFFF


def frame(payload: bytes) -> bytes:
    ln = struct.pack(">H", len(payload))
    return struct.pack(HEAD, MAGIC, len(payload), crc(ln, payload)) + payload


def unframe(data):  # type: ignore[no-untyped-def]
    """The payload of one whole frame, or None if `data` is not exactly that."""
    if len(data) < HEAD_LEN + 1 or data[0] != MAGIC:
        return None
    _m, ln, c = struct.unpack(HEAD, data[:HEAD_LEN])
    if ln < 1 or HEAD_LEN + ln != len(data):
        return None
    payload = data[HEAD_LEN:]
    if crc(bytes(data[1:3]), payload) != c:
        return None
    return payload
