"""The "day" scenario: a day and a morning in the life of the community,
scripted and seeded, on the site runner's accelerated clock.

Every pass the script makes says what the door must decide (kind, granted,
reason). At the end the cloud's records are compared, device by device and
in sequence order, with those expectations: a door that opened for the
wrong person, stayed shut for the right one, or a record lost, duplicated
or out of place is an invariant failure with its own line in the report.

Day 1: residents leave by code and exit button; the cloud sends the gate's
fingerprint authorizations in shuffled bursts (one future-dated grant, one
future-dated revoke, an older revoke, a repeat); the office's bundle
arrives on a USB stick and reaches the gate's gallery and the unit doors;
fingers at the gate and at the doors; visitors are invited (one gives the
wrong identity) and self-serve at the gate (a courier for a month, a
repair worker for a day, a salesman the community refuses); remote
unlocks end to end (one already expired); the uplink is down for a
simulated hour while passes go on; a lock loses power in the middle of
writing a pass; a visitor is blacklisted mid-validity; a tenant moves out
(deletion bundle, schedule revoke, resident code revoked).
Day 2: the courier's code still works, the day codes have expired.
"""

from __future__ import annotations

import random
import statistics
import time
from collections.abc import Callable
from dataclasses import dataclass
from functools import partial
from typing import Any

from gateway.biometrics import iso19794
from protocol import passcode as pc
from simulators import fingerprints as fpg
from simulators.cloud.backend import FlowError, Request
from simulators.office import Tenant
from simulators.site import GATE, GW, STICK, SiteRunner, wait_for
from simulators.usbstick import SimDevice

SEED = 7
DAY = 86400


@dataclass(frozen=True)
class Expect:
    kind: str
    granted: bool
    reason: str
    what: str  # the script's words, for the report
    round: int  # inputs of one round reach a door together: their order is the door's to pick

    def outcome(self) -> tuple[str, bool, str]:
        return (self.kind, self.granted, self.reason)


# Impressions the office takes at enrolment; the day's later presses (1 to
# 5) are others, so no probe is a copy of an enrolled press.
ENROLMENT_PRESSES = (0, 6, 7)


def _finger(person: int, impression: int) -> bytes:
    im = fpg.impression(fpg.master(1000 + person, SEED), impression, SEED)
    return iso19794.single(im.minutiae, im.width, im.height)


def _safe(cond: Callable[[], bool]) -> Callable[[], bool]:
    # Conditions read state the daemon's thread is changing; a dict changing
    # size under the read just means "not yet".
    def f() -> bool:
        try:
            return cond()
        except (RuntimeError, KeyError):
            return False

    return f


