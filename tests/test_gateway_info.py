"""The gateway's retained `info` message and its metrics (issue 20), with
real brokers: a lock's `hello` counts only under the lock's own key, a
forged or malformed one is refused by reason and changes nothing; a lock
removed from locks.json leaves `info` and the metrics at the next reload;
the metrics endpoint listens on loopback only."""

from __future__ import annotations

import json
import socket
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from prometheus_client.parser import text_string_to_metric_families

from gateway import config
from gateway.config import MetricsConfig
from gateway.metrics import Metrics
from protocol import envelope, keys
from simulators.broker import free_port
from tests.gwfixtures import GW, SITE, Site, open_site, wait_for


@pytest.fixture
def site(tmp_path: Path) -> Iterator[Site]:
    s = open_site(tmp_path, n_locks=2)
    yield s
    s.close()


def _info(s: Site) -> dict[str, Any]:
    assert s.cloud
    with s.cloud.lock:
        return dict(s.cloud.infos.get(GW, {}))


def _hello(s: Site, lock: str, key: bytes, body: object, seq: int) -> None:
    stub = s.locks[lock]
    stub.client.publish(
        f"lock/{lock}/evt", envelope.seal(key, "hello", lock, seq, int(time.time()), body), qos=1
    )


def test_info_shows_each_locks_firmware_only_from_a_hello_under_its_own_key(site: Site) -> None:
    s = site
    gw = s.gateway
    assert gw is not None
    wait_for(lambda: set(_info(s).get("locks", {})) == {"lock-0000", "lock-0001"}, what="info")
    info = _info(s)
    assert info["gateway"] == GW and info["site"] == SITE
    k0 = keys.derive(s.lock_roots["lock-0000"], keys.LOCAL, "lock-0000")
    k1 = keys.derive(s.lock_roots["lock-0001"], keys.LOCAL, "lock-0001")
    _hello(s, "lock-0000", k1, {1: "9.9.9-forged"}, 1_000_001)  # another lock's key
    _hello(s, "lock-0000", k0, {1: "x" * 33}, 1_000_002)  # too long
    _hello(s, "lock-0000", k0, {1: 7}, 1_000_003)  # not text
    wait_for(
        lambda: gw.stats.refused.get("bad-tag", 0) == 1 and gw.stats.refused.get("invalid-field", 0) == 2,
        what="three refusals",
    )
    assert gw.firmware == {}
    _hello(s, "lock-0000", k0, {1: "1.2.3"}, 1_000_004)
    _hello(s, "lock-0000", k0, {1: "1.2.3-replayed"}, 1_000_004)  # the same sequence again
    wait_for(lambda: gw.stats.refused.get("duplicate", 0) == 1, what="the replay refused")
    wait_for(
        lambda: (
            _info(s)["locks"]
            == {
                "lock-0000": {"firmware": "1.2.3", "availability": "online"},
                "lock-0001": {"firmware": None, "availability": "online"},
            }
        ),
        what="info with lock-0000's firmware",
    )
    assert s.cloud is not None and not [
        b for _l, b in s.cloud.events if isinstance(b, dict) and 1 in b
    ]  # not relayed

    # Removed from locks.json: gone from `info` at the reload, no restart.
    keys_now = json.loads(gw.cfg.locks_file.read_text())
    del keys_now["lock-0000"]
    config.write_secret(gw.cfg.locks_file, json.dumps(keys_now).encode())
    gw.request_reload()
    wait_for(lambda: set(_info(s).get("locks", {})) == {"lock-0001"}, what="info without lock-0000")
    assert "lock-0000" not in gw.firmware and "lock-0000" not in gw.relay.known


def test_a_locks_file_that_does_not_read_keeps_the_locks_being_served(site: Site) -> None:
    gw = site.gateway
    assert gw is not None
    before = dict(gw.lock_keys)
    config.write_secret(gw.cfg.locks_file, b"{not json")
    answer = gw.reload_locks()
    assert answer["ok"] is False and "expected JSON" in answer["error"]
    assert gw.lock_keys == before and gw.relay.known == set(before)


def test_metrics_are_served_on_loopback_only_and_follow_the_status(tmp_path: Path) -> None:
    port = free_port()
    m = Metrics(MetricsConfig(textfile=tmp_path / "lockedge.prom", port=port))
    m.start()
    try:
        st = {
            "cloud": True, "local": False, "backlog": 3, "oldest_unacked_age_s": 12.5, "uptime_s": 60,
            "records_in": 5, "records_acked": 2, "locks": {"lock-1": "online", "lock-2": "offline"},
            "clock_drift_s": {"lock-1": -1.5}, "refused": {"bad-tag": 4},
            "decisions": {"code:ok": 2, "code:wrong-code": 1},
            "biometrics": {"imports": {"imported": 1, "stale": 2}},
        }  # fmt: skip
        m.update(st)
        body = urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5).read().decode()
        assert body == (tmp_path / "lockedge.prom").read_text()  # one registry, two ways out
        got = {(s.name, tuple(sorted(s.labels.items()))): s.value
               for fam in text_string_to_metric_families(body) for s in fam.samples}  # fmt: skip
        assert got[("lockedge_link_up", (("link", "local"),))] == 0
        assert got[("lockedge_outbox_backlog_records", ())] == 3
        assert got[("lockedge_outbox_oldest_unacked_age_seconds", ())] == 12.5
        assert got[("lockedge_lock_available", (("lock", "lock-2"),))] == 0
        assert got[("lockedge_lock_clock_drift_seconds", (("lock", "lock-1"),))] == -1.5
        assert got[("lockedge_refused_messages_total", (("reason", "bad-tag"),))] == 4
        assert got[("lockedge_decisions_total", (("kind", "code"), ("reason", "wrong-code")))] == 1
        assert got[("lockedge_bundle_imports_total", (("result", "stale"),))] == 2
        st["locks"] = {"lock-1": "online"}
        m.update(st)
        assert 'lock="lock-2"' not in (tmp_path / "lockedge.prom").read_text()  # no stale series
        # Bound to 127.0.0.1: another address of this machine is not served.
        other = socket.gethostbyname(socket.gethostname())
        if not other.startswith("127."):
            with pytest.raises(OSError), socket.create_connection((other, port), timeout=1):
                pass
    finally:
        m.close()
