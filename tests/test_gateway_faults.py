"""Fault injection against real brokers: a cloud outage with 10,000 records,
and kill -9 of the gateway process at random moments, many rounds."""

from __future__ import annotations

import functools
import os
import random
import signal
import subprocess
import threading
import time
from pathlib import Path

from tests.gwfixtures import Site, cloud_outage, gateway_process, open_site, wait_for

ROOT = Path(__file__).resolve().parent.parent


def test_cloud_outage_10000_records_all_delivered_in_order(tmp_path: Path) -> None:
    s = open_site(tmp_path, n_locks=2)
    try:
        assert s.cloud_broker and s.gateway and s.cloud
        cloud_outage(s, 5000, 100)  # durable in the outbox and acked to the locks while the uplink is down
        assert s.gateway.outbox.backlog() == 10_000
        s.cloud_broker.start()
        wait_for(
            lambda: s.cloud is not None and len(s.cloud.received) == 10_000, timeout=120, what="delivery"
        )
        for lid in s.locks:
            assert s.cloud.order[lid] == list(range(1, 5001)), lid  # none lost, per-device order kept
        wait_for(
            lambda: s.gateway is not None and s.gateway.outbox.backlog() == 0, timeout=30, what="outbox empty"
        )
    finally:
        s.close()


def _started(p: subprocess.Popen[bytes], sock: Path) -> bool:
    return sock.exists() or p.poll() is not None


def test_kill_9_of_the_gateway_loses_nothing_acked_and_duplicates_nothing(tmp_path: Path) -> None:
    os.chmod(tmp_path, 0o700)
    s = Site(tmp_path, n_locks=2)
    s.start_brokers()
    s.start_cloud()
    cfg = s.config_file()
    s.start_locks()
    rng = random.Random(11)
    stop = threading.Event()

    def produce() -> None:
        while not stop.is_set():
            for lk in s.locks.values():
                lk.produce(20, batch=20)
            time.sleep(0.02)

    producer = threading.Thread(target=produce, daemon=True)
    producer.start()
    try:
        sock = tmp_path / "state" / "control.sock"
        for _round in range(8):
            gw = gateway_process(cfg)
            # Killed at a random point of its work, not during its imports:
            # the control socket appears once it has started its links.
            wait_for(functools.partial(_started, gw, sock), timeout=30, what="gateway up")
            time.sleep(rng.uniform(0.05, 0.8))  # ingesting and uploading
            gw.send_signal(signal.SIGKILL)
            gw.wait()
            sock.unlink(missing_ok=True)  # a killed daemon leaves it; the next start replaces it
            for lk in s.locks.values():
                lk.resend_unacked()  # a real lock retries what was never acked
        stop.set()
        producer.join()
        started = time.time()
        gw = gateway_process(cfg)
        status = tmp_path / "state" / "status.json"
        wait_for(lambda: status.exists() and status.stat().st_mtime >= started, timeout=30, what="gateway up")
        try:
            deadline = time.monotonic() + 90
            while time.monotonic() < deadline and any(lk.unacked for lk in s.locks.values()):
                for lk in s.locks.values():
                    lk.resend_unacked()
                time.sleep(2)
            assert s.cloud
            produced = {lid: lk.next_rec - 1 for lid, lk in s.locks.items()}
            total = sum(produced.values())
            wait_for(
                lambda: s.cloud is not None and len(s.cloud.received) == total, timeout=90, what="all records"
            )
            recs = s.cloud.records()
            for lid, n in produced.items():
                got = sorted(seq for d, seq in recs if d == lid)
                assert got == list(range(1, n + 1)), lid  # nothing lost
            assert len(s.cloud.received) == total  # duplicates removed by (device, seq)
            assert total > 500
        finally:
            gw.send_signal(signal.SIGTERM)  # a clean stop drains and exits 0
            assert gw.wait(20) == 0
    finally:
        stop.set()
        s.close()


def test_uploads_resume_within_seconds_of_the_cloud_brokers_return(tmp_path: Path) -> None:
    """The goal (<= 5 s after an 8 s outage), asserted. How long the old 30 s
    cap made it after a 20 s outage, measured beside it in the same run, is
    bench/gateway_bench.py's resume line (16.6 s against 0.6 s): too long
    a wait for make test, and with paho's doubling delays a shorter outage
    only sometimes shows it."""
    s = open_site(tmp_path, n_locks=1)
    try:
        assert s.cloud_broker and s.gateway and s.cloud
        cloud_outage(s, 20, 20)
        uploaded = s.gateway.stats.records_uploaded
        time.sleep(8)
        s.cloud_broker.start()
        back = time.monotonic()
        wait_for(lambda: s.gateway is not None and s.gateway.stats.records_uploaded > uploaded, timeout=30)
        resumed = time.monotonic() - back
        assert resumed <= 5.0, f"first upload {resumed:.1f} s after the broker came back"
        wait_for(lambda: s.cloud is not None and len(s.cloud.received) == 20, timeout=30, what="delivery")
    finally:
        s.close()
