"""systemd's notify protocol (gateway/sdnotify.py): the unit is Type=notify
with a watchdog, so the gateway must say READY=1 once it runs, ping while
its loop turns, say STOPPING=1 on SIGTERM, and do nothing without systemd.
The last test is a real `lockedge gateway run` under a socket playing
systemd; the unit file itself is checked by systemd-analyze."""

from __future__ import annotations

import logging
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

from gateway.sdnotify import Notifier
from tests.gwfixtures import Site

ROOT = Path(__file__).resolve().parent.parent


def _listen(path: Path) -> socket.socket:
    s = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    s.bind(str(path))
    s.settimeout(0.2)
    return s


def _messages(s: socket.socket, until: float, want: str | None = None) -> list[str]:
    out: list[str] = []
    while time.monotonic() < until:
        try:
            out.append(s.recv(4096).decode())
        except TimeoutError:
            continue
        if want is not None and any(want in m for m in out):
            break
    return out


def test_ready_watchdog_and_stopping_reach_the_socket(tmp_path: Path) -> None:
    s = _listen(tmp_path / "notify")
    now = [100.0]
    env = {
        "NOTIFY_SOCKET": str(tmp_path / "notify"),
        "WATCHDOG_USEC": "2000000",
        "WATCHDOG_PID": str(os.getpid()),
    }
    n = Notifier(env, clock=lambda: now[0])
    assert n.enabled and n.interval == 1.0  # half of systemd's interval
    n.ready("gateway gw-1: 2 locks")
    assert s.recv(4096) == b"READY=1\nSTATUS=gateway gw-1: 2 locks"
    n.watchdog()
    assert s.recv(4096) == b"WATCHDOG=1"
    now[0] += 0.5
    n.watchdog()  # too soon: nothing
    now[0] += 0.5
    n.watchdog()
    assert s.recv(4096) == b"WATCHDOG=1"
    with pytest.raises(TimeoutError):
        s.recv(4096)  # exactly two pings so far
    n.stopping()
    assert s.recv(4096) == b"STOPPING=1"


def test_an_abstract_socket_name_is_understood(tmp_path: Path) -> None:
    name = f"lockedge-test-{os.getpid()}"
    s = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    s.bind("\0" + name)
    s.settimeout(2)
    Notifier({"NOTIFY_SOCKET": "@" + name}).ready()
    assert s.recv(4096) == b"READY=1"


def test_without_systemd_or_for_another_process_nothing_is_sent(tmp_path: Path) -> None:
    n = Notifier({})
    assert not n.enabled and n.interval is None and n.send("READY=1") is False
    n.ready()
    n.watchdog()
    s = _listen(tmp_path / "notify")
    other = Notifier(
        {"NOTIFY_SOCKET": str(tmp_path / "notify"), "WATCHDOG_USEC": "2000000", "WATCHDOG_PID": "1"}
    )
    assert other.interval is None  # the watchdog is pid 1's, not ours
    other.watchdog()
    for bad in ("", "0", "abc", "-5"):
        assert Notifier({"NOTIFY_SOCKET": str(tmp_path / "notify"), "WATCHDOG_USEC": bad}).interval is None
    with pytest.raises(TimeoutError):
        s.recv(4096)


