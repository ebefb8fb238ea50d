"""The cloud backend's visitor flows and its memory (issue 8), over SQLite.

Flows, each a method with its refusals (FlowError.reason):

- Invitation: a resident invites a visitor for a target (gate or lock) and
  a window, entering the visitor's name and identity-document number; the
  visitor opens the invitation and gives their own details; the backend
  checks them against what the resident entered (a simple rule-based
  check, named as such: document number equal, names equal ignoring case
  and spacing) and returns the visitor's code, keypad and long form.
  Refusals: unknown-invitation, used, expired, identity-mismatch.
- Self-service request at the gate: the visitor gives identity and the
  position (the target they want); the request goes to the community
  platform for that position (a callable: approve or refuse); approved,
  the code's validity comes from the visitor policy table (occupation,
  purpose, frequency). Refusals: blacklisted, unknown-position,
  community-refused, policy (a bad frequency).
- Blacklisting a visitor mid-validity: every code issued to them is
  revoked by a signed blacklist delta (their code ids and "v:<visitor>"),
  returned for the caller to send to the devices.
- Remote unlock by a resident: only a resident registered for that door,
  and not moved out, gets a command (id, door, deadline); the receiver seals
  it with the lock's own command key, so the lock checks it end to end and
  the gateway can only relay it. Refusals: unknown-position, not-resident,
  moved-out.

Records received from the site are kept (device, sequence unique) so a
report can count what arrived, duplicates and gaps.
"""

from __future__ import annotations

import hashlib
import json
import secrets
import sqlite3
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from gateway.issuer import CodeIssuer, Issued
from protocol import passcode as pc
from protocol.record import PassRecord
from simulators.cloud.policy import PolicyError, VisitorPolicy

SCHEMA = """
CREATE TABLE IF NOT EXISTS invitations (token TEXT PRIMARY KEY, resident TEXT, name TEXT, document TEXT,
    target TEXT, start INTEGER, end_ INTEGER, status TEXT);
CREATE TABLE IF NOT EXISTS codes (code_id TEXT PRIMARY KEY, visitor TEXT, target TEXT, start INTEGER,
    end_ INTEGER, how TEXT, revoked INTEGER DEFAULT 0);
CREATE TABLE IF NOT EXISTS requests (id INTEGER PRIMARY KEY AUTOINCREMENT, visitor TEXT, position TEXT,
    occupation TEXT, purpose TEXT, frequency TEXT, result TEXT, at INTEGER);
CREATE TABLE IF NOT EXISTS blacklist (visitor TEXT PRIMARY KEY, until_ INTEGER, reason TEXT);
CREATE TABLE IF NOT EXISTS bl_version (id INTEGER PRIMARY KEY CHECK (id = 1), version INTEGER);
CREATE TABLE IF NOT EXISTS records (device TEXT, seq INTEGER, time INTEGER, door TEXT, kind TEXT, ref TEXT,
    granted INTEGER, reason TEXT, received_at REAL, PRIMARY KEY (device, seq));
CREATE TABLE IF NOT EXISTS duplicates (device TEXT, seq INTEGER, received_at REAL);
CREATE TABLE IF NOT EXISTS residents (resident TEXT, lock TEXT, since INTEGER, until_ INTEGER,
    PRIMARY KEY (resident, lock));
CREATE TABLE IF NOT EXISTS commands (cmd_id TEXT PRIMARY KEY, resident TEXT, lock TEXT, at INTEGER,
    deadline INTEGER, status TEXT);
CREATE TABLE IF NOT EXISTS serials (target TEXT, profile INTEGER, start_unit INTEGER, variant INTEGER,
    serial INTEGER, end_ INTEGER, PRIMARY KEY (target, profile, start_unit, variant, serial));
"""


