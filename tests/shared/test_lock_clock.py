# The lock's clock against a gateway that holds only the lock's local key
# (issue 17 item 1), on CPython and MicroPython: the attacks that worked
# before firmware/clock.py, each through the real main loop and link.
from firmware import clock as lockclock
from firmware.main import LockApp
from protocol import envelope, keys
from protocol import passcode as pc
from tests.shared.test_lock_app import GW, LoopHAL, _app, _run, _topics
from tests.shared.test_lock_core import NOW, ROOT

K_LOCAL = keys.derive(ROOT, keys.LOCAL, "lock-1")
K_CMD = keys.derive(ROOT, keys.CMD, "lock-1")
K_UP = keys.derive(ROOT, keys.UPLINK, "lock-1")
K_CODE = keys.derive(ROOT, keys.CODE, "lock-1")
_seq = [1000]


def _next():
    _seq[0] += 1
    return _seq[0]


def _online(wall=NOW):
    app, hal = _app(wall=wall)
    hal.broker.up = True
    _run(app, hal, 2)
    assert app.link.connected
    return app, hal


def _gateway_time(hal, t):
    msg = envelope.seal(K_LOCAL, "time", GW, _next(), 0, {1: t, 2: 0}, "lock-1")
    hal.broker.to_lock.append(("lock/lock-1/time", msg))


def _up(hal):
    # The lock's evt topic also carries its `hello` to the gateway (local key).
    envs = [envelope.parse(m) for m in _topics(hal, "evt")]
    return [e for e in envs if e.type != "hello"]


def _requests(hal):
    envs = [envelope.verify(e, K_UP) for e in _up(hal)]
    return [e.seq for e in envs if e.type == "time-req"]


def _cloud_answer(t, seq):
    return envelope.seal(K_CMD, "time", "cloud", _next(), t, {1: t, 2: seq}, "lock-1")


def _window_code(start_hour, hours=5):
    profile = pc.find_profile(pc.WINDOW, pc.DEVICE, pc.HOUR, hours)
    return pc.make_keypad(K_CODE, "lock-1", profile, start_hour, 0, 3)


def _type(app, hal, digits):
    hal.keys = list(digits) + ["#"]
    _run(app, hal, 0.5)
    return app.journal.pending(1000)[-1]


def _refusals(app):
    hal = app.hal
    envs = [envelope.verify(e, K_UP) for e in _up(hal)]
    return [e.body.get("reason") for e in envs if e.type == "evt" and e.body.get("event") == "time-refused"]


