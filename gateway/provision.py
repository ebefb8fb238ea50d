"""The installer's path: `lockedge gateway init` and `lockedge lock add /
remove / list` (docs/install.md).

Rule: check everything first, then write. A bad ticket, a taken lock id, a
missing tool or a folder that is not there is a `ProvisionError` (one line
for the user) before any file changes; what is written is written
atomically (secrets 0600), so a second run after a failure starts from the
same state.

The cloud side issues tickets (`lockedge cloud provision`): a gateway's
carries its root key (the cloud holds the other copy); a lock's carries the
lock's *local* key only, never its root, which goes to the board alone. The
gateway never sees a lock's root.
"""

from __future__ import annotations

import json
import os
import pwd
import re
import secrets
import shutil
import signal
import subprocess
import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal, TypeVar

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from gateway import bundle, config, configschema, localbroker
from gateway.store import atomic_write

DEFAULT_CONFIG = Path("/etc/lockedge/gateway.toml")
DEFAULT_MOSQUITTO_DIR = Path("/etc/mosquitto")
GATEWAY_USER = "gateway"  # the gateway's login on its local broker


class ProvisionError(Exception):
    """One line that says what is wrong and what to do; nothing was changed."""


class _Ticket(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True)


class GatewayTicket(_Ticket):
    lockedge: Literal["gateway-ticket"]
    v: Literal[1]
    gateway: str = Field(pattern=configschema.DEVICE_ID)
    site: str = Field(pattern=configschema.DEVICE_ID)
    root_key: str = Field(pattern=r"^[0-9a-f]{64}$")
    cloud_host: str = Field(min_length=1, max_length=253)
    cloud_port: int = Field(ge=1, le=65535)


class LockTicket(_Ticket):
    lockedge: Literal["lock-ticket"]
    v: Literal[1]
    lock: str = Field(pattern=configschema.DEVICE_ID)
    site: str = Field(pattern=configschema.DEVICE_ID)
    local_key: str = Field(pattern=r"^[0-9a-f]{64}$")


def read_ticket(path: Path, kind: type[T]) -> T:
    """A ticket file (0600, it holds a key), checked whole; the error names
    the field, never its value."""
    try:
        data = json.loads(config.read_secret(path))
    except config.ConfigError as e:
        raise ProvisionError(str(e)) from None
    except OSError as e:
        raise ProvisionError(f"{path}: {e.strerror}") from None
    except ValueError:
        raise ProvisionError(f"{path}: not a lockedge ticket (not JSON)") from None
    try:
        return kind.model_validate(data)
    except ValidationError as e:
        err = e.errors()[0]
        where = ".".join(str(p) for p in err["loc"]) or "(file)"
        raise ProvisionError(f"{path}: not a valid {kind.__name__}: {where}: {err['msg']}") from None


T = TypeVar("T", bound=_Ticket)


def _toml_str(v: str) -> str:
    return json.dumps(v)  # a JSON string is a TOML basic string


def _owner_of(path: Path) -> tuple[int, int] | None:
    """Files an installer writes as root go to the owner of their folder
    (the daemon's user reads them, and 0600 would lock it out)."""
    if os.geteuid() != 0:
        return None
    st = path.stat()
    return (st.st_uid, st.st_gid) if st.st_uid != 0 else None


def _write(path: Path, data: bytes, owner: tuple[int, int] | None, mode: int = 0o600) -> None:
    atomic_write(path, data, mode=mode)
    os.chmod(path, mode)  # atomic_write's mode passes through the umask
    if owner is not None:
        os.chown(path, *owner)


def _passwd_tool() -> str:
    tool = shutil.which("mosquitto_passwd")
    if tool is None and os.access("/usr/bin/mosquitto_passwd", os.X_OK):
        tool = "/usr/bin/mosquitto_passwd"
    if tool is None:
        raise ProvisionError("mosquitto_passwd is not installed: apt-get install mosquitto")
    return tool


def _passwd(args: list[str], password: str | None = None) -> None:
    """mosquitto_passwd, with the password on its stdin (never on the
    command line, where every local user's `ps` would see it)."""
    stdin = f"{password}\n{password}\n" if password is not None else None
    cmd = [_passwd_tool(), *args]  # our tool and arguments, no shell
    r = subprocess.run(cmd, input=stdin, capture_output=True, text=True, timeout=30, check=False)  # noqa: S603
    if r.returncode != 0:
        why = (r.stderr or r.stdout).strip().splitlines()
        raise ProvisionError(f"mosquitto_passwd failed: {why[-1] if why else r.returncode}")


def _passwd_users(path: Path) -> set[str]:
    try:
        return {line.split(":", 1)[0] for line in path.read_text().splitlines() if ":" in line}
    except OSError:
        return set()


# -- gateway init ---------------------------------------------------------------


