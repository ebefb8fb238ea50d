"""The simulated lock hardware: the HAL the unchanged firmware runs on under
CPython. Strike, door contact, exit button, keypad, buzzer, a controllable
clock (wall clock may be unset or skewed), a watchdog counter, flash (a
directory, optionally with the power-cut injector), and an MQTT client
with the umqtt.simple interface over paho-mqtt.
"""

from __future__ import annotations

import queue
import threading
import time
from collections.abc import Callable

import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion

from gateway.mqttlink import nodelay


class UmqttShim:
    """umqtt.simple.MQTTClient's interface and behaviour over paho: connect
    blocks until CONNACK, a QoS 1 publish blocks until PUBACK, check_msg
    delivers what has arrived to the callback, and a lost connection raises
    OSError, as on the lock."""

    def __init__(
        self, client_id: str, server: str, port: int, user: str, password: str, keepalive: int
    ) -> None:
        self.c = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=client_id, protocol=mqtt.MQTTv311,
                             clean_session=False, reconnect_on_failure=False)  # fmt: skip
        self.c.username_pw_set(user, password)
        self.server, self.port, self.keepalive = server, port, keepalive
        self.cb: Callable[[bytes, bytes], None] | None = None
        self.q: queue.Queue[tuple[bytes, bytes]] = queue.Queue()
        self.up = threading.Event()
        self.refused = ""
        self.answered = threading.Event()
        self.c.on_connect = self._on_connect
        self.c.on_disconnect = lambda *a: self.up.clear()
        self.c.on_message = lambda c, u, m: self.q.put((m.topic.encode(), bytes(m.payload)))

    def _on_connect(self, c: mqtt.Client, u: object, f: object, rc: object, p: object) -> None:
        # A CONNACK came, accepting or refusing: connect() stops waiting once
        # the outcome is recorded (answered is set last).
        if getattr(rc, "is_failure", False):
            self.refused = str(rc)  # e.g. "Not authorized": the lock says why it is offline
            self.answered.set()
            return
        nodelay(c)
        self.up.set()
        self.answered.set()

    def set_callback(self, f: Callable[[bytes, bytes], None]) -> None:
        self.cb = f

    def set_last_will(self, topic: str, msg: bytes, retain: bool = False, qos: int = 0) -> None:
        self.c.will_set(topic, msg, qos=qos, retain=retain)

    def connect(self, clean_session: bool = True) -> bool:
        try:
            self.c.connect(self.server, self.port, self.keepalive)
        except OSError as e:
            raise OSError(f"connect failed: {e}") from None
        self.c.loop_start()
        self.answered.wait(5)
        if not self.up.is_set() or self.refused:
            self.c.loop_stop()
            raise OSError(
                f"broker refused the connection: {self.refused}" if self.refused else "connect timed out"
            )
        return False

    def _check(self) -> None:
        if not self.up.is_set():
            raise OSError("MQTT connection lost")

    def subscribe(self, topic: str, qos: int = 0) -> None:
        self._check()
        self.c.subscribe(topic, qos)

    def publish(self, topic: str, msg: bytes, retain: bool = False, qos: int = 0) -> None:
        self._check()
        info = self.c.publish(topic, msg, qos=qos, retain=retain)
        if qos:
            deadline = time.monotonic() + 5
            while not info.is_published():
                if not self.up.is_set() or time.monotonic() > deadline:
                    raise OSError("PUBACK not received")
                time.sleep(0.001)

    def check_msg(self) -> None:
        self._check()
        while True:
            try:
                topic, payload = self.q.get_nowait()
            except queue.Empty:
                return
            if self.cb is not None:
                self.cb(topic, payload)

    def disconnect(self) -> None:
        self.c.disconnect()
        self.c.loop_stop()


class SimHAL:
    def __init__(
        self, wall_offset: float = 0.0, clock_set: bool = True, clock: Callable[[], float] = time.time
    ) -> None:
        """`clock` stands for true time (the site simulator's is accelerated);
        the lock's own wall clock is that plus its offset, set by the
        gateway's signed time."""
        self.clock = clock
        self.strike_on = False
        self.strike_log: list[tuple[float, bool]] = []
        self.beeps = 0
        self.keys: queue.Queue[str] = queue.Queue()
        self._exit = threading.Event()
        self._door_open = False
        self._touch = threading.Event()
        self.wall_offset = wall_offset
        self.clock_set = clock_set
        self.wdt = 0
        self.clients: list[UmqttShim] = []

    # actuators
    def strike(self, on: bool) -> None:
        self.strike_on = on
        self.strike_log.append((time.monotonic(), on))

    def beep(self, n: int) -> None:
        self.beeps += n

    # sensors, driven by scripts and tests
    def type(self, keys: str) -> None:
        for k in keys:
            self.keys.put(k)

    def press_exit(self) -> None:
        self._exit.set()

    def set_door(self, is_open: bool) -> None:
        self._door_open = is_open

    def touch_finger(self) -> None:
        self._touch.set()

    def finger_touched(self) -> bool:
        if self._touch.is_set():
            self._touch.clear()
            return True
        return False

    def keypad_key(self) -> str | None:
        try:
            return self.keys.get_nowait()
        except queue.Empty:
            return None

    def exit_pressed(self) -> bool:
        if self._exit.is_set():
            self._exit.clear()
            return True
        return False

    def door_open(self) -> bool:
        return self._door_open

    # clocks
    def time(self) -> int | None:
        return int(self.clock() + self.wall_offset) if self.clock_set else None

    def set_time(self, t: int) -> None:
        self.wall_offset = t - self.clock()
        self.clock_set = True

    def mono(self) -> float:
        return time.monotonic()

    def wdt_feed(self) -> None:
        self.wdt += 1

    def mqtt_client(
        self, client_id: str, server: str, port: int, user: str, password: str, keepalive: int
    ) -> UmqttShim:
        c = UmqttShim(client_id, server, port, user, password, keepalive)
        self.clients.append(c)
        return c
