# The lock's decisions, without I/O (MicroPython; the simulator runs it
# unchanged). The main loop feeds it keypad entries, remote commands, door
# and exit-button changes and the clocks; it drives the strike through the
# HAL, journals every decision durably *before* the strike moves, and queues
# outbound messages (command acks, events) for the link.
#
# Remote unlock needs a command MACed end to end with this lock's cmd key
# (the gateway cannot forge one), unseen before (replay window, persisted),
# and not past its deadline; every refusal is journaled with its reason.

from protocol import envelope, keys
from protocol.errors import ProtocolError
from protocol.verifier import CodeVerifier

_REASONS = {"bad-tag": "bad-tag", "duplicate": "replay", "stale": "replay"}
_REMEMBER = 32


class LockCore:
    def __init__(self, device_id, root_key, journal, hal, fs, open_s=5, held_open_s=60, verifier=None):  # type: ignore[no-untyped-def]
        self.id = device_id
        self.k_cmd = keys.derive(root_key, keys.CMD, device_id)
        self.k_up = keys.derive(root_key, keys.UPLINK, device_id)
        self.journal = journal
        self.hal = hal
        self.fs = fs
        self.open_s = open_s
        self.held_open_s = held_open_s
        self.verifier = verifier or CodeVerifier(device_id, keys.derive(root_key, keys.CODE, device_id))
        self.rx = envelope.Receiver(self._key_for, window=64, max_senders=2)
        self.done = []  # [(command id, status)], most recent last
        self.outbox = []  # (topic suffix, bytes) for the link
        self.events = []
        self.up_seq = 0
        self.close_at = None
        self.opened_at = None
        self.held_alarmed = False
        self.last_mono = 0
        # Fingerprint-module library slot -> pseudonymous person id, filled when
        # sealed bundle entries are loaded into the module (never templates).
        self.slots: dict = {}
        self._codes_sig: tuple = (0, 0, 0, 0)
        self._load()

    def _key_for(self, sender, typ):  # type: ignore[no-untyped-def]
        if sender == "cloud" and typ == "cmd":
            return self.k_cmd
        return None

    # -- persistence -----------------------------------------------------------

    def _load(self) -> None:
        from protocol import cbor

        raw = self.fs.read("core")
        if not raw:
            return
        st: list = cbor.decode(raw, 8)  # type: ignore[assignment]
        codes: list = cbor.decode(self.fs.read("codes") or cbor.encode([[], [0, []]]), 8)  # type: ignore[assignment]
        self.verifier.load({"used": codes[0], "throttle": st[1], "blacklist": codes[1]}, 0)
        self.rx.load(st[2])
        self.done = [tuple(x) for x in st[3]]
        self.up_seq = st[4] + 1000  # reserve: acks sent after the last save stay below
        self.slots = dict((int(k), v) for k, v in st[5])
        self._codes_sig = self._sig()

    def next_seq(self) -> int:
        """Envelope sequence for messages this lock sends (acks, batches)."""
        self.up_seq += 1
        if self.up_seq % 500 == 0:
            self._save(self.last_mono)  # the reservation on load covers the rest
        return self.up_seq

    def save(self, mono) -> None:  # type: ignore[no-untyped-def]
        self._save(mono)

    def _sig(self) -> tuple:
        v = self.verifier
        uses = 0
        for e in v.used.values():
            uses += e[1]
        return (len(v.used), uses, v.blacklist.version, len(v.blacklist.entries))

    def _save(self, mono) -> None:  # type: ignore[no-untyped-def]
        # Two files: "core" is small and changes on every decision (throttle,
        # replay window, command ids, slot table); "codes" (remembered one-time
        # codes, blacklist) is rewritten only when it changed. Re-encoding 200
        # remembered codes on every key press cost RAM and flash wear.
        from protocol import cbor

        mono = int(mono)  # HAL clocks may be fractional; state is whole seconds
        self.last_mono = mono
        sig = self._sig()
        if sig != self._codes_sig:
            st = self.verifier.state(mono)
            self.fs.write_atomic("codes", cbor.encode([st["used"], st["blacklist"]]))
            self._codes_sig = sig
        slots = [[k, v] for k, v in self.slots.items()]
        throttle = self.verifier.throttle.state(mono)
        state = [2, throttle, self.rx.state(), [list(x) for x in self.done], self.up_seq, slots]
        self.fs.write_atomic("core", cbor.encode(state))

    # -- decisions -------------------------------------------------------------

    def _record(self, now, kind, ref, granted, reason):  # type: ignore[no-untyped-def]
        # Durable before anything moves.
        rec = self.journal.append(now or 0, self.id, kind, ref, granted, reason)
        if rec is None:
            self.events.append({"event": "journal-full"})
        return rec

    def _open(self, mono) -> None:  # type: ignore[no-untyped-def]
        self.hal.strike(True)
        self.close_at = mono + self.open_s

    def keypad(self, digits, now, mono):  # type: ignore[no-untyped-def]
        d = self.verifier.keypad(digits, now, mono)
        self._record(now, d.kind, d.ref, d.granted, d.reason)
        for ev in d.events:
            self.events.append(ev)
        self._save(mono)
        if d.granted:
            self._open(mono)
        else:
            self.hal.beep(2)
        return d

    def enroll_slot(self, page, person, mono) -> None:  # type: ignore[no-untyped-def]
        self.slots[page] = person
        self._save(mono)

    def remove_person(self, person, mono) -> list:  # type: ignore[no-untyped-def]
        pages = [p for p, who in self.slots.items() if who == person]
        for p in pages:
            del self.slots[p]
        self._save(mono)
        return pages

    def finger(self, fp, now, mono):  # type: ignore[no-untyped-def]
        """A finger on the sensor: capture, convert and search on the module
        (the template never leaves it), then decide. The keypad throttle does
        not apply: biometrics are never the only way in, nor locked out by it."""
        person = ""
        try:
            if not fp.capture():
                return None  # lifted before the image was taken
            fp.image_to_template(1)
            hit = fp.search(1, 0, 200)
        except Exception as e:  # a module fault is a denial with its reason, not a crash
            self._record(now, "finger", "", False, "sensor-error")
            self.events.append({"event": "fingerprint-module-error", "code": getattr(e, "code", -1)})
            self.hal.beep(3)
            return "sensor-error"
        if hit is None:
            reason = "no-match"
        else:
            person = self.slots.get(hit[0], "")
            if not person:
                reason = "no-match"  # a slot no bundle accounts for
            elif self.verifier.blacklist.blocked(["v:" + person, person], now or 0):
                reason = "revoked"
            else:
                reason = "ok"
        self._record(now, "finger", person, reason == "ok", reason)
        if reason == "ok":
            self._open(mono)
        else:
            self.hal.beep(2)
        return reason

    def exit_button(self, now, mono) -> None:  # type: ignore[no-untyped-def]
        self._record(now, "exit", "", True, "ok")
        self._open(mono)

    def command(self, data, now, mono):  # type: ignore[no-untyped-def]
        """A remote command from the cloud (relayed by the gateway)."""
        try:
            env = self.rx.open(data)
        except ProtocolError as e:
            reason = _REASONS.get(e.reason, "bad-command")
            self._record(now, "remote", "", False, reason)
            self._save(mono)
            return reason
        body: dict = env.body if isinstance(env.body, dict) else {}
        cmd_id: str = body[2] if isinstance(body.get(2), str) else ""
        for cid, status in self.done:
            if cid == cmd_id:  # repeated after an ack was lost: same answer, not executed again
                self._ack(cmd_id, status, now)
                return status
        deadline = body.get(3)
        if body.get(1) != "unlock" or not isinstance(deadline, int):
            status = "bad-command"
        elif now is None:
            status = "clock-unset"
        elif now >= deadline:
            status = "deadline"  # never executed late
        else:
            status = "ok"
        self._record(now, "remote", cmd_id[:40], status == "ok", status)
        self.done.append((cmd_id, status))
        self.done = self.done[-_REMEMBER:]
        self._save(mono)
        if status == "ok":
            self._open(mono)
        self._ack(cmd_id, "done" if status == "ok" else status, now)
        return status

    def _ack(self, cmd_id, status, now) -> None:  # type: ignore[no-untyped-def]
        ack = envelope.seal(self.k_up, "ack", self.id, self.next_seq(), now or 0, {1: cmd_id, 2: status})
        self.outbox.append(("ack", ack))

    # -- door and time ---------------------------------------------------------

    def door(self, is_open, mono) -> None:  # type: ignore[no-untyped-def]
        if is_open:
            self.opened_at = mono
            if self.close_at is None:
                self.events.append({"event": "door-forced"})
        else:
            self.opened_at = None
            self.held_alarmed = False

    def tick(self, mono) -> None:  # type: ignore[no-untyped-def]
        self.last_mono = mono
        if self.close_at is not None and mono >= self.close_at:
            self.hal.strike(False)
            self.close_at = None
        if self.opened_at is not None and not self.held_alarmed and mono - self.opened_at >= self.held_open_s:
            self.held_alarmed = True
            self.events.append({"event": "door-held-open", "seconds": self.held_open_s})