class SqliteAllocations:
    """The issuer's live serials in the issuing database (table `serials`),
    read and written inside the transaction that records the grant."""

    def __init__(self, db: sqlite3.Connection) -> None:
        self.db = db

    def in_use(self, slot: tuple[str, int, int, int], now: int) -> set[int]:
        rows = self.db.execute(
            "SELECT serial FROM serials"
            " WHERE target=? AND profile=? AND start_unit=? AND variant=? AND end_>?",
            (*slot, now),
        ).fetchall()
        return {int(r[0]) for r in rows}

    def take(self, slot: tuple[str, int, int, int], serial: int, end: int) -> None:
        self.db.execute("INSERT OR REPLACE INTO serials VALUES (?,?,?,?,?,?)", (*slot, serial, end))


@dataclass(frozen=True)
class Command:
    cmd_id: str
    lock: str
    deadline: int


class FlowError(Exception):
    def __init__(self, reason: str, message: str) -> None:
        super().__init__(f"{reason}: {message}")
        self.reason = reason


def visitor_id(document: str) -> str:
    """Pseudonymous visitor id: what codes and blacklists name."""
    return "v" + hashlib.sha256(b"lockedge visitor " + document.strip().upper().encode()).hexdigest()[:10]


def _norm(name: str) -> str:
    return " ".join(name.lower().split())


@dataclass(frozen=True)
class Request:
    name: str
    document: str
    position: str
    occupation: str
    purpose: str
    frequency: str


