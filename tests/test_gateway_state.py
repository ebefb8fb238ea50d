"""One writer per gateway state folder, and a status that tells the truth
(issue 16, items 8 and 9): real brokers, real daemon processes."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from protocol import keys
from tests.gwfixtures import GW, Site, gateway_process, open_site, wait_for

ROOT = Path(__file__).resolve().parent.parent


def _cli(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "lockedge.cli", *args], cwd=ROOT, capture_output=True, text=True, timeout=60
    )


@pytest.fixture
def brokers(tmp_path: Path) -> Iterator[Site]:
    os.chmod(tmp_path, 0o700)
    s = Site(tmp_path, n_locks=1)
    s.start_brokers()
    s.start_cloud()
    yield s
    s.close()


def test_a_second_daemon_is_refused_and_status_tells_running_from_stale(brokers: Site) -> None:
    cfg = brokers.config_file()
    state = brokers.dir / "state"
    first = gateway_process(cfg)
    try:
        wait_for(lambda: (state / "control.sock").exists(), timeout=30, what="first daemon up")
        second = _cli("gateway", "run", "--config", str(cfg))
        assert second.returncode == 2
        assert f"process {first.pid}" in second.stderr and "already runs" in second.stderr
        assert "Traceback" not in second.stderr
        st = _cli("gateway", "status", "--config", str(cfg))
        assert st.returncode == 0, st.stdout + st.stderr
        assert f"running (pid {first.pid}" in st.stdout and "cloud up" in st.stdout
    finally:
        first.send_signal(signal.SIGTERM)
        assert first.wait(20) == 0
    st = _cli("gateway", "status", "--config", str(cfg))
    # Was "cloud up, local up", rc 0, from the file the stopped daemon left.
    assert st.returncode == 3 and "NOT RUNNING" in st.stdout and "stale" in st.stdout, st.stdout
    first = gateway_process(cfg)  # the lock went with the process: a new daemon starts
    try:
        wait_for(lambda: _cli("gateway", "status", "--config", str(cfg)).returncode == 0, timeout=30)
    finally:
        first.send_signal(signal.SIGKILL)
        first.wait()
    st = _cli("gateway", "status", "--config", str(cfg))  # kill -9 leaves no stale lock
    assert st.returncode == 3 and "NOT RUNNING" in st.stdout


def test_import_while_the_daemon_runs_is_done_by_the_daemon(tmp_path: Path) -> None:
    """Was: the CLI opened the outbox too and deleted the daemon's segment;
    the daemon acked locks but stopped uploading, and records were lost."""
    from cryptography.hazmat.primitives import serialization as ser

    from gateway import bundle
    from gateway.config import write_secret
    from lockedge.cli import main
    from simulators.office import Office, Tenant
    from tests.test_bundles import iso

    (tmp_path / "site").mkdir()
    office = Office(tmp_path / "office", "site-7")
    gw_key = bundle.RecipientKey.new()
    write_secret(tmp_path / "site" / "bundle.key", gw_key.secret)
    pub = office.public_key().public_bytes(ser.Encoding.Raw, ser.PublicFormat.Raw).hex()
    s = open_site(tmp_path / "site", n_locks=1)
    try:
        s.stop_gateway()
        s.extra_config = f'\n[biometrics]\nbundle_key_file = "bundle.key"\nissuers = ["{pub}"]\n'
        s.start_gateway()
        wait_for(lambda: s.gateway is not None and s.gateway.cloud.connected.is_set(), what="uplink")
        from tests.gwfixtures import SITE as GSITE

        office.site = GSITE
        office.seal_keys.update({lk: keys.derive(r, keys.SEAL, lk) for lk, r in s.lock_roots.items()})
        lid = next(iter(s.lock_roots))
        office.add_tenant(Tenant("t-1", "Ana Lima", "ID-1", lid))
        now = int(time.time())
        office.enrol("t-1", "ID-1", "Ana Lima", [(2, iso(50, 0))], "door access", "gate", now)
        stick = tmp_path / "stick"
        office.export(stick, gw_key.public_blob(), now)
        lk = s.locks[lid]
        lk.produce(30, batch=10)
        wait_for(lambda: s.cloud is not None and len(s.cloud.received) >= 30, what="records before")
        cfg = s.dir / "gateway.toml"
        rc = main(["gateway", "import", "--config", str(cfg), "--dir", str(stick)])
        assert rc == 0
        assert s.gateway and s.gateway.bio and s.gateway.bio.gallery is not None
        assert len(s.gateway.bio.gallery) == 1  # the daemon imported it into its own gallery
        lk.produce(30, batch=10)  # and keeps uploading afterwards
        wait_for(
            lambda: s.cloud is not None and len([k for k in s.cloud.records() if k[0] == lid]) == 60,
            what="records after the import",
        )
        wait_for(lambda: s.cloud is not None and any(k[0] == GW for k in s.cloud.records()), what="audit")
    finally:
        s.close()


def test_a_gateway_whose_state_files_are_damaged_still_starts_and_says_so(tmp_path: Path) -> None:
    s = open_site(tmp_path, n_locks=1)
    try:
        s.stop_gateway()
        s.start_gateway()  # each start writes the state: both copies now exist
        s.stop_gateway()
        state = s.dir / "state"
        assert (state / "state.json.b").exists()
        (state / "state.json").write_bytes(b"\x00" * 100)
        s.start_gateway()  # one copy left: nothing lost, nothing to say
        wait_for(lambda: s.gateway is not None and s.gateway.cloud.connected.is_set(), what="uplink")
        assert s.gateway is not None and s.gateway.state_damaged == 0
        s.stop_gateway()
        for name in ("state.json", "state.json.b"):
            (state / name).write_bytes(b"{torn")
        gw = s.start_gateway()  # raised JSONDecodeError before
        assert gw.state_damaged == 2
        wait_for(
            lambda: (
                s.cloud is not None and any(r.reason == "state-damaged" for r in s.cloud.records().values())
            ),
            what="the state-damaged record in the cloud",
        )
    finally:
        s.close()
