"""Gateway benchmark: outbox durability and drain, command round trip, memory.

    .venv/bin/python bench/gateway_bench.py            # full run (a few minutes)
    .venv/bin/python bench/gateway_bench.py --quick    # smoke run

Anchors measured in the same run, against the same broker:
- durable append rate beside an SQLite WAL insert rate (synchronous=FULL,
  same batch per transaction), what a user might pick instead;
- drain rate (outbox -> cloud broker -> cloud receiver acks -> compaction)
  beside the raw paho QoS 1 publish rate of the same records, one message
  each, to the same broker (the ceiling);
- command round trip cloud -> gateway -> lock -> gateway -> cloud with 200
  lock clients, beside a bare Mosquitto publish -> subscribe -> reply round
  trip;
- RSS of a gateway process with 500 locks registered and a 100,000-record
  backlog.
"""

from __future__ import annotations

import argparse
import json
import os
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from gateway.mqttlink import nodelay  # noqa: E402
from gateway.outbox import Outbox  # noqa: E402
from protocol import record  # noqa: E402
from tests.gwfixtures import Site, cloud_outage, open_site, wait_for  # noqa: E402


def rec_bytes(dev: str, seq: int) -> bytes:
    return record.PassRecord(dev, seq, 1795000000 + seq, "door-1", "code", "pc-%d" % seq, True, "ok").encode()


