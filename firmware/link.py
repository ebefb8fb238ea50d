# The lock's link to the gateway's local broker (MicroPython).
#
# The MQTT client comes from the HAL (umqtt.simple on the board, a
# compatible shim in the simulator): connect with a last will, publish
# "online" retained, subscribe to this lock's topics; reconnect with
# exponential back-off; upload the journal's oldest unacked records in
# batches (a resend is a new envelope with the same record sequences);
# dispatch commands, record acks, time, blacklist updates and sealed
# bundle entries (answered with an "ent-ack" under the local key, so the
# gateway can report per-lock delivery, carrying the lock's delivery receipt
# for the office). Time from the gateway may only
# nudge the clock; the lock asks the cloud for signed time when it needs
# more (firmware/clock.py).
# umqtt.simple calls the callback before it sends PUBACK, so the callback
# only does work whose effects are durable before it returns.

from firmware.version import VERSION
from protocol import envelope
from protocol.errors import ProtocolError

BATCH = 50
ACK_TIMEOUT_S = 10
MAX_BACKOFF_S = 60


class Link:
    def __init__(self, core, hal, gateway_id, server, port, password):  # type: ignore[no-untyped-def]
        self.core = core
        self.hal = hal
        self.id = core.id
        self.gateway = gateway_id
        self.server = server
        self.port = port
        self.password = password
        self.rx = envelope.Receiver(self._key_for, window=64, max_senders=2)
        self.client = None
        self.connected = False
        self.backoff = 1
        self.next_try = 0
        self.inflight = None  # (seqs, sent at mono) of the batch awaiting rec-ack
        self.now = None
        self.mono = 0
        self.time_set = 0  # time messages taken (from the gateway or the cloud), a step or not
        # Sequences of the last time request and of the last cloud answer
        # taken to the end (clock set): an observer on another thread (the
        # site simulator) sees `clock.asked` cleared before the clock moves.
        self.time_asked = None
        self.time_answered = None
        self.last_error = ""  # why the link is down, for status and the fault report

    def _key_for(self, sender, typ):  # type: ignore[no-untyped-def]
        if sender == self.gateway and typ in ("rec-ack", "time"):
            return self.core.k_local  # the core's: a rekey changes it
        if sender == "cloud" and typ in ("bl", "time"):
            return self.core.k_cmd
        return None

    def _t(self, leaf):  # type: ignore[no-untyped-def]
        return "lock/%s/%s" % (self.id, leaf)

    def _connect(self) -> None:
        c = self.hal.mqtt_client(self.id, self.server, self.port, self.id, self.password, 30)
        c.set_callback(self._on_msg)
        c.set_last_will(self._t("availability"), b"offline", True, 1)
        c.connect(False)
        for leaf in ("cmd", "rec-ack", "time", "bl", "ent"):
            c.subscribe(self._t(leaf), 1)
        c.publish(self._t("availability"), b"online", True, 1)
        # Which firmware runs here, for the gateway's `info` message: to the
        # gateway (local key), which reads it and does not pass it on.
        hello = envelope.seal(self.core.k_local, "hello", self.id, self.core.next_seq(), self.now or 0,
                              {1: VERSION})  # fmt: skip
        c.publish(self._t("evt"), hello, False, 1)
        self.client = c
        self.connected = True
        self.backoff = 1
        self.inflight = None  # whatever was in flight is sent again

    def poll(self, now, mono) -> None:  # type: ignore[no-untyped-def]
        self.now = now
        self.mono = mono
        if not self.connected:
            if mono < self.next_try:
                return
            try:
                self._connect()
            except Exception as e:  # OSError, and umqtt's MQTTException for a refused CONNACK
                # (bad credentials): either way back off, never retry on every step.
                self.last_error = ("%s: %s" % (type(e).__name__, e))[:60]
                self.next_try = mono + self.backoff
                self.backoff = min(self.backoff * 2, MAX_BACKOFF_S)
                return
            self.last_error = ""
        c = self.client
        try:
            c.check_msg()  # type: ignore[union-attr]
            while self.core.outbox:
                leaf, data = self.core.outbox.pop(0)
                c.publish(self._t(leaf), data, False, 1)  # type: ignore[union-attr]
            self._upload(mono)
            if self.core.clock.want(mono):
                self._ask_time(c, mono)
        except OSError:
            self.connected = False
            self.next_try = mono + self.backoff

    def _upload(self, mono) -> None:  # type: ignore[no-untyped-def]
        if self.inflight is not None and mono - self.inflight[1] < ACK_TIMEOUT_S:
            return
        seqs, body = self.core.journal.pending_encoded(BATCH)
        if not seqs:
            self.inflight = None
            return
        k = self.core.k_local
        data = envelope.seal_encoded(k, "rec", self.id, self.core.next_seq(), self.now or 0, body)
        self.client.publish(self._t("rec"), data, False, 1)  # type: ignore[union-attr]
        self.inflight = (seqs, mono)

    def _ask_time(self, c, mono) -> None:  # type: ignore[no-untyped-def]
        # End to end to the cloud (up key); the answer must echo this
        # envelope's sequence, which is never reused.
        seq = self.core.next_seq()
        req = envelope.seal(self.core.k_up, "time-req", self.id, seq, self.now or 0, {})
        c.publish(self._t("evt"), req, False, 1)
        self.core.clock.asking(seq, mono)
        self.time_asked = seq

    def _time(self, env) -> None:  # type: ignore[no-untyped-def]
        body = env.body
        clock = self.core.clock
        if env.sender == "cloud":
            why = clock.from_cloud(body.get(1), body.get(2), self.mono)
            step = why == "ok"
        else:
            why, step = clock.from_gateway(body.get(1), self.hal.time(), self.mono)
        if why != "ok":
            self.core.events.append({"event": "time-refused", "reason": why})
            return
        if step:  # the mark and the gateway's steps are durable before the clock moves
            self.core.save(self.mono)
            self.hal.set_time(body[1])
        self.time_set += 1
        if env.sender == "cloud":
            self.time_answered = body[2]

    def _on_msg(self, topic, msg) -> None:  # type: ignore[no-untyped-def]
        leaf = topic.decode().rsplit("/", 1)[-1] if isinstance(topic, bytes) else topic.rsplit("/", 1)[-1]
        if leaf == "cmd":
            self.core.command(msg, self.now, self.mono)
            return
        if leaf == "ent":
            self._entry(msg)
            return
        try:
            env = self.rx.open(msg)
        except ProtocolError as e:
            self.core.events.append({"event": "refused", "reason": e.reason})
            return
        if env.type == "rec-ack" and isinstance(env.body, list) and env.body[0] == self.id:
            self.core.journal.ack(env.body[1])
            self.inflight = None  # send the next batch at once
        elif env.type == "time" and isinstance(env.body, dict):
            self._time(env)
        elif env.type == "bl":
            try:
                self.core.verifier.blacklist.apply(env.body, self.now or 0)
                self.core.save(self.mono)
            except ProtocolError as e:
                self.core.events.append({"event": "blacklist-refused", "reason": e.reason})

    def _entry(self, msg) -> None:  # type: ignore[no-untyped-def]
        if self.core.fp is None:
            result, e = "no-module", None
        else:
            result, e = self.core.load_entry(self.core.fp, msg, self.now, self.mono)
        # The bundle id and index are echoed only from an entry that opened;
        # a refused one is answered with its reason and the sealed bytes' hash.
        import hashlib

        body = {1: result, 2: hashlib.sha256(msg).digest()[:16]}
        if e is not None:
            body[3] = e.bundle
            body[4] = e.idx
            body[5] = self.core.receipt(e, result, self.now)  # for the office, via the gateway and the cloud
        ack = envelope.seal(self.core.k_local, "ent-ack", self.id, self.core.next_seq(), self.now or 0, body)
        self.core.outbox.append(("ent-ack", ack))
        self.core.events.append({"event": "entry", "result": result})
