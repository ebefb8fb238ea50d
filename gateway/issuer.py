"""Issuing pass codes: the cloud's side (and the gateway's, for its own gate).

Chooses the keypad profile that best fits a requested window, allocates a
serial no other live code of the same slot uses, and falls back to the long
form (exact window, no capacity limit) when no keypad slot is free or no
profile fits. Needs only the target's code key: it never talks to a device.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Protocol

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


Slot = tuple[str, int, int, int]  # (target, profile, start unit, variant)


class Allocations(Protocol):
    """Which serials of a slot are live. The issuing service keeps them in
    its own database, in the transaction that records the grant, so two
    processes or a restart never hand out the same code twice."""

    def in_use(self, slot: Slot, now: int) -> set[int]: ...

    def take(self, slot: Slot, serial: int, end: int) -> None: ...


class MemoryAllocations:
    """For one process that issues for a while (the site simulator, tests)."""

    def __init__(self) -> None:
        self.live: dict[Slot, dict[int, int]] = {}  # slot -> serial -> end

    def in_use(self, slot: Slot, now: int) -> set[int]:
        return {s for s, end in self.live.get(slot, {}).items() if end > now}

    def take(self, slot: Slot, serial: int, end: int) -> None:
        self.live.setdefault(slot, {})[serial] = end


# How far ahead a keypad code's digits are checked against the codes of the
# later windows its payload also names (same profile, residue, variant and
# serial): a serial whose code would coincide with one of them is skipped,
# so an issued code never works as another window's code (about 6 % of
# 1-hour codes would over two years: 2,500 later windows at 1e-5 each, two
# candidates each time the lock looks).
COLLISION_HORIZON_S = 2 * 365 * 86400


class CodeIssuer:
    """`key_for(target)` gives a target's code key; `group_targets` names the
    targets that are groups; `allocations` where live serials are kept (in
    memory unless the issuing service passes its database's)."""

    def __init__(
        self,
        key_for: Callable[[str], bytes],
        group_targets: frozenset[str] = frozenset(),
        allocations: Allocations | None = None,
    ) -> None:
        self.key_for = key_for
        self.groups = group_targets
        self.allocations: Allocations = allocations or MemoryAllocations()
        self.long_serial = 0
        self.collisions_skipped = 0
        self._now = 0

    def _alloc(self, target: str, profile: int, start_unit: int, variant: int, end: int) -> int | None:
        slot = (target, profile, start_unit, variant)
        used = self.allocations.in_use(slot, self._now)
        key = self.key_for(target)
        for serial in range(pc.PROFILES[profile][6]):
            if serial in used:
                continue
            if _coincides(key, target, profile, start_unit, variant, serial):
                self.collisions_skipped += 1
                continue
            self.allocations.take(slot, serial, end)
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
        self._now = now
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


def _coincides(key: bytes, target: str, profile: int, start_unit: int, variant: int, serial: int) -> bool:
    """Whether this code's digits equal those of another window of the same
    serial that its payload also names, within the horizon."""
    kind, _tc, unit, _dur, m, _v, _n = pc.PROFILES[profile]
    if kind == pc.SETUP:
        return False
    digits = pc.make_keypad(key, target, profile, start_unit, variant, serial).digits
    # Later windows only: an earlier one has ended, and the verifier refuses
    # an ended window's code as expired.
    for k in range(1, COLLISION_HORIZON_S // (unit * m) + 1):
        if pc.make_keypad(key, target, profile, start_unit + k * m, variant, serial).digits == digits:
            return True
    return False


def _granted_end(plan: tuple[int, int]) -> int:
    p = pc.PROFILES[plan[0]]
    return int((plan[1] + p[3]) * p[2])
