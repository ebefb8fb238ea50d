"""Issuing pass codes: the cloud's side (and the gateway's, for its own gate).

Chooses the keypad profile that best fits a requested window, allocates a
serial no other live code of the same slot uses, and falls back to the long
form (exact window, no capacity limit) when no keypad slot is free or no
profile fits. Needs only the target's code key: it never talks to a device.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from protocol import passcode as pc

HOUR = 3600


@dataclass
class Issued:
    target: str
    kind: int
    start: int  # granted window, Unix seconds
    end: int
    code_id: str
    keypad: str | None  # 10 digits, or None when only a long code was issued
    long: str  # the long (QR) form, always available

    def __repr__(self) -> str:  # credentials stay out of logs
        return f"Issued({self.code_id} {pc.KIND_NAMES[self.kind]} {self.target} {self.start}..{self.end})"


class CodeIssuer:
    """`key_for(target)` gives a target's code key; `group_targets` names the
    targets that are groups. Serial allocations are remembered until the
    code they belong to expires (`state()`/`load()` persist them)."""

    def __init__(self, key_for: Callable[[str], bytes], group_targets: frozenset[str] = frozenset()) -> None:
        self.key_for = key_for
        self.groups = group_targets
        self.slots: dict[
            tuple[str, int, int, int], int
        ] = {}  # (target, profile, start, variant) -> serial bitmap
        self.expiry: dict[tuple[str, int, int, int], int] = {}
        self.long_serial = 0

    def _prune(self, now: int) -> None:
        for k in [k for k, e in self.expiry.items() if e <= now]:
            del self.expiry[k]
            self.slots.pop(k, None)

    def _alloc(self, target: str, profile: int, start_unit: int, variant: int, end: int) -> int | None:
        k = (target, profile, start_unit, variant)
        used = self.slots.get(k, 0)
        for serial in range(pc.PROFILES[profile][6]):
            if not (used >> serial) & 1:
                self.slots[k] = used | (1 << serial)
                self.expiry[k] = max(self.expiry.get(k, 0), end)
                return serial
        return None

    def issue(
        self,
        target: str,
        kind: int,
        start: int,
        end: int,
        now: int,
        holder: str = "-",
        uses: int = 0,
        daily: tuple[int, int] | None = None,
    ) -> Issued:
        """Issue a code for [start, end). `daily` = (from UTC hour, hours)
        makes it a recurring daily code whatever `kind` says."""
        self._prune(now)
        if daily is not None:
            kind = pc.DAILY
        key = self.key_for(target)
        tclass = pc.GROUP if target in self.groups else pc.DEVICE
        keypad: pc.KeypadCode | None = None
        if daily is not None:
            plans = [] if tclass == pc.GROUP else pc.plan_daily(start, end, daily[0], daily[1])
            for p, su, var in plans:
                serial = self._alloc(target, p, su, var, end)
                if serial is not None:
                    keypad = pc.make_keypad(key, target, p, su, var, serial)
                    break
        elif kind in (pc.ONCE, pc.WINDOW) and uses in (0, 1):
            # Day-aligned starts may move back by whole days while they stay in
            # the past: that grants nothing new and frees more serials, as long
            # as the shifted code still ends as late as the unshifted one would.
            first = pc.plan_keypad(kind, tclass, start, end)
            ref_end = _granted_end(first[0]) if first else end
            for back in range(0, 8):
                s = start - back * 86400
                if back and (s // 86400 + 1) * 86400 > now:
                    break
                for p, su in first if back == 0 else pc.plan_keypad(kind, tclass, s, end):
                    if back and (pc.PROFILES[p][2] != 86400 or _granted_end((p, su)) < ref_end):
                        continue
                    serial = self._alloc(target, p, su, 0, end)
                    if serial is not None:
                        keypad = pc.make_keypad(key, target, p, su, 0, serial)
                        break
                if keypad is not None:
                    break
        self.long_serial += 1
        # Exact to the hour: a future start rounds up (never earlier than
        # asked); a start not in the future rounds down, over time already past.
        start_h = start // HOUR if start <= now else -(-start // HOUR)
        end_h = end // HOUR
        long_daily = None if daily is None else [daily[0], daily[1]]
        lc = pc.make_long(key, target, kind, holder, start_h, end_h, uses, long_daily, self.long_serial)
        if keypad is not None:
            return Issued(target, kind, keypad.start, keypad.end, keypad.code_id, keypad.digits, lc.text())
        return Issued(target, kind, start_h * HOUR, end_h * HOUR, lc.code_id, None, lc.text())


def _granted_end(plan: tuple[int, int]) -> int:
    p = pc.PROFILES[plan[0]]
    return int((plan[1] + p[3]) * p[2])
