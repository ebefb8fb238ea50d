# The lock's main loop (firmware/main.py LockApp) and its provisioning
# (firmware/config.py) on CPython and MicroPython: a fake HAL with a hand-
# driven clock and an in-memory MQTT client, so every path of the loop runs
# on the interpreter that ships, not only in the CPython simulator.
from firmware import config
from firmware.fsio import FlashFS
from firmware.main import LockApp
from firmware.version import VERSION
from protocol import envelope, keys, record
from tests.shared.test_lock_core import NOW, ROOT, _code, _fp_rig, _tpl
from tests.shared.util import fresh_dir, load_vectors, unhex

GW = "gw-1"


class LoopHAL:
    def __init__(self):
        self.t = 100.0
        self.wall = NOW
        self.keys = []
        self.exit = False
        self.door = False
        self.touch = False
        self.strike_on = False
        self.opened = 0
        self.fed = 0
        self.broker = FakeBroker()

    def strike(self, on):
        if on and not self.strike_on:
            self.opened += 1
        self.strike_on = on

    def beep(self, n):
        pass

    def keypad_key(self):
        return self.keys.pop(0) if self.keys else None

    def exit_pressed(self):
        e, self.exit = self.exit, False
        return e

    def finger_touched(self):
        t, self.touch = self.touch, False
        return t

    def door_open(self):
        return self.door

    def time(self):
        return None if self.wall is None else int(self.wall + self.t)

    def set_time(self, t):
        self.wall = t - self.t

    def mono(self):
        return self.t

    def wdt_feed(self):
        self.fed += 1

    def mqtt_client(self, client_id, server, port, user, password, keepalive):
        return FakeClient(self.broker, client_id)


class MQTTException(Exception):  # umqtt.simple's, which is not an OSError
    pass


class FakeBroker:
    def __init__(self):
        self.up = False
        self.refuse = False
        self.published = []  # (topic, bytes, retain)
        self.to_lock = []  # (topic, bytes) waiting for check_msg
        self.will = None
        self.subs = []


class FakeClient:
    def __init__(self, broker, client_id):
        self.b = broker
        self.cb = None

    def _check(self):
        if not self.b.up:
            raise OSError(113)

    def set_callback(self, f):
        self.cb = f

    def set_last_will(self, topic, msg, retain, qos):
        self.b.will = (topic, msg, retain)

    def connect(self, clean_session=True):
        self._check()
        if self.b.refuse:
            raise MQTTException(5)  # umqtt.simple: a CONNACK refusing the credentials

    def subscribe(self, topic, qos=0):
        self._check()
        self.b.subs.append(topic)

    def publish(self, topic, msg, retain=False, qos=0):
        self._check()
        self.b.published.append((topic, msg, retain))

    def check_msg(self):
        self._check()
        while self.b.to_lock:
            topic, msg = self.b.to_lock.pop(0)
            self.cb(topic.encode(), msg)


def _app(fp=None, wall=NOW):
    hal = LoopHAL()
    hal.wall = wall
    fs = FlashFS(fresh_dir("app"))
    app = LockApp(hal, fs, "lock-1", ROOT, GW, "127.0.0.1", 1883, "pw", open_s=5, fp=fp, held_open_s=30)
    return app, hal


def _run(app, hal, seconds, dt=0.5):
    end = hal.t + seconds
    while hal.t < end:
        app.step()
        hal.t += dt


def _events(hal):
    k_up = keys.derive(ROOT, keys.UPLINK, "lock-1")
    envs = [envelope.parse(m) for m in _topics(hal, "evt")]
    envs = [envelope.verify(e, k_up) for e in envs if e.type != "hello"]  # hello: to the gateway
    return [e.body["event"] for e in envs if e.type == "evt"]  # not the time requests


def _topics(hal, leaf):
    return [m for t, m, _r in hal.broker.published if t == "lock/lock-1/" + leaf]


def test_keypad_entry_opens_and_partial_entries_are_not_guesses():
    app, hal = _app()
    code = _code().digits
    hal.keys = list("12*") + list(code) + ["#"]  # '*' clears what came before
    _run(app, hal, 1)
    assert hal.strike_on and hal.opened == 1
    _run(app, hal, 6)
    assert not hal.strike_on  # released after open_s
    hal.keys = list("98765")  # abandoned without '#'
    _run(app, hal, 12)
    hal.keys = ["#"]
    _run(app, hal, 1)
    recs = app.journal.pending(10)
    assert [(r.kind, r.granted) for r in recs] == [("code", True)]  # the abandoned digits were dropped
    assert hal.fed > 10


def test_exit_door_alarms_and_the_watchdog():
    app, hal = _app()
    hal.broker.up = True
    hal.exit = True
    _run(app, hal, 1)
    assert hal.strike_on
    hal.door = True
    _run(app, hal, 31)  # held open past held_open_s
    hal.door = False
    _run(app, hal, 8)
    hal.door = True  # opened with the strike locked: forced
    _run(app, hal, 1)
    kinds = _events(hal)
    assert kinds == ["door-held-open", "door-forced"]
    recs = [(r.kind, r.reason) for r in app.journal.pending(10)]
    assert recs == [("exit", "ok"), ("none", "door-held-open"), ("none", "door-forced")]  # durable too


