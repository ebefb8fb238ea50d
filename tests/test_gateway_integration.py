"""The gateway against real Mosquitto brokers (cloud + local) on loopback."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import paho.mqtt.client as mqtt
import pytest
from paho.mqtt.enums import CallbackAPIVersion

from protocol import envelope, keys
from tests.gwfixtures import SITE, Site, open_site, wait_for


@pytest.fixture
def site(tmp_path: Path) -> Iterator[Site]:
    s = open_site(tmp_path, n_locks=3)
    yield s
    s.close()


def test_command_round_trip_end_to_end(site: Site) -> None:
    assert site.cloud
    site.cloud.send_command("lock-0001", "c-1", int(time.time()) + 30)
    wait_for(lambda: site.cloud is not None and bool(site.cloud.acks_for("c-1")), what="ack")
    lock, env = site.cloud.acks_for("c-1")[0]
    assert lock == "lock-0001" and env.sender == "lock-0001" and env.body == {1: "c-1", 2: "done"}
    assert [e.body[2] for e in site.locks["lock-0001"].commands] == ["c-1"]  # type: ignore[index]
    assert not site.locks["lock-0002"].commands


def test_expired_command_is_answered_and_never_reaches_the_lock(site: Site) -> None:
    assert site.cloud
    site.cloud.send_command("lock-0001", "late", int(time.time()) - 1)
    wait_for(lambda: site.cloud is not None and bool(site.cloud.acks_for("late")), what="expired answer")
    _lock, env = site.cloud.acks_for("late")[0]
    assert env.sender == "gw-1" and env.body[2] == "expired"  # type: ignore[index]
    # A positive signal instead of a pause: a later command on the same path
    # arrives; had the expired one been relayed, it would have come first.
    site.cloud.send_command("lock-0001", "after", int(time.time()) + 30)
    wait_for(lambda: site.cloud is not None and bool(site.cloud.acks_for("after")), what="the later command")
    assert [e.body[2] for e in site.locks["lock-0001"].commands] == ["after"]  # type: ignore[index]


def test_duplicate_command_ids_execute_once(site: Site) -> None:
    assert site.cloud
    dl = int(time.time()) + 30
    site.cloud.send_command("lock-0002", "dup", dl)
    site.cloud.send_command("lock-0002", "dup", dl)
    wait_for(lambda: site.cloud is not None and len(site.cloud.acks_for("dup")) >= 1, what="ack")
    site.cloud.send_command("lock-0002", "dup", dl)  # after the ack: the same answer again
    # The gateway replays the lock's own ack envelope, byte for byte; the
    # cloud's replay window recognises it as the ack it already has.
    wait_for(
        lambda: site.cloud is not None and any("duplicate" in r for r in site.cloud.refused),
        what="repeated answer",
    )
    assert len(site.cloud.acks_for("dup")) == 1
    assert len(site.locks["lock-0002"].commands) == 1


def test_records_flow_lock_to_cloud_exactly_once_after_dedupe(site: Site) -> None:
    lk = site.locks["lock-0000"]
    lk.produce(250, batch=50)
    wait_for(lambda: not lk.unacked, what="rec-acks to the lock")
    lk.next_rec -= 50  # the lock "forgot" an ack and sends a batch again
    lk.produce(0)
    assert site.cloud
    wait_for(lambda: site.cloud is not None and len(site.cloud.received) == 250, what="records in the cloud")
    assert site.cloud.order["lock-0000"] == list(range(1, 251))
    wait_for(lambda: site.gateway is not None and site.gateway.outbox.backlog() == 0, what="outbox drained")


def test_bad_input_is_refused_and_does_not_disturb_other_locks(site: Site) -> None:
    gw = site.gateway
    assert gw and site.local_broker and site.cloud
    # The gateway's own credentials may publish anywhere under lock/, like an attacker on the LAN could.
    c = mqtt.Client(CallbackAPIVersion.VERSION2, client_id="intruder", protocol=mqtt.MQTTv5)
    c.username_pw_set("gateway-test", "x")
    lk = site.locks["lock-0001"]
    forged = envelope.seal(keys.derive(bytes(32), keys.LOCAL, "lock-0001"), "rec", "lock-0001", 1, 0, [1, []])
    bad = [
        ("lock/lock-0001/rec", b"\xff\x00 not cbor"),
        ("lock/lock-0001/rec", forged),
        ("lock/lock-0001/rec", b"\x00" * 70_000),
        ("lock/ghost/rec", forged),
        ("lock/lock-0001/whatever", b"x"),
    ]
    for topic, payload in bad:
        lk.client.publish(topic, payload, qos=1)  # ACL drops what is not its own
    site.locks["lock-0002"].produce(20)
    wait_for(lambda: site.cloud is not None and len(site.cloud.received) >= 20, what="other lock's records")
    wait_for(lambda: sum(gw.stats.refused.values()) >= 2, what="refusals")
    assert {"malformed", "bad-tag", "too-large"} & set(gw.stats.refused)
    assert gw.outbox.backlog() == 0 or len(site.cloud.received) == 20


def test_lock_cannot_act_as_another_lock_on_the_local_broker(site: Site) -> None:
    """The shipped ACL against the real broker. Every "did not arrive" is
    read after a positive signal that the broker had already handled it: a
    later message on the same connection, or the broker's own refusal."""
    assert site.local_broker and site.cloud
    # The broker names a client after its username, so the spy and the stub
    # lock-0002 would take turns ending each other's session: stop the stub.
    site.locks["lock-0002"].stop()
    got: list[str] = []
    subscribed = threading.Event()
    refused: list[int] = []
    spy = mqtt.Client(CallbackAPIVersion.VERSION2, client_id="lock-0002-spy", protocol=mqtt.MQTTv5)
    spy.username_pw_set("lock-0002", site.passwords["lock-0002"])
    spy.on_message = lambda c, u, m: got.append(m.topic)
    spy.on_subscribe = lambda c, u, mid, rcs, p: subscribed.set()
    spy.on_publish = lambda c, u, mid, rc, p: refused.append(rc.value)
    spy.connect("127.0.0.1", site.local_broker.port)
    spy.loop_start()
    try:
        spy.subscribe([("lock/lock-0001/cmd", 1), ("lock/lock-0002/cmd", 1)])  # another lock's, and its own
        assert subscribed.wait(10)
        site.cloud.send_command("lock-0001", "secret", int(time.time()) + 30)
        wait_for(lambda: site.cloud is not None and bool(site.cloud.acks_for("secret")), what="ack")
        site.cloud.send_command("lock-0002", "mine", int(time.time()) + 30)  # published after "secret"
        wait_for(lambda: "lock/lock-0002/cmd" in got, what="the spy's own command")
        assert "lock/lock-0001/cmd" not in got  # the broker delivered in order: it withheld it
        # and lock-0002 cannot publish an ack as lock-0001: the broker answers "not authorized"
        k = keys.derive(site.lock_roots["lock-0002"], keys.UPLINK, "lock-0002")
        forged = envelope.seal(k, "ack", "lock-0002", 1, 0, {1: "secret", 2: "x"})
        spy.publish("lock/lock-0001/ack", forged, qos=1)
        wait_for(lambda: bool(refused), what="the broker's answer to the forged ack")
        assert refused == [0x87]  # MQTT v5 PUBACK: Not authorized
        assert len(site.cloud.acks_for("secret")) == 1
    finally:
        spy.loop_stop()
        spy.disconnect()


