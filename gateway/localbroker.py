"""The local broker's access control and hardening, from the shipped
templates in packaging/mosquitto/ (the tests' brokers use the same lines)."""

from __future__ import annotations

from pathlib import Path

_DIR = Path(__file__).resolve().parent.parent / "packaging" / "mosquitto"
TEMPLATE = _DIR / "acl.template"
CONF_TEMPLATE = _DIR / "local.conf.template"


def acl_text(gateway_user: str) -> str:
    return TEMPLATE.read_text().replace("@GATEWAY_USER@", gateway_user)


def security_lines() -> list[str]:
    """The settings under `# @security:` in local.conf.template, up to the
    next blank line, comments dropped."""
    out: list[str] = []
    inside = False
    for line in CONF_TEMPLATE.read_text().splitlines():
        if line.startswith("# @security"):
            inside = True
            continue
        if inside and not line.strip():
            if out:
                break
            continue
        if inside and not line.lstrip().startswith("#"):
            out.append(line.strip())
    return out
