# Runs a pass-code scenario (tests/vectors/passcode.json) against the
# verifier; shared by the CPython generator and the MicroPython tests.
from protocol import keys
from protocol.blacklist import Blacklist
from protocol.errors import ProtocolError
from protocol.lockout import Throttle
from protocol.verifier import CodeVerifier
from tests.shared.util import from_json, unhex


def make_verifier(sc):
    groups = {}
    for name, hexkey in sc.get("groups", {}).items():
        groups[name] = unhex(hexkey)
    t = sc.get("throttle", [5, 60, 900, 1800])
    return CodeVerifier(
        sc["device"],
        keys.derive(unhex(sc["root"]), keys.CODE, sc["device"]),
        groups=groups,
        keypad_group=sc.get("keypad_group"),
        tolerance=sc.get("tolerance", 300),
        max_used=sc.get("max_used", 256),
        throttle=Throttle(t[0], t[1], t[2], t[3]),
        blacklist=Blacklist(),
    )


def run_step(v, sc, step):
    """Apply one step; return (verifier, outcome dict)."""
    op = step["op"]
    if op == "reboot":
        # State saved on the old monotonic clock, loaded on the new one.
        state = v.state(step["mono_before"])
        v2 = make_verifier(sc)
        v2.load(state, step["mono"])
        return v2, {}
    if op == "blacklist":
        try:
            return v, {"result": v.blacklist.apply(from_json(step["body"]), step["now"])}
        except ProtocolError as e:
            return v, {"result": "err:" + e.reason}
    fn = v.keypad if op == "keypad" else v.long
    d = fn(step["entry"], step["now"], step["mono"])
    return v, {
        "granted": d.granted,
        "reason": d.reason,
        "ref": d.ref,
        "hmacs": d.hmacs,
        "events": [e["event"] + ":" + str(e.get("seconds", "")) for e in d.events],
    }


def check(sc):
    v = make_verifier(sc)
    for i, step in enumerate(sc["steps"]):
        v, out = run_step(v, sc, step)
        for k in out:
            assert out[k] == step[k], "%s step %d: %s is %r, expected %r" % (
                sc["name"],
                i,
                k,
                out[k],
                step[k],
            )