def bench_append(n: int, batch: int, d: Path) -> tuple[float, float, float]:
    ob = Outbox(d / "ob")
    data = [("lock-%04d" % (i % 200), i // 200 + 1, rec_bytes("lock-0001", i + 1)) for i in range(n)]
    t0 = time.perf_counter()
    for i in range(0, n, batch):
        ob.append(data[i : i + batch])
    ours = n / (time.perf_counter() - t0)
    single_n = min(n, 500)
    ob2 = Outbox(d / "ob2")
    t0 = time.perf_counter()
    for i in range(single_n):
        ob2.append([data[i]])
    single = single_n / (time.perf_counter() - t0)
    db = sqlite3.connect(d / "wal.db")
    db.execute("PRAGMA journal_mode=WAL")
    db.execute("PRAGMA synchronous=FULL")
    db.execute("CREATE TABLE r (device TEXT, seq INTEGER, data BLOB, PRIMARY KEY (device, seq))")
    t0 = time.perf_counter()
    for i in range(0, n, batch):
        with db:
            db.executemany("INSERT INTO r VALUES (?, ?, ?)", data[i : i + batch])
    sqlite_rate = n / (time.perf_counter() - t0)
    db.close()
    ob.close()
    ob2.close()
    return ours, single, sqlite_rate


def bench_raw_paho(port: int, n: int) -> float:
    c = mqtt.Client(CallbackAPIVersion.VERSION2, client_id="raw", protocol=mqtt.MQTTv5)
    c.max_inflight_messages_set(100)
    c.connect("127.0.0.1", port)
    c.loop_start()
    payload = rec_bytes("lock-0001", 1)
    t0 = time.perf_counter()
    infos = [c.publish("bench/raw", payload, qos=1) for _ in range(n)]
    for i in infos:
        i.wait_for_publish(60)
    rate = n / (time.perf_counter() - t0)
    c.disconnect()
    c.loop_stop()
    return rate


def bench_drain(n: int, d: Path) -> tuple[float, float]:
    s = open_site(d, n_locks=2)
    try:
        assert s.cloud_broker and s.gateway
        raw = bench_raw_paho(s.cloud_broker.port, n)
        s.cloud_broker.stop()
        wait_for(lambda: s.gateway is not None and not s.gateway.cloud.connected.is_set(), what="uplink down")
        per = n // 2
        for lk in s.locks.values():
            lk.produce(per, batch=250)
        wait_for(
            lambda: s.gateway is not None and s.gateway.outbox.backlog() == n, timeout=300, what="backlog"
        )
        s.cloud_broker.start()
        wait_for(
            lambda: s.gateway is not None and s.gateway.cloud.connected.is_set(), timeout=60, what="uplink"
        )
        t0 = time.perf_counter()  # from reconnection: paho's back-off is not drain time
        wait_for(lambda: s.gateway is not None and s.gateway.outbox.backlog() == 0, timeout=600, what="drain")
        drain = n / (time.perf_counter() - t0)
        return drain, raw
    finally:
        s.close()


def bench_rtt(n_locks: int, n_cmds: int, d: Path) -> tuple[list[float], list[float]]:
    # The gateway runs as its own process, as in production; the lock clients
    # and the cloud share this one.
    os.chmod(d, 0o700)
    s = Site(d, n_locks)
    s.start_brokers()
    s.start_cloud()
    cfg = s.config_file()
    started = time.time()
    gw = subprocess.Popen(
        [sys.executable, "-m", "lockedge.cli", "gateway", "run", "--config", str(cfg)],
        cwd=ROOT,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    status = d / "state" / "status.json"
    try:
        wait_for(lambda: status.exists() and status.stat().st_mtime >= started, timeout=30, what="gateway up")
        # The lock clients live in a third process: in the field they are
        # separate devices, and here they must not share a GIL with the cloud.
        assert s.local_broker
        spec = d / "locks.spec.json"
        spec.write_text(
            json.dumps(
                {
                    "port": s.local_broker.port,
                    "roots": {k: v.hex() for k, v in s.lock_roots.items()},
                    "pw": s.passwords,
                }
            )
        )
        locks_proc = subprocess.Popen(
            [sys.executable, "-c", LOCKS_CHILD.format(root=str(ROOT), spec=str(spec))],
            cwd=ROOT,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
        )
        assert locks_proc.stdout is not None
        assert locks_proc.stdout.readline().strip() == "ready"
        time.sleep(1.0)
        assert s.cloud and s.cloud_broker
        locks = sorted(s.lock_roots)
        for i in range(20):  # warm-up
            s.cloud.send_command(locks[i % n_locks], "w-%d" % i, int(time.time()) + 30)
        time.sleep(1.0)
        lats = []
        for i in range(n_cmds):
            lid = locks[i % len(locks)]
            cid = "c-%d" % i
            t0 = time.perf_counter()
            s.cloud.send_command(lid, cid, int(time.time()) + 30)

            def acked(c: str = cid) -> bool:
                return s.cloud is not None and c in s.cloud.ack_times

            wait_for(acked, timeout=10, what="ack")
            lats.append((s.cloud.ack_times[cid] - t0) * 1000)
        # Bare: publisher -> broker -> echo client -> broker -> publisher, on a
        # broker of the same configuration (the anonymous one), same client settings.
        bare = []
        got = threading.Event()
        echo = mqtt.Client(CallbackAPIVersion.VERSION2, client_id="echo", protocol=mqtt.MQTTv5)

        def pong(c: mqtt.Client, u: object, m: mqtt.MQTTMessage) -> None:
            c.publish("bare/pong", m.payload, qos=1)

        def ping_back(c: mqtt.Client, u: object, m: mqtt.MQTTMessage) -> None:
            got.set()

        echo.on_message = pong
        echo.on_connect = lambda c, u, f, rc, p: nodelay(c)
        echo.connect("127.0.0.1", s.cloud_broker.port)
        echo.subscribe("bare/ping", qos=1)
        echo.loop_start()
        pub = mqtt.Client(CallbackAPIVersion.VERSION2, client_id="pinger", protocol=mqtt.MQTTv5)
        pub.on_message = ping_back
        pub.on_connect = lambda c, u, f, rc, p: nodelay(c)
        pub.connect("127.0.0.1", s.cloud_broker.port)
        pub.subscribe("bare/pong", qos=1)
        pub.loop_start()
        time.sleep(0.5)
        for _ in range(n_cmds):
            got.clear()
            t0 = time.perf_counter()
            pub.publish("bare/ping", b"x" * 100, qos=1)
            got.wait(5)
            bare.append((time.perf_counter() - t0) * 1000)
        for c in (echo, pub):
            c.loop_stop()
            c.disconnect()
        assert locks_proc.stdin is not None
        locks_proc.stdin.close()
        locks_proc.wait(30)
        return lats, bare
    finally:
        gw.terminate()
        gw.wait(20)
        s.close()


LOCKS_CHILD = """
import json, sys, time
sys.path.insert(0, {root!r})
from tests.lockstub import StubLock
spec = json.load(open({spec!r}))
locks = [StubLock(l, bytes.fromhex(r), spec["port"], spec["pw"][l]).start() for l, r in spec["roots"].items()]
print("ready", flush=True)
sys.stdin.read()  # until the parent closes our stdin
for lk in locks:
    lk.stop()
"""

RSS_CHILD = """
import sys, time, threading
sys.path.insert(0, {root!r})
from gateway import config
from gateway.daemon import Gateway
gw = Gateway(config.load(__import__("pathlib").Path({cfg!r})))
t = threading.Thread(target=gw.run, daemon=True)
t.start()
time.sleep(3)
backlog = gw.outbox.backlog()
rss = int([l for l in open("/proc/self/status") if l.startswith("VmRSS")][0].split()[1])
print(backlog, rss)
gw.stop(); t.join(10)
"""


def bench_rss(n_locks: int, backlog: int, d: Path) -> tuple[int, int]:
    os.chmod(d, 0o700)
    s = Site(d, n_locks)
    s.start_brokers()
    try:
        assert s.cloud_broker
        s.cloud_broker.stop()  # uplink down: the backlog stays
        cfg = s.config_file()
        ob = Outbox(d / "state" / "outbox")
        locks = sorted(s.lock_roots)
        per = backlog // len(locks)
        for j in range(0, per, 50):
            ob.append(
                [
                    (lid, seq, rec_bytes(lid, seq))
                    for lid in locks
                    for seq in range(j + 1, min(per, j + 50) + 1)
                ]
            )
        ob.close()
        out = subprocess.run(
            [sys.executable, "-c", RSS_CHILD.format(root=str(ROOT), cfg=str(cfg))],
            capture_output=True,
            text=True,
            timeout=300,
        )
        b, rss = out.stdout.split()[-2:]
        return int(b), int(rss)
    finally:
        s.close()


def bench_resume(outage_s: float, d: Path, cap_s: float | None = None) -> float:
    """Seconds from the cloud broker's return after `outage_s` down to the
    gateway's first upload; `cap_s` replaces the reconnect back-off cap (the
    anchor: the 30 s cap the links had before)."""
    from gateway import mqttlink

    saved = mqttlink.RECONNECT_MAX_S
    if cap_s is not None:
        mqttlink.RECONNECT_MAX_S = cap_s
    try:
        s = open_site(d, n_locks=1)
    finally:
        mqttlink.RECONNECT_MAX_S = saved
    try:
        assert s.cloud_broker and s.gateway
        gw = s.gateway
        cloud_outage(s, 20, 20)
        before = gw.stats.records_uploaded
        time.sleep(outage_s)
        s.cloud_broker.start()
        back = time.monotonic()
        wait_for(lambda: gw.stats.records_uploaded > before, timeout=outage_s + 180, what="first upload")
        return time.monotonic() - back
    finally:
        s.close()


def pct(xs: list[float], p: float) -> float:
    xs = sorted(xs)
    return xs[min(len(xs) - 1, int(p / 100 * len(xs)))]


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--quick", action="store_true")
    ap.add_argument("--resume-only", action="store_true", help="only the outage-resume figure")
    a = ap.parse_args()
    q = a.quick
    outage = 5.0 if q else 20.0
    with tempfile.TemporaryDirectory() as td:
        t = Path(td)
        (t / "o1").mkdir()
        (t / "o2").mkdir()
        resume = bench_resume(outage, t / "o1")
        resume_old = bench_resume(outage, t / "o2", cap_s=30.0)
        resume_line = (
            f"{f'first upload after a {outage:.0f} s cloud outage (s)':<52}{resume:14.2f}{resume_old:14.2f}"
            f"{resume / resume_old:8.2f}x   anchor: the 30 s back-off cap before  [<= 5 s]"
        )
        if a.resume_only:
            print(resume_line)
            return 0
        (t / "a").mkdir()
        ours, single, sql = bench_append(5000 if q else 100_000, 100, t / "a")
        (t / "d").mkdir()
        drain, raw = bench_drain(2000 if q else 20_000, t / "d")
        (t / "r").mkdir()
        lats, bare = bench_rtt(20 if q else 200, 50 if q else 500, t / "r")
        (t / "m").mkdir()
        backlog, rss_kb = bench_rss(50 if q else 500, 5000 if q else 100_000, t / "m")

    print(f"gateway bench ({'quick' if q else 'full'}); goals from issue 5 in brackets")
    print(f"{'measure':<52}{'ours':>14}{'anchor':>14}{'ratio':>9}")
    print(
        f"{'outbox durable append, batches of 100 (rec/s)':<52}{ours:14,.0f}{sql:14,.0f}{ours / sql:8.2f}x"
        "   anchor: SQLite WAL, synchronous=FULL  [>= 5,000 rec/s]"
    )
    print(f"{'  one fsync per record (rec/s)':<52}{single:14,.0f}")
    print(resume_line)
    print(
        f"{'drain to cloud incl. acks (rec/s)':<52}{drain:14,.0f}{raw:14,.0f}{drain / raw:8.2f}x"
        "   anchor: raw paho QoS 1, one record per message  [>= 50%]"
    )
    p50, p99 = statistics.median(lats), pct(lats, 99)
    b50, b99 = statistics.median(bare), pct(bare, 99)
    n_locks = 20 if q else 200
    print(
        f"{f'command round trip p50, {n_locks} locks (ms)':<52}{p50:14.2f}{b50:14.2f}{p50 / b50:8.2f}x"
        "   anchor: bare Mosquitto pub -> sub -> reply"
    )
    print(f"{'command round trip p99 (ms)':<52}{p99:14.2f}{b99:14.2f}{p99 / b99:8.2f}x   [<= 3x]")
    print(
        f"{f'gateway RSS, {50 if q else 500} locks, {backlog:,} backlog (MB)':<52}{rss_kb / 1024:14.1f}"
        f"{'':>14}{'':>9}   [<= 80 MB]"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