@dataclass
class InitPlan:
    """What `gateway init` writes, all of it decided before the first write."""

    config: Path
    ticket: GatewayTicket
    lock_server: str
    local_port: int = 1883
    mosquitto_dir: Path = DEFAULT_MOSQUITTO_DIR
    state_dir: str = "/var/lib/lockedge"
    broker_pid_file: str = "/run/mosquitto/mosquitto.pid"
    wifi_ssid: str | None = None
    biometrics: bool = True
    metrics_textfile: str | None = None
    written: list[Path] = field(default_factory=list)

    def config_text(self) -> str:
        t, m = self.ticket, self.mosquitto_dir
        lines = [
            "# Written by `lockedge gateway init`; paths are relative to this file.",
            "# Every setting: packaging/gateway.toml.example and docs/install.md.",
            "[gateway]",
            f"id = {_toml_str(t.gateway)}",
            f"site = {_toml_str(t.site)}",
            f"state_dir = {_toml_str(self.state_dir)}",
            'root_key_file = "gateway.key"',
            'locks_file = "locks.json"',
            "",
            "[cloud]",
            f"host = {_toml_str(t.cloud_host)}",
            f"port = {t.cloud_port}",
            "",
            "[local]",
            'host = "127.0.0.1"',
            f"port = {self.local_port}",
            f"username = {_toml_str(GATEWAY_USER)}",
            'password_file = "local.pass"',
            f"passwd_file = {_toml_str(str(m / 'lockedge.passwd'))}",
            f"broker_pid_file = {_toml_str(self.broker_pid_file)}",
            f"lock_server = {_toml_str(self.lock_server)}",
        ]
        if self.wifi_ssid:
            lines += [f"wifi_ssid = {_toml_str(self.wifi_ssid)}"]
        if self.biometrics:
            lines += [
                "",
                "[biometrics]",
                'bundle_key_file = "bundle.key"',
                "issuers = []  # the office's public key: `lockedge office public-key`",
                "sticks = []",
            ]
        if self.metrics_textfile:
            lines += ["", "[metrics]", f"textfile = {_toml_str(self.metrics_textfile)}"]
        return "\n".join(lines) + "\n"


def init(plan: InitPlan) -> list[Path]:
    """Write a working installation; returns the files written."""
    cfg_path = plan.config
    if cfg_path.exists():
        raise ProvisionError(f"{cfg_path} exists: this gateway is initialised already (nothing changed)")
    if not re.fullmatch(r"[A-Za-z0-9.:-]{1,253}", plan.lock_server) or plan.lock_server in ("0.0.0.0", "::"):  # noqa: S104
        raise ProvisionError(f"--lock-server {plan.lock_server[:60]!r}: the gateway's address on the lock"
                             " network (one interface, never all)")  # fmt: skip
    text = plan.config_text()
    _f, problems = configschema.check(tomllib.loads(text), cfg_path)
    if problems:  # a ticket or option the schema refuses: said before anything is written
        raise ProvisionError(problems[0])
    m = plan.mosquitto_dir
    if not m.is_dir():
        raise ProvisionError(f"{m}: no such folder (is mosquitto installed? apt-get install mosquitto)")
    for name in ("lockedge.passwd", "lockedge.acl", "conf.d/lockedge.conf"):
        if (m / name).exists():
            raise ProvisionError(f"{m / name} exists: another gateway's broker settings (nothing changed)")
    _passwd_tool()
    d = cfg_path.parent
    try:
        d.mkdir(mode=0o700, parents=True, exist_ok=True)
    except OSError as e:
        raise ProvisionError(f"{d}: cannot create the config folder: {e.strerror}") from None
    owner = _daemon_owner(d)
    mq_owner = _user("mosquitto") if os.geteuid() == 0 else None
    password = secrets.token_urlsafe(24)
    written: list[Path] = []

    def put(path: Path, data: bytes, who: tuple[int, int] | None, mode: int = 0o600) -> None:
        _write(path, data, who, mode)
        written.append(path)

    put(d / "gateway.key", bytes.fromhex(plan.ticket.root_key), owner)
    put(d / "local.pass", password.encode() + b"\n", owner)
    put(d / "locks.json", b"{}\n", owner)
    if plan.biometrics:
        key = bundle.RecipientKey.new()
        put(d / "bundle.key", key.secret, owner)
        put(d / "bundle.pub", key.public_blob(), owner, 0o644)  # public: for the office
    (m / "conf.d").mkdir(exist_ok=True)
    pw_file = m / "lockedge.passwd"
    put(pw_file, b"", mq_owner)
    _passwd([str(pw_file), GATEWAY_USER], password)
    put(m / "lockedge.acl", localbroker.acl_text(GATEWAY_USER).encode(), mq_owner)
    conf = localbroker.conf_text(plan.lock_server, plan.local_port, str(pw_file), str(m / "lockedge.acl"))
    put(m / "conf.d" / "lockedge.conf", conf.encode(), None, 0o644)
    put(cfg_path, text.encode(), owner, 0o600)
    return sorted(set(written))


def _user(name: str) -> tuple[int, int] | None:
    try:
        p = pwd.getpwnam(name)
    except KeyError:
        return None
    return p.pw_uid, p.pw_gid


