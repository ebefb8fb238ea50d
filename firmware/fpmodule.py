# Driver for the UART fingerprint modules used in locks: the R30x / R503 /
# AS608 family packet protocol. The module matches on-module; the lock only
# moves templates in (from sealed bundle entries) and asks for searches.
#
# Packet: EF 01 | address (4) | packet id (1) | length (2) = payload + 2 |
#         payload | checksum (2) = low 16 bits of the sum of packet id,
#         length and payload bytes.
# Packet ids: 01 command, 02 data (more follows), 07 ack, 08 last data.
#
# `uart` needs write(bytes) and read(n) -> bytes | None (what has arrived,
# possibly fewer than n); `ticks` gives milliseconds for timeouts. On the
# board that is machine.UART and time.ticks_ms (firmware/board/); in tests,
# the emulator's virtual serial pair.

import struct

CMD = 0x01
DATA = 0x02
ACK = 0x07
END = 0x08

GEN_IMG = 0x01
IMG2TZ = 0x02
SEARCH = 0x04
REG_MODEL = 0x05
STORE = 0x06
LOAD_CHAR = 0x07
UP_CHAR = 0x08
DOWN_CHAR = 0x09
DELETE_CHAR = 0x0C
EMPTY = 0x0D
VFY_PWD = 0x13
TEMPLATE_NUM = 0x1D

OK = 0x00
NO_FINGER = 0x02
NOT_FOUND = 0x09

ERRORS = {
    0x01: "packet receive error",
    0x02: "no finger on the sensor",
    0x03: "failed to capture the image",
    0x06: "image too disordered",
    0x07: "too few feature points",
    0x09: "no match in the library",
    0x0A: "failed to combine character files",
    0x0B: "page id out of range",
    0x0C: "invalid template in the library",
    0x0D: "error uploading the template",
    0x0E: "module cannot receive the data packets",
    0x10: "failed to delete the template",
    0x11: "failed to clear the library",
    0x13: "wrong password",
    0x18: "error writing flash",
}


class FPError(Exception):
    def __init__(self, code, message):  # type: ignore[no-untyped-def]
        super().__init__(message)  # MicroPython has no Exception.__init__ to call directly
        self.code = code


def checksum(pid: int, body: "bytes | memoryview") -> int:
    s = pid + ((len(body) + 2) >> 8) + ((len(body) + 2) & 0xFF)
    for b in body:
        s += b
    return s & 0xFFFF


def packet(address: int, pid: int, body: bytes) -> bytes:
    return (
        struct.pack(">HIBH", 0xEF01, address, pid, len(body) + 2)
        + body
        + struct.pack(">H", checksum(pid, body))
    )


class FingerprintModule:
    def __init__(self, uart, ticks, address=0xFFFFFFFF, password=0, packet_size=128, timeout_ms=2000):  # type: ignore[no-untyped-def]
        self.uart = uart
        self.ticks = ticks
        self.address = address
        self.password = password
        self.packet_size = packet_size
        self.timeout_ms = timeout_ms

    # -- framing ---------------------------------------------------------------

    def _read_exact(self, n: int) -> bytes:
        buf = b""
        start = self.ticks()
        while len(buf) < n:
            chunk = self.uart.read(n - len(buf))
            if chunk:
                buf += chunk
            elif self.ticks() - start > self.timeout_ms:
                raise FPError(-1, "fingerprint module timed out")
        return buf

    def _recv(self) -> tuple:
        head = self._read_exact(9)
        magic, addr, pid, length = struct.unpack(">HIBH", head)
        if magic != 0xEF01 or addr != self.address:
            raise FPError(-2, "bad packet header from the fingerprint module")
        if length < 2 or length > self.packet_size + 2 + 16:
            raise FPError(-2, "bad packet length from the fingerprint module")
        rest = self._read_exact(length)
        body = rest[:-2]
        if struct.unpack(">H", rest[-2:])[0] != checksum(pid, body):
            raise FPError(-3, "checksum error from the fingerprint module")
        return pid, body

    def _command(self, instr: int, params: bytes = b"", allow: tuple = (OK,)) -> bytes:
        self.uart.write(packet(self.address, CMD, bytes((instr,)) + params))
        pid, body = self._recv()
        if pid != ACK or not body:
            raise FPError(-2, "expected an acknowledgement packet")
        code = body[0]
        if code not in allow:
            raise FPError(code, ERRORS.get(code, "module error 0x%02x" % code))
        return body

    # -- instructions ------------------------------------------------------------

    def verify_password(self) -> None:
        self._command(VFY_PWD, struct.pack(">I", self.password))

    def capture(self) -> bool:
        """GenImg: True if a finger image was taken, False if no finger."""
        return self._command(GEN_IMG, allow=(OK, NO_FINGER))[0] == OK

    def image_to_template(self, buf: int = 1) -> None:
        self._command(IMG2TZ, bytes((buf,)))

    def search(self, buf: int = 1, start: int = 0, count: int = 200) -> "tuple | None":
        """(page, score) of the best match in the library, or None."""
        body = self._command(SEARCH, struct.pack(">BHH", buf, start, count), allow=(OK, NOT_FOUND))
        if body[0] == NOT_FOUND:
            return None
        page, score = struct.unpack(">HH", body[1:5])
        return (page, score)

    def store(self, page: int, buf: int = 1) -> None:
        self._command(STORE, struct.pack(">BH", buf, page))

    def delete(self, page: int, count: int = 1) -> None:
        self._command(DELETE_CHAR, struct.pack(">HH", page, count))

    def empty(self) -> None:
        self._command(EMPTY)

    def template_count(self) -> int:
        return struct.unpack(">H", self._command(TEMPLATE_NUM)[1:3])[0]

    def download(self, template: bytes, buf: int = 1) -> None:
        """DownChar: send a module-native template into a character buffer."""
        self._command(DOWN_CHAR, bytes((buf,)))
        n = self.packet_size
        mv = memoryview(template)
        for i in range(0, len(template), n):
            pid = END if i + n >= len(template) else DATA
            body = mv[i : i + n]
            # Header, body and checksum as three writes: no per-packet copy of
            # the template while a bundle entry is being loaded.
            self.uart.write(struct.pack(">HIBH", 0xEF01, self.address, pid, len(body) + 2))
            self.uart.write(body)
            self.uart.write(struct.pack(">H", checksum(pid, body)))

    def upload(self, buf: int = 1) -> bytes:
        """UpChar: read a character buffer's template from the module."""
        self._command(UP_CHAR, bytes((buf,)))
        out = b""
        while True:
            pid, body = self._recv()
            if pid not in (DATA, END):
                raise FPError(-2, "expected a data packet")
            out += body
            if pid == END:
                return out

    def enroll(self, template: bytes, page: int) -> None:
        """Load a template from a sealed bundle entry into library slot `page`."""
        self.download(template, 1)
        self.store(page, 1)
