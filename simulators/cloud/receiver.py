"""The cloud side of the gateway link, for tests and the site simulator:
verifies record batches, removes duplicates by (device, sequence), acks
them (after the backend's SQLite has them, when there is a backend), sends
commands, blacklist updates and authorization bursts, and collects acks
and events."""

from __future__ import annotations

import json
import threading
import time
from collections import defaultdict
from collections.abc import Callable
from typing import Any

import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties

from gateway.mqttlink import nodelay
from protocol import envelope, keys, record
from protocol.errors import ProtocolError
from simulators.cloud.backend import CloudBackend


def seal_command(lock_root: bytes, lock: str, cmd_id: str, deadline: int, seq: int, ts: int,
                 action: str = "unlock", epoch: int = 0,
                 rekey: dict[str, int] | None = None) -> bytes:  # fmt: skip
    """A command as the cloud sends it: MACed with the lock's own cmd key (at
    its current epoch), so the lock checks it end to end and the gateway can
    only relay it. A rekey carries the new epochs in field 4."""
    k = keys.derive(lock_root, keys.CMD, lock, epoch)
    body: dict[int, Any] = {1: action, 2: cmd_id, 3: deadline}
    if rekey is not None:
        body[4] = rekey
    return envelope.seal(k, "cmd", "cloud", seq, ts, body, lock)


