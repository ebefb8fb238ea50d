# The offline decision for a typed keypad code or a scanned long code, on a
# lock or at the gate. Sans-I/O: the caller passes the entry, the wall clock
# (None while unset) and a monotonic clock, persists `state()` after every
# decision, and turns the Decision into a pass record.
#
# Cost per attempt, whatever was issued: a keypad code costs exactly 2 HMACs
# (0 while the keypad is locked out), a long code at most 1.

from protocol import passcode
from protocol.blacklist import Blacklist
from protocol.crypto import ct_equal
from protocol.errors import INVALID, ProtocolError
from protocol.lockout import Throttle
from protocol.passcode import DAILY, DAY, GROUP, HOUR, ONCE, PROFILES, SETUP

OK = "ok"


class Decision:
    def __init__(self, granted: bool, reason: str, kind: str, ref: str = "", hmacs: int = 0) -> None:
        self.granted = granted
        self.reason = reason
        self.kind = kind  # pass-record credential kind: "code" or "qr"
        self.ref = ref  # code id, never the code itself
        self.hmacs = hmacs
        self.events: list = []
        self.window = (0, 0)

    def __repr__(self) -> str:
        return "Decision(%s %s %s)" % ("granted" if self.granted else "denied", self.reason, self.ref)


def _status(start: int, end: int, now: int, tol: int) -> str:
    if now + tol < start:
        return "not-yet-valid"
    if now - tol >= end:
        return "expired"
    return OK


def _daily_status(range_start: int, days: int, from_h: int, length: int, now: int, tol: int) -> str:
    # range_start: Unix seconds of the first day (00:00 UTC).
    first = range_start + from_h * HOUR
    if now + tol < first:
        return "not-yet-valid"
    d = (now + tol - first) // DAY  # latest occurrence that has begun
    if d >= days:
        last_end = first + (days - 1) * DAY + length * HOUR
        return "expired" if now - tol >= last_end else OK
    if now - tol < first + d * DAY + length * HOUR:
        return OK
    return "expired" if d == days - 1 else "outside-hours"


def _digits(h: bytes) -> bytes:
    return ("%05d" % passcode._mac_digits(h)).encode()


def _bisect_profile(payload: int) -> int:
    lo = 0
    hi = len(passcode._OFFSETS) - 1
    while lo < hi:
        mid = (lo + hi + 1) // 2
        if passcode._OFFSETS[mid] <= payload:
            lo = mid
        else:
            hi = mid - 1
    return lo


def _keypad_digits(s: str) -> bool:
    for c in s:
        if c < "0" or c > "9":
            return False
    return True