def _daemon_owner(d: Path) -> tuple[int, int] | None:
    """As root: the `lockedge` user (packaging/sysusers.d), which the
    config folder is handed to; otherwise files stay the caller's."""
    if os.geteuid() != 0:
        return None
    who = _user("lockedge")
    if who is not None:
        os.chown(d, *who)
    return who


# -- lock add / remove / list ------------------------------------------------


@dataclass
class LockAdded:
    lock: str
    folder: Path
    files: list[str]


def _installer(cfg: config.GatewayConfig) -> config.LocalSite:
    if cfg.site_local.passwd_file is None:
        raise ProvisionError(f"{cfg.path}: local.passwd_file is not set (the broker's password file,"
                             " where each lock's login goes): `gateway init` writes it")  # fmt: skip
    return cfg.site_local


def add_lock(
    cfg: config.GatewayConfig, ticket_path: Path, out: Path, wifi_ssid: str | None = None
) -> LockAdded:
    """Register a lock from its cloud ticket: its local key in locks.json,
    its login on the local broker, and its provisioning folder for the
    board (`out/<id>/`: lock.json, mqtt.pw, wifi.pw). The board's root.key
    comes from the cloud's side, not from here."""
    t = read_ticket(ticket_path, LockTicket)
    site = _installer(cfg)
    if t.site != cfg.site:
        raise ProvisionError(
            f"{ticket_path}: the ticket is for site {t.site}, this gateway serves {cfg.site}"
        )
    keys_now = cfg.lock_keys()
    if t.lock in keys_now:
        raise ProvisionError(
            f"{t.lock} is already added (lockedge lock remove {t.lock} first); nothing changed"
        )
    ssid = wifi_ssid or site.wifi_ssid
    if not ssid:
        raise ProvisionError("the lock network's Wi-Fi name: --wifi SSID, or local.wifi_ssid in the config")
    if site.lock_server is None:
        raise ProvisionError(f"{cfg.path}: local.lock_server is not set (the address locks connect to)")
    wifi_pw = config.read_secret(site.wifi_password_file) if site.wifi_password_file else None
    folder = out / t.lock
    if folder.exists():
        raise ProvisionError(f"{folder} exists: a provisioning folder for {t.lock} is there already")
    if not out.is_dir():
        raise ProvisionError(f"{out}: no such folder")
    assert site.passwd_file is not None
    password = secrets.token_urlsafe(18)
    lock_json = {"id": t.lock, "gateway": cfg.id, "server": site.lock_server, "port": cfg.local.port,
                 "wifi": ssid}  # fmt: skip
    tmp = out / f".{t.lock}.tmp-{os.getpid()}"
    tmp.mkdir(mode=0o700)
    try:
        _write(tmp / "lock.json", (json.dumps(lock_json, indent=1) + "\n").encode(), None, 0o644)
        _write(tmp / "mqtt.pw", password.encode() + b"\n", None)
        if wifi_pw is not None:
            _write(tmp / "wifi.pw", wifi_pw, None)
        _passwd([str(site.passwd_file), t.lock], password)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    os.replace(tmp, folder)
    keys_now[t.lock] = bytes.fromhex(t.local_key)
    _save_locks(cfg, keys_now)
    return LockAdded(t.lock, folder, sorted(p.name for p in folder.iterdir()))


def remove_lock(cfg: config.GatewayConfig, lock: str) -> None:
    site = _installer(cfg)
    keys_now = cfg.lock_keys()
    if lock not in keys_now:
        raise ProvisionError(f"no lock {lock[:64]!r} in {cfg.locks_file}; nothing changed")
    assert site.passwd_file is not None
    if lock in _passwd_users(site.passwd_file):
        _passwd(["-D", str(site.passwd_file), lock])
    del keys_now[lock]
    _save_locks(cfg, keys_now)


def _save_locks(cfg: config.GatewayConfig, keys_now: dict[str, bytes]) -> None:
    data = json.dumps({k: v.hex() for k, v in sorted(keys_now.items())}, indent=1).encode() + b"\n"
    _write(cfg.locks_file, data, _owner_of(cfg.locks_file))


def list_locks(cfg: config.GatewayConfig) -> list[tuple[str, bool]]:
    """(lock id, has a broker login) for each lock in locks.json."""
    users = _passwd_users(cfg.site_local.passwd_file) if cfg.site_local.passwd_file else set()
    return [(k, k in users) for k in sorted(cfg.lock_keys())]


def reload_broker(cfg: config.GatewayConfig) -> str:
    """SIGHUP to the local Mosquitto: it reads its password file and ACL
    again (what `systemctl reload mosquitto` does)."""
    pid_file = cfg.site_local.broker_pid_file
    if pid_file is None:
        return (
            "reload the local broker yourself (systemctl reload mosquitto): local.broker_pid_file is not set"
        )
    try:
        pid = int(pid_file.read_text().split()[0])
        os.kill(pid, signal.SIGHUP)
    except (OSError, ValueError, IndexError) as e:
        why = e.strerror if isinstance(e, OSError) and e.strerror else "no pid in it"
        return f"the local broker was not reloaded ({pid_file}: {why}): systemctl reload mosquitto"
    return f"local broker reloaded (pid {pid})"
