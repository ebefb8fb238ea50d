# Offline pass codes: issued by the cloud (or a gateway for its own gate)
# with nothing but the target's code key, verified by a lock or gate with no
# network, at a fixed cost. docs/passcodes.md has the design, the capacity
# per profile and the security figure; this file is the algorithm.
#
# Keypad form: exactly 10 digits = payload (5 digits) * 10^5 + MAC (5 digits).
# The payload indexes a fixed table of profiles (kind, target class, time
# unit, duration, serials) and carries the start time *modulo* M, where M is
# just longer than the duration. The verifier resolves the one candidate
# start that can be live now, so it computes exactly two HMACs per attempt
# (the candidate, and its neighbour to tell "expired" from "not yet valid"),
# however many codes were issued. At most one candidate is ever acceptable,
# so a guess is accepted with probability 10^-5.
#
# Long form (QR / NFC / app): a compact CBOR credential with an 80-bit MAC,
# base32-encoded so it fits a version-4 QR code in alphanumeric mode. One
# HMAC per attempt.
#
# All times are UTC: the issuer converts local daily windows to UTC hours,
# so the device needs no time-zone setting.

from protocol import cbor
from protocol.crypto import hmac_sha256
from protocol.errors import INVALID, MALFORMED, TOO_LARGE, VERSION, ProtocolError

ONCE = 0
WINDOW = 1
DAILY = 2
SETUP = 3
KIND_NAMES = ("once", "window", "daily", "setup")

DEVICE = 0  # the code key of one lock or gate
GROUP = 1  # a group code key ("all gates of site S"), shared by its members

HOUR = 3600
DAY = 86400

KEYPAD_DIGITS = 10
MAC_MOD = 100000  # 5 MAC digits: a guess is accepted with probability 1e-5
PAYLOAD_MOD = 100000

HOURS_SHORT = tuple(range(1, 25)) + (36, 48, 72)
DAYS_WINDOW = tuple(range(2, 32)) + (62, 92, 183, 366)
DAYS_ONCE = (2, 3, 4, 5, 6, 7)
DAILY_RANGES = (7, 31, 92)
DAILY_LENGTHS = (2, 4, 8, 12)
SETUP_SERIALS = 100

# Serials per (profile, start): how many distinct codes can share one start
# slot. Chosen so the whole table fits the 10^5 payload values.
_DEVICE_SERIALS = 20
_GROUP_SERIALS = 25

MAX_TOLERANCE = 3600  # clock drift tolerance, seconds (the design relies on <= 1 h)


def _build_profiles() -> list:
    # Each profile: (kind, target class, unit seconds, duration in units,
    # modulus M in units, variants, serials). M = duration + 2 for hourly
    # units and + 1 for daily units: the smallest modulus for which two
    # starts with the same residue are never both live within the tolerance.
    t = []
    for tc, n in ((DEVICE, _DEVICE_SERIALS), (GROUP, _GROUP_SERIALS)):
        for kind in (ONCE, WINDOW):
            for h in HOURS_SHORT:
                t.append((kind, tc, HOUR, h, h + 2, 1, n))
        for d in DAYS_WINDOW if tc == DEVICE else DAYS_WINDOW[:30]:
            t.append((WINDOW, tc, DAY, d, d + 1, 1, n))
        for d in DAYS_ONCE:
            t.append((ONCE, tc, DAY, d, d + 1, 1, n))
    for r in DAILY_RANGES:
        t.append((DAILY, DEVICE, DAY, r, r + 1, 24 * len(DAILY_LENGTHS), 1))
    t.append((SETUP, DEVICE, DAY, 0, 1, 1, SETUP_SERIALS))
    return t


PROFILES = _build_profiles()
_OFFSETS = []
_total = 0
for _p in PROFILES:
    _OFFSETS.append(_total)
    _total += _p[4] * _p[5] * _p[6]