def test_a_lock_cannot_take_over_another_locks_session(site: Site) -> None:
    """lock-0001's credentials with client id lock-0000 disconnected the real
    lock-0000, and a command published meanwhile reached neither. With the
    shipped template's use_username_as_clientid the broker names the
    intruder after its username, lock-0001."""
    assert site.local_broker and site.cloud
    victim = site.locks["lock-0000"]
    assert victim.disconnects == 0
    up = threading.Event()
    intruder = mqtt.Client(CallbackAPIVersion.VERSION2, client_id="lock-0000", protocol=mqtt.MQTTv5)
    intruder.username_pw_set("lock-0001", site.passwords["lock-0001"])
    intruder.on_connect = lambda c, u, f, rc, p: up.set() if not rc.is_failure else None
    intruder.connect("127.0.0.1", site.local_broker.port)
    intruder.loop_start()
    try:
        assert up.wait(10), "the intruder's own credentials should still let it connect"
        site.cloud.send_command("lock-0000", "after-takeover", int(time.time()) + 30)
        wait_for(lambda: site.cloud is not None and bool(site.cloud.acks_for("after-takeover")), what="ack")
        assert victim.disconnects == 0  # the broker never ended lock-0000's session
        assert any(e.body.get(2) == "after-takeover" for e in victim.commands if isinstance(e.body, dict))
    finally:
        intruder.loop_stop()
        intruder.disconnect()


def test_lock_timeout_is_answered(tmp_path: Path) -> None:
    s = open_site(tmp_path, n_locks=1, auto_ack=False)
    try:
        assert s.cloud
        s.cloud.send_command("lock-0000", "slow", int(time.time()) + 60)
        wait_for(
            lambda: s.cloud is not None and bool(s.cloud.acks_for("slow")), timeout=10, what="timeout answer"
        )
        assert s.cloud.acks_for("slow")[0][1].body[2] == "timeout"  # type: ignore[index]
    finally:
        s.close()