class Day:
    def __init__(self, run: SiteRunner, seed: int = SEED) -> None:
        if len(run.lock_ids) < 3:
            raise ValueError("the day scenario needs at least 3 locks")
        self.r = run
        self.rng = random.Random(seed)
        self.expect: dict[str, list[Expect]] = {lid: [] for lid in run.lock_ids}
        self.expect[GATE] = []
        self.flows: dict[str, int] = {}
        self.rtts: list[float] = []
        self.cmd_n = 0
        self._receipts_seen = 0  # delivery receipts already handed to the office
        now = time.time()
        self.t0 = int(now - now % DAY + 7 * 3600 + (DAY if now % DAY >= 7 * 3600 else 0))  # next 07:00 UTC
        n = len(run.lock_ids)
        self.tenants = [Tenant(f"t-{i:03d}", f"Resident {i}", f"ID-{1000 + i}", lid)
                        for i, lid in enumerate(run.lock_ids)]  # fmt: skip
        self.fingered = list(range(min(n, 4)))  # tenants who enrol a finger
        self.mover = 0  # moves out in the evening
        self.newcomer = self.fingered[-1]  # gate access only from 17:00
        self.torn = run.torn_lock if run.torn_lock is not None else 2
        self.codes: dict[str, Any] = {}
        self.outage: dict[str, Any] = {}
        self.round = 0

    # -- clock and progress ------------------------------------------------------

    def at(self, day: int, hour: int, minute: int, what: str) -> None:
        # Never jump the accelerated clock while a lock waits for the cloud's
        # time: the answer, computed before the jump, would set it back by it
        # (site.py, clocks_settled). Bounded: in the outage none can come.
        wait_for(_safe(self.r.clocks_settled), 10)
        self.r.clock.advance_to(self.t0 + (day - 1) * DAY + (hour - 7) * 3600 + minute * 60)
        self.r.say(f"[day {day} {hour:02d}:{minute:02d}] {what}")

    def now(self) -> int:
        return int(self.r.clock())

    def person(self, i: int) -> str:
        return self.r.office.person_id(self.tenants[i].id)

    # -- doors ---------------------------------------------------------------------

    def lock_code(self, lid: str, digits: str, reason: str, what: str) -> None:
        self.expect[lid].append(Expect("code", reason == "ok", reason, what, self.round))
        self.r.locks[lid].type_code(digits)

    def lock_finger(self, lid: str, template: bytes, reason: str, what: str) -> None:
        self.expect[lid].append(Expect("finger", reason == "ok", reason, what, self.round))
        self.r.locks[lid].present_finger(template)

    def lock_exit(self, lid: str) -> None:
        self.expect[lid].append(Expect("exit", True, "ok", "leaves by the exit button", self.round))
        self.r.locks[lid].hal.press_exit()

    def gate(self, kind: str, data: Any, reason: str, what: str) -> None:
        assert self.r.gateway is not None
        rec_kind = {"keypad": "code", "scan": "code", "finger": "finger"}[kind]
        self.expect[GATE].append(Expect(rec_kind, reason == "ok", reason, what, self.round))
        d = self.r.gateway.at_gate(kind, data).result(timeout=30)
        self.r.check(d.reason == reason, f"gate: {what}: expected {reason}, decided {d.reason}")

    def settle(self, timeout: float = 30) -> None:
        """Wait until every lock has decided what it was given; the next
        inputs form a new round."""
        self.round += 1

        def behind() -> list[str]:
            return [
                lid
                for lid, lk in self.r.locks.items()
                if lk.app is None or lk.app.core.journal.next_seq - 1 < len(self.expect[lid])
            ]

        if not wait_for(_safe(lambda: not behind()), timeout):
            self.r.check(False, f"locks decided what they were given ({', '.join(behind())} did not)")

    def flow(self, name: str, fn: Callable[[], Any]) -> Any:
        try:
            out = fn()
        except FlowError as e:
            self.flows[e.reason] = self.flows.get(e.reason, 0) + 1
            return e.reason
        self.flows[name] = self.flows.get(name, 0) + 1
        return out

    # -- the script ------------------------------------------------------------------

    def run(self) -> dict[str, Any]:
        t_start = time.monotonic()
        self.morning()
        self.authorizations()
        self.office_bundle()
        self.fingers()
        self.visitors()
        self.remote_unlocks(rounds=2)
        self.outage_hour()
        self.power_cut()
        self.blacklist()
        self.evening()
        self.move_out()
        self.next_day()
        return self.report(time.monotonic() - t_start)

    def morning(self) -> None:
        self.at(1, 7, 0, "residents leave by code and by the exit button; one code is mistyped")
        r = self.r
        for t in self.tenants:
            code = r.issuer.issue(t.lock, pc.WINDOW, self.t0 - 7 * 3600, self.t0 + 30 * DAY, self.now(),
                                  holder=t.id)  # fmt: skip
            r.backend.remember(code, t.id, "resident")
            r.backend.register_resident(t.id, t.lock, self.now())
            self.codes[t.id] = code
            assert code.keypad
            self.lock_code(t.lock, code.keypad, "ok", f"{t.id} types the resident code")
            self.lock_exit(t.lock)
        self.lock_code(self.tenants[1].lock, "1234567890", "wrong-code", "a mistyped code")
        self.settle()

    def authorizations(self) -> None:
        self.at(1, 7, 30, "the cloud sends the gate's fingerprint authorizations, in shuffled bursts")
        ops: list[dict[int, Any]] = []
        for i in self.fingered:
            p = self.person(i)
            ops.append({1: f"old-{i}", 2: p, 3: "revoke", 4: self.t0 - 2 * 3600})
            if i == self.newcomer:
                ops.append({1: f"grant-{i}", 2: p, 3: "grant", 4: self.t0 + 10 * 3600})  # from 17:00
            else:
                ops.append({1: f"grant-{i}", 2: p, 3: "grant", 4: self.t0 - 3600})
        ops.append({1: f"moveout-{self.mover}", 2: self.person(self.mover), 3: "revoke",
                    4: self.t0 + 11 * 3600})  # fmt: skip  # dated 18:00, sent now
        ops.append(dict(ops[1]))  # a repeat
        self.rng.shuffle(ops)
        half = len(ops) // 2
        assert self.r.cloud and self.r.gateway
        for burst in (ops[half:], ops[:half]):
            self.r.cloud.send_auth(GW, burst)
        gw = self.r.gateway
        self.r.check(
            wait_for(
                lambda: sum(v for k, v in dict(gw.stats.auth).items() if k != "applied") == len(ops), 15
            ),
            "the gateway took every authorization operation",
        )
        # Every fingered tenant has one due operation in force (the newcomer's older revoke).
        self.r.check(
            wait_for(lambda: dict(gw.stats.auth).get("applied", 0) >= len(self.fingered), 10),
            "due authorizations applied",
        )

    def _export(self, what: str) -> None:
        r = self.r
        stick = r.dir / "stick"
        for old in stick.glob("*.lkb*"):
            old.unlink()
        r.office.export(stick, r.gateway_bundle_key.public_blob(), self.now())
        dev = r.usb.insert(SimDevice(*STICK, folder=stick))
        ok = wait_for(_safe(lambda: any(stick.glob("*.receipt"))), 30)
        r.check(ok, f"{what}: the gateway imported the bundle and wrote its receipt")
        r.usb.remove(dev)
        gw = r.gateway
        if gw is not None and gw.bio is not None:  # the stick goes back to the office
            r.office.read_receipts(stick, gw.bio.importer.signer.public_key())

    def _office_proof(self, pid: str, lock: str) -> bool:
        """The office, fed the delivery receipts the cloud received, shows the
        person's deletion applied at the gate and at the lock."""
        cloud = self.r.cloud
        assert cloud is not None
        with cloud.lock:
            got = list(cloud.receipts[self._receipts_seen :])
            self._receipts_seen += len(got)
        self.r.office.apply_delivery(got)
        rows = [x for x in self.r.office.status() if x["person"] == pid and x["op"] == "del-person"]
        return {x["device"]: x["state"] for x in rows} == {"gate": "applied", lock: "applied"}

    def _delivered(self, locks: list[str]) -> Callable[[], bool]:
        assert self.r.gateway and self.r.gateway.bio
        bio = self.r.gateway.bio

        def f() -> bool:
            rep = bio.report()
            return all(not rep["pending"].get(lk) for lk in locks)

        return _safe(f)

    def office_bundle(self) -> None:
        self.at(1, 8, 0, "the office enrols fingers; its bundle arrives on a USB stick")
        r = self.r
        for i in self.fingered:
            t = self.tenants[i]
            r.office.add_tenant(t)
            # Three presses, as an enrolment station takes them: the gate
            # decides on all three, the door's entry carries the first.
            presses = [(2, _finger(i, k)) for k in ENROLMENT_PRESSES]
            r.office.enrol(t.id, t.document, t.name, presses, "door access",
                           "community gate and unit door", self.now())  # fmt: skip
        for i, t in enumerate(self.tenants):
            if i not in self.fingered:
                r.office.add_tenant(t)
        self._export("enrolment")
        locks = [self.tenants[i].lock for i in self.fingered]
        r.check(wait_for(self._delivered(locks), 60), "sealed entries delivered to every unit door")

    def fingers(self) -> None:
        self.at(1, 9, 0, "fingers at the gate and at the unit doors; a stranger tries both")
        for i in self.fingered:
            t = self.tenants[i]
            why = "not-authorized" if i == self.newcomer else "ok"
            self.gate("finger", _finger(i, 1), why, f"{t.id}'s finger at the gate")
            self.lock_finger(t.lock, _finger(i, 2), "ok", f"{t.id}'s finger at the unit door")
        self.gate("finger", _finger(900, 1), "no-match", "a stranger's finger at the gate")
        self.settle()
        self.lock_finger(self.tenants[0].lock, _finger(900, 2), "no-match", "a stranger's finger at a door")
        self.settle()

    def visitors(self) -> None:
        # Five minutes into the hour, not on it: a code's window opens on the
        # hour, and a lock whose clock was set from a whole-second gateway
        # time reads up to a second behind the site's; typed at 10:00:00.3 it
        # is rightly "not-yet-valid", which is no finding about the site.
        self.at(1, 10, 5, "visitors: invitations and self-service at the gate")
        r, now = self.r, self.now()
        host = self.tenants[1]
        tok = r.backend.invite(host.id, "Ana Lima", "P-1001", host.lock, now, now + 10 * 3600)
        code = self.flow("invitation", lambda: r.backend.accept(tok, "ana  LIMA", "p-1001", now))
        self.codes["ana"] = code
        self.lock_code(host.lock, code.keypad, "ok", "an invited visitor at the unit door")
        tok = r.backend.invite(host.id, "Bo Chen", "P-1002", host.lock, now, now + 3600)
        self.flow("invitation", lambda: r.backend.accept(tok, "Bo Chen", "P-9999", now))  # wrong document
        self.codes["bo-token"] = tok
        tok = r.backend.invite(self.tenants[2].id, "Cy Diaz", "P-1003", GATE, now, now + DAY)
        self.codes["cy"] = self.flow("invitation", lambda: r.backend.accept(tok, "Cy Diaz", "P-1003", now))
        self.gate("keypad", self.codes["cy"].keypad, "ok", "an invited guest at the gate")
        courier = Request("Dee Evans", "P-2001", GATE, "courier", "delivery", "frequent")
        self.codes["courier"] = self.flow("self-service", lambda: r.backend.request(courier, now))
        self.gate("keypad", self.codes["courier"].keypad, "ok", "a courier's month code")
        repair = Request("Eli Ford", "P-2002", GATE, "repair", "boiler", "rare")
        self.codes["repair"] = self.flow("self-service", lambda: r.backend.request(repair, now))
        self.gate("keypad", self.codes["repair"].keypad, "ok", "a repair worker's day code")
        sales = Request("Fay Gold", "P-2003", GATE, "sales", "sales", "occasional")
        self.flow("self-service", lambda: r.backend.request(sales, now))
        self.settle()

    def remote_unlocks(self, rounds: int) -> None:
        self.at(1, 11, 0, "residents unlock their doors remotely from the app; one command arrives late")
        cloud = self.r.cloud
        assert cloud
        backend = self.r.backend
        for _ in range(rounds):
            for t in self.tenants:
                lid = t.lock
                cmd = self.flow("remote-unlock", partial(backend.remote_unlock, t.id, t.lock, self.now()))
                t0 = time.perf_counter()
                cloud.send_command(lid, cmd.cmd_id, cmd.deadline)
                ok = wait_for(lambda cid=cmd.cmd_id: cid in cloud.ack_times, 15)  # type: ignore[misc]
                self.r.check(ok, f"{lid}: remote unlock {cmd.cmd_id} acknowledged")
                if ok:
                    backend.command_done(cmd.cmd_id, "done")
                    self.rtts.append((cloud.ack_times[cmd.cmd_id] - t0) * 1000)
                    self.expect[lid].append(Expect("remote", True, "ok", "a remote unlock", self.round))
            self.settle()
        neighbour = self.tenants[1]
        self.flow(
            "remote-unlock", lambda: backend.remote_unlock(neighbour.id, self.tenants[0].lock, self.now())
        )
        cloud.send_command(self.r.lock_ids[0], "app-late", self.now() - 1)
        ok = wait_for(lambda: bool(cloud.acks_for("app-late")), 15)
        late = cloud.acks_for("app-late")
        self.r.check(ok and late[0][1].body[2] == "expired", "an expired command is answered, never executed")  # type: ignore[index]

    def outage_hour(self) -> None:
        r = self.r
        assert r.cloud_broker and r.gateway and r.cloud
        self.at(1, 12, 0, "the uplink goes down for an hour; people keep coming and going")
        r.cloud_broker.stop()
        produced_before = r.received()
        t_down = self.now()
        for minute in (10, 20, 30, 40, 50):
            self.at(1, 12, minute, "  ... passes during the outage")
            for k, t in enumerate(self.tenants):
                self.lock_exit(t.lock)
                if (k + minute // 10) % 3 == 0:
                    self.lock_code(t.lock, self.codes[t.id].keypad, "ok", f"{t.id} comes home")
            self.gate("keypad", self.codes["courier"].keypad, "ok", "the courier during the outage")
            self.settle()
        backlog = r.gateway.outbox.backlog()
        self.r.say(f"  {backlog} records wait in the gateway's outbox; the cloud has {produced_before}")
        self.at(1, 13, 0, "the uplink is back")
        t_back = time.monotonic()
        r.cloud_broker.start()
        ok = wait_for(lambda: r.received() >= self.produced(), 90)
        drain = time.monotonic() - t_back
        r.check(ok, "the backlog reached the cloud after the outage")
        cloud = r.cloud
        delays = [cloud.arrived[k] - rec.time for k, rec in cloud.records().items() if rec.time >= t_down]
        self.outage = {
            "simulated_minutes": 60,
            "backlog_records": backlog,
            "drain_after_uplink_back_s": round(drain, 2),
            "max_upload_delay_simulated_s": round(max(delays), 1) if delays else None,
        }

    def power_cut(self) -> None:
        r = self.r
        lid = r.lock_ids[self.torn]
        lk = r.locks[lid]
        t = self.tenants[self.torn]
        self.at(1, 13, 30, f"{lid} loses power while it writes a pass to flash")
        app = lk.app
        assert app is not None
        wait_for(_safe(lambda: app.core.journal.backlog() == 0), 15)  # quiet: every record acked
        strikes = len(lk.hal.strike_log)
        lk.cut_power_during_write(5)
        lk.type_code(self.codes[t.id].keypad)  # the pass being written when the power fails
        r.check(wait_for(lk.dead, 15), f"{lid}: the board died in the torn write")
        opened = any(on for _t, on in lk.hal.strike_log[strikes:])
        r.check(not opened, f"{lid}: the strike did not open for a pass that was never recorded")
        lk.power_cut()
        lk.boot()
        ok = wait_for(
            _safe(lambda: lk.app is not None and lk.app.link.connected and lk.app.link.time_set > 0), 30
        )
        r.check(ok, f"{lid}: back online after the power returned")
        r.check(wait_for(_safe(r.clocks_settled), 30), f"{lid}: its clock set again by the cloud")
        self.lock_code(t.lock, self.codes[t.id].keypad, "ok", f"{t.id} tries again after the power cut")
        self.settle()

    def _send_blacklist(self, body: dict[int, Any], what: str) -> None:
        r = self.r
        assert r.cloud and r.gateway and r.gateway.gate
        r.cloud.send_blacklist(body, r.lock_ids, [GW])
        version = int(body[2])
        gate = r.gateway.gate
        ok = wait_for(
            _safe(
                lambda: (
                    gate.verifier.blacklist.version >= version
                    and all(
                        lk.app is not None and lk.app.core.verifier.blacklist.version >= version
                        for lk in r.locks.values()
                    )
                )
            ),
            20,
        )
        r.check(ok, f"{what}: blacklist version {version} on the gate and every lock")

    def blacklist(self) -> None:
        self.at(1, 14, 0, "the invited guest is blacklisted mid-validity")
        r = self.r
        body = r.backend.blacklist("P-1003", 0, "incident report", self.now())
        self._send_blacklist(body, "guest blacklisted")
        self.gate("keypad", self.codes["cy"].keypad, "revoked", "the blacklisted guest's code")
        again = Request("Cy Diaz", "P-1003", GATE, "guest", "visit", "occasional")
        self.flow("self-service", lambda: r.backend.request(again, self.now()))
        bo = self.codes["bo-token"]  # refused at 10:00 (wrong document); its hour is over now
        self.flow("invitation", lambda: r.backend.accept(bo, "Bo Chen", "P-1002", self.now()))

    def evening(self) -> None:
        self.at(1, 17, 0, "the newcomer's gate authorization comes into force")
        gw = self.r.gateway
        assert gw
        before = dict(gw.stats.auth).get("applied", 0)
        self.r.check(wait_for(lambda: dict(gw.stats.auth).get("applied", 0) > before, 10),
                     "the future-dated grant applied at its time")  # fmt: skip
        t = self.tenants[self.newcomer]
        self.gate("finger", _finger(self.newcomer, 3), "ok", f"{t.id}'s finger at the gate, now authorized")

    def move_out(self) -> None:
        self.at(1, 18, 0, f"{self.tenants[self.mover].id} moves out: deletion bundle, revoke, code revoked")
        r = self.r
        t = self.tenants[self.mover]
        gw = r.gateway
        assert gw and gw.bio
        r.office.delete_person(t.id, "moved out", self.now())
        self._export("move-out")
        r.check(wait_for(self._delivered([t.lock]), 60), "the deletion reached the unit door")
        mover = self.person(self.mover)
        r.check(wait_for(_safe(lambda: self._office_proof(mover, t.lock)), 30),
                "the office holds the unit door's receipt for the deletion, and the gate's")  # fmt: skip
        live = r.backend.move_out(t.id, self.now())
        r.check(live == [self.codes[t.id].code_id], "the backend knows the moved-out tenant's live code")
        body = r.backend.revoke_codes(live, 0)
        self.flow("remote-unlock", lambda: r.backend.remote_unlock(t.id, t.lock, self.now()))
        self._send_blacklist(body, "resident code revoked")
        pid = self.person(self.mover)
        bio = gw.bio
        gone = bio.gallery is not None and not bio.gallery.refs_of(pid)
        r.check(gone, "no template of the moved-out tenant at the gate")
        lk = r.locks[t.lock]
        gone = lk.app is not None and all(v[0] != pid for v in dict(lk.app.core.slots).values())
        r.check(gone, "no template of the moved-out tenant at the unit door")
        self.gate("finger", _finger(self.mover, 4), "no-match", "the moved-out tenant's finger at the gate")
        self.lock_finger(
            t.lock, _finger(self.mover, 5), "no-match", "the moved-out tenant's finger at the door"
        )
        self.lock_code(t.lock, self.codes[t.id].keypad, "revoked", "the moved-out tenant's code")
        self.settle()

    def next_day(self) -> None:
        self.at(2, 8, 0, "the next morning: the courier comes back; day codes have run out")
        self.gate("keypad", self.codes["courier"].keypad, "ok", "the courier on day 2")
        host = self.tenants[1]
        self.lock_code(host.lock, self.codes["ana"].keypad, "expired", "yesterday's invited visitor")
        for i, t in enumerate(self.tenants):
            if i != self.mover:
                self.lock_code(t.lock, self.codes[t.id].keypad, "ok", f"{t.id} on day 2")
        self.settle()
        self.at(2, 11, 0, "the repair worker's day code has ended")
        self.gate("keypad", self.codes["repair"].keypad, "expired", "the repair worker on day 2")
        self.settle()

    # -- report --------------------------------------------------------------------------

    def produced(self) -> int:
        assert self.r.gateway
        ob = self.r.gateway.outbox
        return self.r.produced() + ob.last_seq.get(GATE, 0) + ob.last_seq.get(GW, 0)

    def _compare(self, dev: str, exp: list[Expect], got: list[tuple[str, bool, str]]) -> None:
        """Records in sequence order against the script, round by round: in
        order across rounds, as a multiset within one."""
        i = 0
        while i < len(exp):
            j = i
            while j < len(exp) and exp[j].round == exp[i].round:
                j += 1
            want = sorted(e.outcome() for e in exp[i:j])
            have = sorted(got[i:j])
            if want != have:
                whats = "; ".join(sorted({e.what for e in exp[i:j]}))
                self.r.check(False, f"{dev} passes {i + 1}-{j} ({whats}): expected {want}, recorded {have}")
            i = j

    def report(self, wall_s: float) -> dict[str, Any]:
        r = self.r
        assert r.cloud and r.gateway
        cloud = r.cloud
        ok = wait_for(lambda: r.received() >= self.produced(), 60)
        r.check(ok, "every record reached the cloud")
        produced, received = self.produced(), r.received()
        r.check(produced == received, f"records produced ({produced}) == received by the cloud ({received})")
        recs = cloud.records()
        for dev, exp in self.expect.items():
            got = [recs[k] for k in sorted(k for k in recs if k[0] == dev)]
            seqs = [g.seq for g in got]
            r.check(seqs == list(range(1, len(seqs) + 1)), f"{dev}: sequence numbers without a gap")
            self._compare(dev, exp, [(g.kind, g.granted, g.reason) for g in got])
            if len(got) > len(exp):
                r.check(False, f"{dev}: {len(got) - len(exp)} records the script did not cause")
        audits = [rec for k, rec in recs.items() if k[0] == GW]
        r.check(len(audits) == 2 and all(a.granted for a in audits), "two bundle imports audited")
        stored = r.backend.report()
        r.check(stored["records"] == received, "the cloud's SQLite holds every record once")
        passes = [rec for rec in recs.values() if rec.kind != "none"]
        denied: dict[str, int] = {}
        by_kind: dict[str, dict[str, int]] = {}
        for rec in passes:
            k = by_kind.setdefault(
                f"{'gate' if rec.device == GATE else 'door'} {rec.kind}", {"granted": 0, "denied": 0}
            )
            k["granted" if rec.granted else "denied"] += 1
            if not rec.granted:
                denied[rec.reason] = denied.get(rec.reason, 0) + 1
        rtts = sorted(self.rtts)
        q = statistics.quantiles(rtts, n=100, method="inclusive") if len(rtts) > 1 else rtts * 99
        bio = r.gateway.bio.report() if r.gateway.bio else {}
        return {
            "scenario": "day",
            "locks": len(r.locks),
            "simulated": "day 1 07:00 to day 2 11:00 (28 h)",
            "wall_time_s": round(wall_s, 1),
            "passes_granted": sum(p.granted for p in passes),
            "passes_denied_by_reason": dict(sorted(denied.items())),
            "passes_by_place_and_kind": dict(sorted(by_kind.items())),
            "records_produced": produced,
            "records_received": received,
            "duplicates_dropped": stored["duplicates_dropped"],
            "gaps": stored["gaps"],
            "outage": self.outage,
            "command_rtt_ms_p50": round(q[49], 1) if rtts else None,
            "command_rtt_ms_p99": round(q[98], 1) if rtts else None,
            "commands": len(rtts),
            "cloud_flows": dict(sorted(self.flows.items())),
            "gate_authorizations": dict(r.gateway.stats.auth),
            "biometrics": {"templates_at_gate": bio.get("templates"), "deliveries": bio.get("delivered")},
            "invariants_failed": r.violations,
        }
