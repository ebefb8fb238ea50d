"""The gateway daemon: cloud link, local link, command relay, durable record
outbox and uploader, health. One thread owns all state (`run`); paho's
network threads only queue what arrives.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import queue
import threading
import time
from collections import deque
from collections.abc import Callable
from concurrent.futures import Future
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import cbor2

from gateway import config as cfgmod
from gateway.bioservice import BioService
from gateway.control import ControlServer
from gateway.gate import Gate, GatePins
from gateway.metrics import Metrics
from gateway.mqttlink import Inbound, MqttLink
from gateway.outbox import GroupCommitter, Outbox
from gateway.relay import Answer, CommandRelay, Refused, ToCloud, ToLock
from gateway.schedule import AuthOp, AuthSchedule, ScheduleError
from gateway.sdnotify import Notifier
from gateway.statelock import StateLock
from gateway.store import atomic_write, open_db
from protocol import __version__, envelope, errors, keys, record
from protocol.errors import ProtocolError
from protocol.verifier import CodeVerifier

log = logging.getLogger("lockedge.gateway")

MAX_PAYLOAD = 64 * 1024
SEQ_RESERVE = 10_000
INFO_INTERVAL = 3600.0  # `info` is republished on every change, and hourly for its uptime


@dataclass
class Stats:
    records_in: int = 0
    records_duplicate: int = 0
    records_uploaded: int = 0
    records_acked: int = 0
    refused: dict[str, int] = field(default_factory=dict)
    last_upload: float = 0.0
    clock_drift: dict[str, float] = field(default_factory=dict)
    auth: dict[str, int] = field(default_factory=dict)
    decisions: dict[str, int] = field(default_factory=dict)  # "kind:reason" of each new pass record

    def decide(self, kind_reason: str) -> None:
        self.decisions[kind_reason] = self.decisions.get(kind_reason, 0) + 1

    def refuse(self, reason: str) -> None:
        key = reason.split(":")[0]
        self.refused[key] = self.refused.get(key, 0) + 1


class Gateway:
    def __init__(
        self,
        cfg: cfgmod.GatewayConfig,
        usb_backend: Any = None,
        mount_of: Any = None,
        clock: Callable[[], float] = time.time,
        pin_factory: Any = None,
    ) -> None:
        """`clock` is the wall clock (the site simulator runs an accelerated
        one); timers and retries stay on the monotonic clock."""
        self.cfg = cfg
        self.clock = clock
        cfg.state_dir.mkdir(parents=True, exist_ok=True)
        # One process writes this state: a second daemon, or a CLI that
        # would write the store or the outbox, is refused (StateLocked) and
        # asks this one over the control socket instead.
        self._state_lock = StateLock(cfg.state_dir / "gateway.lock")
        try:
            self._init(usb_backend, mount_of, pin_factory)
        except BaseException:
            self._state_lock.release()
            raise

    def _init(self, usb_backend: Any, mount_of: Any, pin_factory: Any) -> None:
        cfg = self.cfg
        clock = self.clock
        cfg.cloud.check_secrets()
        cfg.local.check_secrets()
        root = cfg.root_key()
        self.k_up = keys.derive(root, keys.UPLINK, cfg.id)
        self.k_cmd = keys.derive(root, keys.CMD, cfg.id)
        self.lock_keys = cfg.lock_keys()
        self.db = open_db(cfg.state_dir / "state.json")
        # Both copies of the small state unreadable: it starts empty (the
        # gate's remembered codes, blacklist and schedule come back from the
        # cloud's next updates), loudly, as a durable record.
        self.state_damaged = int(getattr(self.db.storage, "damaged", 0)) if not self.db.tables() else 0
        self.outbox = Outbox(cfg.state_dir / "outbox")
        if self.state_damaged:
            log.error("gateway state: every copy of state.json is damaged; starting from empty state")
            lost = f"copies-{self.state_damaged}"
            self.outbox.append_own(cfg.id, int(clock()), cfg.id, "none", lost, False, "state-damaged")
        self.control: ControlServer | None = None
        self.started_at = time.time()
        self.committer = GroupCommitter(self.outbox)
        self.relay = CommandRelay(set(self.lock_keys), timeout=cfg.command_timeout, window=cfg.command_window)
        self.local_rx = envelope.Receiver(
            lambda s, t: self.lock_keys.get(s) if t in ("rec", "hello") else None
        )
        self.cloud_rx = envelope.Receiver(lambda s, t: self.k_cmd if s == "cloud" else None)
        self.inbox: queue.Queue[Inbound | tuple[str, str] | tuple[str, Any]] = queue.Queue()
        self.stats = Stats()
        self.schedule = AuthSchedule(self.db)
        self._next_auth_tick = 0.0
        self.availability: dict[str, str] = {}
        self.firmware: dict[str, str] = {}  # lock -> the version its last `hello` said
        self._info_due = True  # the retained `info` message needs (re)publishing
        # sha256 of gateway.toml as read at start, first 16 hex digits: the
        # config that runs (a file edited since is not running until a restart).
        self.config_digest = hashlib.sha256(cfg.path.read_bytes()).hexdigest()[:16] if cfg.path else ""
        self._next_info = 0.0
        self._cloud_was_up = False
        self.metrics = Metrics(cfg.metrics) if cfg.metrics is not None else None
        self._seq = self._load_seq()
        self.wrong_codes = SiteRate(cfg.wrong_codes_alarm_per_hour, self._site_alarm)
        self._cursor: tuple[int, int] | None = None
        self._inflight: dict[tuple[str, int], float] = {}
        self._last_ack_progress = time.monotonic()
        self._stop = threading.Event()
        self._upload_due = True  # something may be waiting to go up
        self._next_status = 0.0
        self._next_time_sync = 0.0
        s = cfg.site
        self.cloud = MqttLink(
            "cloud",
            f"lockedge-gw-{cfg.id}",
            cfg.cloud,
            self.inbox,
            [f"site/{s}/lock/+/cmd", f"site/{s}/lock/+/bl", f"site/{s}/lock/+/time"]
            + [f"site/{s}/gw/{cfg.id}/{leaf}" for leaf in ("rec-ack", "req", "bl", "auth")],
            will=(self._t_availability(), b"offline"),
            online=(self._t_availability(), b"online"),
        )
        self.gate: Gate | None = None
        if cfg.gate is not None:
            gc = cfg.gate
            groups = gc.group_keys()
            verifier = CodeVerifier(
                gc.id, keys.derive(root, keys.CODE, gc.id), groups=groups, keypad_group=gc.keypad_group
            )
            self.gate = Gate(
                gc.id,
                verifier,
                self.outbox,
                self.db,
                GatePins(**gc.pins),
                open_seconds=gc.open_seconds,
                held_open_limit=gc.held_open_limit,
                on_event=lambda e: self.inbox.put(("gate-event", e)),
                on_record=lambda r: self.inbox.put(("gate-record", r)),
                pin_factory=pin_factory,
                clock=clock,
                identify=self._identify if cfg.biometrics is not None else None,
                authorized=self.schedule.authorized,
            )
        self.local = MqttLink(
            "local",
            f"lockedge-gw-{cfg.id}",
            cfg.local,
            self.inbox,
            ["lock/+/ack", "lock/+/evt", "lock/+/rec", "lock/+/availability", "lock/+/ent-ack"],
        )
        self.bio: BioService | None = None
        if cfg.biometrics is not None:
            self.bio = BioService(
                cfg.biometrics, cfg.id, cfg.site, cfg.state_dir, self.lock_keys, self.outbox,
                self._publish_local, lambda e: self.inbox.put(("bio-event", e)),
                usb_backend=usb_backend, clock=clock, **({"mount_of": mount_of} if mount_of else {}),
            )  # fmt: skip

    def _identify(self, template: bytes) -> str | None:
        g = self.bio.gallery if self.bio is not None else None
        m = g.identify(template) if g is not None else None
        return m.ref if m is not None else None

    def at_gate(self, kind: str, data: Any) -> Future[Any]:
        """Input from the gate's readers ("keypad", "scan", "finger"), decided
        on the daemon's thread (which owns the gallery and the verifier);
        the future resolves to the Decision."""
        fut: Future[Any] = Future()
        self.inbox.put(("gate-input", (kind, data, fut)))
        return fut

    def _publish_local(self, topic: str, payload: bytes) -> None:
        self.local.publish(topic, payload)

    # -- topics and sequence numbers ------------------------------------------

    def _t_status(self) -> str:
        return f"site/{self.cfg.site}/gw/{self.cfg.id}/status"

    def _t_info(self) -> str:
        return f"site/{self.cfg.site}/gw/{self.cfg.id}/info"

    def _t_availability(self) -> str:
        return f"site/{self.cfg.site}/gw/{self.cfg.id}/availability"

    def _load_seq(self) -> int:
        # Envelope sequence numbers must grow across restarts (the cloud keeps
        # a replay window): reserve blocks on disk, start past the reservation.
        t = self.db.table("meta")
        doc = t.get(doc_id=1)
        start = int(doc["seq_reserved"]) if doc else 0
        if not doc and self.state_damaged:
            # The reservation is lost: start past any number a gateway can
            # have used (milliseconds since 1970 outrun a message a millisecond).
            start = int(time.time() * 1000)
        self._reserved = start + SEQ_RESERVE
        if doc:
            t.update({"seq_reserved": self._reserved}, doc_ids=[1])
        else:
            t.insert({"seq_reserved": self._reserved})
        return start

    def _next_seq(self) -> int:
        self._seq += 1
        if self._seq >= self._reserved:
            self._reserved = self._seq + SEQ_RESERVE
            self.db.table("meta").update({"seq_reserved": self._reserved}, doc_ids=[1])
        return self._seq

    def seal_up(self, typ: str, body: object) -> bytes:
        return envelope.seal(self.k_up, typ, self.cfg.id, self._next_seq(), int(self.clock()), body)

    # -- lifecycle -------------------------------------------------------------

    def start(self) -> None:
        self.control = ControlServer(self.cfg.state_dir, lambda rq, f: self.inbox.put(("control", (rq, f))))
        if self.metrics is not None:
            self.metrics.start()  # a taken port fails the start, before READY=1
        self.local.start()
        self.cloud.start()

    def stop(self) -> None:
        self._stop.set()

    def run(self, notify: Notifier | None = None) -> None:
        """The main loop; returns after `stop()` once in-flight work is drained.
        `notify`: systemd's readiness and watchdog (gateway/sdnotify.py)."""
        sd = notify or Notifier({})
        if self.bio is not None:
            self.bio.keepalive = sd.watchdog  # imports run in this loop and may take minutes
        self.start()
        log.info("gateway %s started (lockedge %s, site %s, %d locks, config %s)", self.cfg.id, __version__,
                 self.cfg.site, len(self.lock_keys), self.config_digest or "-")  # fmt: skip
        sd.ready(f"gateway {self.cfg.id}: {len(self.lock_keys)} locks")
        try:
            while not self._stop.is_set():
                self._step(0.05)
                sd.watchdog()
            sd.stopping()
            self._drain()
        finally:
            self.committer.close()
            self.cloud.stop(farewell=(self._t_availability(), b"offline"))
            self.local.stop()
            if self.metrics is not None:
                self.metrics.close()
            if self.gate is not None:
                self.gate.close()
            self.outbox.close()
            if self.control is not None:
                self.control.close()
            self._state_lock.release()
            log.info("gateway %s stopped", self.cfg.id)

    def _drain(self, budget: float = 5.0) -> None:
        # SIGTERM: stop taking new work, let what is queued reach the outbox,
        # give in-flight uploads a moment to be acknowledged.
        end = time.monotonic() + budget
        while time.monotonic() < end:
            self._step(0.05)
            if self.inbox.empty() and (not self._inflight or not self.cloud.connected.is_set()):
                break

    def _step(self, wait: float) -> None:
        try:
            item = self.inbox.get(timeout=wait)
        except queue.Empty:
            item = None
        n = 0
        while item is not None and n < 1000:
            self._handle(item)
            n += 1
            try:
                item = self.inbox.get_nowait()
            except queue.Empty:
                item = None
        now = self.clock()
        if self.gate is not None:
            self.gate.tick()
        if time.monotonic() >= self._next_auth_tick:
            self._next_auth_tick = time.monotonic() + 1.0
            for op in self.schedule.tick(int(now)):
                self.stats.auth["applied"] = self.stats.auth.get("applied", 0) + 1
                log.info("authorization %s %s applied (%s)", op.op_id, op.action, op.object_id)
        self._perform(self.relay.tick(now))
        if self.bio is not None:
            mono = time.monotonic()
            self.bio.poll(mono)
            self.bio.deliver(mono, {lk for lk, st in self.availability.items() if st == "online"})
        self._upload()
        if time.monotonic() >= self._next_time_sync:
            self._next_time_sync = time.monotonic() + self.cfg.time_sync_interval
            for lock in self.lock_keys:
                self.send_time(lock)
        if time.monotonic() >= self._next_status:
            self._next_status = time.monotonic() + self.cfg.status_interval
            self.publish_status()
        up = self.cloud.connected.is_set()
        if up and (self._info_due or not self._cloud_was_up or time.monotonic() >= self._next_info):
            self._next_info = time.monotonic() + INFO_INTERVAL
            self.publish_info()
        self._cloud_was_up = up

    # -- inbound ---------------------------------------------------------------

    def _handle(self, item: Inbound | tuple[str, Any]) -> None:
        if isinstance(item, tuple):
            source, what = item
            if source == "cloud":
                # Unacked uploads will be sent again from the oldest record.
                self._cursor = None
                self._inflight.clear()
                self._upload_due = True
            elif source == "records-durable":
                self._ack_lock(*what)
            elif source == "gate-record":
                self._upload_due = True
                self.stats.decide(f"{what.kind}:{what.reason}")
                if what.kind == "code" and what.reason == "wrong-code":
                    self.wrong_codes.count([what])
            elif source == "gate-input":
                self._gate_input(*what)
            elif source == "control":
                self._control(*what)
            elif source == "bio-event":
                body = {str(k): v for k, v in what.items() if isinstance(v, (str, int))}
                self.cloud.publish(f"site/{self.cfg.site}/gw/{self.cfg.id}/evt", self.seal_up("evt", body))
                self._upload_due = True  # an import writes an audit record
            elif source == "gate-event":
                body = {str(k): v for k, v in what.items() if isinstance(v, (str, int))}
                log.warning("gate alarm: %s", body)
                self.cloud.publish(f"site/{self.cfg.site}/gw/{self.cfg.id}/evt", self.seal_up("evt", body))
            return
        mq = self.cloud if item.link == "cloud" else self.local
        deferred = False
        if len(item.payload) > MAX_PAYLOAD:
            mq.ack(item)
            return self._refuse(item.topic, "too-large")
        parts = item.topic.split("/")
        try:
            if item.link == "local" and len(parts) == 3 and parts[0] == "lock":
                deferred = self._from_lock(parts[1], parts[2], item)
            elif item.link == "cloud" and len(parts) == 5 and parts[2] == "lock" and parts[4] == "cmd":
                self._perform(self.relay.from_cloud(parts[3], item.payload, self.clock()))
            elif item.link == "cloud" and len(parts) == 5 and parts[2] == "lock" and parts[4] == "bl":
                self._cloud_to_lock(parts[3], "bl", item.payload)
            elif item.link == "cloud" and len(parts) == 5 and parts[2] == "lock" and parts[4] == "time":
                self._cloud_to_lock(parts[3], "time", item.payload, qos=0)
            elif item.link == "cloud" and len(parts) == 5 and parts[4] == "bl":
                self._gate_blacklist(item.payload)
            elif item.link == "cloud" and len(parts) == 5 and parts[4] == "auth":
                self._auth(item.payload)
            elif item.link == "cloud" and len(parts) == 5 and parts[4] == "rec-ack":
                self._rec_ack(item.payload)
            elif item.link == "cloud" and len(parts) == 5 and parts[4] == "req":
                self._request(item)
            else:
                self._refuse(item.topic, "topic outside the tree")
        except ProtocolError as e:
            self._refuse(item.topic, f"{e.reason}: {e.message}")
        finally:
            if not deferred:
                mq.ack(item)

    def _refuse(self, where: str, reason: str) -> None:
        self.stats.refuse(reason)
        log.warning("refused message on %s: %s", where, reason)

    def _from_lock(self, lock: str, kind: str, item: Inbound) -> bool:
        """Handle a message from a lock; True if its broker ack is deferred."""
        payload = item.payload
        if lock not in self.lock_keys:
            self._refuse(f"lock/{lock}/{kind}", "unknown lock")
            return False
        if kind == "ack":
            self._perform(self.relay.from_lock(lock, payload, self.clock()))
        elif kind == "evt":
            env = envelope.parse(payload)
            if env.sender != lock:
                self._refuse(f"lock/{lock}/evt", "event from another sender")
                return False
            if env.type == "hello":  # to us (local key): which firmware, for `info`; not passed on
                body = self.local_rx.open(payload).body
                fw = body.get(1) if isinstance(body, dict) else None
                if not isinstance(fw, str) or not 0 < len(fw) <= 32:
                    raise ProtocolError(errors.INVALID, "hello: firmware version is 1..32 characters")
                self.firmware[lock] = fw
                self._info_due = True
                return False
            self.cloud.publish(f"site/{self.cfg.site}/lock/{lock}/evt", payload)
        elif kind == "availability":
            state = payload.decode(errors="replace")[:16]
            if state not in ("online", "offline"):
                self._refuse(f"lock/{lock}/availability", "unknown availability")
                return False
            if self.availability.get(lock) != state:
                self._info_due = True
            self.availability[lock] = state
            self.cloud.publish(f"site/{self.cfg.site}/lock/{lock}/availability", payload, retain=True)
            if state == "online":
                self.send_time(lock)  # a lock that just booted may have no clock
        elif kind == "rec":
            self._records(lock, item)
            return True
        elif kind == "ent-ack" and self.bio is not None:
            self.bio.on_ack(lock, payload)
        else:
            self._refuse(f"lock/{lock}/{kind}", "topic outside the tree")
        return False

    def _records(self, lock: str, item: Inbound) -> None:
        env = self.local_rx.open(item.payload)
        if env.sender != lock or env.type != "rec":
            raise ProtocolError("invalid-field", "record batch from another sender")
        if env.ts:  # authenticated with the lock's key: its clock, as it sees it
            self.stats.clock_drift[lock] = round(env.ts - self.clock(), 1)
        recs = record.batch_from_body(env.body)
        if any(r.device != lock for r in recs):
            raise ProtocolError("invalid-field", "a lock may only submit its own records")
        items = [(r.device, r.seq, r.encode()) for r in recs]
        why = {(r.device, r.seq): f"{r.kind}:{r.reason}" for r in recs}

        def durable(res: list[bool]) -> None:
            # Called on the committer's thread after fsync: hand back to ours.
            self.inbox.put(("records-durable", (lock, items, res, item, why)))

        self.committer.submit(items, durable)

    def _ack_lock(
        self,
        lock: str,
        items: list[tuple[str, int, bytes]],
        res: list[bool],
        item: Inbound,
        why: dict[tuple[str, int], str] | None = None,
    ) -> None:
        # Runs after fsync: only now may the broker and the lock forget them.
        self.local.ack(item)
        self._upload_due = True
        self.stats.records_in += sum(res)
        self.stats.records_duplicate += len(res) - sum(res)
        fresh = [(d, s) for (d, s, _b), new in zip(items, res, strict=True) if new]
        why = why or {}
        for k in fresh:  # stored now: counted once
            self.stats.decide(why.get(k, "?"))
        self.wrong_codes.count([k for k in fresh if why.get(k) == "code:wrong-code"])
        body = [lock, [seq for _d, seq, _b in items]]
        msg = envelope.seal(
            self.lock_keys[lock], "rec-ack", self.cfg.id, self._next_seq(), int(self.clock()), body
        )
        self.local.publish(f"lock/{lock}/rec-ack", msg)

    def _site_alarm(self, count: int) -> None:
        """Durable: wrong codes across the site above the configured rate."""
        now = int(self.clock())
        self.outbox.append_own(
            self.cfg.id, now, self.cfg.id, "none", f"n{count}/h", False, "site-brute-force"
        )
        log.warning("site alarm: %d wrong codes across the site in the last hour", count)
        self._upload_due = True

    def send_time(self, lock: str) -> None:
        """The gateway's time for a lock (its local key). A lock takes it only
        as a small forward step (firmware/clock.py); QoS 0, so the broker never
        queues it for an offline lock to deliver stale."""
        body = {1: int(self.clock()), 2: int(time.monotonic() * 1000)}
        msg = envelope.seal(
            self.lock_keys[lock], "time", self.cfg.id, self._next_seq(), int(self.clock()), body, lock
        )
        self.local.publish(f"lock/{lock}/time", msg, qos=0)

    def _rec_ack(self, payload: bytes) -> None:
        env = self.cloud_rx.open(payload)
        if env.type != "rec-ack" or not isinstance(env.body, list):
            raise ProtocolError("malformed", "record ack body")
        acks = []
        for it in env.body:
            if not (
                isinstance(it, list) and len(it) == 2 and isinstance(it[0], str) and isinstance(it[1], int)
            ):
                raise ProtocolError("malformed", "record ack entry")
            acks.append((it[0], it[1]))
            self._inflight.pop((it[0], it[1]), None)
        n = self.outbox.ack(acks)
        self.stats.records_acked += n
        self._upload_due = True
        self._last_ack_progress = time.monotonic()

    def _request(self, item: Inbound) -> None:
        env = self.cloud_rx.open(item.payload)
        if env.type != "req" or not isinstance(env.body, dict):
            raise ProtocolError("malformed", "request body")
        corr = env.body.get(2)
        if env.body.get(1) == "status":
            resp = {1: corr, 2: "ok", 3: json.dumps(self.status())}
        else:
            resp = {1: corr, 2: "unknown-verb"}
        # MQTT v5: answer on the requester's response topic with its correlation
        # data; otherwise (3.1.1) on .../resp with the correlation id in the body.
        topic = f"site/{self.cfg.site}/gw/{self.cfg.id}/resp"
        if item.response_topic and item.response_topic.startswith(f"site/{self.cfg.site}/"):
            topic = item.response_topic
        self.cloud.publish(topic, self.seal_up("resp", resp), correlation=item.correlation)

    def _gate_input(self, kind: str, data: Any, fut: Future[Any]) -> None:
        try:
            if self.gate is None:
                raise RuntimeError("this gateway runs no gate")
            if kind == "keypad":
                fut.set_result(self.gate.keypad(data))
            elif kind == "scan":
                fut.set_result(self.gate.scan(data))
            elif kind == "finger":
                fut.set_result(self.gate.finger(data))
            else:
                raise ValueError(f"no gate reader {kind!r}")
        except Exception as e:  # the caller learns why; the loop goes on
            fut.set_exception(e)

    def _control(self, req: dict[str, Any], fut: Future[dict[str, Any]]) -> None:
        """A request from a local CLI (gateway/control.py), on our thread."""
        op = req.get("op")
        if op == "status":
            fut.set_result({"ok": True, "status": self.status()})
        elif op == "reload":
            fut.set_result(self.reload_locks())
        elif op == "import":
            folder = req.get("dir")
            if self.bio is None:
                fut.set_result({"ok": False, "error": "this gateway has no [biometrics] section"})
            elif not isinstance(folder, str) or not os.path.isabs(folder):
                fut.set_result({"ok": False, "error": "import needs an absolute folder"})
            else:
                reports = self.bio.import_dir(Path(folder), int(self.clock()))
                self._upload_due = True  # each import wrote an audit record
                fut.set_result({"ok": True, "reports": [r.as_dict() for r in reports]})
        else:
            fut.set_result({"ok": False, "error": f"unknown request {str(op)[:40]!r}"})

    def reload_locks(self) -> dict[str, Any]:
        """Read locks.json again (`lockedge lock add/remove`, SIGHUP): a lock
        added is served from now on, a removed one is refused from now on,
        without a restart. The dict is changed in place: the receivers,
        the relay and the biometric service hold it. A file that does not
        read keeps the locks as they were."""
        try:
            new = self.cfg.lock_keys()
        except (cfgmod.ConfigError, OSError) as e:
            log.error("locks not reloaded, the running set is kept: %s", e)
            return {"ok": False, "error": str(e)}
        added = sorted(set(new) - set(self.lock_keys))
        removed = sorted(set(self.lock_keys) - set(new))
        changed = sorted(k for k in set(new) & set(self.lock_keys) if new[k] != self.lock_keys[k])
        self.lock_keys.clear()
        self.lock_keys.update(new)
        self.relay.known.clear()
        self.relay.known.update(new)
        for lock in removed:
            self.availability.pop(lock, None)
            self.firmware.pop(lock, None)
        log.info("locks reloaded: %d served (added %s, removed %s, key changed %s)", len(new),
                 added or "none", removed or "none", changed or "none")  # fmt: skip
        self._info_due = True
        return {"ok": True, "locks": len(new), "added": added, "removed": removed, "changed": changed}

    def request_reload(self) -> None:
        """From a signal handler: the reload runs on the daemon's thread."""
        self.inbox.put(("control", ({"op": "reload"}, Future())))

    def _cloud_to_lock(self, lock: str, leaf: str, payload: bytes, qos: int = 1) -> None:
        """Relay the cloud's envelope for one lock unchanged: a blacklist update
        (`bl`) or the answer to its time request (`time`). Both are MACed with
        the lock's cmd key, which the gateway does not hold; it checks only
        that the envelope is the cloud's, of that type, for this lock. Time
        goes at QoS 0: a lock that went offline meanwhile never gets it late
        (it would refuse it as late anyway)."""
        env = envelope.parse(payload)
        if lock not in self.lock_keys:
            raise ProtocolError(errors.UNKNOWN_SENDER, f"{leaf} for a lock this gateway does not serve")
        if env.type != leaf or env.sender != "cloud" or env.rcpt != lock:
            raise ProtocolError(errors.MALFORMED, f"not the cloud's {leaf} for this lock")
        self.local.publish(f"lock/{lock}/{leaf}", payload, qos=qos)

    def _gate_blacklist(self, payload: bytes) -> None:
        env = self.cloud_rx.open(payload)
        if env.type != "bl":
            raise ProtocolError(errors.MALFORMED, "not a blacklist update")
        if self.gate is None:
            raise ProtocolError(errors.INVALID, "this gateway runs no gate")
        self.gate.apply_blacklist(env.body)

    def _auth(self, payload: bytes) -> None:
        """A burst of grant/revoke operations for the gate's schedule. Every
        operation is checked before any is cached: a malformed one refuses
        the whole envelope and changes nothing."""
        env = self.cloud_rx.open(payload)
        if env.type != "auth" or not isinstance(env.body, list):
            raise ProtocolError(errors.MALFORMED, "authorization body")
        try:
            ops = [AuthOp.from_dict(_auth_op(x)) for x in env.body]
        except ScheduleError as e:
            raise ProtocolError(errors.INVALID, str(e)) from None
        for op in ops:
            try:
                result = self.schedule.receive(op)
            except ScheduleError as e:
                self._refuse("auth", f"invalid: {e}")
                continue
            self.stats.auth[result] = self.stats.auth.get(result, 0) + 1

    # -- outbound --------------------------------------------------------------

    def _perform(self, actions: list[Any]) -> None:
        s = self.cfg.site
        for a in actions:
            if isinstance(a, ToLock):
                # Expires at the command's deadline: a broker holding it for an
                # offline lock drops it rather than deliver it late.
                left = max(1, a.deadline - int(self.clock()))
                self.local.publish(f"lock/{a.lock}/cmd", a.data, expiry=left)
            elif isinstance(a, ToCloud):
                self.cloud.publish(f"site/{s}/lock/{a.lock}/ack", a.data)
            elif isinstance(a, Answer):
                body = {1: a.cmd_id, 2: a.status, 3: a.lock, 4: a.reason}
                self.cloud.publish(f"site/{s}/lock/{a.lock}/ack", self.seal_up("ack", body))
            elif isinstance(a, Refused):
                self._refuse(f"lock {a.lock}", a.reason)

    def _upload(self) -> None:
        if not self.cloud.connected.is_set():
            return
        if self._inflight and time.monotonic() - self._last_ack_progress > 15:
            # Acks stopped coming (lost, or the cloud restarted): send again.
            self._cursor = None
            self._inflight.clear()
            self._last_ack_progress = time.monotonic()
            self._upload_due = True
        if not self._upload_due:
            return
        while len(self._inflight) < self.cfg.upload_window:
            entries, cur = self.outbox.read(self._cursor, self.cfg.upload_batch)
            entries = [e for e in entries if (e.device, e.seq) not in self._inflight]
            self._cursor = cur
            if not entries:
                self._upload_due = False
                return
            body = [record.BATCH_VERSION, [cbor2.loads(e.data) for e in entries]]
            self.cloud.publish(f"site/{self.cfg.site}/gw/{self.cfg.id}/rec", self.seal_up("rec", body))
            now = time.monotonic()
            if not self._inflight:
                self._last_ack_progress = now
            for e in entries:
                self._inflight[(e.device, e.seq)] = now
            self.stats.records_uploaded += len(entries)
            self.stats.last_upload = self.clock()

    def status(self) -> dict[str, Any]:
        age = self.outbox.oldest_unacked_age()
        rep = self.outbox.report
        return {
            "gateway": self.cfg.id,
            "pid": os.getpid(),
            "written_at": round(time.time(), 1),  # wall clock: `gateway status` tells a stale file by it
            "uptime_s": round(time.time() - self.started_at),
            "cloud": self.cloud.connected.is_set(),
            "local": self.local.connected.is_set(),
            "backlog": self.outbox.backlog(),
            "gaps": self.outbox.gaps(),
            "outbox_recovery": {
                "torn_bytes": rep.torn_bytes,
                "corrupt_bytes": rep.corrupt_bytes,
                "corrupt_runs": rep.corrupt_frames,
                "undecodable": rep.undecodable,
                "repaired": rep.files_repaired,
            },
            "oldest_unacked_age_s": None if age is None else round(age, 1),
            "last_upload": self.stats.last_upload,
            "records_in": self.stats.records_in,
            "records_acked": self.stats.records_acked,
            "refused": self.stats.refused,
            "locks": self.availability,
            "clock_drift_s": self.stats.clock_drift,
            "authorizations": self.stats.auth,
            "decisions": self.stats.decisions,
            **({"biometrics": self.bio.report()} if self.bio is not None else {}),
        }

    def info(self) -> dict[str, Any]:
        """The retained `info` message (as Zigbee2MQTT's bridge/info): what
        runs here, since when, with which config, serving which locks."""
        return {
            "gateway": self.cfg.id,
            "site": self.cfg.site,
            "version": __version__,
            "started_at": round(self.started_at),
            "uptime_s": round(time.time() - self.started_at),
            "config_digest": self.config_digest,
            "locks": {
                lock: {
                    "firmware": self.firmware.get(lock),
                    "availability": self.availability.get(lock, "unknown"),
                }
                for lock in sorted(self.lock_keys)
            },
        }

    def publish_info(self) -> None:
        if self.cloud.connected.is_set():
            self.cloud.publish(self._t_info(), json.dumps(self.info()).encode(), retain=True)
            self._info_due = False

    def publish_status(self) -> None:
        st = self.status()
        atomic_write(self.cfg.state_dir / "status.json", json.dumps(st).encode(), durable=False)
        if self.metrics is not None:
            self.metrics.update(st)
        if st["cloud"]:  # the same snapshot: a status sent to the cloud never says the cloud is down
            self.cloud.publish(self._t_status(), json.dumps(st).encode(), retain=True)


