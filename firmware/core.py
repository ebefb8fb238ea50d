# The lock's decisions, without I/O (MicroPython; the simulator runs it
# unchanged). The main loop feeds it keypad entries, remote commands, door
# and exit-button changes and the clocks; it drives the strike through the
# HAL, journals every decision durably *before* the strike moves, and queues
# outbound messages (command acks, events) for the link.
#
# Remote unlock needs a command MACed end to end with this lock's cmd key
# (the gateway cannot forge one), unseen before (replay window, persisted),
# and not past its deadline; every refusal is journaled with its reason.

from firmware.clock import Clock
from firmware.statefile import StateFile
from protocol import envelope, keys, seal
from protocol.errors import ProtocolError
from protocol.verifier import CodeVerifier

_REASONS = {"bad-tag": "bad-tag", "duplicate": "replay", "stale": "replay"}
_REMEMBER = 32
# The uplink sequence after every copy of the core state is lost: past any a
# lock can have used (a message a second for 30,000 years is below 2^40).
UP_SEQ_AFTER_LOSS = 1 << 40


def _epochs(current, asked):  # type: ignore[no-untyped-def]
    """A rekey's {purpose: epoch} merged onto the current epochs, or {} when
    malformed: known purposes only, each epoch above the current one (a
    replayed or reordered rekey can never bring an old key back)."""
    if not isinstance(asked, dict) or not asked:
        return {}
    out = dict(current)
    for p, n in asked.items():
        if p not in keys.PURPOSES or not isinstance(n, int) or isinstance(n, bool):
            return {}
        if not (current.get(p, 0) < n <= keys.MAX_EPOCH):
            return {}
        out[p] = n
    return out


