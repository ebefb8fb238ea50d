# An emulated R30x/R503-family fingerprint module on a virtual serial pair
# (MicroPython subset: the driver's tests run on both interpreters).
#
# The host end is `VirtualUART`: what the firmware writes reaches the
# emulator at once, and its answers wait in the host's read buffer.
#
# Matching: give the emulator a `match(probe, template) -> bool` and a
# search finds the best library slot it accepts; the CPython simulator
# (simulators/locksim.py) passes the project's minutiae matcher over ISO
# 19794-2 templates (gateway/biometrics). Without one - on MicroPython,
# which has no numpy - a search falls back to exact byte equality, enough
# for the driver and decision tests that run there.

import struct

from firmware.fpmodule import (
    ACK,
    CMD,
    DATA,
    DELETE_CHAR,
    DOWN_CHAR,
    EMPTY,
    END,
    GEN_IMG,
    IMG2TZ,
    LOAD_CHAR,
    SEARCH,
    STORE,
    TEMPLATE_NUM,
    UP_CHAR,
    VFY_PWD,
    checksum,
    packet,
)

SLOTS = 200  # R503 library size
TEMPLATE_BYTES = 512  # one character file


class VirtualUART:
    def __init__(self, module: "FingerprintEmulator") -> None:
        self.module = module
        self.rx = b""
        self.corrupt_next = False  # tests: flip a byte of the next answer

    def write(self, data: bytes) -> int:
        out = self.module.feed(bytes(data))  # the driver may write memoryviews, as to a real UART
        if out and self.corrupt_next:
            out = out[:-1] + bytes(((out[-1] ^ 0xFF),))
            self.corrupt_next = False
        self.rx += out
        return len(data)

    def read(self, n: int) -> "bytes | None":
        if not self.rx:
            return None
        part = self.rx[:n]
        self.rx = self.rx[n:]
        return part


class FingerprintEmulator:
    def __init__(  # type: ignore[no-untyped-def]
        self, address: int = 0xFFFFFFFF, password: int = 0, packet_size: int = 128, match=None
    ) -> None:
        self.match = match  # (probe, template) -> score, or None when not a match
        self.address = address
        self.password = password
        self.packet_size = packet_size
        self.library: dict = {}  # page -> template bytes
        self.buffers = {1: b"", 2: b""}
        self.finger: "bytes | None" = None  # template of the finger on the sensor
        self.image: "bytes | None" = None
        self._pending = b""
        self._down: "tuple | None" = None  # (buffer, bytes so far) during DownChar

    def _ack(self, code: int, extra: bytes = b"") -> bytes:
        return packet(self.address, ACK, bytes((code,)) + extra)

    def feed(self, data: bytes) -> bytes:
        self._pending += data
        out = b""
        while len(self._pending) >= 9:
            magic, addr, pid, length = struct.unpack(">HIBH", self._pending[:9])
            if magic != 0xEF01:
                self._pending = self._pending[1:]  # resynchronise on the header
                continue
            if len(self._pending) < 9 + length:
                break
            body = self._pending[9 : 9 + length - 2]
            ck = struct.unpack(">H", self._pending[7 + length : 9 + length])[0]
            self._pending = self._pending[9 + length :]
            if addr != self.address:
                continue
            if ck != checksum(pid, body):
                out += self._ack(0x01)
                continue
            out += self._handle(pid, body)
        return out

    def _handle(self, pid: int, body: bytes) -> bytes:
        if pid in (DATA, END):
            if self._down is None:
                return self._ack(0x0E)
            buf, acc = self._down
            acc += body
            if pid == END:
                self.buffers[buf] = acc
                self._down = None
            else:
                self._down = (buf, acc)
            return b""
        if pid != CMD or not body:
            return self._ack(0x01)
        instr = body[0]
        p = body[1:]
        if instr == VFY_PWD:
            return self._ack(0x00 if struct.unpack(">I", p)[0] == self.password else 0x13)
        if instr == GEN_IMG:
            if self.finger is None:
                return self._ack(0x02)
            self.image = self.finger
            return self._ack(0x00)
        if instr == IMG2TZ:
            if self.image is None:
                return self._ack(0x15)
            self.buffers[p[0]] = self.image
            return self._ack(0x00)
        if instr == SEARCH:
            buf, start, count = struct.unpack(">BHH", p)
            probe = self.buffers.get(buf, b"")
            best = None
            for page in range(start, min(SLOTS, start + count)):
                tpl = self.library.get(page)
                if not probe or tpl is None:
                    continue
                if self.match is None:
                    if tpl == probe:
                        best = (page, 200)
                        break
                    continue
                sc = self.match(probe, tpl)
                if sc is not None and (best is None or sc > best[1]):
                    best = (page, sc)
            if best is not None:
                return self._ack(0x00, struct.pack(">HH", best[0], min(int(best[1]), 0xFFFF)))
            return self._ack(0x09, struct.pack(">HH", 0, 0))
        if instr == STORE:
            buf, page = struct.unpack(">BH", p)
            if page >= SLOTS:
                return self._ack(0x0B)
            self.library[page] = self.buffers[buf]
            return self._ack(0x00)
        if instr == LOAD_CHAR:
            buf, page = struct.unpack(">BH", p)
            if page not in self.library:
                return self._ack(0x0C)
            self.buffers[buf] = self.library[page]
            return self._ack(0x00)
        if instr == DOWN_CHAR:
            self._down = (p[0], b"")
            return self._ack(0x00)
        if instr == UP_CHAR:
            data = self.buffers.get(p[0], b"")
            out = self._ack(0x00)
            n = self.packet_size
            for i in range(0, len(data), n):
                out += packet(self.address, END if i + n >= len(data) else DATA, data[i : i + n])
            return out
        if instr == DELETE_CHAR:
            page, count = struct.unpack(">HH", p)
            for k in range(page, page + count):
                self.library.pop(k, None)
            return self._ack(0x00)
        if instr == EMPTY:
            self.library = {}
            return self._ack(0x00)
        if instr == TEMPLATE_NUM:
            return self._ack(0x00, struct.pack(">H", len(self.library)))
        return self._ack(0x01)