def test_gateway_time_cannot_set_the_clock_back_to_revive_an_expired_code():
    # The attack: an expired courier code, then the gateway's time 11 days back.
    app, hal = _online()
    code = _window_code(NOW // 3600 - 7)  # a courier's five hours, ended two hours ago
    assert _type(app, hal, code.digits).reason == "expired"
    before = hal.time()
    _gateway_time(hal, NOW - 4 * 3600)
    _run(app, hal, 1)
    assert "behind" in _refusals(app)
    assert abs(hal.time() - before) <= 2  # the clock did not move
    rec = _type(app, hal, code.digits)
    assert (rec.granted, rec.reason) == (False, "expired")


def test_forward_then_back_cannot_make_a_one_time_code_work_twice():
    app, hal = _online()
    profile = pc.find_profile(pc.ONCE, pc.DEVICE, pc.HOUR, 5)
    once = pc.make_keypad(K_CODE, "lock-1", profile, NOW // 3600, 0, 2)
    assert _type(app, hal, once.digits).granted
    _run(app, hal, 6)
    _gateway_time(hal, NOW + 30 * 86400)  # forward past the code's end: would prune its memory
    _run(app, hal, 1)
    assert "too-far" in _refusals(app)
    assert hal.time() < NOW + 3600
    _gateway_time(hal, NOW + 200)  # and back
    _run(app, hal, 1)
    rec = _type(app, hal, once.digits)
    assert (rec.granted, rec.reason) == (False, "used")


def test_a_queued_old_time_does_not_let_a_late_command_run():
    app, hal = _online()
    deadline = hal.time() + 5
    cmd = envelope.seal(K_CMD, "cmd", "cloud", _next(), 0, {1: "unlock", 2: "c-late", 3: deadline}, "lock-1")
    hal.broker.up = False
    _run(app, hal, 60)  # offline past the deadline
    hal.broker.up = True
    while not app.link.connected:
        _run(app, hal, 1)
    _gateway_time(hal, deadline - 10)  # the older time, queued ahead of the command
    _run(app, hal, 1)
    hal.broker.to_lock.append(("lock/lock-1/cmd", cmd))
    _run(app, hal, 5)
    rec = [r for r in app.journal.pending(1000) if r.kind == "remote"][-1]
    assert (rec.granted, rec.reason) == (False, "deadline")
    assert hal.opened == 0


def test_gateway_steps_cannot_walk_the_clock():
    app, hal = _online()
    start_offset = hal.time() - hal.t
    for _ in range(40):  # +50 s every 5 minutes: 2000 s if each were taken
        _gateway_time(hal, hal.time() + 50)
        _run(app, hal, 300, dt=5)
    moved = hal.time() - hal.t - start_offset
    elapsed = 40 * 300
    assert 0 < moved <= lockclock.TOLERANCE_S + elapsed * lockclock.DRIFT_PPM // 1000000 + 1
    assert "too-far" in _refusals(app)


def test_small_gateway_steps_are_taken_and_jitter_writes_nothing():
    app, hal = _online()
    before = hal.time()
    _gateway_time(hal, before + 20)  # a slow RTC, corrected
    _run(app, hal, 1)
    assert hal.time() >= before + 20 and app.link.time_set == 1
    gen = app.core._core.gen
    _gateway_time(hal, hal.time() + 1)  # jitter: accepted, no step, no flash write
    _run(app, hal, 1)
    assert app.link.time_set == 2 and app.core._core.gen == gen


def test_an_rtc_behind_the_mark_reads_unset_until_the_cloud_answers():
    app, hal = _online()
    code = _window_code(NOW // 3600 - 1, 24)
    assert _type(app, hal, code.digits).granted  # the mark is saved with the decision
    _run(app, hal, 6)
    fs = app.core.fs
    # Reboot with an RTC that lost a day (a flat backup cell): the mark says no.
    hal2 = LoopHAL()
    hal2.wall = NOW - 86400
    hal2.broker.up = True
    app2 = LockApp(hal2, fs, "lock-1", ROOT, GW, "127.0.0.1", 1883, "pw", open_s=5, held_open_s=30)
    _run(app2, hal2, 2)
    assert _type(app2, hal2, code.digits).reason == "clock-unset"
    _gateway_time(hal2, NOW + 300)  # the gateway's time, right or wrong, is not enough
    _run(app2, hal2, 1)
    assert "needs-cloud" in _refusals(app2)
    assert _type(app2, hal2, code.digits).reason == "clock-unset"
    asked = _requests(hal2)
    assert asked
    # An answer to another request (a stored one, replayed) is refused.
    hal2.broker.to_lock.append(("lock/lock-1/time", _cloud_answer(NOW + 300, asked[-1] - 1)))
    _run(app2, hal2, 1)
    assert "unasked" in _refusals(app2)
    # An answer held back by the gateway past FRESH_S is refused.
    _run(app2, hal2, lockclock.FRESH_S + 1)
    hal2.broker.to_lock.append(("lock/lock-1/time", _cloud_answer(NOW + 300, asked[-1])))
    _run(app2, hal2, 1)
    assert "late" in _refusals(app2)
    assert _type(app2, hal2, code.digits).reason == "clock-unset"
    # Refused answers leave the request unanswered to an observer.
    assert app2.link.time_asked == asked[-1] and app2.link.time_answered is None
    # The lock asks again within ASK_EVERY_S; a timely answer sets the clock.
    waited = 0
    while len(_requests(hal2)) == len(asked) and waited <= lockclock.ASK_EVERY_S:
        _run(app2, hal2, 1)
        waited += 1
    again = _requests(hal2)
    assert len(again) == len(asked) + 1
    t = NOW + 400
    hal2.broker.to_lock.append(("lock/lock-1/time", _cloud_answer(t, again[-1])))
    _run(app2, hal2, 1)
    assert abs(hal2.time() - t) <= 2
    assert app2.link.time_answered == app2.link.time_asked == again[-1]
    assert _type(app2, hal2, code.digits).granted


def test_lost_core_state_trusts_no_clock_until_the_cloud_answers():
    app, hal = _online()
    code = _window_code(NOW // 3600 - 1, 24)
    assert _type(app, hal, code.digits).granted
    _run(app, hal, 6)
    fs = app.core.fs
    for name in fs.listdir():
        if name in ("core", "core.b"):
            fs.remove(name)
    hal2 = LoopHAL()
    hal2.broker.up = True
    app2 = LockApp(hal2, fs, "lock-1", ROOT, GW, "127.0.0.1", 1883, "pw", open_s=5, held_open_s=30)
    _run(app2, hal2, 2)
    assert _type(app2, hal2, code.digits).reason == "clock-unset"  # the RTC may have been set back
    seq = _requests(hal2)[-1]
    hal2.broker.to_lock.append(("lock/lock-1/time", _cloud_answer(hal2.time(), seq)))
    _run(app2, hal2, 1)
    assert _type(app2, hal2, code.digits).granted


def test_clock_answers_on_malformed_times():
    c = lockclock.Clock()
    assert c.now(NOW, 0) == NOW
    for bad in (None, "x", -5, 0, True, 1.5, [1]):
        assert c.from_gateway(bad, NOW, 10) == ("malformed", 0)
        assert c.from_cloud(bad, 1, 10) == "malformed"
    c.asking(7, 10)
    assert c.from_cloud(NOW, "7", 11) == "malformed"
    assert c.from_cloud(NOW, 7, 11) == "ok"
    assert c.from_cloud(NOW, 7, 12) == "unasked"  # one answer per request


def test_the_lock_asks_the_cloud_daily():
    c = lockclock.Clock()
    c.now(NOW, 0)
    assert c.want(0)
    c.asking(1, 0)
    assert not c.want(30)
    assert c.from_cloud(NOW + 5, 1, 5) == "ok"
    assert not c.want(lockclock.RESYNC_S - 1)
    assert c.want(lockclock.RESYNC_S + 5)
