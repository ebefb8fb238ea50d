"""The community gate, driven by the gateway through gpiozero.

Strike relay, door contact, exit button, status LED, buzzer. Codes typed on
the gate keypad (or scanned long codes) are decided offline by the same
verifier a lock runs. A finger is identified 1:N against the gallery the
office's bundles built (`identify`), and then admitted only if the person
holds an authorization in force at the gateway (`authorized`: the
schedule of grant/revoke operations from the cloud) and is not on the
blacklist: enrolment says who a finger belongs to, not that they may enter.
Every decision becomes a pass record in the outbox, durably, *before* the
strike is energised: a gate that opened leaves a record even if the power
fails a moment later.

gpiozero calls its callbacks on its own threads; they only record what
happened under a lock. Timed behaviour (closing the strike, the door-held
alarm) runs in `tick`, called by the daemon's loop. Tests use gpiozero's own
MockFactory pins.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from gpiozero import LED, Button, Buzzer, OutputDevice
from tinydb import TinyDB

from gateway.biometrics.iso19794 import TemplateError
from gateway.outbox import Outbox
from protocol.lockout import Throttle
from protocol.record import PassRecord
from protocol.verifier import CodeVerifier, Decision

log = logging.getLogger("lockedge.gate")


@dataclass
class GatePins:
    strike: int = 17
    contact: int = 27  # reed switch: closed (pressed) while the door is shut
    exit_button: int = 22
    led: int = 23
    buzzer: int = 24


class Gate:
    def __init__(
        self,
        gate_id: str,
        verifier: CodeVerifier,
        outbox: Outbox,
        db: TinyDB,
        pins: GatePins | None = None,
        pin_factory: Any = None,
        open_seconds: float = 5.0,
        held_open_limit: float = 60.0,
        clock: Callable[[], float] = time.time,
        monotonic: Callable[[], float] = time.monotonic,
        on_event: Callable[[dict[str, Any]], None] | None = None,
        on_record: Callable[[PassRecord], None] | None = None,
        identify: Callable[[bytes], str | None] | None = None,
        authorized: Callable[[str, int], bool] = lambda person, now: False,
        finger_throttle: Throttle | None = None,
    ) -> None:
        p = pins or GatePins()
        self.id = gate_id
        self.verifier = verifier
        self.outbox = outbox
        self.state = db.table("gate")
        self.clock = clock
        self.monotonic = monotonic
        self.open_seconds = open_seconds
        self.held_open_limit = held_open_limit
        self.on_event = on_event or (lambda e: log.warning("gate event %s", e))
        self.on_record = on_record or (lambda r: None)
        self.identify = identify
        self.authorized = authorized
        # Fingers have an attempt limit of their own (the keypad's is in the
        # verifier): each non-matching finger is a strike, persisted with the
        # rest of the gate's state, so a stranger trying finger after finger
        # gets a bounded number of chances at a false accept per day.
        self.finger_throttle = finger_throttle or Throttle(5, 60, 900, 1800)
        self.strike = OutputDevice(p.strike, pin_factory=pin_factory)
        self.contact = Button(p.contact, pin_factory=pin_factory)
        self.exit_button = Button(p.exit_button, pin_factory=pin_factory)
        self.led = LED(p.led, pin_factory=pin_factory)
        self.buzzer = Buzzer(p.buzzer, pin_factory=pin_factory)
        self._lock = threading.Lock()
        self._close_at: float | None = None
        self._opened_at: float | None = None
        self._exit_requested = False
        self._forced = False
        self._held_alarmed = False
        self.exit_button.when_pressed = self._exit_pressed
        self.contact.when_released = self._door_opened
        self.contact.when_pressed = self._door_closed
        saved = self.state.get(doc_id=1)
        if saved:
            self.verifier.load(saved["verifier"], int(self.monotonic()))
            if "finger_throttle" in saved:
                self.finger_throttle.load(saved["finger_throttle"], int(self.monotonic()))

    # -- inputs (any thread) ---------------------------------------------------

    def _exit_pressed(self) -> None:
        with self._lock:
            self._exit_requested = True

    def _door_opened(self) -> None:
        # gpiozero's thread: only note it; `tick` (the daemon's thread, which
        # owns the outbox) journals the alarm.
        with self._lock:
            self._opened_at = self.monotonic()
            if not self.strike.value:
                self._forced = True

    def _door_closed(self) -> None:
        with self._lock:
            self._opened_at = None
            self._held_alarmed = False

    # -- decisions -------------------------------------------------------------

    def _record(self, kind: str, ref: str, granted: bool, reason: str) -> PassRecord:
        rec = self.outbox.append_own(
            self.id, int(self.clock()), self.id, kind, ref, granted, reason
        )  # fsync first
        self.on_record(rec)
        return rec

    def _save(self) -> None:
        # Used one-time codes, the throttle and the blacklist survive a restart.
        mono = int(self.monotonic())
        snapshot = {
            "verifier": self.verifier.state(mono),
            "finger_throttle": self.finger_throttle.state(mono),
        }
        if self.state.get(doc_id=1):
            self.state.update(snapshot, doc_ids=[1])
        else:
            self.state.insert(snapshot)

    def _decide(self, d: Decision) -> Decision:
        self._record(d.kind, d.ref, d.granted, d.reason)
        self._save()
        for ev in d.events:
            self.on_event(dict(ev, gate=self.id))
        if d.granted:
            self._open()
        else:
            self.buzzer.beep(on_time=0.1, off_time=0.1, n=2)
        return d

    def keypad(self, digits: str) -> Decision:
        wall = self.clock()
        return self._decide(
            self.verifier.keypad(digits, int(wall) if wall > 0 else None, int(self.monotonic()))
        )

    def scan(self, text: str) -> Decision:
        wall = self.clock()
        return self._decide(self.verifier.long(text, int(wall) if wall > 0 else None, int(self.monotonic())))

    def finger(self, template: bytes) -> Decision:
        """A finger on the gate's sensor, as the template its image gave."""
        wall = int(self.clock())
        mono = int(self.monotonic())
        if self.finger_throttle.remaining(mono) > 0:
            return self._decide(Decision(False, "lockout", "finger", ""))  # not matched: no chance taken
        ref, person, reason = None, "", "no-match"  # no gallery: this gateway takes no bundles
        if self.identify is not None:
            try:
                ref = self.identify(template)
            except TemplateError:
                reason = "bad-template"
        if ref is not None:
            person = ref.split("/")[0]
            if self.verifier.blacklist.person_blocked(person, wall):
                reason = "revoked"
            elif not self.authorized(person, wall):
                reason = "not-authorized"
            else:
                reason = "ok"
        if reason == "no-match":
            alarm = self.finger_throttle.failure(mono)
            if alarm is not None:
                self.on_event(dict(alarm, event="finger-lockout", gate=self.id))
        return self._decide(Decision(reason == "ok", reason, "finger", person))

    def apply_blacklist(self, body: object) -> int:
        """A blacklist snapshot or delta from the cloud (already verified);
        returns the new version. ProtocolError leaves the list unchanged."""
        v = self.verifier.blacklist.apply(body, int(self.clock()))
        self._save()
        return v

    def _open(self) -> None:
        with self._lock:
            self.strike.on()
            self.led.on()
            self._close_at = self.monotonic() + self.open_seconds

    # -- time ------------------------------------------------------------------

    def tick(self) -> None:
        now = self.monotonic()
        with self._lock:
            exit_req, self._exit_requested = self._exit_requested, False
            forced, self._forced = self._forced, False
            close = self._close_at is not None and now >= self._close_at
            held = (
                self._opened_at is not None
                and not self._held_alarmed
                and now - self._opened_at >= self.held_open_limit
            )
            if held:
                self._held_alarmed = True
        # Alarms are records, durable like any pass record (they reach the
        # cloud after an outage and a restart), then live events.
        if forced:
            self._record("none", "", False, "door-forced")
            self.on_event({"event": "door-forced", "gate": self.id})
        if exit_req:
            # The exit button always works: no code, no keypad lockout.
            self._record("exit", "", True, "ok")
            self._open()
        if close:
            with self._lock:
                self.strike.off()
                self.led.off()
                self._close_at = None
        if held:
            self.buzzer.on()
            self._record("none", f"s{self.held_open_limit:.0f}", False, "door-held-open")
            self.on_event({"event": "door-held-open", "gate": self.id, "seconds": self.held_open_limit})

    def close(self) -> None:
        for dev in (self.strike, self.contact, self.exit_button, self.led, self.buzzer):
            dev.close()