PAYLOAD_USED = _total
if PAYLOAD_USED > PAYLOAD_MOD:
    raise ProtocolError(INVALID, "pass-code profile table overflows the payload")


class KeypadCode:
    """An issued keypad code and the window it actually grants."""

    def __init__(self, digits: str, code_id: str, profile: int, start: int, end: int, serial: int) -> None:
        self.digits = digits
        self.code_id = code_id
        self.profile = profile
        self.start = start  # Unix seconds, inclusive
        self.end = end  # Unix seconds, exclusive
        self.serial = serial

    def __repr__(self) -> str:
        # The digits are a credential: they stay out of reprs and logs.
        return "KeypadCode(%s %s %d..%d)" % (
            self.code_id,
            KIND_NAMES[PROFILES[self.profile][0]],
            self.start,
            self.end,
        )


def _mac(key: bytes, target: str, profile: int, start_unit: int, variant: int, serial: int) -> bytes:
    return hmac_sha256(key, cbor.encode(["LEPC1", target, profile, start_unit, variant, serial]))


def _mac_digits(h: bytes) -> int:
    # 64 bits reduced mod 10^5: the bias is below 1e-14 relative.
    return int.from_bytes(h[:8], "big") % MAC_MOD


def _code_id(h: bytes) -> str:
    return "pc-" + "".join("%02x" % b for b in h[8:14])


def window_of(profile: int, start_unit: int, variant: int) -> tuple:
    """(start, end) in Unix seconds of the whole validity of a code."""
    kind, _tc, unit, dur, _m, _v, _n = PROFILES[profile]
    if kind == SETUP:
        return (0, 0)
    start = start_unit * unit
    if kind == DAILY:
        from_h, length = _daily_variant(variant)
        return (start + from_h * HOUR, (start_unit + dur - 1) * DAY + (from_h + length) * HOUR)
    return (start, start + dur * unit)