class CloudReceiver:
    def __init__(
        self,
        port: int,
        site: str,
        gateways: dict[str, bytes],
        lock_roots: dict[str, bytes],
        backend: CloudBackend | None = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        """gateways: {gateway id: root key}; lock_roots: {lock id: root key};
        clock: the wall clock (accelerated in the site simulator)."""
        self.site = site
        self.backend = backend
        self.clock = clock
        self.gw_up = {g: keys.derive(r, keys.UPLINK, g) for g, r in gateways.items()}
        self.gw_cmd = {g: keys.derive(r, keys.CMD, g) for g, r in gateways.items()}
        self.lock_roots = lock_roots
        self.epochs: dict[str, dict[str, int]] = {}  # lock -> purpose -> epoch, where not 0
        self.pending_epochs: dict[str, dict[str, int]] = {}  # rekeys sent, not yet acked
        self._probe: str | None = None
        self.rx = envelope.Receiver(self._key_for, window=1024)
        self.infos: dict[str, Any] = {}
        self.lock = threading.Lock()
        self.received: dict[tuple[str, int], record.PassRecord] = {}
        self.arrived: dict[tuple[str, int], float] = {}  # wall clock at first receipt
        self.order: dict[str, list[int]] = defaultdict(list)
        self.duplicates = 0
        self.acks: list[tuple[str, envelope.Envelope]] = []
        self.ack_times: dict[str, float] = {}  # command id -> perf_counter at arrival
        self.refused: list[str] = []
        self.receipts: list[tuple[str, bytes]] = []  # (lock, delivery receipt) forwarded by gateways
        self.statuses: dict[str, bytes] = {}
        self.events: list[tuple[str, object]] = []
        self.seq = 0
        self.cmd_seq = int(time.time())  # stays ahead of earlier runs' sequence numbers
        self.client = mqtt.Client(
            CallbackAPIVersion.VERSION2, client_id=f"cloud-{site}", protocol=mqtt.MQTTv5
        )
        self.client.on_message = self._on_message
        self.client.on_connect = self._on_connect
        self.connected = threading.Event()
        self.port = port

    def _key_for(self, sender: str, typ: str) -> bytes | None:
        if sender in self.gw_up:
            return self.gw_up[sender]
        if sender not in self.lock_roots:
            return None
        if sender == self._probe:
            return self.lock_key(sender, keys.UPLINK, self.pending_epochs[sender])
        return self.lock_key(sender, keys.UPLINK)

    def replace_gateway(self, gw: str, root: bytes) -> None:
        """A replaced (say stolen) gateway: only the new root's keys count."""
        self.gw_up[gw] = keys.derive(root, keys.UPLINK, gw)
        self.gw_cmd[gw] = keys.derive(root, keys.CMD, gw)

    def lock_key(self, lock: str, purpose: str, epochs: dict[str, int] | None = None) -> bytes:
        e = self.epochs.get(lock, {}) if epochs is None else epochs
        return keys.derive(self.lock_roots[lock], purpose, lock, e.get(purpose, 0))

    def _open_from_lock(self, payload: bytes) -> envelope.Envelope:
        """Open under the lock's current up key; after a rekey, a lock that
        applied it speaks under the new one: adopt its epochs then."""
        try:
            return self.rx.open(payload)
        except ProtocolError as e:
            sender = envelope.parse(payload).sender
            if e.reason != "bad-tag" or sender not in self.pending_epochs:
                raise
            self._probe = sender
            try:
                env = self.rx.open(payload)
            finally:
                self._probe = None
            self.epochs[sender] = self.pending_epochs.pop(sender)
            return env

    def start(self) -> CloudReceiver:
        # A persistent session, like a real cloud consumer: what the gateway
        # publishes while this client reconnects is queued for it.
        props = Properties(PacketTypes.CONNECT)
        props.SessionExpiryInterval = 3600
        self.client.connect_async("127.0.0.1", self.port, clean_start=False, properties=props)
        self.client.loop_start()
        if not self.connected.wait(10):
            raise RuntimeError("cloud receiver could not connect")
        return self

    def _on_connect(self, c: mqtt.Client, u: object, f: object, rc: object, p: object) -> None:
        nodelay(c)
        c.subscribe(f"site/{self.site}/#", qos=1)
        self.connected.set()

    def _on_message(self, c: mqtt.Client, u: object, msg: mqtt.MQTTMessage) -> None:
        parts = msg.topic.split("/")
        try:
            if parts[-1] == "rec":
                self._records(parts[3], bytes(msg.payload))
            elif parts[-1] == "ack":
                t = time.perf_counter()
                env = self._open_from_lock(bytes(msg.payload))
                with self.lock:
                    self.acks.append((parts[3], env))
                    if isinstance(env.body, dict) and isinstance(env.body.get(1), str):
                        self.ack_times.setdefault(env.body[1], t)
            elif parts[-1] == "evt":
                env = self._open_from_lock(bytes(msg.payload))
                if env.type == "time-req" and env.sender in self.lock_roots:
                    self.send_time(env.sender, env.seq)
                    return
                with self.lock:
                    self.events.append((parts[3], env.body))
                    b = env.body
                    if isinstance(b, dict) and b.get("event") == "delivery-receipt":
                        # For the office (Office.apply_delivery): the lock's
                        # proof of what it applied, carried by the gateway.
                        try:
                            self.receipts.append((str(b.get("lock")), bytes.fromhex(str(b.get("receipt")))))
                        except ValueError:
                            self.refused.append(f"{msg.topic}: receipt not hex")
            elif parts[-1] == "info" and parts[2] == "gw":
                with self.lock:  # the gateway's retained `info` (version, config digest, lock firmware)
                    self.infos[parts[3]] = json.loads(msg.payload)
            elif parts[-1] in ("status", "availability"):
                self.statuses[parts[3] + "/" + parts[-1] if parts[-1] == "availability" else parts[3]] = (
                    bytes(msg.payload)
                )
        except (ProtocolError, ValueError) as e:  # ValueError: an `info` that is not JSON
            with self.lock:
                self.refused.append(f"{msg.topic}: {e}")

    def records(self) -> dict[tuple[str, int], record.PassRecord]:
        """The records received so far, a copy taken under the receiver's
        lock: the MQTT thread adds to `received` while callers iterate."""
        with self.lock:
            return dict(self.received)

    def _records(self, gw: str, payload: bytes) -> None:
        env = self.rx.open(payload)
        recs = record.batch_from_body(env.body)
        acks = []
        now = self.clock()
        with self.lock:
            for r in recs:
                # Acked only once kept: in SQLite when there is a backend.
                if self.backend is not None:
                    self.backend.store_record(r, now)
                if r.key() in self.received:
                    self.duplicates += 1
                else:
                    self.received[r.key()] = r
                    self.arrived[r.key()] = now
                    self.order[r.device].append(r.seq)
                acks.append([r.device, r.seq])
        ack = envelope.seal(self.gw_cmd[gw], "rec-ack", "cloud", self._gw_seq(), int(now), acks)
        self.client.publish(f"site/{self.site}/gw/{gw}/rec-ack", ack, qos=1)

    def _gw_seq(self) -> int:
        # One increasing sequence for everything MACed with a gateway's cmd
        # key (rec-ack, bl, auth): they share the gateway's replay window.
        with self.lock:
            self.seq += 1
            return self.seq + int(time.time() * 1000)

    def _lock_seq(self) -> int:
        with self.lock:
            self.cmd_seq += 1
            return self.cmd_seq

    def send_command(self, lock: str, cmd_id: str, deadline: int, action: str = "unlock") -> None:
        epoch = self.epochs.get(lock, {}).get(keys.CMD, 0)
        wire = seal_command(
            self.lock_roots[lock], lock, cmd_id, deadline, self._lock_seq(), int(self.clock()), action, epoch
        )
        self.client.publish(f"site/{self.site}/lock/{lock}/cmd", wire, qos=1)

    def send_rekey(self, lock: str, cmd_id: str, deadline: int, new: dict[str, int]) -> None:
        """Move some of a lock's key epochs (a replaced gateway: `local`; a
        suspected leak: any). Sent under the current cmd key; the cloud keeps
        using the old keys until the lock's ack arrives under the new up key."""
        cur = self.epochs.get(lock, {})
        self.pending_epochs[lock] = {**cur, **new}
        wire = seal_command(
            self.lock_roots[lock], lock, cmd_id, deadline, self._lock_seq(), int(self.clock()), "rekey",
            cur.get(keys.CMD, 0), new,
        )  # fmt: skip
        self.client.publish(f"site/{self.site}/lock/{lock}/cmd", wire, qos=1)

    def send_time(self, lock: str, request_seq: int) -> None:
        """Signed time for a lock that asked (its cmd key): echoes the
        request's sequence, so the lock takes it only as that answer."""
        k = self.lock_key(lock, keys.CMD)
        now = int(self.clock())
        wire = envelope.seal(k, "time", "cloud", self._lock_seq(), now, {1: now, 2: request_seq}, lock)
        self.client.publish(f"site/{self.site}/lock/{lock}/time", wire, qos=1)

    def send_blacklist(self, body: dict[int, Any], locks: list[str], gateways: list[str]) -> None:
        """A blacklist snapshot or delta to locks (end to end, each lock's
        cmd key) and to gateways' own gates (the gateway's cmd key)."""
        for lock in locks:
            k = self.lock_key(lock, keys.CMD)
            wire = envelope.seal(k, "bl", "cloud", self._lock_seq(), int(self.clock()), body, lock)
            self.client.publish(f"site/{self.site}/lock/{lock}/bl", wire, qos=1)
        for gw in gateways:
            wire = envelope.seal(self.gw_cmd[gw], "bl", "cloud", self._gw_seq(), int(self.clock()), body)
            self.client.publish(f"site/{self.site}/gw/{gw}/bl", wire, qos=1)

    def send_auth(self, gw: str, ops: list[dict[int, Any]]) -> None:
        """A burst of grant/revoke operations for the gateway's schedule."""
        wire = envelope.seal(self.gw_cmd[gw], "auth", "cloud", self._gw_seq(), int(self.clock()), ops)
        self.client.publish(f"site/{self.site}/gw/{gw}/auth", wire, qos=1)

    def acks_for(self, cmd_id: str) -> list[tuple[str, envelope.Envelope]]:
        with self.lock:
            return [(lk, e) for lk, e in self.acks if isinstance(e.body, dict) and e.body.get(1) == cmd_id]

    def stop(self) -> None:
        self.client.disconnect()
        self.client.loop_stop()
