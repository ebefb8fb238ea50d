"""The local broker's access control, from packaging/mosquitto/acl.template."""

from __future__ import annotations

from pathlib import Path

TEMPLATE = Path(__file__).resolve().parent.parent / "packaging" / "mosquitto" / "acl.template"


def acl_text(gateway_user: str) -> str:
    return TEMPLATE.read_text().replace("@GATEWAY_USER@", gateway_user)