def _daily_variant(variant: int) -> tuple:
    return (variant % 24, DAILY_LENGTHS[variant // 24])


def daily_variant(from_hour_utc: int, length_hours: int) -> int:
    if not (0 <= from_hour_utc < 24) or length_hours not in DAILY_LENGTHS:
        raise ProtocolError(
            INVALID, "daily window must start on a UTC hour and last one of %r hours" % (DAILY_LENGTHS,)
        )
    return from_hour_utc + 24 * DAILY_LENGTHS.index(length_hours)


def make_keypad(
    key: bytes, target: str, profile: int, start_unit: int, variant: int = 0, serial: int = 0
) -> KeypadCode:
    """Low-level issuance: the code for one (profile, start, variant, serial)."""
    if not (0 <= profile < len(PROFILES)):
        raise ProtocolError(INVALID, "unknown pass-code profile")
    kind, _tc, _unit, _dur, m, variants, serials = PROFILES[profile]
    if not (0 <= variant < variants) or not (0 <= serial < serials) or start_unit < 0:
        raise ProtocolError(INVALID, "pass-code variant, serial or start out of range")
    if kind == SETUP:
        start_unit = 0
    payload = _OFFSETS[profile] + (start_unit % m) + m * (variant + variants * serial)
    h = _mac(key, target, profile, start_unit, variant, serial)
    digits = "%010d" % (payload * MAC_MOD + _mac_digits(h))
    start, end = window_of(profile, start_unit, variant)
    return KeypadCode(digits, _code_id(h), profile, start, end, serial)


def find_profile(kind: int, target_class: int, unit: int, duration: int) -> int:
    for i, p in enumerate(PROFILES):
        if p[0] == kind and p[1] == target_class and p[2] == unit and p[3] == duration:
            return i
    return -1


def plan_keypad(kind: int, target_class: int, start: int, end: int) -> list:
    """Keypad profiles and start units that fit a requested window, best first.

    The granted window never ends later than requested (the end is rounded
    in). The start is rounded down to the hour (short codes) or the UTC day
    (long codes); issued "from now", that extra time is already past. A
    caller that needs an exact long window uses the long form instead.
    Returns [(profile, start_unit)], empty if no keypad profile fits.
    """
    if end - start < HOUR:
        raise ProtocolError(INVALID, "a pass code is valid for at least one hour")
    if end - start > 366 * DAY:
        raise ProtocolError(INVALID, "a pass code is valid for at most one year")
    out = []
    h0 = start // HOUR
    hours = (end - h0 * HOUR) // HOUR
    best_h = -1
    for h in HOURS_SHORT:
        if h <= hours:
            best_h = h
    if best_h > 0 and (hours <= 72 or kind == ONCE):
        out.append((find_profile(kind, target_class, HOUR, best_h), h0))
    d0 = start // DAY
    days = (end - d0 * DAY) // DAY
    table = DAYS_ONCE if kind == ONCE else DAYS_WINDOW
    best_d = -1
    for d in table:
        if d <= days:
            best_d = d
    if best_d > 0:
        p = find_profile(kind, target_class, DAY, best_d)
        if p >= 0:
            out.append((p, d0))
    # Prefer the plan whose granted window ends closest to the requested end,
    # then the one that starts later (hour-precise beats day-aligned).
    out = [x for x in out if x[0] >= 0]
    out.sort(key=_plan_key, reverse=True)
    return out


def plan_daily(start: int, end: int, from_hour_utc: int, length_hours: int) -> list:
    """[(profile, start_unit, variant)] for a recurring daily window whose
    date range starts on the UTC day of `start` and does not outlast `end`."""
    variant = daily_variant(from_hour_utc, length_hours)
    d0 = start // DAY
    out = []
    for r in DAILY_RANGES:
        p = find_profile(DAILY, DEVICE, DAY, r)
        if window_of(p, d0, variant)[1] <= end:
            out.append((p, d0, variant))
    out.reverse()
    return out


def _plan_key(plan: tuple) -> tuple:
    p = PROFILES[plan[0]]
    return (plan[1] * p[2] + p[3] * p[2], plan[1] * p[2])


# ---- long form --------------------------------------------------------------

LONG_PREFIX = "LE1"
LONG_MAC_LEN = 10
QR_V4_M_ALNUM = 90  # alphanumeric capacity of a version-4 QR code at ECC M
_B32 = "ABCDEFGHIJKLMNOPQRSTUVWXYZ234567"


def b32encode(data: bytes) -> str:
    out = []
    acc = 0
    bits = 0
    for b in data:
        acc = (acc << 8) | b
        bits += 8
        while bits >= 5:
            bits -= 5
            out.append(_B32[(acc >> bits) & 31])
    if bits:
        out.append(_B32[(acc << (5 - bits)) & 31])
    return "".join(out)


def b32decode(text: str) -> bytes:
    out = bytearray()
    acc = 0
    bits = 0
    for ch in text:
        v = _B32.find(ch)
        if v < 0:
            raise ProtocolError(MALFORMED, "long code has a character outside base32")
        acc = ((acc << 5) | v) & 0xFFF
        bits += 5
        if bits >= 8:
            bits -= 8
            out.append((acc >> bits) & 0xFF)
    if bits >= 5 or (acc & ((1 << bits) - 1)):
        raise ProtocolError(MALFORMED, "long code has a non-canonical base32 tail")
    return bytes(out)


class LongCode:
    def __init__(
        self,
        target: str,
        kind: int,
        holder: str,
        start_h: int,
        end_h: int,
        uses: int,
        daily: "list | None",
        serial: int,
        mac: bytes,
    ) -> None:
        self.target = target
        self.kind = kind
        self.holder = holder
        self.start_h = start_h
        self.end_h = end_h
        self.uses = uses
        self.daily = daily
        self.serial = serial
        self.mac = mac

    def fields(self) -> list:
        return [
            1,
            self.target,
            self.kind,
            self.holder,
            self.start_h,
            self.end_h,
            self.uses,
            self.daily,
            self.serial,
        ]

    @property
    def code_id(self) -> str:
        return "qr-" + "".join("%02x" % b for b in self.mac[:6])

    def text(self) -> str:
        return LONG_PREFIX + b32encode(cbor.encode(self.fields() + [self.mac]))

    def __repr__(self) -> str:
        return "LongCode(%s %s holder=%s %dh..%dh)" % (
            self.code_id,
            KIND_NAMES[self.kind],
            self.holder,
            self.start_h,
            self.end_h,
        )


def _long_mac(key: bytes, fields: list) -> bytes:
    return hmac_sha256(key, cbor.encode(["LEQR1", fields]))[:LONG_MAC_LEN]


def _check_long_fields(f: list) -> None:
    _v, target, kind, holder, start_h, end_h, uses, daily, serial = f
    for s in (target, holder):
        if not isinstance(s, str) or not (0 < len(s) <= 24):
            raise ProtocolError(INVALID, "long code target and holder are 1..24 characters")
    if kind not in (ONCE, WINDOW, DAILY) or kind is True or kind is False:
        raise ProtocolError(INVALID, "long code kind")
    for n in (start_h, end_h, uses, serial):
        if not isinstance(n, int) or n is True or n is False or n < 0 or n > 0xFFFFFFFF:
            raise ProtocolError(INVALID, "long code number out of range")
    if not (1 <= end_h - start_h <= 366 * 24):
        raise ProtocolError(INVALID, "long code window must last 1 hour to 1 year")
    if kind == ONCE and uses != 1:
        raise ProtocolError(INVALID, "a one-time long code has exactly one use")
    if kind == DAILY:
        if not isinstance(daily, list) or len(daily) != 2:
            raise ProtocolError(INVALID, "a daily long code needs [from hour, length]")
        fh, ln = daily
        if fh is True or fh is False or ln is True or ln is False:
            raise ProtocolError(INVALID, "daily window out of range")
        if not isinstance(fh, int) or not isinstance(ln, int) or not (0 <= fh < 24) or not (1 <= ln <= 23):
            raise ProtocolError(INVALID, "daily window out of range")
    elif daily is not None:
        raise ProtocolError(INVALID, "only daily long codes carry a daily window")


def make_long(
    key: bytes,
    target: str,
    kind: int,
    holder: str,
    start_h: int,
    end_h: int,
    uses: int = 0,
    daily: "list | None" = None,
    serial: int = 0,
) -> LongCode:
    if kind == ONCE:
        uses = 1
    fields = [1, target, kind, holder, start_h, end_h, uses, daily, serial]
    _check_long_fields(fields)
    code = LongCode(target, kind, holder, start_h, end_h, uses, daily, serial, _long_mac(key, fields))
    if len(code.text()) > QR_V4_M_ALNUM:
        raise ProtocolError(TOO_LARGE, "long code does not fit a version-4 QR code; shorten the ids")
    return code


def parse_long(text: str) -> LongCode:
    if not isinstance(text, str) or len(text) > QR_V4_M_ALNUM + 16:
        raise ProtocolError(MALFORMED, "long code is not short text")
    text = text.strip().upper()
    if not text.startswith(LONG_PREFIX):
        raise ProtocolError(VERSION, "long code does not start with %s" % LONG_PREFIX)
    v = cbor.decode(b32decode(text[len(LONG_PREFIX) :]), 2, 128)
    if not isinstance(v, list) or len(v) != 10 or v[0] != 1 or v[0] is True:
        raise ProtocolError(MALFORMED, "long code is not a version-1 credential")
    mac = v[9]
    if not isinstance(mac, bytes) or len(mac) != LONG_MAC_LEN:
        raise ProtocolError(MALFORMED, "long code MAC has the wrong size")
    _check_long_fields(v[:9])
    return LongCode(v[1], v[2], v[3], v[4], v[5], v[6], v[7], v[8], mac)
