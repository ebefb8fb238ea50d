"""A stand-in lock client for gateway tests, until the firmware simulator
(issue 4) exists: verifies commands with its cmd key, acks with its up key,
sends record batches with its local key and forgets them on rec-ack."""

from __future__ import annotations

import threading
import time

import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion

from gateway.mqttlink import nodelay
from protocol import envelope, keys, record
from protocol.errors import ProtocolError


class StubLock:
    def __init__(self, lock_id: str, root: bytes, port: int, password: str, auto_ack: bool = True) -> None:
        self.id = lock_id
        self.k_cmd = keys.derive(root, keys.CMD, lock_id)
        self.k_up = keys.derive(root, keys.UPLINK, lock_id)
        self.k_local = keys.derive(root, keys.LOCAL, lock_id)
        self.rx = envelope.Receiver(self._key_for)
        self.auto_ack = auto_ack
        self.commands: list[envelope.Envelope] = []
        self.times: list[int] = []
        self.refused: list[str] = []
        self.unacked: dict[int, record.PassRecord] = {}
        self.next_rec = 1
        self.env_seq = int(time.time() * 1000)
        self.lock = threading.Lock()
        self.connected = threading.Event()
        self.disconnects = 0  # sessions the broker ended (a takeover shows here)
        c = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=lock_id, protocol=mqtt.MQTTv5)
        c.username_pw_set(lock_id, password)
        c.will_set(f"lock/{lock_id}/availability", b"offline", qos=1, retain=True)
        c.on_connect = self._on_connect
        c.on_message = self._on_message
        c.on_disconnect = self._on_disconnect
        self.client = c
        self.port = port

    def _key_for(self, sender: str, typ: str) -> bytes | None:
        if typ == "cmd" and sender == "cloud":
            return self.k_cmd
        if typ in ("rec-ack", "time"):
            return self.k_local
        return None

    def start(self) -> StubLock:
        self.client.connect_async("127.0.0.1", self.port)
        self.client.loop_start()
        if not self.connected.wait(10):
            raise RuntimeError(f"{self.id} could not connect")
        return self

    def _on_connect(self, c: mqtt.Client, u: object, f: object, rc: object, p: object) -> None:
        nodelay(c)
        for t in ("cmd", "rec-ack", "time", "bl"):
            c.subscribe(f"lock/{self.id}/{t}", qos=1)
        c.publish(f"lock/{self.id}/availability", b"online", qos=1, retain=True)
        self.connected.set()

    def _on_disconnect(self, c: mqtt.Client, u: object, f: object, rc: object, p: object) -> None:
        self.disconnects += 1

    def _seq(self) -> int:
        with self.lock:
            self.env_seq += 1
            return self.env_seq

    def _on_message(self, c: mqtt.Client, u: object, msg: mqtt.MQTTMessage) -> None:
        try:
            env = self.rx.open(bytes(msg.payload))
        except ProtocolError as e:
            self.refused.append(e.reason)
            return
        if env.type == "cmd":
            self.commands.append(env)
            if self.auto_ack:
                assert isinstance(env.body, dict)
                body = {1: env.body[2], 2: "done"}
                ack = envelope.seal(self.k_up, "ack", self.id, self._seq(), int(time.time()), body)
                c.publish(f"lock/{self.id}/ack", ack, qos=1)
        elif env.type == "time":
            assert isinstance(env.body, dict)
            self.times.append(env.body[1])
        elif env.type == "rec-ack":
            assert isinstance(env.body, list)
            with self.lock:
                for s in env.body[1]:
                    self.unacked.pop(s, None)

    def produce(self, n: int, batch: int = 100, reason: str = "ok") -> None:
        """Record n decisions and send them in batches (each send a new envelope)."""
        new = []
        with self.lock:
            for _ in range(n):
                granted = reason == "ok"
                r = record.PassRecord(
                    self.id, self.next_rec, int(time.time()), self.id, "code", "pc-1" if granted else "",
                    granted, reason,
                )  # fmt: skip
                self.unacked[r.seq] = r
                self.next_rec += 1
                new.append(r)
        for i in range(0, len(new), batch):
            self._send(new[i : i + batch])

    def _send(self, recs: list[record.PassRecord]) -> None:
        env = envelope.seal(
            self.k_local, "rec", self.id, self._seq(), int(time.time()), record.batch_body(recs)
        )
        self.client.publish(f"lock/{self.id}/rec", env, qos=1)

    def resend_unacked(self, batch: int = 100) -> None:
        with self.lock:
            pending = [self.unacked[s] for s in sorted(self.unacked)]
        for i in range(0, len(pending), batch):
            self._send(pending[i : i + batch])

    def stop(self) -> None:
        self.client.disconnect()
        self.client.loop_stop()
