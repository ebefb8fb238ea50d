"""gateway.toml is checked whole (gateway/configschema.py): typos, wrong
types and values out of range are refused, each at its place, all at once
(issue 20: the config ignored typos and crashed on wrong types)."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from gateway import config
from gateway.config import write_secret
from lockedge.cli import main

BASE = '[gateway]\nid = "gw-1"\nsite = "s"\nroot_key_file = "root.key"\nlocks_file = "locks.json"\n'


def _problems(tmp_path: Path, text: str) -> list[str]:
    p = tmp_path / "gateway.toml"
    p.write_text(text)
    with pytest.raises(config.ConfigError) as e:
        config.load(p)
    return str(e.value).splitlines()


def test_the_example_config_is_valid() -> None:
    cfg = config.load(Path(__file__).resolve().parent.parent / "packaging" / "gateway.toml.example")
    assert cfg.gate is not None and cfg.gate.pins["strike"] == 17 and cfg.cloud.port == 8883


def test_each_problem_is_reported_at_its_place_all_at_once(tmp_path: Path) -> None:
    got = _problems(
        tmp_path,
        BASE + "status_intervall_s = 5\n"  # a typo
        '[relay]\ntimeout_s = -5\n[upload]\nbatch = 0\n[cloud]\nport = "abc"\n'
        '[gate]\nid = "gate-A"\npins = { strike = 17, exitbutton = 22 }\n'
        "[gatway]\nid = 1\n",
    )
    where = {line.split(": ")[1] for line in got}
    assert where == {
        "gateway.status_intervall_s",
        "relay.timeout_s",
        "upload.batch",
        "cloud.port",
        "gate.pins.exitbutton",
        "gatway",
    }, got
    assert all(line.startswith(str(tmp_path / "gateway.toml") + ": ") for line in got)
    assert any("unknown setting" in line and "status_intervall_s" in line for line in got)
    assert any("greater than 0" in line and "timeout_s" in line for line in got)


@pytest.mark.parametrize(
    ("text", "place"),
    [
        ("[cloud]\nport = 70000\n", "cloud.port"),
        ("[cloud]\nport = true\n", "cloud.port"),
        ("[cloud]\nport = 1883.5\n", "cloud.port"),
        ("[upload]\nbatch = 501\n", "upload.batch"),
        ('[gate]\nid = "g"\npins = { strike = 40 }\n', "gate.pins.strike"),
        ("[gate]\nopen_seconds = 5\n", "gate.id"),
        ('[biometrics]\nbundle_key_file = "b.key"\nissuers = ["abcd"]\n', "biometrics.issuers"),
        (
            '[biometrics]\nbundle_key_file = "b.key"\n'
            'sticks = [{vendor = "781", product = "5567", serial = "x"}]\n',
            "biometrics.sticks.0.vendor",
        ),
        ('[biometrics]\nbundle_key_file = "b.key"\nfpir = 0.5\n', "biometrics.fpir"),
        ('[biometrics]\nbundle_key_file = "b.key"\nfpir = 0\n', "biometrics.fpir"),
        ('[biometrics]\nbundle_key_file = "b.key"\nfpir = "1e-4"\n', "biometrics.fpir"),
    ],
)
def test_types_and_ranges(tmp_path: Path, text: str, place: str) -> None:
    got = _problems(tmp_path, BASE + text)
    assert [line.split(": ")[1] for line in got] == [place], got


def test_a_missing_required_setting_and_a_bad_id(tmp_path: Path) -> None:
    got = _problems(tmp_path, '[gateway]\nid = "gw 1"\nsite = "s"\nlocks_file = "l"\n')
    assert {line.split(": ")[1] for line in got} == {"gateway.id", "gateway.root_key_file"}
    assert any("required, missing" in line for line in got)


def test_check_config_says_ok_or_lists_every_problem(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    write_secret(tmp_path / "root.key", os.urandom(32))
    write_secret(tmp_path / "locks.json", b'{"lock-1": "%s"}' % os.urandom(32).hex().encode())
    (tmp_path / "gateway.toml").write_text(BASE)
    assert main(["gateway", "check-config", "--config", str(tmp_path / "gateway.toml")]) == 0
    assert "ok (gateway gw-1, site s, 1 locks)" in capsys.readouterr().out
    (tmp_path / "gateway.toml").write_text(BASE + "[relay]\ntimeout_s = -5\nwindow = 0\n")
    assert main(["gateway", "check-config", "--config", str(tmp_path / "gateway.toml")]) == 1
    err = capsys.readouterr().err.splitlines()
    assert [line.split(": ")[1] for line in err] == ["relay.timeout_s", "relay.window"]
    (tmp_path / "locks.json").chmod(0o644)
    (tmp_path / "gateway.toml").write_text(BASE)
    assert main(["gateway", "check-config", "--config", str(tmp_path / "gateway.toml")]) == 1
    assert "chmod 600" in capsys.readouterr().err


def test_the_gates_fpir_reaches_its_gallery(tmp_path: Path) -> None:
    from gateway.config import load

    (tmp_path / "gateway.toml").write_text(BASE + '[biometrics]\nbundle_key_file = "b.key"\nfpir = 1e-6\n')
    cfg = load(tmp_path / "gateway.toml")
    assert cfg.biometrics is not None and cfg.biometrics.fpir == 1e-6
    (tmp_path / "gateway.toml").write_text(BASE + '[biometrics]\nbundle_key_file = "b.key"\n')
    cfg = load(tmp_path / "gateway.toml")
    assert cfg.biometrics is not None and cfg.biometrics.fpir == 1e-4  # the documented default
