"""A simulated community on one machine: two real Mosquitto brokers on free
loopback ports (cloud, local with per-lock passwords and the ACL), the
gateway daemon with its gate on gpiozero's mock pins and a simulated USB
port, N locks running the unchanged firmware on the simulated HAL, the
management office, and the cloud backend (SQLite) behind the receiver that
acknowledges pass records. Everything reads one wall clock, `SimClock`,
which a scenario moves forward: a day passes in a minute while retries,
timeouts and back-off keep their real durations.

`lockedge sim site --locks N --scenario day` (what `make demo` runs) plays
the day in simulators/day.py; `--scenario mini` is the short one below:
resident codes and a wrong one at every door, remote unlocks end to end
(one expired), an uplink outage while people keep coming and going. Both
print a report and exit non-zero when an invariant fails.
"""

from __future__ import annotations

import json
import os
import secrets
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from pathlib import Path

from cryptography.hazmat.primitives import serialization as ser
from gpiozero.pins.mock import MockFactory

from gateway import bundle
from gateway import config as gwconfig
from gateway.config import write_secret
from gateway.daemon import Gateway
from gateway.issuer import CodeIssuer
from protocol import keys
from protocol import passcode as pc
from simulators.broker import Mosquitto, local_mosquitto
from simulators.cloud.backend import CloudBackend, Request
from simulators.cloud.receiver import CloudReceiver
from simulators.lockhal import SimHAL
from simulators.locksim import SimLock
from simulators.office import Office
from simulators.usbstick import SimBackend

SITE = "site-7"
GW = "gw-1"
GATE = "gate-1"
STICK = (0x0781, 0x5567, "OFFICE-0001")  # the office's provisioning stick


class SimClock:
    """The site's wall clock: true time plus an offset that only grows."""

    def __init__(self) -> None:
        self._offset = 0.0
        self._lock = threading.Lock()

    def __call__(self) -> float:
        return time.time() + self._offset

    def advance_to(self, t: float) -> None:
        with self._lock:
            self._offset = max(self._offset, t - time.time())


def write_gateway_config(
    d: Path,
    gw_root: bytes,
    lock_local_keys: dict[str, bytes],
    gateway_password: str,
    cloud_port: int,
    local_port: int,
    cloud_settings: str = "",
    extra: str = "",
    relay_timeout: float = 2,
) -> Path:
    """gateway.toml and its secret files (0600) in `d`; returns the config path."""
    write_secret(d / "gateway.key", gw_root)
    write_secret(d / "locks.json", json.dumps({k: v.hex() for k, v in lock_local_keys.items()}).encode())
    write_secret(d / "local.pass", gateway_password.encode())
    (d / "gateway.toml").write_text(
        f'[gateway]\nid = "{GW}"\nsite = "{SITE}"\nstate_dir = "state"\n'
        'root_key_file = "gateway.key"\nlocks_file = "locks.json"\nstatus_interval_s = 1\n\n'
        '[cloud]\nhost = "127.0.0.1"\n' + (cloud_settings or f"port = {cloud_port}\n") + "\n"
        f'[local]\nhost = "127.0.0.1"\nport = {local_port}\nusername = "gateway"\n'
        f'password_file = "local.pass"\n\n[relay]\ntimeout_s = {relay_timeout}\n' + extra
    )
    return d / "gateway.toml"


def wait_for(cond: Callable[[], bool], timeout: float = 30.0) -> bool:
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        if cond():
            return True
        time.sleep(0.02)
    return False


