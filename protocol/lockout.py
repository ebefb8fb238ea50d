# Keypad brute-force throttle (RFC 4226 section 7.3 style), sans-I/O.
#
# Every wrong code adds a strike; strikes decay by one per `decay` seconds
# without a wrong code. From `threshold` strikes on, each wrong code locks
# the keypad for base * 2^(strikes - threshold) seconds, capped at `cap`.
# A correct code does NOT clear the strikes: otherwise an attacker could
# interleave guesses with residents' entries and reset the back-off each
# time a resident came home. Only the keypad is locked: fingerprint, remote
# unlock and the exit button never consult this object.
#
# Times are seconds from any clock that does not jump (the caller's
# monotonic clock); the state is stored relative to `now`, so it survives a
# reboot even when the wall clock is unset (a lockout then resumes in full).

from protocol.errors import INVALID, ProtocolError


class Throttle:
    def __init__(self, threshold: int = 5, base: int = 60, cap: int = 900, decay: int = 1800) -> None:
        if threshold < 1 or base < 1 or cap < base or decay < 1:
            raise ProtocolError(INVALID, "throttle parameters out of range")
        self.threshold = threshold
        self.base = base
        self.cap = cap
        self.decay = decay
        self.strikes = 0
        self.locked_until = 0
        self.decay_mark = 0

    def _decay(self, now: int) -> None:
        if self.strikes == 0:
            self.decay_mark = now
            return
        steps = (now - self.decay_mark) // self.decay
        if steps > 0:
            self.strikes = max(0, self.strikes - steps)
            self.decay_mark += steps * self.decay

    def remaining(self, now: int) -> int:
        """Seconds the keypad stays locked (0 = usable)."""
        return max(0, self.locked_until - now)

    def failure(self, now: int) -> "dict | None":
        """Count a wrong code; return an alarm event when it locks the keypad."""
        self._decay(now)
        if self.strikes == 0:
            self.decay_mark = now
        self.strikes += 1
        if self.strikes < self.threshold:
            return None
        exp = self.strikes - self.threshold
        duration = self.cap if exp >= 30 else min(self.cap, self.base << exp)
        self.locked_until = now + duration
        return {"event": "keypad-lockout", "seconds": duration, "strikes": self.strikes}

    def state(self, now: int) -> list:
        return [self.strikes, self.remaining(now), max(0, now - self.decay_mark)]

    def load(self, state: list, now: int) -> None:
        strikes, remaining, since = state
        self.strikes = strikes
        self.locked_until = now + remaining
        self.decay_mark = now - since