def test_link_backs_off_uploads_and_forgets_only_after_the_ack():
    app, hal = _app()
    for _ in range(3):
        hal.keys = list("0000000000#")
        _run(app, hal, 0.5)
    assert app.journal.backlog() == 3 and not app.link.connected
    _run(app, hal, 20)  # broker down: back-off, no crash, no loss
    assert app.link.backoff > 4
    hal.broker.up = True
    _run(app, hal, 70)
    assert app.link.connected
    assert hal.broker.will == ("lock/lock-1/availability", b"offline", True)
    assert ("lock/lock-1/availability", b"online", True) in hal.broker.published
    assert "lock/lock-1/ent" in hal.broker.subs
    # On connecting it says which firmware runs, to the gateway (local key).
    hellos = [envelope.parse(m) for m in _topics(hal, "evt") if envelope.parse(m).type == "hello"]
    assert len(hellos) == 1
    k_local = keys.derive(ROOT, keys.LOCAL, "lock-1")
    assert envelope.verify(hellos[0], k_local).body == {1: VERSION}
    batches = _topics(hal, "rec")
    assert batches
    k_local = keys.derive(ROOT, keys.LOCAL, "lock-1")
    env = envelope.verify(envelope.parse(batches[-1]), k_local)
    seqs = [r.seq for r in record.batch_from_body(env.body)]
    assert seqs == [1, 2, 3] and app.journal.backlog() == 3  # not acked yet: kept
    ack = envelope.seal(k_local, "rec-ack", GW, 1, NOW, ["lock-1", seqs])
    t = envelope.seal(k_local, "time", GW, 2, NOW, {1: hal.time() + 30, 2: 0})
    hal.broker.to_lock += [("lock/lock-1/rec-ack", ack), ("lock/lock-1/time", t)]
    want = hal.time() + 30
    _run(app, hal, 1)
    assert app.journal.backlog() == 0 and app.link.time_set == 1
    assert 0 <= hal.time() - want <= 2  # a small step from the gateway is taken (test_lock_clock.py)
    forged = envelope.seal(bytes(32), "rec-ack", GW, 3, NOW, ["lock-1", [1]])
    hal.broker.to_lock.append(("lock/lock-1/rec-ack", forged))
    _run(app, hal, 1)
    assert "refused" in _events(hal) and app.journal.backlog() == 0


def test_sealed_entry_from_the_link_loads_the_module_and_is_acknowledged():
    emu, fp = _fp_rig()
    app, hal = _app(fp=fp)
    hal.broker.up = True
    entries = load_vectors("seal")["entries"]
    hal.broker.to_lock.append(("lock/lock-1/ent", unhex(entries["add-p42"])))
    hal.broker.to_lock.append(("lock/lock-1/ent", unhex(entries["tampered"])))
    _run(app, hal, 2)
    k_local = keys.derive(ROOT, keys.LOCAL, "lock-1")
    acks = [envelope.verify(envelope.parse(m), k_local).body for m in _topics(hal, "ent-ack")]
    assert [a[1] for a in acks] == ["ok", "bad-tag"]
    assert acks[0][3] == bytes((1,)) * 16 and acks[0][4] == 0 and 3 not in acks[1]
    # The delivery receipt for the office: checked with the seal key, which
    # the gateway (the local key) cannot stand in for; none for a refusal
    # whose entry never opened.
    from protocol import seal

    r = seal.open_receipt(keys.derive(ROOT, keys.SEAL, "lock-1"), "lock-1", acks[0][5])
    assert (r["bundle"], r["idx"], r["op"], r["person"], r["result"]) == (
        bytes((1,)) * 16,
        0,
        "add",
        "p-0042",
        "ok",
    )
    assert 5 not in acks[1]
    for key, who in ((k_local, "lock-1"), (keys.derive(ROOT, keys.SEAL, "lock-1"), "lock-2")):
        try:
            seal.open_receipt(key, who, acks[0][5])
        except Exception as e:
            assert getattr(e, "reason", "") in ("bad-tag", "malformed"), e
        else:
            raise AssertionError("a receipt opened under the wrong key or lock")
    emu.finger = _tpl(7)
    hal.touch = True
    _run(app, hal, 1)
    assert hal.strike_on and app.journal.pending(10)[-1].ref == "p-0042"


def test_clock_unset_refuses_windowed_codes():
    app, hal = _app(wall=None)
    hal.keys = list(_code().digits) + ["#"]
    _run(app, hal, 1)
    assert not hal.strike_on and app.journal.pending(10)[-1].reason == "clock-unset"


def test_the_asyncio_loop_runs_steps_until_stopped():
    # Driven by hand: the WebAssembly port's event loop belongs to its host,
    # and a coroutine is a coroutine on every port.
    app, hal = _app()
    steps = [0]
    inner = app.step

    def counted():
        inner()
        hal.t += 0.5
        steps[0] += 1
        if steps[0] == 40:
            app.running = False

    app.step = counted
    hal.keys = list(_code().digits) + ["#"]
    co = app.run(0)
    try:
        while True:
            co.send(None)
    except StopIteration:
        pass
    assert steps[0] == 40 and hal.opened == 1 and hal.fed == 40


