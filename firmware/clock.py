# The lock's wall clock, guarded (MicroPython; no I/O: the caller reads and
# sets the HAL's clock and sends the requests).
#
# Every validity window the lock checks (code windows, command deadlines,
# bundle expiry, one-time-code memory) is only as good as the clock, and the
# gateway that relays time holds only the lock's local key. So a gateway may
# only nudge the clock; anything larger needs the cloud:
#
# - The clock never goes behind the highest time the lock has used (the
#   high-water mark, persisted with the core state). An RTC reading behind it
#   (a lost RTC, a reboot into 2000) reads as unset, so no code that needs a
#   clock opens, until the cloud's time comes.
# - A gateway's time may move the clock forward only, and the gateway's steps
#   since the last cloud time may add up to at most TOLERANCE_S plus DRIFT_PPM
#   of the monotonic time since then (persisted, so reboots do not refill it):
#   repeated small steps cannot walk the clock.
# - Cloud time is MACed with the lock's cmd key (the gateway cannot forge it)
#   and answers the lock's own request: it must echo the request's envelope
#   sequence (never reused, even after state loss) and arrive within FRESH_S
#   of it, so a stored answer cannot be replayed later. It sets the clock,
#   the mark and the anchor, backwards too: the cloud is the time authority.

TOLERANCE_S = 60
DRIFT_PPM = 200  # a crystal RTC drifts 20-50 ppm; the rest is headroom
FRESH_S = 30
ASK_EVERY_S = 60  # while the clock needs the cloud and no answer came
RESYNC_S = 86400  # ask the cloud daily even when nothing is wrong
STEP_MIN_S = 2  # smaller differences are jitter: nothing moves, nothing is written


class Clock:
    def __init__(self) -> None:
        self.mark = 0  # highest wall time used (persisted)
        self.adj = 0  # seconds the gateway has stepped since the cloud's last time (persisted)
        self.since = None  # monotonic time of the cloud's last time, or of this boot's first reading
        self.trusted = False  # the cloud answered since this boot
        self.need = False  # the clock is unset or was refused a step: only the cloud can help
        self.asked: "tuple | None" = None  # (request sequence, monotonic time) awaiting the cloud's answer
        self.asked_at = None  # monotonic time of the last request
        self.distrust = False  # core state was lost: nothing but the cloud sets the clock

    def state(self) -> list:
        return [self.mark, self.adj]

    def load(self, st) -> None:  # type: ignore[no-untyped-def]
        self.mark = st[0]
        self.adj = st[1]

    def now(self, t, mono):  # type: ignore[no-untyped-def]
        """The HAL's reading as the lock may use it: None when unset."""
        if t is None or t < self.mark or self.distrust:
            self.need = True
            return None
        if self.since is None:
            self.since = mono
        if t > self.mark:
            self.mark = t
        return t

    def from_gateway(self, t, current, mono):  # type: ignore[no-untyped-def]
        """A gateway's time -> (answer, seconds to step). Answers: "ok",
        "malformed", "needs-cloud" (the clock is unset), "behind" (a step
        back), "too-far" (beyond what a gateway may move it)."""
        if not isinstance(t, int) or isinstance(t, bool) or t <= 0:
            return "malformed", 0
        if current is None or current < self.mark or self.since is None or self.distrust:
            self.need = True
            return "needs-cloud", 0
        step = t - current
        if step < 0:
            return ("behind", 0) if -step >= STEP_MIN_S else ("ok", 0)
        if step < STEP_MIN_S:
            return "ok", 0
        if self.adj + step > TOLERANCE_S + (mono - self.since) * DRIFT_PPM // 1000000:
            self.need = True
            return "too-far", 0
        self.adj += step
        self.mark = t
        return "ok", step

    def want(self, mono):  # type: ignore[no-untyped-def]
        """True when a request to the cloud is due now."""
        if self.asked_at is not None and mono - self.asked_at < ASK_EVERY_S:
            return False
        if self.need or not self.trusted:
            return True
        return self.since is not None and mono - self.since >= RESYNC_S

    def asking(self, seq, mono) -> None:  # type: ignore[no-untyped-def]
        self.asked = (seq, mono)
        self.asked_at = mono

    def from_cloud(self, t, seq, mono):  # type: ignore[no-untyped-def]
        """The cloud's answer to a request -> "ok", "malformed", "unasked"
        (not the outstanding request: replayed or stray), "late"."""
        if not isinstance(t, int) or isinstance(t, bool) or t <= 0 or not isinstance(seq, int):
            return "malformed"
        if self.asked is None or seq != self.asked[0]:
            return "unasked"
        if mono - self.asked[1] > FRESH_S:
            self.asked = None
            return "late"
        self.asked = None
        self.mark = t
        self.adj = 0
        self.since = mono
        self.trusted = True
        self.need = False
        self.distrust = False
        return "ok"