def test_status_is_published_retained(site: Site) -> None:
    wait_for(
        lambda: site.cloud is not None and b"backlog" in site.cloud.statuses.get("gw-1", b""), what="status"
    )
    assert site.gateway is not None and site.cloud is not None
    assert (site.gateway.cfg.state_dir / "status.json").exists()
    st = json.loads(site.cloud.statuses["gw-1"])  # was `assert SITE`, true of a constant
    assert st["gateway"] == "gw-1" and st["cloud"] is True and st["pid"] > 0


def test_a_status_sent_to_the_cloud_never_says_the_cloud_is_down(site: Site) -> None:
    """The link came up between taking the status and sending it: the
    snapshot said cloud down and went to the cloud (seen once in `make test`)."""
    gw = site.gateway
    assert gw is not None
    sent: list[bytes] = []
    real = gw.cloud.connected

    me = threading.get_ident()

    class Flips:  # down for this thread's snapshot, up for any later look
        calls = 0

        def is_set(self) -> bool:
            if threading.get_ident() != me:
                return True  # the daemon's own thread: the link is up
            Flips.calls += 1
            return Flips.calls > 1

    gw.cloud.connected = Flips()  # type: ignore[assignment]
    orig = gw.cloud.publish

    # The daemon's own thread goes on publishing (availability, info) and may
    # take the first look itself: keep only statuses, and judge what they say.
    def fake(topic: str, payload: bytes, **kw: object) -> None:
        if topic.endswith("/status"):
            sent.append(payload)

    gw.cloud.publish = fake  # type: ignore[assignment,method-assign]
    try:
        gw.publish_status()
    finally:
        gw.cloud.connected, gw.cloud.publish = real, orig  # type: ignore[method-assign]
    assert all(json.loads(p)["cloud"] is True for p in sent), sent  # cloud down: status.json only


def test_time_sync_is_signed_and_drift_is_reported(site: Site) -> None:
    lk = site.locks["lock-0002"]
    wait_for(lambda: bool(lk.times), what="time message")  # sent when the lock came online
    assert abs(lk.times[-1] - time.time()) < 5
    assert not lk.refused  # verified with the lock's local key
    lk.produce(1)
    gw = site.gateway
    assert gw is not None
    wait_for(lambda: "lock-0002" in gw.stats.clock_drift, what="drift")
    assert abs(gw.stats.clock_drift["lock-0002"]) < 5


def test_request_response_with_mqtt5_properties(site: Site) -> None:
    """A status request with an MQTT v5 response topic and correlation data."""
    import threading

    from paho.mqtt.packettypes import PacketTypes
    from paho.mqtt.properties import Properties

    assert site.cloud_broker
    got: dict[str, object] = {}
    done = threading.Event()

    def on_message(c: mqtt.Client, u: object, m: mqtt.MQTTMessage) -> None:
        got["topic"] = m.topic
        got["corr"] = getattr(m.properties, "CorrelationData", None)
        got["payload"] = bytes(m.payload)
        done.set()

    c = mqtt.Client(CallbackAPIVersion.VERSION2, client_id="ops-console", protocol=mqtt.MQTTv5)
    c.on_message = on_message
    subscribed = threading.Event()
    c.on_subscribe = lambda c, u, mid, rcs, p: subscribed.set()  # the broker's SUBACK
    c.connect("127.0.0.1", site.cloud_broker.port)
    c.loop_start()
    c.subscribe(f"site/{SITE}/ops/replies", qos=1)
    assert subscribed.wait(10)
    k_cmd = keys.derive(site.gw_root, keys.CMD, "gw-1")
    req = envelope.seal(
        k_cmd, "req", "cloud", int(time.time() * 1000), int(time.time()), {1: "status", 2: "r-1"}
    )
    props = Properties(PacketTypes.PUBLISH)
    props.ResponseTopic = f"site/{SITE}/ops/replies"
    props.CorrelationData = b"corr-42"
    c.publish(f"site/{SITE}/gw/gw-1/req", req, qos=1, properties=props)
    assert done.wait(10)
    c.loop_stop()
    c.disconnect()
    assert got["topic"] == f"site/{SITE}/ops/replies" and got["corr"] == b"corr-42"
    env = envelope.verify(envelope.parse(got["payload"]), keys.derive(site.gw_root, keys.UPLINK, "gw-1"))  # type: ignore[arg-type]
    assert env.body[1] == "r-1" and b"backlog" in env.body[3].encode()  # type: ignore[index]


def test_availability_online_retained_and_offline_on_stop(site: Site) -> None:
    wait_for(lambda: site.cloud is not None and site.cloud.statuses.get("gw-1/availability") == b"online",
             what="online")  # fmt: skip
    site.stop_gateway()
    wait_for(lambda: site.cloud is not None and site.cloud.statuses.get("gw-1/availability") == b"offline",
             what="offline")  # fmt: skip