def _cfg(**over):
    c = {"id": "lock-0007", "gateway": "gw-1", "server": "192.168.4.1", "wifi": "site-7-locks"}
    for k, v in over.items():
        c[k] = v
    import json

    return json.dumps(c)


def test_provisioning_is_checked_before_anything_runs():
    root = bytes(range(32))
    c = config.parse(_cfg(pins={"strike": 12, "rows": [1, 2, 3, 4]}), root, b"pw\n", b"")
    assert (c["id"], c["port"], c["open_s"], c["mqtt_pw"], c["pins"]["strike"]) == (
        "lock-0007",
        1883,
        5,
        "pw",
        12,
    )
    bad = [
        ("{", root, "not valid JSON"),
        ("[1]", root, "must hold an object"),
        (_cfg(port=70000), root, "port"),
        (_cfg(open_s=True), root, "open_s"),
        (_cfg(id="lock 7"), root, "id and gateway"),
        (_cfg(extra=1), root, "unknown setting"),
        (_cfg(pins={"laser": 1}), root, "unknown pin"),
        (_cfg(pins={"strike": "a"}), root, "pin strike"),
        (_cfg(), root[:31], "root.key"),
    ]
    for text, r, words in bad:
        try:
            config.parse(text, r, b"pw", b"")
        except config.ConfigError as e:
            assert words in str(e), str(e)
            assert "%02x" % r[5] + "%02x" % r[6] not in str(e)  # key bytes never in a message
        else:
            raise AssertionError("accepted: " + text)
    fs = FlashFS(fresh_dir("prov"))
    try:
        config.load(fs)
    except config.ConfigError as e:
        assert "lock.json, root.key, mqtt.pw" in str(e)
    else:
        raise AssertionError("an empty flash was accepted")
    fs.write_atomic("lock.json", _cfg().encode())
    fs.write_atomic("root.key", root)
    fs.write_atomic("mqtt.pw", b"secret")
    assert config.load(fs)["wifi_pw"] == ""


def test_a_fault_in_one_step_does_not_stop_the_door():
    app, hal = _app()
    calls = [0]
    real = hal.keypad_key

    def flaky():
        calls[0] += 1
        if calls[0] == 3:
            raise ValueError("glitch")
        return real()

    hal.keypad_key = flaky
    hal.broker.up = True
    for _ in range(6):
        app.guarded_step()
        hal.t += 0.5
    assert app.faults == 1 and app.last_fault == "ValueError"
    hal.keys = list(_code().digits) + ["#"]
    for _ in range(4):
        app.guarded_step()
        hal.t += 0.5
    assert hal.opened == 1  # still deciding after the fault
    assert "fault" in _events(hal)


def test_a_lock_with_damaged_flash_boots_decides_and_reports_it():
    hal = LoopHAL()
    hal.wall = NOW
    d = fresh_dir("dmg")
    fs = FlashFS(d)
    app = LockApp(hal, fs, "lock-1", ROOT, GW, "127.0.0.1", 1883, "pw", open_s=5, held_open_s=30)
    hal.exit = True
    _run(app, hal, 1)
    for name in ("meta", "meta.b", "j00001.log"):
        with open(d + "/" + name, "ab") as f:
            f.write(b"\x00" * 7)  # what a power loss leaves
    hal2 = LoopHAL()
    hal2.wall = NOW + 60
    app2 = LockApp(hal2, FlashFS(d), "lock-1", ROOT, GW, "127.0.0.1", 1883, "pw", open_s=5, held_open_s=30)
    code = _code().digits
    hal2.keys = list(code) + ["#"]
    _run(app2, hal2, 1)
    assert hal2.strike_on  # it decides
    recs = app2.journal.pending(10)
    assert [r.reason for r in recs] == ["ok", "journal-damage", "ok"]
    assert recs[1].time >= NOW + 60 and recs[1].ref.startswith("b") and recs[1].seq > recs[0].seq + 1


def test_a_broker_that_refuses_the_credentials_is_backed_off_and_said():
    # umqtt raises MQTTException (not OSError) for a refused CONNACK: it was
    # a fault on every 10 ms step, retrying the broker as fast as the loop.
    app, hal = _app()
    hal.broker.up = True
    hal.broker.refuse = True
    attempts = [0]
    make = hal.mqtt_client

    def counting(*a):
        attempts[0] += 1
        return make(*a)

    hal.mqtt_client = counting
    _run(app, hal, 30)
    assert not app.link.connected and app.faults == 0
    assert app.link.last_error.startswith("MQTTException")
    assert attempts[0] <= 6  # 1, 2, 4, 8, 16 s apart, not 60 a second
    hal.broker.refuse = False
    _run(app, hal, 40)
    assert app.link.connected and app.link.last_error == ""