def test_a_stale_socket_is_said_once_and_never_raises(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    n = Notifier({"NOTIFY_SOCKET": str(tmp_path / "gone"), "WATCHDOG_USEC": "1"})
    with caplog.at_level(logging.WARNING, logger="lockedge.sdnotify"):
        n.ready()
        for _ in range(3):
            n.watchdog()
        n.stopping()
    assert caplog.text.count("systemd notification not sent") == 1


def test_the_gateway_process_tells_systemd_it_is_ready_pings_and_stops(tmp_path: Path) -> None:
    os.chmod(tmp_path, 0o700)
    site = Site(tmp_path, n_locks=1)
    site.start_brokers()
    sock = _listen(tmp_path / "notify")
    try:
        cfg = site.config_file()
        env = dict(os.environ, NOTIFY_SOCKET=str(tmp_path / "notify"), WATCHDOG_USEC="400000")
        env.pop("JOURNAL_STREAM", None)  # its log is read back below as plain JSON lines
        log = (tmp_path / "gateway.log").open("wb")
        cmd = [sys.executable, "-m", "lockedge.cli", "gateway", "run", "--config", str(cfg)]
        p = subprocess.Popen(cmd, cwd=ROOT, env=env, stdout=subprocess.DEVNULL, stderr=log)
        try:
            # WATCHDOG_PID is unset here (systemd sets it to the main pid): every ping counts.
            got = _messages(sock, time.monotonic() + 30, want="READY=1")
            assert any(m.startswith("READY=1\nSTATUS=gateway ") for m in got), got
            pings = _messages(sock, time.monotonic() + 1.5)
            assert pings.count("WATCHDOG=1") >= 3, pings  # every 0.2 s while the loop turns
            p.send_signal(signal.SIGTERM)
            assert "STOPPING=1" in _messages(sock, time.monotonic() + 10, want="STOPPING=1")
            assert p.wait(20) == 0
            import json as _json

            lines = [
                _json.loads(x)
                for x in (tmp_path / "gateway.log").read_text().splitlines()
                if x.startswith("{")
            ]
            said = [(x["level"], x["msg"].split(" (")[0]) for x in lines]
            # One started, connected, disconnected and stopped line each; a clean stop warns of nothing.
            assert said.count(("INFO", "gateway gw-1 started")) == 1
            assert site.cloud_broker and site.local_broker
            ports = site.cloud_broker.port, site.local_broker.port
            assert sorted(m for lv, m in said if "connected" in m) == [
                f"cloud: connected to 127.0.0.1:{ports[0]}",
                "cloud: disconnected",
                f"local: connected to 127.0.0.1:{ports[1]}",
                "local: disconnected",
            ]
            assert all(lv == "INFO" for lv, m in said if "connected" in m or "stopped" in m), said
            assert said[-1] == ("INFO", "gateway gw-1 stopped")
        finally:
            if p.poll() is None:
                p.kill()
                p.wait()
            log.close()
    finally:
        sock.close()
        site.close()


@pytest.mark.skipif(shutil.which("systemd-analyze") is None, reason="systemd-analyze not installed")
def test_the_unit_file_is_one_systemd_accepts(tmp_path: Path) -> None:
    # systemd-analyze verify checks the unit's syntax and its ExecStart; the
    # venv path of a real install is pointed at a stand-in executable.
    unit = (ROOT / "packaging" / "systemd" / "lockedge-gateway.service").read_text()
    exe = tmp_path / "lockedge"
    exe.write_text("#!/bin/sh\n")
    exe.chmod(0o755)
    unit = unit.replace("/opt/lockedge/.venv/bin/lockedge", str(exe))
    assert "Type=notify" in unit and "WatchdogSec=" in unit

    def problems(text: str) -> list[str]:
        (tmp_path / "lockedge-gateway.service").write_text(text)
        r = subprocess.run(["systemd-analyze", "verify", str(tmp_path / "lockedge-gateway.service")],
                           capture_output=True, text=True, timeout=60)  # fmt: skip
        out = [ln for ln in (r.stdout + r.stderr).splitlines() if "lockedge-gateway.service" in ln]
        return [ln for ln in out if "mosquitto.service" not in ln and "lockedge-usb" not in ln]

    assert problems(unit) == []
    assert problems(unit.replace("Type=notify", "Type=notfy"))  # the check can fail


def test_under_systemd_each_log_line_carries_its_journal_priority() -> None:
    """sd-daemon(3)'s prefixes: journald files a clean stop at INFO and an
    alarm at WARNING or above (`journalctl -p warning` shows only those)."""
    import json as _json

    from gateway import logjson

    def line(level: int, journal: bool) -> str:
        rec = logging.LogRecord(
            "lockedge.gateway", level, __file__, 1, "gate alarm: %s", ("held-open",), None
        )
        return logjson.JsonFormatter(journal=journal).format(rec)

    assert line(logging.WARNING, True).startswith('<4>{"t": ')
    assert _json.loads(line(logging.WARNING, True)[3:])["msg"] == "gate alarm: held-open"
    assert [line(lv, True)[:3] for lv in (logging.DEBUG, logging.INFO, logging.ERROR, logging.CRITICAL)] == [
        "<7>", "<6>", "<3>", "<2>"]  # fmt: skip
    assert line(logging.INFO, False).startswith("{")  # not under systemd: plain JSON
    root = logging.getLogger()
    saved = root.handlers[:], root.level
    try:
        logjson.setup(env={"JOURNAL_STREAM": "8:1234"})
        fmt = root.handlers[0].formatter
        assert isinstance(fmt, logjson.JsonFormatter) and fmt.journal
        logjson.setup(env={})
        fmt = root.handlers[0].formatter
        assert isinstance(fmt, logjson.JsonFormatter) and not fmt.journal
    finally:
        root.handlers[:], level = saved
        root.setLevel(level)