class SiteRunner:
    def __init__(
        self, workdir: Path, n_locks: int, say: Callable[[str], None] = print, torn_lock: int | None = None
    ) -> None:
        """`torn_lock`: index of the lock whose flash can be torn by a power cut."""
        self.dir = workdir
        self.say = say
        self.clock = SimClock()
        self.torn_lock = torn_lock
        self.gw_root = secrets.token_bytes(32)
        self.lock_ids = [f"lock-{i:04d}" for i in range(n_locks)]
        self.roots = {lid: secrets.token_bytes(32) for lid in self.lock_ids}
        self.passwords = {lid: secrets.token_hex(12) for lid in self.lock_ids}
        self.passwords["gateway"] = secrets.token_hex(12)
        self.cloud_broker: Mosquitto | None = None
        self.local_broker: Mosquitto | None = None
        self.gateway: Gateway | None = None
        self.cloud: CloudReceiver | None = None
        self.locks: dict[str, SimLock] = {}
        self.violations: list[str] = []
        # The office gets each lock's seal key from the cloud, nothing more.
        self.office = Office(
            workdir / "office", SITE, {lid: keys.derive(r, keys.SEAL, lid) for lid, r in self.roots.items()}
        )
        self.usb = SimBackend()
        self.gateway_bundle_key = bundle.RecipientKey.new()
        self.issuer = CodeIssuer(self._code_key)
        self.backend = CloudBackend(
            workdir / "cloud.sqlite", self.issuer, {*self.lock_ids, GATE}, platform=self._community
        )

    def _code_key(self, target: str) -> bytes:
        root = self.gw_root if target == GATE else self.roots[target]
        return keys.derive(root, keys.CODE, target)

    @staticmethod
    def _community(r: Request) -> bool:
        """The community platform's answer to a self-service request (a
        stand-in for the residents' committee: no door-to-door sales)."""
        return r.purpose != "sales"

    def start(self) -> None:
        os.chmod(self.dir, 0o700)
        self.cloud_broker = Mosquitto("cloud", workdir=self.dir / "cloud-broker").start()
        self.local_broker = local_mosquitto(self.dir / "local-broker", self.passwords).start()
        self.say(
            f"brokers up: cloud 127.0.0.1:{self.cloud_broker.port}, local 127.0.0.1:{self.local_broker.port}"
        )
        self.cloud = CloudReceiver(
            self.cloud_broker.port, SITE, {GW: self.gw_root}, self.roots, self.backend, self.clock
        ).start()
        local_keys = {lid: keys.derive(r, keys.LOCAL, lid) for lid, r in self.roots.items()}
        write_secret(self.dir / "bundle.key", self.gateway_bundle_key.secret)
        office_pub = self.office.public_key().public_bytes(ser.Encoding.Raw, ser.PublicFormat.Raw).hex()
        extra = (
            f'\n[gate]\nid = "{GATE}"\nopen_seconds = 1\n'
            f'\n[biometrics]\nbundle_key_file = "bundle.key"\nissuers = ["{office_pub}"]\npoll_s = 0.2\n'
            f'sticks = [{{vendor = "{STICK[0]:04x}", product = "{STICK[1]:04x}", serial = "{STICK[2]}"}}]\n'
        )
        cfg = write_gateway_config(
            self.dir, self.gw_root, local_keys, self.passwords["gateway"], self.cloud_broker.port,
            self.local_broker.port, extra=extra,
        )  # fmt: skip
        usb = self.usb
        self.gateway = Gateway(
            gwconfig.load(cfg),
            usb_backend=usb,
            mount_of=lambda st: usb.mounts().get(st.serial),
            clock=self.clock,
            pin_factory=MockFactory(),
        )
        threading.Thread(target=self.gateway.run, daemon=True).start()
        for i, lid in enumerate(self.lock_ids):
            self.locks[lid] = SimLock(
                lid,
                self.roots[lid],
                self.dir / "flash" / lid,
                GW,
                self.local_broker.port,
                self.passwords[lid],
                hal=SimHAL(clock=self.clock),
                torn_writes=i == self.torn_lock,
            ).boot()
        ok = wait_for(lambda: all(lk.app is not None and lk.app.link.time_set for lk in self.locks.values()))
        self.check(ok, "every lock online with the gateway's signed time")
        # And the cloud's answer to each boot's time request taken: an answer
        # still in flight when a scenario moves the accelerated clock by hours
        # would set that lock back by the jump (seen as a day of not-yet-valid
        # codes on a loaded machine). Real time never jumps within the 30 s
        # an answer may take.
        self.check(wait_for(self.clocks_settled), "every lock's clock set by the cloud's answer")
        self.say(f"gateway {GW} and {len(self.locks)} locks online")

    def clocks_settled(self) -> bool:
        """Every lock has the cloud's time and no time request in flight:
        the answer to its last request taken to the end, its clock set
        (the link records only an answer the clock took, so it trusts it)."""
        return all(
            lk.app is not None
            and lk.app.link.time_asked is not None
            and lk.app.link.time_answered == lk.app.link.time_asked
            for lk in self.locks.values()
        )

    def check(self, ok: bool, what: str) -> None:
        if not ok:
            self.violations.append(what)
            self.say(f"  INVARIANT FAILED: {what}")

    def produced(self) -> int:
        return sum(lk.app.core.journal.next_seq - 1 for lk in self.locks.values() if lk.app is not None)

    def received(self) -> int:
        return len(self.cloud.received) if self.cloud else 0

    def run_mini(self) -> dict[str, object]:
        assert self.cloud and self.cloud_broker and self.gateway
        now = int(time.time())
        issuer = CodeIssuer(lambda t: keys.derive(self.roots[t], keys.CODE, t))
        self.say("residents type their codes; one visitor mistypes")
        for lid, lk in self.locks.items():
            code = issuer.issue(lid, pc.WINDOW, now, now + 30 * 86400, now, holder="resident")
            assert code.keypad
            lk.type_code(code.keypad)
        first = next(iter(self.locks.values()))
        first.type_code("1234567890")
        self.check(wait_for(lambda: self.received() == len(self.locks) + 1), "codes recorded in the cloud")
        self.say("remote unlocks from the cloud, one of them already expired")
        rtts = []
        cloud = self.cloud

        def acked(cmd_id: str) -> Callable[[], bool]:
            return lambda: cmd_id in cloud.ack_times

        for i, lid in enumerate(self.lock_ids):
            t0 = time.perf_counter()
            cloud.send_command(lid, f"r-{i}", int(time.time()) + 30)
            self.check(wait_for(acked(f"r-{i}"), 10), f"ack for r-{i}")
            rtts.append((cloud.ack_times.get(f"r-{i}", t0) - t0) * 1000)
        self.cloud.send_command(self.lock_ids[0], "r-late", int(time.time()) - 1)
        self.check(
            wait_for(lambda: bool(self.cloud and self.cloud.acks_for("r-late")), 10), "expired answered"
        )
        late = self.cloud.acks_for("r-late")
        self.check(bool(late) and late[0][1].body[2] == "expired", "the expired command was not executed")  # type: ignore[index]
        self.say("the uplink goes down; people keep leaving through the exit buttons")
        self.cloud_broker.stop()
        for _ in range(20):
            for lk in self.locks.values():
                lk.hal.press_exit()
            time.sleep(0.05)
        self.check(
            wait_for(lambda: self.gateway is not None and self.gateway.outbox.backlog() >= 20), "backlog held"
        )
        backlog = self.gateway.outbox.backlog()
        self.say(f"  {backlog} records waiting in the gateway's outbox")
        t_back = time.monotonic()
        self.cloud_broker.start()
        self.check(wait_for(lambda: self.received() == self.produced(), 60), "every record delivered")
        delay = time.monotonic() - t_back
        produced, received = self.produced(), self.received()
        self.check(produced == received, f"records produced ({produced}) == received ({received})")
        recs = self.cloud.records()  # one copy for the whole report
        for lid in self.lock_ids:
            seqs = sorted(s for d, s in recs if d == lid)
            self.check(seqs == list(range(1, len(seqs) + 1)), f"{lid}: no gap in sequence numbers")
        granted = sum(1 for r in recs.values() if r.granted)
        reasons: dict[str, int] = {}
        for r in recs.values():
            reasons[r.reason] = reasons.get(r.reason, 0) + 1
        rtts.sort()
        return {
            "locks": len(self.locks),
            "records_produced": produced,
            "records_received": received,
            "duplicates_removed": self.cloud.duplicates,
            "granted": granted,
            "denied_by_reason": {k: v for k, v in reasons.items() if k != "ok"},
            "outbox_backlog_during_outage": backlog,
            "delivery_after_outage_s": round(delay, 2),
            "command_rtt_ms_p50": round(rtts[len(rtts) // 2], 2),
            "command_rtt_ms_max": round(rtts[-1], 2),
            "invariants_failed": self.violations,
        }

    def close(self) -> None:
        for lk in self.locks.values():
            lk.power_cut()
        if self.cloud:
            self.cloud.stop()
        if self.gateway:
            self.gateway.stop()
            time.sleep(0.5)
        self.backend.db.close()
        for b in (self.local_broker, self.cloud_broker):
            if b:
                b.close()


def main(n_locks: int, report_path: Path | None, scenario: str = "day") -> int:
    from simulators.day import Day

    with tempfile.TemporaryDirectory(prefix="lockedge-site-") as td:
        runner = SiteRunner(Path(td), n_locks, torn_lock=2 if scenario == "day" else None)
        try:
            runner.start()
            report = Day(runner).run() if scenario == "day" else runner.run_mini()
        finally:
            runner.close()
    print(table(report, f"site report ({scenario} scenario)"))
    if report_path is not None:
        report_path.write_text(json.dumps(report, indent=1))
        print(f"report written to {report_path}")
    ok = not report["invariants_failed"]
    print("all invariants hold" if ok else "INVARIANTS FAILED", file=sys.stdout if ok else sys.stderr)
    return 0 if ok else 1


def table(report: dict[str, object], title: str) -> str:
    """The report for a terminal: one line a figure, nested maps indented."""
    lines = [f"\n{title}"]

    def put(k: str, v: object, depth: int) -> None:
        pad = "  " * depth
        if isinstance(v, dict) and v:
            lines.append(f"{pad}{k}")
            for k2, v2 in v.items():
                put(str(k2), v2, depth + 1)
        elif isinstance(v, list) and v:
            lines.append(f"{pad}{k}")
            lines.extend(f"{pad}  - {x}" for x in v)
        else:
            lines.append(f"{pad}{k:<{34 - len(pad)}} {v if v not in ({}, []) else '-'}")

    for k, v in report.items():
        put(k, v, 1)
    return "\n".join(lines)
