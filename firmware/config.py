# The lock's provisioning on its flash (MicroPython subset), read at boot by
# firmware/board/start.py and checked here so a bad file stops the boot with
# a clear message instead of running half-configured.
#
#   lock.json   {"id": "lock-0007", "gateway": "gw-1", "server": "192.168.4.1",
#                "port": 1883, "wifi": "site-7-locks", "open_s": 5,
#                "held_open_s": 60, "pins": {...optional overrides}}
#   root.key    32 raw bytes (the device root key; never printed)
#   mqtt.pw     the lock's password on the gateway's local broker
#   wifi.pw     the Wi-Fi passphrase (absent for an open network)
#
# Secrets live in their own files so the JSON can be shown and diffed.

import json

from protocol.keys import ROOT_KEY_LEN, check_device_id

PIN_NAMES = ("strike", "door", "exit", "led", "buzzer", "rows", "cols", "fp_tx", "fp_rx", "fp_touch")


class ConfigError(Exception):
    pass


def _int(c: dict, name: str, lo: int, hi: int, default: "int | None" = None) -> int:
    v = c.get(name, default)
    if not isinstance(v, int) or isinstance(v, bool) or not (lo <= v <= hi):
        raise ConfigError("lock.json: %s must be an integer %d..%d" % (name, lo, hi))
    return v


def _text(c: dict, name: str) -> str:
    v = c.get(name)
    if not isinstance(v, str) or not (0 < len(v) <= 64):
        raise ConfigError("lock.json: %s must be a non-empty string" % name)
    return v


def parse(text: str, root: bytes, mqtt_pw: bytes, wifi_pw: bytes) -> dict:
    """lock.json's text and the secret files' bytes -> checked settings."""
    try:
        c = json.loads(text)
    except ValueError:
        raise ConfigError("lock.json is not valid JSON")
    if not isinstance(c, dict):
        raise ConfigError("lock.json must hold an object")
    for k in c:
        if k not in ("id", "gateway", "server", "port", "wifi", "open_s", "held_open_s", "pins"):
            raise ConfigError("lock.json: unknown setting %r" % k)
    out = {
        "id": _text(c, "id"),
        "gateway": _text(c, "gateway"),
        "server": _text(c, "server"),
        "wifi": _text(c, "wifi"),
        "port": _int(c, "port", 1, 65535, 1883),
        "open_s": _int(c, "open_s", 1, 60, 5),
        "held_open_s": _int(c, "held_open_s", 5, 3600, 60),
    }
    try:
        check_device_id(out["id"])
        check_device_id(out["gateway"])
    except Exception:
        raise ConfigError("lock.json: id and gateway may hold only letters, digits, '-', '_', '.'")
    pins = c.get("pins", {})
    if not isinstance(pins, dict):
        raise ConfigError("lock.json: pins must be an object")
    for k, v in pins.items():
        if k not in PIN_NAMES:
            raise ConfigError("lock.json: unknown pin %r" % k)
        ok = isinstance(v, int) or (isinstance(v, list) and all(isinstance(x, int) for x in v))
        if not ok:
            raise ConfigError("lock.json: pin %s must be a number or a list of numbers" % k)
    out["pins"] = pins
    if len(root) != ROOT_KEY_LEN:
        raise ConfigError("root.key must hold exactly %d bytes" % ROOT_KEY_LEN)  # length only
    out["root"] = root
    out["mqtt_pw"] = mqtt_pw.decode().strip()
    out["wifi_pw"] = wifi_pw.decode().strip()
    if not out["mqtt_pw"]:
        raise ConfigError("mqtt.pw is empty")
    return out


def load(fs) -> dict:  # type: ignore[no-untyped-def]
    """Read the provisioning through the flash seam (firmware/fsio.py)."""
    missing = [n for n in ("lock.json", "root.key", "mqtt.pw") if not fs.read(n)]
    if missing:
        raise ConfigError("not provisioned: missing " + ", ".join(missing))
    # wifi.pw may be absent: an open (MAC-filtered) lock network.
    return parse(fs.read("lock.json").decode(), fs.read("root.key"), fs.read("mqtt.pw"), fs.read("wifi.pw"))