class SiteRate:
    """Wrong codes across the site in a sliding hour; `alarm(count)` once
    the count passes `limit`, then again only after it has fallen back."""

    def __init__(self, limit: int, alarm: Callable[[int], None], window: float = 3600.0) -> None:
        self.limit = limit
        self.alarm = alarm
        self.window = window
        self.times: deque[float] = deque()
        self.raised = False

    def count(self, items: list[object], now: float | None = None) -> None:
        t = time.monotonic() if now is None else now
        self.times.extend([t] * len(items))
        cut = t - self.window
        while self.times and self.times[0] < cut:
            self.times.popleft()
        n = len(self.times)
        if n > self.limit and not self.raised:
            self.raised = True
            self.alarm(n)
        elif n <= self.limit // 2:
            self.raised = False


_AUTH_FIELDS = {1: "op_id", 2: "object_id", 3: "action", 4: "auth_time", 5: "expires"}


def _auth_op(x: object) -> dict[str, Any]:
    """One operation of an `auth` body: {1: op id, 2: object, 3: action,
    4: authorization time, 5: expiry (grants, optional)}."""
    if not isinstance(x, dict):
        raise ScheduleError("an authorization operation is a map")
    return {name: x[k] for k, name in _AUTH_FIELDS.items() if k in x}