class CloudBackend:
    def __init__(
        self,
        db: Path | str,
        issuer: CodeIssuer,
        positions: set[str],
        policy: VisitorPolicy | None = None,
        platform: Callable[[Request], bool] = lambda r: True,
        token: Callable[[], str] | None = None,
    ) -> None:
        # Autocommit: each flow opens its own BEGIN IMMEDIATE, so the serial
        # it allocates and the grant it records are one transaction, and a
        # second process issuing at the same time waits for it.
        self.db = sqlite3.connect(str(db), check_same_thread=False, isolation_level=None, timeout=30)
        self.db.executescript(SCHEMA)
        issuer.allocations = SqliteAllocations(self.db)  # never two grants with the same live code
        self.issuer = issuer
        self.positions = positions
        self.policy = policy or VisitorPolicy()
        self.platform = platform
        self._lock = threading.Lock()
        # Hex, not base64url: a token is typed after --token, and one that
        # began with '-' (1 in 64 of base64url) reads to argparse as an option.
        self._token = token or (lambda: secrets.token_hex(12))

    # -- invitation ----------------------------------------------------------------

    def invite(self, resident: str, name: str, document: str, target: str, start: int, end: int) -> str:
        if target not in self.positions:
            raise FlowError("unknown-position", f"no gate or lock {target!r} at this site")
        if end <= start:
            raise FlowError("invalid", "the visit must end after it starts")
        tok = self._token()
        with self._lock, self.db:
            row = (tok, resident, name, document.strip().upper(), target, start, end, "open")
            self.db.execute("INSERT INTO invitations VALUES (?,?,?,?,?,?,?,?)", row)
        return tok

    def accept(self, token: str, name: str, document: str, now: int) -> Issued:
        with self._lock:
            row = self.db.execute(
                "SELECT name, document, target, start, end_, status FROM invitations WHERE token = ?",
                (token,),
            ).fetchone()
            if row is None:
                raise FlowError("unknown-invitation", "no such invitation")
            iname, idoc, target, start, end, status = row
            if status != "open":
                raise FlowError("used", "this invitation was already accepted")
            if now >= end:
                raise FlowError("expired", "the visit window is over")
            if document.strip().upper() != idoc or _norm(name) != _norm(iname):
                raise FlowError("identity-mismatch", "the identity given does not match the invitation")
            vid = visitor_id(document)
            if self._blacklisted(vid, now):
                raise FlowError("blacklisted", "this visitor may not be admitted")
            with self._tx():
                begin = max(start, now - now % 3600)
                issued = self.issuer.issue(target, pc.WINDOW, begin, end, now, holder=vid)
                self.db.execute("UPDATE invitations SET status = 'used' WHERE token = ?", (token,))
                self._remember(issued, vid, "invitation")
            return issued

    # -- self-service ----------------------------------------------------------------

    def request(self, r: Request, now: int) -> Issued:
        vid = visitor_id(r.document)
        with self._lock:
            result = "refused"
            try:
                if self._blacklisted(vid, now):
                    raise FlowError("blacklisted", "this visitor may not be admitted")
                if r.position not in self.positions:
                    raise FlowError("unknown-position", f"no gate or lock {r.position!r} at this site")
                try:
                    rule = self.policy.decide(r.occupation, r.purpose, r.frequency)
                except PolicyError as e:
                    raise FlowError("policy", str(e)) from None
                if not self.platform(r):
                    raise FlowError("community-refused", "the community platform refused the request")
                start = now - now % 3600
                with self._tx():
                    issued = self.issuer.issue(
                        r.position, rule.kind, start, start + rule.hours * 3600, now, holder=vid
                    )
                    self._remember(issued, vid, f"self-service:{rule.name}")
                result = "approved"
                return issued
            except FlowError as e:
                result = e.reason
                raise
            finally:
                with self.db:
                    cols = "visitor, position, occupation, purpose, frequency, result, at"
                    self.db.execute(
                        f"INSERT INTO requests ({cols}) VALUES (?,?,?,?,?,?,?)",  # noqa: S608 - constant columns
                        (vid, r.position, r.occupation, r.purpose, r.frequency, result, now),
                    )

    # -- residents and remote unlock -----------------------------------------------------

    def register_resident(self, resident: str, lock: str, now: int) -> None:
        if lock not in self.positions:
            raise FlowError("unknown-position", f"no lock {lock!r} at this site")
        with self._lock, self.db:
            self.db.execute("INSERT OR REPLACE INTO residents VALUES (?,?,?,0)", (resident, lock, now))

    def move_out(self, resident: str, now: int) -> list[str]:
        """End a resident's registrations; returns the resident codes still
        live, for the caller to revoke on the devices."""
        with self._lock, self.db:
            self.db.execute(
                "UPDATE residents SET until_ = ? WHERE resident = ? AND until_ = 0", (now, resident)
            )
            q = "SELECT code_id FROM codes WHERE visitor = ? AND revoked = 0 AND end_ > ?"
            return [c for (c,) in self.db.execute(q, (resident, now))]

    def remote_unlock(self, resident: str, lock: str, now: int, ttl: int = 30) -> Command:
        if lock not in self.positions:
            raise FlowError("unknown-position", f"no lock {lock!r} at this site")
        with self._lock, self.db:
            row = self.db.execute(
                "SELECT until_ FROM residents WHERE resident = ? AND lock = ?", (resident, lock)
            ).fetchone()
            if row is None:
                raise FlowError("not-resident", "only a resident of this door may unlock it remotely")
            if row[0] and row[0] <= now:
                raise FlowError("moved-out", "this resident has moved out")
            cmd = Command("u-" + self._token(), lock, now + ttl)
            self.db.execute("INSERT INTO commands VALUES (?,?,?,?,?,?)",
                            (cmd.cmd_id, resident, lock, now, cmd.deadline, "sent"))  # fmt: skip
            return cmd

    def command_done(self, cmd_id: str, status: str) -> None:
        with self._lock, self.db:
            self.db.execute("UPDATE commands SET status = ? WHERE cmd_id = ?", (status, cmd_id))

    # -- blacklist -------------------------------------------------------------------

    def blacklist(self, document: str, until: int, reason: str, now: int) -> dict[int, object]:
        """Refuse the visitor from now on and revoke what they hold; returns
        the blacklist delta body (docs/passcodes.md) to sign and send."""
        vid = visitor_id(document)
        with self._lock, self.db:
            q = "SELECT code_id FROM codes WHERE visitor = ? AND revoked = 0 AND end_ > ?"
            codes = [c for (c,) in self.db.execute(q, (vid, now))]
            self.db.execute("INSERT OR REPLACE INTO blacklist VALUES (?,?,?)", (vid, until, reason))
            self.db.execute("UPDATE codes SET revoked = 1 WHERE visitor = ?", (vid,))
            return self._next_blacklist([["v:" + vid, until]] + [[c, until] for c in codes])

    def revoke_codes(self, code_ids: list[str], until: int) -> dict[int, object]:
        """Revoke codes the backend issued (say, a tenant's who moved out)
        before they end; returns the blacklist delta body to send."""
        with self._lock, self.db:
            for c in code_ids:
                self.db.execute("UPDATE codes SET revoked = 1 WHERE code_id = ?", (c,))
            return self._next_blacklist([[c, until] for c in code_ids])

    def remember(self, issued: Issued, holder: str, how: str) -> None:
        """Keep a code issued outside the visitor flows (a resident's)."""
        with self._lock, self.db:
            self._remember(issued, holder, how)

    def _next_blacklist(self, entries: list[list[object]]) -> dict[int, object]:
        # The first update is a full snapshot, later ones deltas on it; the
        # devices refuse a delta whose base they do not hold.
        row = self.db.execute("SELECT version FROM bl_version WHERE id = 1").fetchone()
        base = row[0] if row else 0
        self.db.execute("INSERT OR REPLACE INTO bl_version VALUES (1, ?)", (base + 1,))
        if base == 0:
            return {1: "full", 2: 1, 4: entries}
        return {1: "delta", 2: base + 1, 3: base, 4: entries}

    def _blacklisted(self, vid: str, now: int) -> bool:
        row = self.db.execute("SELECT until_ FROM blacklist WHERE visitor = ?", (vid,)).fetchone()
        return row is not None and (row[0] == 0 or row[0] > now)

    @contextmanager
    def _tx(self) -> Iterator[None]:
        self.db.execute("BEGIN IMMEDIATE")
        try:
            yield
        except BaseException:
            self.db.execute("ROLLBACK")
            raise
        self.db.execute("COMMIT")

    def _remember(self, issued: Issued, vid: str, how: str) -> None:
        self.db.execute("INSERT OR REPLACE INTO codes VALUES (?,?,?,?,?,?,0)",
                        (issued.code_id, vid, issued.target, issued.start, issued.end, how))  # fmt: skip

    # -- records and report -------------------------------------------------------------

    def store_record(self, r: PassRecord, received_at: float) -> bool:
        """Keep a record once per (device, sequence); False for a duplicate."""
        with self._lock, self.db:
            try:
                self.db.execute("INSERT INTO records VALUES (?,?,?,?,?,?,?,?,?)",
                                (r.device, r.seq, r.time, r.door, r.kind, r.ref, int(r.granted), r.reason,
                                 received_at))  # fmt: skip
                return True
            except sqlite3.IntegrityError:
                self.db.execute("INSERT INTO duplicates VALUES (?,?,?)", (r.device, r.seq, received_at))
                return False

    def report(self) -> dict[str, object]:
        with self._lock:
            q = "SELECT kind || ':' || reason, COUNT(*) FROM records GROUP BY kind, reason"
            by_reason = dict(self.db.execute(q).fetchall())
            gaps = {}
            for dev, lo, hi, n in self.db.execute(
                "SELECT device, MIN(seq), MAX(seq), COUNT(*) FROM records GROUP BY device"
            ):
                if hi - lo + 1 != n:
                    gaps[dev] = (hi - lo + 1) - n
            dup = self.db.execute("SELECT COUNT(*) FROM duplicates").fetchone()[0]
            req = dict(self.db.execute("SELECT result, COUNT(*) FROM requests GROUP BY result").fetchall())
            total = self.db.execute("SELECT COUNT(*) FROM records").fetchone()[0]
            cmds = dict(self.db.execute("SELECT status, COUNT(*) FROM commands GROUP BY status").fetchall())
        return {"records": total, "by_outcome": by_reason, "gaps": gaps, "duplicates_dropped": dup,
                "requests": req, "commands": cmds}  # fmt: skip

    def dump(self) -> str:
        return json.dumps(self.report(), sort_keys=True)
