"""An attacker at one keypad who guesses the moment it is free, against the
real Throttle (its state, not its formula): what the brute-force figure in
docs/passcodes.md rests on. Used by the property tests and the bench."""

from __future__ import annotations

from protocol.lockout import Throttle


def guesses_per_day(th: Throttle, days: int) -> float:
    t = n = 0
    while t < days * 86400:
        wait = th.remaining(t)
        if wait:
            t += wait
            continue
        th.failure(t)  # a wrong guess
        n += 1
        t += 1
    return n / days
