# The HAL on an ESP32 lock board: the only file that touches machine,
# network and umqtt. firmware/main.py talks to an object with these methods;
# simulators/lockhal.py is the same seam in the simulator.
#
# Wiring (defaults, BCM-style GPIO numbers of an ESP32-WROOM board):
#   strike relay 26 (active high), door reed switch 27 (closed = low),
#   exit button 14 (pressed = low), LED 2, buzzer 25,
#   keypad 4x3 matrix: rows 16 17 18 19 (driven low one at a time),
#   columns 21 22 23 (pull-ups), fingerprint module on UART2 (tx 4, rx 5).

import time

import machine
import network
from umqtt.simple import MQTTClient

# MicroPython on ESP32 counts seconds from 2000-01-01.
EPOCH_OFFSET = 946684800
KEYS = ("123", "456", "789", "*0#")
DEFAULT_PINS: dict = {
    "strike": 26,
    "door": 27,
    "exit": 14,
    "led": 2,
    "buzzer": 25,
    "rows": (16, 17, 18, 19),
    "cols": (21, 22, 23),
    "fp_tx": 4,
    "fp_rx": 5,
    "fp_touch": 13,  # R503 WAKEUP output: low while a finger touches
}


class Board:
    def __init__(self, pins: "dict | None" = None, wdt_ms: int = 8000) -> None:
        p = pins or DEFAULT_PINS
        self._strike = machine.Pin(p["strike"], machine.Pin.OUT, value=0)
        self._door = machine.Pin(p["door"], machine.Pin.IN, machine.Pin.PULL_UP)
        self._exit = machine.Pin(p["exit"], machine.Pin.IN, machine.Pin.PULL_UP)
        self._led = machine.Pin(p["led"], machine.Pin.OUT, value=0)
        self._buzzer = machine.Pin(p["buzzer"], machine.Pin.OUT, value=0)
        self._rows = [machine.Pin(r, machine.Pin.OUT, value=1) for r in p["rows"]]
        self._cols = [machine.Pin(c, machine.Pin.IN, machine.Pin.PULL_UP) for c in p["cols"]]
        self.uart = machine.UART(2, baudrate=57600, tx=p["fp_tx"], rx=p["fp_rx"], timeout=0)
        self._touch = machine.Pin(p["fp_touch"], machine.Pin.IN, machine.Pin.PULL_UP)
        self._touch_prev = 1
        self.rtc = machine.RTC()
        self.wdt = machine.WDT(timeout=wdt_ms)
        self._held = ""  # key currently held down (reported once per press)
        self._exit_prev = 1
        self._last_ticks = time.ticks_ms()
        self._mono_ms = 0
        # A battery-backed RTC keeps its time through a power cut; one that
        # restarted at 2000-01-01 is unset until the gateway sends the time.
        self._clock_set = self.rtc.datetime()[0] >= 2025

    # -- actuators ---------------------------------------------------------------

    def strike(self, on: bool) -> None:
        self._strike.value(1 if on else 0)
        self._led.value(1 if on else 0)

    def blink(self) -> None:
        self._led.value(1)
        time.sleep_ms(100)
        self._led.value(0)

    def beep(self, n: int) -> None:
        for _ in range(n):
            self._buzzer.value(1)
            time.sleep_ms(40)
            self._buzzer.value(0)
            time.sleep_ms(40)

    # -- inputs ------------------------------------------------------------------

    def _scan(self) -> str:
        for r, row in enumerate(self._rows):
            row.value(0)
            for c, col in enumerate(self._cols):
                if col.value() == 0:
                    row.value(1)
                    return KEYS[r][c]
            row.value(1)
        return ""

    def keypad_key(self) -> "str | None":
        k = self._scan()
        if k == self._held:
            return None  # still held, or still nothing
        self._held = k
        return k or None

    def exit_pressed(self) -> bool:
        v = self._exit.value()
        pressed = v == 0 and self._exit_prev == 1
        self._exit_prev = v
        return pressed

    def finger_touched(self) -> bool:
        v = self._touch.value()
        touched = v == 0 and self._touch_prev == 1
        self._touch_prev = v
        return touched

    def door_open(self) -> bool:
        return self._door.value() == 1

    # -- clocks and watchdog -----------------------------------------------------

    def time(self) -> "int | None":
        return time.time() + EPOCH_OFFSET if self._clock_set else None

    def set_time(self, t: int) -> None:
        tm = time.gmtime(t - EPOCH_OFFSET)
        # RTC.datetime takes (year, month, day, weekday, hours, minutes, seconds, subseconds).
        self.rtc.datetime((tm[0], tm[1], tm[2], tm[6], tm[3], tm[4], tm[5], 0))
        self._clock_set = True

    def mono(self) -> float:
        # ticks_ms wraps (about 12 days on ESP32): accumulate differences.
        now = time.ticks_ms()
        self._mono_ms += time.ticks_diff(now, self._last_ticks)
        self._last_ticks = now
        return self._mono_ms / 1000

    def wdt_feed(self) -> None:
        self.wdt.feed()

    def fp_ticks(self) -> int:
        return time.ticks_ms()  # type: ignore[return-value]  # the stubs' _TicksMs is an int

    # -- network -----------------------------------------------------------------

    def wifi(self, ssid: str, password: str) -> network.WLAN:
        wlan = network.WLAN(network.STA_IF)
        wlan.active(True)
        if not wlan.isconnected():
            wlan.connect(ssid, password)
        return wlan

    def mqtt_client(
        self, client_id: str, server: str, port: int, user: str, password: str, keepalive: int
    ) -> MQTTClient:
        return MQTTClient(client_id, server, port=port, user=user, password=password, keepalive=keepalive)
