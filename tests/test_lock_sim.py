"""The unchanged firmware on the simulated HAL, against a real gateway and
real Mosquitto brokers (issue 4's "done when", first part)."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from gateway.issuer import CodeIssuer
from protocol import envelope, keys
from protocol import passcode as pc
from simulators.locksim import SimLock
from tests.gwfixtures import GW, Site, open_site, wait_for


@pytest.fixture
def rig(tmp_path: Path) -> Iterator[tuple[Site, SimLock]]:
    (tmp_path / "site").mkdir()
    s = open_site(tmp_path / "site", n_locks=1)
    for lk in s.locks.values():
        lk.stop()  # the stub gives way to the real firmware
    s.locks.clear()
    assert s.local_broker
    lid = "lock-0000"
    sim = SimLock(
        lid, s.lock_roots[lid], tmp_path / "flash", GW, s.local_broker.port, s.passwords[lid]
    ).boot()
    assert sim.app is not None
    app = sim.app
    wait_for(lambda: app.link.connected and app.link.time_set > 0, what="lock online with gateway time")
    # The lock asked the cloud at boot; the answer came back through the gateway.
    wait_for(lambda: app.core.clock.trusted, what="the cloud's signed time")
    yield s, sim
    sim.power_cut()
    s.close()


def _cloud_records(s: Site, lid: str) -> list[tuple[int, bool, str]]:
    assert s.cloud
    return [(k[1], r.granted, r.reason) for k, r in sorted(s.cloud.records().items()) if k[0] == lid]


def test_valid_code_opens_and_the_record_reaches_the_cloud(rig: tuple[Site, SimLock]) -> None:
    s, sim = rig
    now = int(time.time())
    issued = CodeIssuer(lambda t: keys.derive(s.lock_roots[t], keys.CODE, t)).issue(
        sim.id, pc.WINDOW, now, now + 3600, now
    )
    assert issued.keypad
    sim.type_code(issued.keypad)
    wait_for(lambda: sim.hal.strike_on, what="strike energised")
    wait_for(lambda: not sim.hal.strike_on, timeout=5, what="strike released")
    sim.type_code("0000000000")
    wait_for(lambda: len(_cloud_records(s, sim.id)) == 2, what="records in the cloud")
    assert _cloud_records(s, sim.id) == [(1, True, "ok"), (2, False, "wrong-code")]


def test_remote_unlock_end_to_end_and_forgeries_refused(rig: tuple[Site, SimLock]) -> None:
    s, sim = rig
    assert s.cloud
    s.cloud.send_command(sim.id, "r-1", int(time.time()) + 30)
    wait_for(lambda: s.cloud is not None and bool(s.cloud.acks_for("r-1")), what="ack")
    assert s.cloud.acks_for("r-1")[0][1].body == {1: "r-1", 2: "done"}
    assert any(on for _t, on in sim.hal.strike_log)
    s.cloud.send_command(sim.id, "r-old", int(time.time()) - 5)  # expired: the gateway answers
    wait_for(lambda: s.cloud is not None and bool(s.cloud.acks_for("r-old")), what="expired")
    assert s.cloud.acks_for("r-old")[0][1].body[2] == "expired"  # type: ignore[index]
    wait_for(lambda: len(_cloud_records(s, sim.id)) >= 1, what="record")
    assert _cloud_records(s, sim.id)[0] == (1, True, "ok")


def test_a_command_that_timed_out_never_runs_when_the_lock_comes_back(rig: tuple[Site, SimLock]) -> None:
    """Issue 17 item 1, with real brokers: the lock goes offline, the gateway
    publishes its time (it did at QoS 1, queued in the lock's session) and
    relays a command the cloud is then told timed out. When the lock came
    back, the old time set its clock back and the command ran 53 s late."""
    s, sim = rig
    assert s.cloud and s.gateway
    sim.power_cut()
    gw = s.gateway
    wait_for(lambda: gw.availability.get(sim.id) == "offline", what="offline")
    gw.send_time(sim.id)
    s.cloud.send_command(sim.id, "r-late", int(time.time()) + 3)
    wait_for(lambda: s.cloud is not None and bool(s.cloud.acks_for("r-late")), what="timeout answer")
    assert s.cloud.acks_for("r-late")[0][1].body[2] == "timeout"  # type: ignore[index]
    time.sleep(4)  # past the deadline
    sim.boot()
    app = sim.app
    assert app is not None
    wait_for(lambda: app.link.connected, what="back online")
    # A positive signal instead of a pause: a fresh command on the same
    # session runs; a queued late one would have been delivered before it.
    s.cloud.send_command(sim.id, "r-fresh", int(time.time()) + 30)
    wait_for(lambda: s.cloud is not None and bool(s.cloud.acks_for("r-fresh")), what="the fresh command")
    cloud = s.cloud

    def remote() -> list[str]:
        return [r.ref for k, r in sorted(cloud.records().items()) if k[0] == sim.id and r.kind == "remote"]

    wait_for(lambda: "r-fresh" in remote(), what="the fresh command's record")
    assert remote() == ["r-fresh"]  # the late one never reached the lock
    assert [e.body[2] for _l, e in s.cloud.acks_for("r-late")] == ["timeout"]  # type: ignore[index]


def test_1000_records_made_while_the_broker_is_down_all_arrive_once(rig: tuple[Site, SimLock]) -> None:
    s, sim = rig
    assert s.local_broker and sim.app
    s.local_broker.stop()
    app = sim.app
    wait_for(lambda: not app.link.connected, what="link down")
    for _ in range(1000):
        sim.hal.press_exit()
        deadline = time.monotonic() + 2
        while sim.hal._exit.is_set() and time.monotonic() < deadline:
            time.sleep(0.0005)
    wait_for(lambda: app.journal.backlog() == 1000, timeout=30, what="journaled")
    s.local_broker.start()
    wait_for(lambda: len(_cloud_records(s, sim.id)) == 1000, timeout=120, what="all delivered")
    recs = _cloud_records(s, sim.id)
    assert [r[0] for r in recs] == list(range(1, 1001))  # in order, none missing
    assert s.cloud is not None and s.cloud.order[sim.id] == list(range(1, 1001))  # arrival order too
    wait_for(lambda: app.journal.backlog() == 0, timeout=30, what="acked back to the lock")


def _sim_lock_script(tmp_path: Path, port: int, script: str) -> dict[str, Any]:
    """`lockedge sim lock L1` driven by a script on stdin (root.key and pw in
    tmp_path); its last status line."""
    import json
    import subprocess
    import sys

    cmd = [sys.executable, "-m", "lockedge.cli", "sim", "lock", "--id", "L1"]
    cmd += ["--broker", f"127.0.0.1:{port}", "--flash", str(tmp_path / "flash")]
    cmd += ["--root-key-file", str(tmp_path / "root.key"), "--password-file", str(tmp_path / "pw")]
    out = subprocess.run(
        cmd,
        input=script,
        capture_output=True,
        text=True,
        timeout=60,
        cwd=Path(__file__).resolve().parent.parent,
    )
    assert out.returncode == 0, out.stderr
    st: dict[str, Any] = json.loads(out.stdout.strip().splitlines()[-1])
    return st


def test_sim_lock_cli_is_scriptable(tmp_path: Path) -> None:
    """`lockedge sim lock` driven from a script, with no broker reachable:
    the lock still decides offline and journals; power cut and boot keep it."""

    from gateway.config import write_secret
    from simulators.broker import free_port

    root = bytes(range(32))
    write_secret(tmp_path / "root.key", root)
    write_secret(tmp_path / "pw", b"x")
    now = int(time.time())
    code = CodeIssuer(lambda t: keys.derive(root, keys.CODE, t)).issue("L1", pc.WINDOW, now, now + 3600, now)
    script = f"code {code.keypad}\nwait 0.5\nexit\nwait 0.3\npower-cut\nboot\nwait 0.3\nstatus\nquit\n"
    st = _sim_lock_script(tmp_path, free_port(), script)
    assert st["opened"] == 2 and st["backlog"] == 2 and st["running"] and not st["link"]


def test_sealed_entry_over_the_local_link_enrols_a_finger_that_opens(rig: tuple[Site, SimLock]) -> None:
    from gateway import lockentry

    s, sim = rig
    assert s.gateway and s.cloud
    now = int(time.time())
    from gateway.biometrics import iso19794
    from simulators import fingerprints as fpg

    def iso(finger: int, i: int) -> bytes:
        im = fpg.impression(fpg.master(finger, 5), i, 5)
        return iso19794.single(im.minutiae, im.width, im.height)

    m = lockentry.plain(
        sim.id, lockentry.random_bundle_id(), 1, 0, "add", "p-31", now + 600, [(1, iso(31, 0))]
    )
    token = lockentry.seal_entry(lockentry.seal_key(s.lock_roots[sim.id], sim.id), m, now)
    forged = token[:-1] + bytes((token[-1] ^ 1,))
    s.gateway.local.publish(f"lock/{sim.id}/ent", forged)
    s.gateway.local.publish(f"lock/{sim.id}/ent", token)

    def results() -> list[object]:
        assert s.cloud
        return [b.get("result") for lk, b in s.cloud.events if lk == sim.id and isinstance(b, dict)]

    wait_for(lambda: len(results()) == 2, what="entry events")
    assert results() == ["bad-tag", "ok"]
    sim.present_finger(iso(31, 4))  # another impression of the enrolled finger
    # The decision first (its reason says why if it failed), then the strike
    # it drove, from the strike's log: the strike is on for only open_s, and
    # a loaded machine can poll past that window.
    wait_for(lambda: len(_cloud_records(s, sim.id)) == 1, timeout=30, what="the finger's record")
    assert _cloud_records(s, sim.id) == [(1, True, "ok")]
    assert any(on for _t, on in sim.hal.strike_log)
    sim.present_finger(iso(32, 0))  # someone else's finger
    wait_for(lambda: len(_cloud_records(s, sim.id)) == 2, what="finger records")
    assert _cloud_records(s, sim.id) == [(1, True, "ok"), (2, False, "no-match")]
    assert s.cloud.received[(sim.id, 1)].ref == "p-31"


def _publish_as(s: Site, user: str, password: str, topic: str, payload: bytes) -> int:
    """Connect to the local broker as `user` and publish once; the CONNACK code."""
    import paho.mqtt.client as mqtt
    from paho.mqtt.enums import CallbackAPIVersion

    assert s.local_broker
    c = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=user)
    c.username_pw_set(user, password)
    try:
        rc = c.connect("127.0.0.1", s.local_broker.port)
    except Exception:
        return -1
    c.loop_start()
    try:
        deadline = time.monotonic() + 5
        while not c.is_connected() and time.monotonic() < deadline:
            time.sleep(0.05)
        if not c.is_connected():
            return -1
        c.publish(topic, payload, qos=1).wait_for_publish(5)
        return int(rc)
    finally:
        c.disconnect()
        c.loop_stop()


def test_the_local_key_cannot_set_the_lock_clock_back_over_real_brokers(rig: tuple[Site, SimLock]) -> None:
    """Issue 17 item 1, as the attack script ran it: real brokers, a time
    message MACed with the lock's own local key (all a gateway holds), 11
    days back. The lock's clock does not move, the refusal reaches the
    cloud as an event, and a code that expired an hour ago stays expired."""
    s, sim = rig
    assert s.cloud and sim.app
    app = sim.app
    before = sim.hal.time()
    assert before is not None
    local = keys.derive(s.lock_roots[sim.id], keys.LOCAL, sim.id)
    back = envelope.seal(local, "time", GW, 10**15, 0, {1: before - 11 * 86400, 2: 0}, sim.id)
    assert s.gateway
    s.gateway.local.publish(f"lock/{sim.id}/time", back, qos=1)  # the gateway's own login, queued like before
    cloud = s.cloud

    def refused() -> bool:
        return any(
            isinstance(b, dict) and b.get("event") == "time-refused" and b.get("reason") == "behind"
            for _l, b in cloud.events
        )

    wait_for(refused, what="the step back refused and reported")
    now = sim.hal.time()
    assert now is not None and abs(now - before) < 30
    assert app.core.clock.mark >= before
    code = CodeIssuer(lambda t: keys.derive(s.lock_roots[t], keys.CODE, t)).issue(
        sim.id, pc.WINDOW, before - 12 * 86400, before - 11 * 86400 + 3600, before - 12 * 86400
    )
    assert code.keypad
    sim.type_code(code.keypad)
    wait_for(lambda: len(_cloud_records(s, sim.id)) == 1, what="the code's record")
    assert _cloud_records(s, sim.id)[0][1] is False and not any(on for _t, on in sim.hal.strike_log)


def test_a_stolen_gateway_is_replaced_and_its_copy_of_the_local_key_retired(
    rig: tuple[Site, SimLock],
) -> None:
    """Issue 17 item 5, recovery from a stolen gateway (docs/protocol.md
    section 7): a new gateway with a new root, given by the cloud the lock's
    next-epoch local key; the cloud's rekey (end to end, the lock's cmd key)
    moves the lock to it. The stolen copy of the old local key is refused by
    the lock, records made before and after reach the cloud once, and an
    issued code keeps working (the code key was not touched)."""
    import secrets

    s, sim = rig
    assert s.cloud and sim.app
    app = sim.app
    now = int(time.time())
    code = CodeIssuer(lambda t: keys.derive(s.lock_roots[t], keys.CODE, t)).issue(
        sim.id, pc.WINDOW, now, now + 3600, now
    )
    stolen_local = keys.derive(s.lock_roots[sim.id], keys.LOCAL, sim.id)
    sim.hal.press_exit()  # a record made before the theft
    wait_for(lambda: len(_cloud_records(s, sim.id)) == 1, what="first record")
    s.stop_gateway()
    s.gw_root = secrets.token_bytes(32)
    s.cloud.replace_gateway(GW, s.gw_root)
    s.local_epochs[sim.id] = 1
    s.start_gateway()
    sim.hal.press_exit()  # made while the lock still speaks the old key: refused, kept, sent again later
    s.cloud.send_rekey(sim.id, "rk-1", int(time.time()) + 60, {keys.LOCAL: 1})
    wait_for(lambda: s.cloud is not None and bool(s.cloud.acks_for("rk-1")), what="rekey ack")
    assert s.cloud.acks_for("rk-1")[0][1].body == {1: "rk-1", 2: "done"}
    assert app.core.epochs == {keys.LOCAL: 1}
    wait_for(lambda: len(_cloud_records(s, sim.id)) == 3, timeout=30, what="records through the new gateway")
    recs = _cloud_records(s, sim.id)
    assert [r[0] for r in recs] == [1, 2, 3] and recs[2] == (3, False, "rekeyed")
    # Whoever holds the stolen copy (here with the broker access a gateway has)
    # gets nothing from the lock.
    fake = envelope.seal(stolen_local, "time", GW, 10**15, 0, {1: int(time.time()) + 50, 2: 0}, sim.id)
    assert s.gateway
    s.gateway.local.publish(f"lock/{sim.id}/time", fake)
    wait_for(
        lambda: (
            s.cloud is not None
            and any(
                b.get("event") == "refused" and b.get("reason") == "bad-tag"
                for _l, b in s.cloud.events
                if isinstance(b, dict)
            )
        ),
        what="the stolen key refused by the lock",
    )
    assert code.keypad
    sim.type_code(code.keypad)
    wait_for(lambda: sim.hal.strike_on, what="the issued code still opens")


def test_a_stolen_lock_is_retired_and_its_keys_open_nothing(tmp_path: Path) -> None:
    """Issue 17 item 5, recovery from a stolen lock (docs/protocol.md section
    7): its root is in the thief's hands, so its identity is retired. The
    gateway drops its local key and its broker login; the replacement gets a
    new root. The thief's login is refused by the broker, its records (even
    over another login) by the gateway, and its code key mints nothing that
    opens the replacement; the other lock is untouched."""
    import secrets

    from simulators.broker import local_mosquitto

    (tmp_path / "site").mkdir()
    s = open_site(tmp_path / "site", n_locks=2)
    try:
        assert s.gateway and s.cloud and s.local_broker
        stolen = "lock-0001"
        thief_root, thief_pw = s.lock_roots[stolen], s.passwords[stolen]
        # Recovery: a new root and password for the door's replacement, the
        # gateway and the broker told, the gateway restarted on its new config.
        s.lock_roots[stolen] = secrets.token_bytes(32)
        s.passwords[stolen] = secrets.token_hex(12)
        s.cloud.lock_roots[stolen] = s.lock_roots[stolen]
        for lk in s.locks.values():
            lk.stop()
        s.locks.clear()
        s.stop_gateway()
        port = s.local_broker.port
        s.local_broker.close()
        s.local_broker = local_mosquitto(tmp_path / "site" / "local-broker-2", s.passwords, port=port).start()
        s.start_gateway()
        s.start_locks()
        gw = s.gateway
        assert gw is not None
        # The thief's login: refused by the broker.
        assert _publish_as(s, stolen, thief_pw, f"lock/{stolen}/evt", b"x") != 0
        # Its records, had it another way onto the local network: refused by
        # the gateway (bad tag under the new key). Handed to the gateway's own
        # inbox: a second client with the gateway's login would take over the
        # gateway's session (the broker binds client ids to usernames).
        from gateway.mqttlink import Inbound
        from protocol import record

        rec = record.PassRecord(stolen, 1, int(time.time()), stolen, "exit", "", True, "ok")
        body = record.batch_body([rec])
        batch = envelope.seal(keys.derive(thief_root, keys.LOCAL, stolen), "rec", stolen, 1, 0, body)
        before = gw.stats.refused.get("bad-tag", 0)
        gw.inbox.put(Inbound("local", f"lock/{stolen}/rec", batch))
        wait_for(lambda: gw.stats.refused.get("bad-tag", 0) > before, what="the thief's batch refused")
        assert not any(k[0] == stolen for k in s.cloud.records())  # nothing of the thief's reached the cloud
        # A code minted with the thief's code key opens nothing at the replacement.
        from protocol.verifier import CodeVerifier

        now = int(time.time())
        minted = CodeIssuer(lambda t: keys.derive(thief_root, keys.CODE, t)).issue(
            stolen, pc.WINDOW, now, now + 3600, now
        )
        assert minted.keypad
        replacement = CodeVerifier(stolen, keys.derive(s.lock_roots[stolen], keys.CODE, stolen))
        assert replacement.keypad(minted.keypad, now + 60, 0).reason == "wrong-code"
        # The other lock is untouched: its records still flow.
        s.locks["lock-0000"].produce(3)
        cloud = s.cloud
        wait_for(lambda: sum(1 for k in cloud.records() if k[0] == "lock-0000") >= 3, what="the other lock")
    finally:
        s.close()


def test_a_sim_lock_with_bad_credentials_says_why_it_is_offline(tmp_path: Path) -> None:
    """Issue 20: with a wrong password the simulated lock stayed offline
    silently. Its status now says the broker refused it, and why."""

    from gateway.config import write_secret
    from simulators.broker import local_mosquitto

    write_secret(tmp_path / "root.key", bytes(range(32)))
    write_secret(tmp_path / "pw", b"wrong")
    with local_mosquitto(tmp_path / "broker", {"L1": "right", "gateway": "gw"}) as broker:
        st = _sim_lock_script(tmp_path, broker.port, "wait 1.5\nstatus\nquit\n")
    why = str(st["link_error"])
    assert not st["link"] and "refused" in why and "authori" in why.lower(), st
