"""The installer's path (issue 20), walked as docs/install.md says, with the
real command line in subprocesses, a real Mosquitto started from the
Debian layout `gateway init` writes into, and the unchanged lock firmware
provisioned from the folders `lock add` writes:

cloud provision (gateway, two locks) -> gateway init -> lock add (one lock)
-> broker and daemon start (the daemon under a socket playing systemd) ->
lock add (the second, while the daemon runs: no restart) -> both locks boot
from their folders -> a code decided at each -> metrics scraped -> `info`
seen on the cloud broker with each lock's firmware version -> lock remove.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import stat
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from prometheus_client.parser import text_string_to_metric_families

from firmware import config as lockconfig
from firmware.version import VERSION
from gateway import config, provision
from gateway.issuer import CodeIssuer
from protocol import keys
from protocol import passcode as pc
from simulators.broker import Mosquitto, free_port, mosquitto_binary
from simulators.cloud.receiver import CloudReceiver
from simulators.locksim import SimLock
from tests.gwfixtures import wait_for

ROOT = Path(__file__).resolve().parent.parent
SITE = "site-7"


def lockedge(*args: object, ok: bool = True) -> subprocess.CompletedProcess[str]:
    r = subprocess.run(
        [sys.executable, "-m", "lockedge.cli", *map(str, args)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
        env=dict(os.environ, LOCKEDGE_CONFIG=""),
    )
    assert "Traceback" not in r.stderr + r.stdout, r.stderr
    assert (r.returncode == 0) == ok, (r.returncode, r.stdout, r.stderr)
    return r


def debian_mosquitto(d: Path, port: int) -> Path:
    """/etc/mosquitto as Debian ships it, moved under `d`: its main file sets
    pid_file and persistence and includes conf.d (where init writes)."""
    (d / "conf.d").mkdir(parents=True)
    lines = [f"pid_file {d}/mosquitto.pid", "persistence true", f"persistence_location {d}/",
             f"log_dest file {d}/mosquitto.log", f"include_dir {d}/conf.d"]  # fmt: skip
    if os.geteuid() == 0:
        lines.insert(0, "user root")  # as in simulators/broker.py: the test's files are root's
    (d / "mosquitto.conf").write_text("\n".join(lines) + "\n")
    return d / "mosquitto.conf"


def start_mosquitto(conf: Path, port: int) -> subprocess.Popen[bytes]:
    p = subprocess.Popen(
        [mosquitto_binary(), "-c", str(conf)], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE
    )

    def listening() -> bool:
        assert p.poll() is None, p.stderr.read().decode() if p.stderr else ""
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.2):
                return True
        except OSError:
            return False

    wait_for(listening, timeout=10, what="the site's Mosquitto listening")
    return p


@pytest.fixture
def walk(tmp_path: Path) -> Iterator[dict[str, object]]:
    os.chmod(tmp_path, 0o700)
    procs: list[subprocess.Popen[bytes]] = []
    things: dict[str, object] = {"procs": procs, "dir": tmp_path}
    cloud_broker = Mosquitto("cloud", workdir=tmp_path / "cloud-broker").start()
    things["cloud_broker"] = cloud_broker
    try:
        yield things
    finally:
        for lk in things.get("locks", []):  # type: ignore[attr-defined]
            lk.power_cut()
        rx = things.get("cloud")
        if isinstance(rx, CloudReceiver):
            rx.stop()
        for p in reversed(procs):
            if p.poll() is None:
                p.send_signal(signal.SIGTERM)
                try:
                    p.wait(20)
                except subprocess.TimeoutExpired:
                    p.kill()
                    p.wait()
        cloud_broker.close()


def test_from_tickets_to_a_running_site_as_the_install_guide_walks_it(walk: dict[str, object]) -> None:
    d = walk["dir"]
    assert isinstance(d, Path)
    procs = walk["procs"]
    assert isinstance(procs, list)
    cloud_broker = walk["cloud_broker"]
    assert isinstance(cloud_broker, Mosquitto)
    cloud, etc, boards = d / "cloud", d / "etc-lockedge", d / "boards"
    cloud.mkdir(mode=0o700)
    boards.mkdir()
    roots = cloud / "roots.json"

    # The cloud provisions the gateway and two locks.
    lockedge(
        "cloud",
        "--roots",
        roots,
        "provision",
        "gateway",
        "gw-1",
        "--out",
        cloud,
        "--site",
        SITE,
        "--cloud-broker",
        f"127.0.0.1:{cloud_broker.port}",
    )
    for lid in ("lock-0001", "lock-0002"):
        r = lockedge("cloud", "--roots", roots, "provision", "lock", lid, "--out", cloud, "--site", SITE)
        assert f"{lid}.root.key" in r.stdout
    lock_roots = {k: bytes.fromhex(v) for k, v in json.loads(roots.read_text()).items()}
    gw_root = bytes.fromhex(json.loads((cloud / "gateways.json").read_text())["gw-1"])
    assert set(lock_roots) == {"lock-0001", "lock-0002"}  # a gateway is no code target
    ticket = json.loads((cloud / "lock-0001.ticket").read_text())
    assert ticket["local_key"] == keys.derive(lock_roots["lock-0001"], keys.LOCAL, "lock-0001").hex()
    assert lock_roots["lock-0001"].hex() not in (cloud / "lock-0001.ticket").read_text()  # never the root

    # gateway init, into a Debian-like Mosquitto layout.
    local_port = free_port()
    mq = d / "etc-mosquitto"
    mq_conf = debian_mosquitto(mq, local_port)
    cfg = etc / "gateway.toml"
    r = lockedge(
        "gateway",
        "init",
        "--config",
        cfg,
        "--ticket",
        cloud / "gw-1.ticket",
        "--lock-server",
        "127.0.0.1",
        "--local-port",
        local_port,
        "--mosquitto-dir",
        mq,
        "--broker-pid-file",
        mq / "mosquitto.pid",
        "--state-dir",
        d / "state",
        "--wifi",
        "site-7-locks",
        "--metrics-textfile",
        d / "state-metrics.prom",
    )
    assert gw_root.hex() not in r.stdout + r.stderr
    for name in ("gateway.key", "local.pass", "locks.json", "bundle.key", "gateway.toml"):
        assert stat.S_IMODE((etc / name).stat().st_mode) == 0o600, name
    assert (etc / "gateway.key").read_bytes() == gw_root
    assert (etc / "bundle.pub").exists()
    for name in ("lockedge.passwd", "lockedge.acl"):
        assert stat.S_IMODE((mq / name).stat().st_mode) == 0o600, name
    # A second init changes nothing.
    before = {p: p.read_bytes() for p in etc.iterdir()}
    r = lockedge(
        "gateway",
        "init",
        "--config",
        cfg,
        "--ticket",
        cloud / "gw-1.ticket",
        "--lock-server",
        "127.0.0.1",
        "--mosquitto-dir",
        mq,
        ok=False,
    )
    assert "initialised already" in r.stderr
    assert {p: p.read_bytes() for p in etc.iterdir()} == before

    # The first lock before anything runs.
    r = lockedge(
        "lock", "add", "lock-0001", "--ticket", cloud / "lock-0001.ticket", "--out", boards, "--config", cfg
    )
    assert "not running" in r.stdout
    lockedge("gateway", "check-config", "--config", cfg)

    # The broker from the files init wrote, the cloud, the daemon under a "systemd".
    procs.append(start_mosquitto(mq_conf, local_port))
    rx = CloudReceiver(cloud_broker.port, SITE, {"gw-1": gw_root}, lock_roots).start()
    walk["cloud"] = rx
    notify = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    notify.bind(str(d / "notify"))
    notify.settimeout(30)
    env = dict(os.environ, NOTIFY_SOCKET=str(d / "notify"))
    log = (d / "gateway.log").open("wb")
    gw = subprocess.Popen(
        [sys.executable, "-m", "lockedge.cli", "gateway", "run", "--config", str(cfg)],
        cwd=ROOT,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=log,
    )
    procs.append(gw)
    try:
        assert notify.recv(4096).startswith(b"READY=1\nSTATUS=gateway gw-1: 1 locks")
    finally:
        notify.close()

    # The second lock while the daemon runs: no restart.
    r = lockedge(
        "lock", "add", "lock-0002", "--ticket", cloud / "lock-0002.ticket", "--out", boards, "--config", cfg
    )
    assert "local broker reloaded" in r.stdout
    assert "the running gateway reloaded: it serves 2 locks" in r.stdout
    assert gw.poll() is None

    # Each board boots from its folder (and the root.key the cloud wrote for it).
    locks = []
    issuer = CodeIssuer(lambda t: keys.derive(lock_roots[t], keys.CODE, t))
    for lid in ("lock-0001", "lock-0002"):
        folder = boards / lid
        shutil.copy(cloud / f"{lid}.root.key", folder / "root.key")
        c = lockconfig.parse(
            (folder / "lock.json").read_text(),
            (folder / "root.key").read_bytes(),
            (folder / "mqtt.pw").read_bytes(),
            b"",
        )
        assert (c["id"], c["gateway"], c["server"], c["port"], c["wifi"]) == (
            lid,
            "gw-1",
            "127.0.0.1",
            local_port,
            "site-7-locks",
        )
        sim = SimLock(lid, c["root"], d / f"flash-{lid}", c["gateway"], c["port"], c["mqtt_pw"]).boot()
        locks.append(sim)
    walk["locks"] = locks
    for sim in locks:
        app = sim.app
        assert app is not None
        link, clock = app.link, app.core.clock
        wait_for(lambda: bool(link.connected and clock.trusted), what=f"{sim.id} online")  # noqa: B023
        now = int(time.time())
        code = issuer.issue(sim.id, pc.WINDOW, now - 60, now + 3600, now).keypad
        assert code
        sim.type_code(code)
        log_ = sim.hal.strike_log
        wait_for(lambda: any(on for _t, on in log_), what=f"{sim.id} opened")  # noqa: B023
    wait_for(
        lambda: {k[0] for k in rx.records()} == {"lock-0001", "lock-0002"}, what="both records in the cloud"
    )

    # Metrics, as node_exporter's textfile collector reads them.
    def metric(name: str, **labels: str) -> float | None:
        try:
            text = (d / "state-metrics.prom").read_text()
        except FileNotFoundError:
            return None
        for fam in text_string_to_metric_families(text):
            for s in fam.samples:
                if s.name == name and all(s.labels.get(k) == v for k, v in labels.items()):
                    return float(s.value)
        return None

    wait_for(
        lambda: metric("lockedge_decisions_total", kind="code", reason="ok") == 2, what="decisions metric"
    )
    assert metric("lockedge_lock_available", lock="lock-0002") == 1
    assert metric("lockedge_link_up", link="cloud") == 1
    assert metric("lockedge_outbox_backlog_records") is not None

    # `info`, retained on the cloud broker, with each lock's firmware.
    def info() -> dict[str, Any]:
        with rx.lock:
            return dict(rx.infos.get("gw-1", {}))

    wait_for(
        lambda: (
            set(info().get("locks", {})) == {"lock-0001", "lock-0002"}
            and all(v["firmware"] == VERSION for v in info()["locks"].values())
        ),
        what=f"info with both locks' firmware: {info()}",
    )
    i = info()
    assert i["version"] == lockedge("--version").stdout.split()[-1]
    assert isinstance(i["config_digest"], str) and len(i["config_digest"]) == 16

    # Remove one: its key and login go, the daemon stops serving it, no restart.
    r = lockedge("lock", "remove", "lock-0002", "--config", cfg)
    assert "it serves 1 locks" in r.stdout
    assert lockedge("lock", "list", "--config", cfg).stdout.split() == [
        "lock-0001",
        "broker",
        "login:",
        "yes",
    ]
    assert "lock-0002" not in (mq / "lockedge.passwd").read_text()
    wait_for(lambda: set(info().get("locks", {})) == {"lock-0001"}, what="info without the removed lock")
    assert gw.poll() is None
    log.close()


def test_bad_tickets_and_taken_names_change_nothing(tmp_path: Path) -> None:
    os.chmod(tmp_path, 0o700)
    cloud, mq, etc = tmp_path / "cloud", tmp_path / "mq", tmp_path / "etc"
    cloud.mkdir(mode=0o700)
    debian_mosquitto(mq, 1883)
    roots = cloud / "roots.json"
    lockedge(
        "cloud", "--roots", roots, "provision", "gateway", "gw-1", "--out", cloud, "--cloud-broker", "h:1"
    )
    r = lockedge(
        "cloud",
        "--roots",
        roots,
        "provision",
        "gateway",
        "gw-1",
        "--out",
        cloud,
        "--cloud-broker",
        "h:1",
        ok=False,
    )
    assert "provisioned already" in r.stderr
    r = lockedge("cloud", "--roots", roots, "provision", "gateway", "gw-2", "--out", cloud, ok=False)
    assert "--cloud-broker" in r.stderr
    init = [
        "gateway",
        "init",
        "--config",
        etc / "gateway.toml",
        "--lock-server",
        "127.0.0.1",
        "--mosquitto-dir",
        mq,
    ]
    # A lock's ticket is not a gateway's; a tampered one; one others can read; junk.
    lockedge("cloud", "--roots", roots, "provision", "lock", "lock-0001", "--out", cloud)
    bad = tmp_path / "bad.ticket"
    for text, mode, said in [
        ((cloud / "lock-0001.ticket").read_text(), 0o600, "not a valid GatewayTicket"),
        ((cloud / "gw-1.ticket").read_text().replace('"v": 1', '"v": 2'), 0o600, "not a valid GatewayTicket"),
        ((cloud / "gw-1.ticket").read_text(), 0o644, "chmod 600"),
        ("\x00junk", 0o600, "not JSON"),
    ]:
        bad.write_text(text)
        bad.chmod(mode)
        r = lockedge(*init, "--ticket", bad, ok=False)
        assert said in r.stderr and len(r.stderr.strip().splitlines()) == 1, r.stderr
        root_hex = json.loads((cloud / "gateways.json").read_text())["gw-1"]
        assert root_hex not in r.stderr
        assert not etc.exists() or not any(etc.iterdir())
        assert sorted(p.name for p in mq.iterdir()) == ["conf.d", "mosquitto.conf"]
    r = lockedge(*init, "--ticket", cloud / "gw-1.ticket", "--lock-server", "0.0.0.0", ok=False)  # noqa: S104
    assert "never all" in r.stderr
    lockedge(*init, "--ticket", cloud / "gw-1.ticket", "--wifi", "locks")
    cfg = etc / "gateway.toml"
    out = tmp_path / "boards"
    out.mkdir()
    locks_before = (etc / "locks.json").read_bytes()
    r = lockedge(
        "lock",
        "add",
        "lock-0002",
        "--ticket",
        cloud / "lock-0001.ticket",
        "--out",
        out,
        "--config",
        cfg,
        ok=False,
    )
    assert "the ticket of lock-0001, not of lock-0002" in r.stderr
    r = lockedge("lock", "remove", "nobody", "--config", cfg, ok=False)
    assert "no lock 'nobody'" in r.stderr
    lockedge(
        "lock", "add", "lock-0001", "--ticket", cloud / "lock-0001.ticket", "--out", out, "--config", cfg
    )
    assert (etc / "locks.json").read_bytes() != locks_before
    passwd = (mq / "lockedge.passwd").read_bytes()
    r = lockedge(
        "lock",
        "add",
        "lock-0001",
        "--ticket",
        cloud / "lock-0001.ticket",
        "--out",
        out,
        "--config",
        cfg,
        ok=False,
    )
    assert "already added" in r.stderr
    assert (mq / "lockedge.passwd").read_bytes() == passwd
    # The lock's folder: the board's files, its password 0600, no key of any kind.
    files = sorted(p.name for p in (out / "lock-0001").iterdir())
    assert files == ["lock.json", "mqtt.pw"]
    assert stat.S_IMODE((out / "lock-0001" / "mqtt.pw").stat().st_mode) == 0o600
    assert provision.list_locks(config.load(cfg)) == [("lock-0001", True)]
