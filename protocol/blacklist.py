# The revocation list a lock or gate checks before it accepts a code.
#
# The cloud publishes it as versioned updates inside authenticated envelopes
# (type "bl", MACed with the device's cmd key; the caller verifies the
# envelope, this class checks the sequence and applies):
#
#   {1: "full",  2: version, 4: [[id, expires], ...]}             snapshot
#   {1: "delta", 2: version, 3: base, 4: [[id, expires], ...], 5: [id, ...]}
#
# A delta applies only on top of exactly `base` (the current version) and
# must advance the version; otherwise it is refused ("gap": ask for a
# snapshot, or "stale"), and nothing changes. Ids are code ids ("pc-...",
# "qr-...") or holder ids ("v:<visitor>"); `expires` is Unix seconds (0 =
# never). Expired entries are dropped, which keeps the list bounded.

from protocol.errors import DUPLICATE, INVALID, MALFORMED, STALE, TOO_LARGE, ProtocolError

GAP = "gap"
MAX_ID = 40


def _entries(items: object) -> list:
    if not isinstance(items, list):
        raise ProtocolError(MALFORMED, "blacklist entries are not a list")
    out = []
    for e in items:
        if not isinstance(e, list) or len(e) != 2:
            raise ProtocolError(MALFORMED, "blacklist entry is not [id, expires]")
        i, exp = e
        if not isinstance(i, str) or not (0 < len(i) <= MAX_ID):
            raise ProtocolError(INVALID, "blacklist id must be 1..%d chars" % MAX_ID)
        if not isinstance(exp, int) or exp is True or exp is False or exp < 0:
            raise ProtocolError(INVALID, "blacklist expiry out of range")
        out.append((i, exp))
    return out


class Blacklist:
    def __init__(self, max_entries: int = 1024) -> None:
        self.max_entries = max_entries
        self.version = 0
        self.entries: dict = {}

    def apply(self, body: object, now: int) -> int:
        """Apply one update; return the new version. Refusals change nothing."""
        if not isinstance(body, dict):
            raise ProtocolError(MALFORMED, "blacklist update is not a map")
        op = body.get(1)
        version = body.get(2)
        if not isinstance(version, int) or version is True or version < 1:
            raise ProtocolError(INVALID, "blacklist version out of range")
        if op == "full":
            if version <= self.version:
                raise ProtocolError(STALE, "snapshot %d not newer than %d" % (version, self.version))
            new = {}
        elif op == "delta":
            base = body.get(3)
            if version <= self.version:
                raise ProtocolError(DUPLICATE, "delta %d already applied (at %d)" % (version, self.version))
            # version > self.version was checked above, so a delta on top of
            # exactly the current version always advances it. A bool is not
            # a version (True == 1, False == 0 in Python).
            if base is True or base is False or base != self.version:
                raise ProtocolError(
                    GAP, "delta from %r, list is at %d: snapshot needed" % (base, self.version)
                )
            removals = body.get(5, [])
            if not isinstance(removals, list):
                raise ProtocolError(MALFORMED, "blacklist removals are not a list")
            new = dict(self.entries)
            for i in removals:
                if not isinstance(i, str):
                    raise ProtocolError(MALFORMED, "blacklist removal is not an id")
                new.pop(i, None)
        else:
            raise ProtocolError(MALFORMED, "blacklist update kind must be full or delta")
        for i, exp in _entries(body.get(4, [])):
            new[i] = exp
        for i in list(new):
            if new[i] and new[i] <= now:
                del new[i]
        if len(new) > self.max_entries:
            raise ProtocolError(
                TOO_LARGE, "blacklist of %d entries over limit %d" % (len(new), self.max_entries)
            )
        self.entries = new
        self.version = version
        return version

    def blocked(self, ids: "list | tuple", now: int) -> bool:
        for i in ids:
            exp = self.entries.get(i)
            if exp is not None and (exp == 0 or exp > now):
                return True
        return False

    def person_blocked(self, person: str, now: int) -> bool:
        """A person (a finger's owner) is listed under their id or, if the
        backend knows them as a visitor, as "v:" + id."""
        return self.blocked(("v:" + person, person), now)

    def state(self) -> list:
        return [self.version, [[i, e] for i, e in self.entries.items()]]

    def load(self, state: list) -> None:
        self.version = state[0]
        self.entries = dict((i, e) for i, e in state[1])
