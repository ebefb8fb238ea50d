# The lock's main loop (MicroPython asyncio; CPython asyncio in the
# simulator): keypad, exit button, door contact, the decision core, the link
# to the gateway, and the watchdog. The board (firmware/board/esp32.py) or
# the simulator supplies the HAL object; nothing here touches hardware.
#
# HAL methods used: keypad_key() -> str | None ("0"-"9", "*", "#"),
# exit_pressed() -> bool (one press, edge), door_open() -> bool,
# strike(on), beep(n), time() -> Unix seconds or None while unset,
# set_time(t), mono() -> seconds that never jump, wdt_feed(),
# mqtt_client(...) -> umqtt.simple-compatible client; with a fingerprint
# module, finger_touched() -> bool (the module's touch output, one per touch).

import asyncio

from firmware.core import LockCore
from firmware.journal import Journal
from firmware.link import Link

ENTRY_TIMEOUT_S = 10


class LockApp:
    def __init__(  # type: ignore[no-untyped-def]
        self,
        hal,
        fs,
        device_id,
        root_key,
        gateway_id,
        server,
        port,
        password,
        open_s=5,
        fp=None,
        held_open_s=60,
    ):
        self.hal = hal
        self.fp = fp  # firmware.fpmodule.FingerprintModule, or None on a lock without one
        self.journal = Journal(fs, device_id)
        # Damage recovery found on flash is journaled at once, so it reaches
        # the cloud even if no one uses the door for a while.
        self.journal.flush_damage(hal.time() or 0, device_id)  # a timestamp only: no decision rests on it
        self.core = LockCore(
            device_id, root_key, self.journal, hal, fs, open_s=open_s, held_open_s=held_open_s, fp=fp
        )
        self.link = Link(self.core, hal, gateway_id, server, port, password)
        self.digits = ""
        self.entry_started = 0
        self.door_was_open = False
        self.running = True
        self.faults = 0
        self.last_fault = ""
        self.fault_reported = -60.0

    def step(self) -> None:
        mono = self.hal.mono()
        now = self.core.clock.now(self.hal.time(), int(mono))  # None while unset or behind the mark
        key = self.hal.keypad_key()
        while key is not None:
            if key == "#":
                if self.digits:
                    self.core.keypad(self.digits, now, int(mono))
                self.digits = ""
            elif key == "*":
                self.digits = ""
            elif len(self.digits) < 16:
                if not self.digits:
                    self.entry_started = mono
                self.digits += key
            key = self.hal.keypad_key()
        if self.digits and mono - self.entry_started > ENTRY_TIMEOUT_S:
            self.digits = ""  # an abandoned entry is not a guess
        if self.fp is not None and self.hal.finger_touched():
            self.core.finger(self.fp, now, int(mono))
        if self.hal.exit_pressed():
            self.core.exit_button(now, int(mono))
        is_open = self.hal.door_open()
        if is_open != self.door_was_open:
            self.core.door(is_open, int(mono), now)
            self.door_was_open = is_open
        self.core.tick(int(mono), now)
        while self.core.events:
            ev = self.core.events.pop(0)
            self.core.outbox.append(("evt", self._event(ev, now)))
        self.link.poll(now, int(mono))
        self.hal.wdt_feed()

    def _event(self, ev, now):  # type: ignore[no-untyped-def]
        from protocol import envelope

        body = {}
        for k, v in ev.items():
            if isinstance(v, (str, int)):
                body[k] = v
        return envelope.seal(self.core.k_up, "evt", self.core.id, self.core.next_seq(), now or 0, body)

    async def run(self, period_s=0.01) -> None:  # type: ignore[no-untyped-def]
        while self.running:
            self.guarded_step()
            await asyncio.sleep(period_s)

    def guarded_step(self) -> None:
        """One step that a fault cannot end: a malformed message or a sensor
        glitch is counted and reported (at most once a minute) and the loop
        goes on. The watchdog is fed at the end of a step, so a fault that
        repeats on every step still resets the board, as it should."""
        try:
            self.step()
        except Exception as e:
            self.faults += 1
            self.last_fault = type(e).__name__
            mono = self.hal.mono()
            if mono - self.fault_reported >= 60:
                self.fault_reported = mono
                self.core.events.append({"event": "fault", "type": self.last_fault, "count": self.faults})