def test_logs_are_json_lines() -> None:
    import json
    import logging

    from gateway.logjson import JsonFormatter

    tricky = 'a "quoted" value'
    rec = logging.LogRecord("lockedge.x", logging.WARNING, __file__, 1, "refused %s", (tricky,), None)
    out = json.loads(JsonFormatter().format(rec))
    assert out["msg"] == "refused " + tricky and out["level"] == "WARNING"


def test_authorization_bursts_and_blacklists_from_the_cloud_are_checked_whole(site: Site) -> None:
    """An `auth` burst with one malformed operation changes nothing; a good
    one is cached (its repeat counted as a duplicate); a forged one is
    refused; a lock blacklist or cloud time addressed to another lock is
    not relayed; a
    gate blacklist for a gateway that runs no gate is refused."""
    gw, cloud = site.gateway, site.cloud
    assert gw and cloud
    good = [{1: "op-1", 2: "p-a", 3: "grant", 4: 100}, {1: "op-2", 2: "p-b", 3: "revoke", 4: 100}]
    bad = [*good, {1: "op-3", 2: "p-c", 3: "explode", 4: 100}]
    cloud.send_auth("gw-1", bad)
    wait_for(lambda: gw.stats.refused.get("invalid-field", 0) >= 1, what="the malformed burst refused")
    assert gw.stats.auth == {} and gw.schedule.pending_t.all() == []
    forged = envelope.seal(keys.derive(bytes(32), keys.CMD, "gw-1"), "auth", "cloud", 10**13, 0, good)
    cloud.client.publish(f"site/{SITE}/gw/gw-1/auth", forged, qos=1)
    wait_for(lambda: gw.stats.refused.get("bad-tag", 0) >= 1, what="the forged burst refused")
    cloud.send_auth("gw-1", good)
    cloud.send_auth("gw-1", good[:1])
    wait_for(lambda: gw.stats.auth.get("cached") == 2 and gw.stats.auth.get("duplicate") == 1, what="cached")
    other = keys.derive(site.lock_roots["lock-0002"], keys.CMD, "lock-0002")
    misdirected = envelope.seal(other, "bl", "cloud", 1, 0, {1: "full", 2: 1, 4: []}, "lock-0002")
    cloud.client.publish(f"site/{SITE}/lock/lock-0001/bl", misdirected, qos=1)
    wait_for(lambda: gw.stats.refused.get("malformed", 0) >= 1, what="the misdirected blacklist refused")
    wrong_time = envelope.seal(other, "time", "cloud", 2, 0, {1: 100, 2: 1}, "lock-0002")
    cloud.client.publish(f"site/{SITE}/lock/lock-0001/time", wrong_time, qos=1)
    wait_for(lambda: gw.stats.refused.get("malformed", 0) >= 2, what="the misdirected time refused")
    cloud.client.publish(f"site/{SITE}/lock/nobody/time", wrong_time, qos=1)
    wait_for(lambda: gw.stats.refused.get("unknown-sender", 0) >= 1, what="time for no lock of ours")
    cloud.send_blacklist({1: "full", 2: 1, 4: []}, [], ["gw-1"])
    wait_for(lambda: gw.stats.refused.get("invalid-field", 0) >= 2, what="no gate to take a blacklist")


def test_wrong_codes_across_the_site_raise_one_durable_alarm(site: Site) -> None:
    """Each lock throttles alone, so N locks fall N times faster: the
    gateway counts wrong codes across all of them and raises a durable
    site-brute-force record past the configured rate."""
    gw = site.gateway
    assert gw is not None and site.cloud
    gw.wrong_codes.limit = 6  # the default is 30 an hour: a small site for the test
    site.locks["lock-0000"].produce(4, batch=4, reason="wrong-code")
    site.locks["lock-0001"].produce(2, batch=2, reason="ok")
    wait_for(lambda: gw.stats.records_in >= 6, what="first records")
    assert not any(r.reason == "site-brute-force" for r in site.cloud.records().values())
    site.locks["lock-0001"].produce(4, batch=4, reason="wrong-code")  # 8 wrong codes across two locks
    wait_for(
        lambda: (
            site.cloud is not None
            and any(r.reason == "site-brute-force" for r in site.cloud.records().values())
        ),
        what="the site alarm",
    )
    site.locks["lock-0002"].produce(3, batch=3, reason="wrong-code")
    wait_for(lambda: gw.stats.records_in >= 13, what="more wrong codes")
    alarms = [r for r in site.cloud.records().values() if r.reason == "site-brute-force"]
    assert len(alarms) == 1 and alarms[0].ref.startswith("n") and not alarms[0].granted  # raised once
