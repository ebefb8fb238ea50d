"""The local broker's access control and hardening, from the templates the
package carries (gateway/data/mosquitto/, read through importlib.resources so
an installed wheel finds them too). `gateway init` renders them for the
site's Mosquitto; the tests' brokers apply the same lines."""

from __future__ import annotations

from importlib import resources


def _template(name: str) -> str:
    return resources.files("gateway").joinpath("data", "mosquitto", name).read_text()


def acl_text(gateway_user: str) -> str:
    return _template("acl.template").replace("@GATEWAY_USER@", gateway_user)


def conf_text(listen: str, port: int, password_file: str, acl_file: str) -> str:
    """The conf.d file for the site's Mosquitto."""
    out = _template("local.conf.template")
    for k, v in (("@LISTEN_ADDRESS@", listen), ("@PORT@", str(port)), ("@PASSWORD_FILE@", password_file),
                 ("@ACL_FILE@", acl_file)):  # fmt: skip
        out = out.replace(k, v)
    return out


def security_lines() -> list[str]:
    """The settings under `# @security:` in local.conf.template, up to the
    next blank line, comments dropped."""
    out: list[str] = []
    inside = False
    for line in _template("local.conf.template").splitlines():
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