class CodeVerifier:
    """Decides pass codes for one device.

    groups: {group name: group code key} for long codes naming a group;
    keypad_group: the one group whose keypad codes this device accepts
    (keypad codes do not name their group, and trying several keys would
    multiply a guess's chance of success).
    """

    def __init__(
        self,
        device_id: str,
        code_key: bytes,
        groups: "dict | None" = None,
        keypad_group: "str | None" = None,
        tolerance: int = 300,
        max_used: int = 256,
        throttle: "Throttle | None" = None,
        blacklist: "Blacklist | None" = None,
    ) -> None:
        if not (0 <= tolerance <= passcode.MAX_TOLERANCE):
            raise ProtocolError(INVALID, "clock tolerance must be 0..%d s" % passcode.MAX_TOLERANCE)
        self.device_id = device_id
        self.code_key = code_key
        self.groups = groups or {}
        if keypad_group is not None and keypad_group not in self.groups:
            raise ProtocolError(INVALID, "keypad group has no key")
        self.keypad_group = keypad_group
        self.tolerance = tolerance
        self.max_used = max_used
        self.throttle = throttle or Throttle()
        self.blacklist = blacklist or Blacklist()
        # code id -> [expires (Unix s, 0 = never), uses]; one-time and
        # counted codes, remembered until they expire.
        self.used: dict = {}
        # Bumped on every change to `used`, so a caller that persists it can
        # tell "changed" without comparing it (a count and a sum of uses do
        # not: a prune and an add, one for one, leave both as they were).
        self.changes = 0

    # -- keypad ---------------------------------------------------------------

    def keypad(self, digits: str, now: "int | None", mono: int) -> Decision:
        if self.throttle.remaining(mono) > 0:
            return Decision(False, "lockout", "code")
        if not isinstance(digits, str) or len(digits) != passcode.KEYPAD_DIGITS or not _keypad_digits(digits):
            # A short or long entry, or anything but the ten ASCII digits a
            # keypad has (str.isdigit() takes superscripts, fullwidth and
            # N'Ko digits, and int() then raises or reads them as 0-9),
            # cannot be a code; not counted as a guess.
            return Decision(False, "wrong-code", "code")
        n = int(digits)
        payload = n // passcode.MAC_MOD
        entered = ("%05d" % (n % passcode.MAC_MOD)).encode()
        if payload >= passcode.PAYLOAD_USED:
            return self._wrong(Decision(False, "wrong-code", "code"), mono, self._dummy())
        p = _bisect_profile(payload)
        kind, tclass, unit, _dur, m, variants, _serials = PROFILES[p]
        local = payload - passcode._OFFSETS[p]
        residue = local % m
        rest = local // m
        variant = rest % variants
        serial = rest // variants
        if tclass == GROUP:
            if self.keypad_group is None:
                return self._wrong(Decision(False, "wrong-code", "code"), mono, self._dummy())
            key = self.groups[self.keypad_group]
            target = self.keypad_group
        else:
            key = self.code_key
            target = self.device_id
        if kind == SETUP:
            cand = other = 0
        else:
            if now is None:
                self._dummy()
                return Decision(False, "clock-unset", "code", hmacs=2)
            tu = (now + self.tolerance) // unit
            cand = tu - ((tu - residue) % m)
            ended = self._state_of(p, cand, variant, now) == "expired"
            other = cand + m if ended or cand < m else cand - m
        h1 = passcode._mac(key, target, p, cand, variant, serial)
        h2 = passcode._mac(key, target, p, other, variant, serial)
        if ct_equal(entered, _digits(h1)):
            h = h1
            start_unit = cand
        elif ct_equal(entered, _digits(h2)):
            # A genuine code, but its live slot is not the current one. (Not
            # a setup code: its two candidates are one, matched above; and
            # with no clock only setup codes get this far.)
            reason = self._state_of(p, other, variant, now)  # type: ignore[arg-type]
            d = Decision(False, reason, "code", passcode._code_id(h2), 2)
            if d.reason == OK:  # cannot happen by construction; never accept it
                d.reason = "expired"
            return d
        else:
            return self._wrong(Decision(False, "wrong-code", "code", hmacs=2), mono, 0)
        d = Decision(False, OK, "code", passcode._code_id(h), 2)
        d.window = passcode.window_of(p, start_unit, variant)
        if kind == SETUP:
            if now is not None:
                d.reason = "clock-set"  # setup codes serve only a lock with no time
                return d
        elif now is not None:
            d.reason = self._state_of(p, start_unit, variant, now)
            if d.reason != OK:
                return d
        return self._admit(d, [d.ref], 1 if kind in (ONCE, SETUP) else 0, d.window[1], now)

    def _state_of(self, p: int, start_unit: int, variant: int, now: int) -> str:
        kind, _tc, _unit, dur, _m, _v, _n = PROFILES[p]
        if kind == DAILY:
            fh, ln = passcode._daily_variant(variant)
            return _daily_status(start_unit * DAY, dur, fh, ln, now, self.tolerance)
        start, end = passcode.window_of(p, start_unit, variant)
        return _status(start, end, now, self.tolerance)

    def _dummy(self) -> int:
        # Keep the cost per attempt fixed whatever the entry was.
        passcode._mac(self.code_key, self.device_id, 0, 0, 0, 0)
        passcode._mac(self.code_key, self.device_id, 0, 1, 0, 0)
        return 2

    def _wrong(self, d: Decision, mono: int, hmacs: int) -> Decision:
        d.hmacs = d.hmacs or hmacs
        ev = self.throttle.failure(mono)
        if ev is not None:
            d.events.append(ev)
        return d

    # -- long form ------------------------------------------------------------

    def long(self, text: str, now: "int | None", mono: int) -> Decision:
        try:
            code = passcode.parse_long(text)
        except ProtocolError:
            return Decision(False, "malformed", "qr")
        if code.target == self.device_id:
            key = self.code_key
        elif code.target in self.groups:
            key = self.groups[code.target]
        else:
            return Decision(False, "wrong-target", "qr")
        if not ct_equal(passcode._long_mac(key, code.fields()), code.mac):
            return Decision(False, "wrong-code", "qr", hmacs=1)
        d = Decision(False, OK, "qr", code.code_id, 1)
        start = code.start_h * HOUR
        end = code.end_h * HOUR
        d.window = (start, end)
        if now is None:
            d.reason = "clock-unset"
            return d
        if code.kind == DAILY:
            fh, ln = code.daily  # type: ignore[misc]
            first_day = (start // DAY) * DAY
            d.reason = _status(start, end, now, self.tolerance)
            if d.reason == OK:
                d.reason = _daily_status(
                    first_day, (end - first_day + DAY - 1) // DAY, fh, ln, now, self.tolerance
                )
        else:
            d.reason = _status(start, end, now, self.tolerance)
        if d.reason != OK:
            return d
        uses = 1 if code.kind == ONCE else code.uses
        return self._admit(d, [d.ref, "v:" + code.holder], uses, end, now)

    # -- shared ---------------------------------------------------------------

    def _admit(self, d: Decision, ids: list, uses: int, expires: int, now: "int | None") -> Decision:
        wall = now or 0
        if self.blacklist.blocked(ids, wall):
            d.reason = "revoked"
            return d
        if uses:
            self._prune(wall)
            rec = self.used.get(d.ref)
            if rec is not None and rec[1] >= uses:
                d.reason = "used"
                return d
            if rec is None and len(self.used) >= self.max_used:
                d.reason = "store-full"
                d.events.append({"event": "code-store-full", "entries": len(self.used)})
                return d
            self.used[d.ref] = [expires, (rec[1] if rec else 0) + 1]
            self.changes += 1
        d.granted = True
        return d

    def _prune(self, now: int) -> None:
        if not now:
            return
        for k in [k for k, v in self.used.items() if v[0] and v[0] <= now - self.tolerance]:
            del self.used[k]
            self.changes += 1

    def state(self, mono: int) -> dict:
        return {
            "used": [[k, v[0], v[1]] for k, v in self.used.items()],
            "throttle": self.throttle.state(mono),
            "blacklist": self.blacklist.state(),
        }

    def load(self, state: dict, mono: int) -> None:
        self.used = dict((k, [e, n]) for k, e, n in state["used"])
        self.throttle.load(state["throttle"], mono)
        self.blacklist.load(state["blacklist"])