class LockCore:
    def __init__(  # type: ignore[no-untyped-def]
        self, device_id, root_key, journal, hal, fs, open_s=5, held_open_s=60, verifier=None, fp=None
    ):
        self.id = device_id
        self.fp = fp  # firmware.fpmodule.FingerprintModule, or None on a lock without one
        self._root = root_key
        self.epochs: dict = {}  # purpose -> key epoch, where not 0 (persisted; moved by a rekey)
        self._derive()
        self.journal = journal
        self.hal = hal
        self.fs = fs
        self.open_s = open_s
        self.held_open_s = held_open_s
        self.verifier = verifier or CodeVerifier(device_id, self.k_code)
        self.rx = envelope.Receiver(self._key_for, window=64, max_senders=2)
        self.done = []  # [(command id, status)], most recent last
        self.outbox = []  # (topic suffix, bytes) for the link
        self.events = []
        self.up_seq = 0
        self.close_at = None
        self.opened_at = None
        self.held_alarmed = False
        self.last_mono = 0
        # Fingerprint-module library page -> [pseudonymous person id, finger
        # position], filled from sealed bundle entries (never templates). A
        # page the table does not name never opens the door, whatever the
        # module holds there.
        self.slots: dict = {}
        self.capacity = 200  # module library pages (R503: 200)
        self.entry_mark = [-1, -1]  # (bundle sequence, entry index) last applied
        self._codes_sig: tuple = (0, 0, 0)
        self._throttle_boot = None  # saved throttle state not yet rebased on this boot's clock
        self.clock = Clock()  # the wall clock's guard (high-water mark, gateway steps)
        self._core = StateFile(fs, "core")
        self._codes = StateFile(fs, "codes")
        self._load()

    def _key_for(self, sender, typ):  # type: ignore[no-untyped-def]
        if sender == "cloud" and typ == "cmd":
            return self.k_cmd
        return None

    def _derive(self) -> None:
        e = self.epochs
        self.k_cmd = keys.derive(self._root, keys.CMD, self.id, e.get(keys.CMD, 0))
        self.k_up = keys.derive(self._root, keys.UPLINK, self.id, e.get(keys.UPLINK, 0))
        self.k_local = keys.derive(self._root, keys.LOCAL, self.id, e.get(keys.LOCAL, 0))
        self.k_code = keys.derive(self._root, keys.CODE, self.id, e.get(keys.CODE, 0))
        self.k_seal = keys.derive(self._root, keys.SEAL, self.id, e.get(keys.SEAL, 0))
        self.k_receipt = seal.receipt_key(self.k_seal)  # delivery receipts: the office checks them

    # -- persistence -----------------------------------------------------------

    def _load(self) -> None:
        # Both files are two-copy state files (firmware/statefile.py): one
        # damaged copy costs at most the last save. If every copy of one is
        # damaged the lock still boots: defaults, a journaled "state-damaged"
        # record, and an uplink sequence far past any it can have used (the
        # gateway would refuse smaller ones as replays).
        st = self._core.load(8)
        codes = self._codes.load(8)
        lost = 0
        first_boot = False
        if not (isinstance(st, list) and (len(st), st[0]) in ((7, 3), (8, 4), (10, 5))):
            # No core state although the journal has records: it was lost
            # (the first boot saves it), not a first boot.
            if st is not None or self._core.unreadable or self.journal.next_seq > 1:
                lost += 1
            st = None
            first_boot = not lost
        if not (isinstance(codes, list) and len(codes) == 2):
            # Missing is normal until a code is used; the core state says
            # whether one was (a lost copy of remembered one-time codes would
            # let them work again, so it must be reported).
            written = st is not None and len(st) >= 8 and st[7] > 0
            if codes is not None or self._codes.unreadable or written or (lost and self.journal.next_seq > 1):
                lost += 2
            codes = [[], [0, []]]
        fresh = self.verifier.throttle.state(0)
        self.verifier.load({"used": codes[0], "throttle": fresh, "blacklist": codes[1]}, 0)
        if st is None:
            if lost & 1:
                self.up_seq = UP_SEQ_AFTER_LOSS + self.journal.next_seq * 1000
                # The clock's high-water mark went with it: until the cloud
                # answers, no reading is trusted (an RTC set back by the
                # gateway could otherwise revive expired codes).
                self.clock.distrust = True
        else:
            # The throttle is stored relative to the monotonic clock of the
            # boot that saved it; this boot's clock may start anywhere, so it
            # is rebased on the first time this boot's clock is seen (the
            # main loop's first tick): a lockout resumes in full.
            self._throttle_boot = st[1]
            self.rx.load(st[2])
            self.done = [tuple(x) for x in st[3]]
            self.up_seq = st[4] + 1000  # reserve: acks sent after the last save stay below
            self.slots = dict((int(k), v) for k, v in st[5])
            self.entry_mark = st[6]
            if len(st) == 10:
                self.clock.load(st[8])
                if st[9] != self.epochs:
                    self.epochs = dict(st[9])
                    self._derive()
                    self.verifier.code_key = self.k_code
        self._codes_sig = self._sig()
        if st is None and first_boot:
            self._save(0)  # from now on a missing core file means a lost one
        if lost:
            what = {1: "core", 2: "codes", 3: "core+codes"}[lost]
            clock = getattr(self.hal, "time", None)  # the main loop's HAL has one
            self._record(clock() if clock else 0, "none", what, False, "state-damaged")
            self.events.append({"event": "state-damaged", "files": what})
            self._codes_sig = (-1,)  # write both files again: the next boot finds them whole
            self._save(0)

    def next_seq(self) -> int:
        """Envelope sequence for messages this lock sends (acks, batches)."""
        self.up_seq += 1
        if self.up_seq % 500 == 0:
            self._save(self.last_mono)  # the reservation on load covers the rest
        return self.up_seq

    def save(self, mono) -> None:  # type: ignore[no-untyped-def]
        self._save(mono)

    def _sig(self) -> tuple:
        # What says the codes file is out of date: the verifier's change
        # count (a count and a sum of uses were not enough: a one-time code
        # pruned as another was added left both equal, the new one unsaved,
        # and usable again after a reboot), the blacklist's version and size.
        v = self.verifier
        return (v.changes, v.blacklist.version, len(v.blacklist.entries))

    def _save(self, mono) -> None:  # type: ignore[no-untyped-def]
        # Two files: "core" is small and changes on every decision (throttle,
        # replay window, command ids, slot table); "codes" (remembered one-time
        # codes, blacklist) is rewritten only when it changed. Re-encoding 200
        # remembered codes on every key press cost RAM and flash wear.

        mono = int(mono)  # HAL clocks may be fractional; state is whole seconds
        self.last_mono = mono
        sig = self._sig()
        if sig != self._codes_sig:
            st = self.verifier.state(mono)
            self._codes.save([st["used"], st["blacklist"]])
            self._codes_sig = sig
        slots = [[k, v] for k, v in self.slots.items()]
        pending = self._throttle_boot
        throttle = pending if pending is not None else self.verifier.throttle.state(mono)
        state = [
            5,
            throttle,
            self.rx.state(),
            [list(x) for x in self.done],
            self.up_seq,
            slots,
            self.entry_mark,
            self._codes.gen,
            self.clock.state(),
            self.epochs,
        ]
        self._core.save(state)

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

    def _rebase(self, mono) -> None:  # type: ignore[no-untyped-def]
        if self._throttle_boot is not None:
            self.verifier.throttle.load(self._throttle_boot, int(mono))
            self._throttle_boot = None

    def keypad(self, digits, now, mono):  # type: ignore[no-untyped-def]
        self._rebase(mono)
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

    def load_entry(self, fp, token, now, mono):  # type: ignore[no-untyped-def]
        """A sealed bundle entry relayed by the gateway -> (result, entry or
        None). Results: "ok", "duplicate" (already applied: the gateway may
        resend after a lost ack), a protocol refusal reason, "store-full",
        "sensor-error". A refused entry changes nothing.

        Order makes a power cut at any point safe: templates are stored on
        free pages before the slot table names them, and the table forgets
        pages before they are erased, so a cut leaves at worst an unnamed
        page (never matched, reused later), never a name on a wrong page."""
        try:
            e = seal.open_entry(self.k_seal, token, self.id, now)
        except ProtocolError as ex:
            return ex.reason, None
        older = [e.seq, e.idx] <= self.entry_mark
        if older and (e.op not in seal.DELETIONS or [e.seq, e.idx] == self.entry_mark):
            # An older entry replayed after a newer one (say the add that a
            # move-out deleted) must not bring anything back. A deletion is
            # applied whenever it comes (it can only take access away), so a
            # delete delayed behind later entries is never lost.
            return ("duplicate" if [e.seq, e.idx] == self.entry_mark else "rollback"), e
        mine = [p for p, v in self.slots.items() if v[0] == e.person]
        drop = []
        if e.op == "replace" or e.op == "del-person":
            drop = mine
        elif e.op == "del-finger":
            gone = [f for f, _ in e.templates]
            drop = [p for p in mine if self.slots[p][1] in gone]
        elif e.op == "add":
            again = [f for f, _ in e.templates]
            drop = [p for p in mine if self.slots[p][1] in again]  # re-adding a finger replaces it
        new = {}
        if e.op in ("add", "replace"):
            free = [p for p in range(self.capacity) if p not in self.slots]
            if len(free) < len(e.templates):
                return "store-full", e
            try:
                for i in range(len(e.templates)):
                    fp.enroll(e.templates[i][1], free[i])
                    new[free[i]] = [e.person, e.templates[i][0]]
            except Exception:
                return "sensor-error", e
        for p in drop:
            del self.slots[p]
        for p in new:
            self.slots[p] = new[p]
        if not older:
            self.entry_mark = [e.seq, e.idx]  # a late deletion never moves it back
        self._save(mono)
        try:
            for p in drop:
                fp.delete(p, 1)
        except Exception:
            self.events.append({"event": "fingerprint-module-error", "code": -1})
        return "ok", e

    def receipt(self, e, result, now):  # type: ignore[no-untyped-def]
        """The delivery receipt for an entry that opened: MACed with a key
        derived from the seal key, which the gateway that carries it does not
        hold, so it is the office's proof of what this lock did."""
        return seal.receipt(self.k_receipt, self.id, self.next_seq(), now or 0, e, result)

    def finger(self, fp, now, mono):  # type: ignore[no-untyped-def]
        """A finger on the sensor: capture, convert and search on the module
        (the template never leaves it), then decide. The keypad throttle does
        not apply: biometrics are never the only way in, nor locked out by it."""
        person = ""
        try:
            if not fp.capture():
                return None  # lifted before the image was taken
            fp.image_to_template(1)
            hit = fp.search(1, 0, self.capacity)
        except Exception as e:  # a module fault is a denial with its reason, not a crash
            self._record(now, "finger", "", False, "sensor-error")
            self.events.append({"event": "fingerprint-module-error", "code": getattr(e, "code", -1)})
            self.hal.beep(3)
            return "sensor-error"
        if hit is None:
            reason = "no-match"
        else:
            slot = self.slots.get(hit[0])
            person = slot[0] if slot else ""
            if not person:
                reason = "no-match"  # a slot no bundle accounts for
            elif self.verifier.blacklist.person_blocked(person, now or 0):
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
                self._ack(cmd_id, "done" if status == "ok" else status, now)
                return status
        deadline = body.get(3)
        action = body.get(1)
        epochs = _epochs(self.epochs, body.get(4)) if action == "rekey" else None
        if action not in ("unlock", "rekey") or not isinstance(deadline, int) or epochs == {}:
            status = "bad-command"
        elif now is None:
            status = "clock-unset"
        elif now >= deadline:
            status = "deadline"  # never executed late
        else:
            status = "ok"
        if action == "rekey" and status == "ok":
            return self._rekey(cmd_id, epochs, now, mono)
        self._record(now, "remote", cmd_id[:40], status == "ok", status)
        self.done.append((cmd_id, status))
        self.done = self.done[-_REMEMBER:]
        self._save(mono)
        if status == "ok":
            self._open(mono)
        self._ack(cmd_id, "done" if status == "ok" else status, now)
        return status

    def _rekey(self, cmd_id, epochs, now, mono):  # type: ignore[no-untyped-def]
        """The cloud moves key epochs: new keys derive from the root, so only
        the cloud and this lock know them. Durable before any new key is used;
        acked under the new up key (the ack proves the lock has them)."""
        self.epochs = epochs
        self._derive()
        self.verifier.code_key = self.k_code
        ref = ",".join("%s%d" % (p, epochs[p]) for p in keys.PURPOSES if p in epochs)
        self._record(now, "none", ref[:40], False, "rekeyed")
        self.done.append((cmd_id, "ok"))
        self.done = self.done[-_REMEMBER:]
        self._save(mono)
        self.events.append({"event": "rekeyed", "epochs": ref})
        self._ack(cmd_id, "done", now)
        return "ok"

    def _ack(self, cmd_id, status, now) -> None:  # type: ignore[no-untyped-def]
        ack = envelope.seal(self.k_up, "ack", self.id, self.next_seq(), now or 0, {1: cmd_id, 2: status})
        self.outbox.append(("ack", ack))

    # -- door and time ---------------------------------------------------------

    # Door alarms are records (journaled, so they survive power cuts and
    # outages like any pass record) and live events (for a prompt alarm).

    def door(self, is_open, mono, now=None) -> None:  # type: ignore[no-untyped-def]
        if is_open:
            self.opened_at = mono
            if self.close_at is None:
                self._record(now, "none", "", False, "door-forced")
                self.events.append({"event": "door-forced"})
        else:
            self.opened_at = None
            self.held_alarmed = False

    def tick(self, mono, now=None) -> None:  # type: ignore[no-untyped-def]
        self._rebase(mono)
        self.last_mono = mono
        if self.close_at is not None and mono >= self.close_at:
            self.hal.strike(False)
            self.close_at = None
        if self.opened_at is not None and not self.held_alarmed and mono - self.opened_at >= self.held_open_s:
            self.held_alarmed = True
            self._record(now, "none", "s%d" % self.held_open_s, False, "door-held-open")
            self.events.append({"event": "door-held-open", "seconds": self.held_open_s})
