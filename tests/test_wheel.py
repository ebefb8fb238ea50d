"""The project as an installed wheel, not the source tree (issue 20): built
with pip, installed into a fresh virtual env, run from a folder that is
not the tree. The wheel must carry its data files (the local broker's
templates) and find them through importlib.resources.

The dependencies come from the test's own venv (a .pth line) rather than
from the package index, so the test runs offline and in seconds; which
versions a fresh install resolves is constraints.txt's job."""

from __future__ import annotations

import os
import shutil
import site
import subprocess
import sys
import sysconfig
from pathlib import Path

from tests.test_install_path import debian_mosquitto

ROOT = Path(__file__).resolve().parent.parent


def run(cmd: list[str | Path], cwd: Path, ok: bool = True) -> subprocess.CompletedProcess[str]:
    r = subprocess.run(
        [str(c) for c in cmd],
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=300,
        env=dict(os.environ, LOCKEDGE_CONFIG="", PYTHONPATH=""),
    )
    assert "Traceback" not in r.stderr, r.stderr
    assert (r.returncode == 0) == ok, (cmd, r.stdout[-2000:], r.stderr[-2000:])
    return r


def test_the_wheel_carries_its_templates_and_runs_init_and_the_demo_installed(tmp_path: Path) -> None:
    os.chmod(tmp_path, 0o700)
    # Built from a copy: setuptools leaves a build/ folder beside the sources.
    src = tmp_path / "src"
    for name in ("protocol", "firmware", "gateway", "simulators", "lockedge"):
        shutil.copytree(ROOT / name, src / name, ignore=shutil.ignore_patterns("__pycache__"))
    for name in ("pyproject.toml", "README.md"):
        shutil.copy(ROOT / name, src / name)
    whl = tmp_path / "dist"
    run([sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", src, "-w", whl], cwd=tmp_path)
    (wheel,) = whl.glob("lockedge-*.whl")
    venv = tmp_path / "venv"
    run([sys.executable, "-m", "venv", venv], cwd=tmp_path)
    py = venv / "bin" / "python"
    run([py, "-m", "pip", "install", "-q", "--no-deps", "--no-index", wheel], cwd=tmp_path)
    purelib = Path(sysconfig.get_path("purelib", vars={"base": str(venv), "platbase": str(venv)}))
    (purelib / "deps-from-test-venv.pth").write_text("\n".join(site.getsitepackages()) + "\n")
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()

    where = run([py, "-c", "import gateway; print(gateway.__file__)"], cwd=elsewhere).stdout.strip()
    assert where.startswith(str(venv)), where  # the installed copy, not the tree
    lockedge = venv / "bin" / "lockedge"
    assert run([lockedge, "--version"], cwd=elsewhere).stdout.startswith("lockedge ")

    cloud = tmp_path / "cloud"
    cloud.mkdir(mode=0o700)
    run(
        [
            lockedge,
            "cloud",
            "--roots",
            cloud / "roots.json",
            "provision",
            "gateway",
            "gw-1",
            "--out",
            cloud,
            "--cloud-broker",
            "127.0.0.1:8883",
        ],
        cwd=elsewhere,
    )
    mq = tmp_path / "mq"
    debian_mosquitto(mq, 1883)
    run(
        [
            lockedge,
            "gateway",
            "init",
            "--config",
            tmp_path / "etc" / "gateway.toml",
            "--ticket",
            cloud / "gw-1.ticket",
            "--lock-server",
            "192.168.4.1",
            "--mosquitto-dir",
            mq,
        ],
        cwd=elsewhere,
    )
    acl = (mq / "lockedge.acl").read_text()
    assert "user gateway" in acl and "pattern read lock/%u/cmd" in acl
    conf = (mq / "conf.d" / "lockedge.conf").read_text()
    assert "listener 1883 192.168.4.1" in conf and "use_username_as_clientid true" in conf
    run([lockedge, "gateway", "check-config", "--config", tmp_path / "etc" / "gateway.toml"], cwd=elsewhere)

    demo = run([lockedge, "demo"], cwd=elsewhere)
    assert demo.stdout.strip(), "the demo said nothing"
