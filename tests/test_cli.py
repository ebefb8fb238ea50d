from __future__ import annotations

from pathlib import Path

import pytest

from lockedge.cli import main
from simulators import walkthrough


def test_walkthrough_accepts_and_refuses_what_it_should() -> None:
    lines: list[str] = []
    counts = walkthrough.run(lines.append)
    assert counts == {"accepted": 2, "refused": 6}
    text = "\n".join(lines)
    for reason in ("duplicate", "bad-tag", "malformed"):
        assert f"reason={reason}" in text


def test_cli_demo_and_version(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["version"]) == 0
    assert main(["demo"]) == 0
    assert "refused" in capsys.readouterr().out
    with pytest.raises(SystemExit):
        main(["no-such-verb"])


def _leaves(parser: object, path: tuple[str, ...] = ()) -> list[tuple[tuple[str, ...], object]]:
    import argparse

    assert isinstance(parser, argparse.ArgumentParser)
    out = []
    subs = [a for a in parser._actions if isinstance(a, argparse._SubParsersAction)]
    if not subs:
        return [(path, parser)]
    for name, p in subs[0].choices.items():
        out += _leaves(p, (*path, name))
    return out


def test_every_subcommand_with_bad_arguments_prints_one_clear_line_and_no_traceback(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """Issue 20: walk the whole command tree. Each leaf is run with nothing
    (argparse's usage error), and with every required option pointing at
    something that does not exist; each must exit non-zero with its reason
    on stderr, never a traceback. `demo`, `version` and `sim site` run their
    jobs with no arguments, so they get an invalid option value instead."""
    import argparse
    import os

    from lockedge.cli import build_parser, main

    missing = str(tmp_path / "nonexistent" / "x")
    os.environ.pop("LOCKEDGE_DEBUG", None)
    tried = 0
    for path, leaf in _leaves(build_parser()):
        assert isinstance(leaf, argparse.ArgumentParser)
        required = [a for a in leaf._actions if a.required and a.option_strings]
        positional = [a for a in leaf._actions if not a.option_strings and a.nargs is None]
        runs: list[list[str]] = []
        if required or positional:
            runs.append(list(path))
        args = list(path) + ["x"] * len(positional)
        if any("--config" in a.option_strings and not a.required for a in leaf._actions):
            args += ["--config", missing]  # its default (/etc/lockedge/gateway.toml) is not tried here
        for a in required:
            args += [
                a.option_strings[0],
                missing
                if a.type is Path
                or "file" in a.dest
                or a.dest in ("db", "roots", "folder", "flash", "stick", "config", "dir")
                else "x",
            ]
        runs.append(args if required or len(args) > len(path) else [*path, "--no-such-option"])
        for argv in runs:
            try:
                rc = main(argv)
            except SystemExit as e:  # argparse's usage errors
                rc = e.code if isinstance(e.code, int) else 2
            err = capsys.readouterr().err
            assert rc != 0, (argv, err)
            assert "Traceback" not in err and err.strip(), (argv, err)
            tried += 1
    assert tried >= 30


def test_the_known_crashes_each_print_one_line(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """The cases issue 20 found printing tracebacks or silently succeeding."""
    import os

    from gateway.config import write_secret
    from lockedge.cli import main

    os.environ.pop("LOCKEDGE_DEBUG", None)
    write_secret(tmp_path / "root.key", os.urandom(32))
    write_secret(tmp_path / "locks.json", b"not json")
    base = '[gateway]\nid = "gw-1"\nsite = "s"\nroot_key_file = "root.key"\nlocks_file = "locks.json"\n'
    (tmp_path / "port.toml").write_text(base + '[cloud]\nport = "abc"\n')
    (tmp_path / "bio.toml").write_text(base + '[biometrics]\nbundle_key_file = "root.key"\n')
    (tmp_path / "empty").mkdir()
    cases = [
        ["gateway", "status", "--config", str(tmp_path / "port.toml")],
        ["gateway", "import", "--config", str(tmp_path / "bio.toml"), "--dir", str(tmp_path / "nonexistent")],
        ["gateway", "import", "--config", str(tmp_path / "bio.toml"), "--dir", str(tmp_path / "empty")],
        ["sim", "site", "--locks", "0"],
        ["sim", "site", "--locks", "2", "--scenario", "day"],
    ]
    for argv in cases:
        try:
            rc = main(argv)
        except SystemExit as e:
            rc = e.code if isinstance(e.code, int) else 2
        out = capsys.readouterr()
        assert rc != 0, argv
        assert "Traceback" not in out.err and (out.err.strip() or out.out.strip()), argv
    from gateway import bundle

    (tmp_path / "locks.json").write_bytes(b"{}")
    assert (
        main(["gateway", "import", "--config", str(tmp_path / "bio.toml"), "--dir", str(tmp_path / "empty")])
        == 2
    )
    assert "not a lockedge bundle key file" in capsys.readouterr().err  # root.key is not one
    write_secret(tmp_path / "bundle.key", bundle.RecipientKey.new().secret)
    (tmp_path / "bio.toml").write_text(base + '[biometrics]\nbundle_key_file = "bundle.key"\n')
    assert (
        main(["gateway", "import", "--config", str(tmp_path / "bio.toml"), "--dir", str(tmp_path / "empty")])
        == 1
    )
    assert "nothing to import" in capsys.readouterr().out  # was: silently nothing


def test_a_gate_on_a_machine_without_gpio_says_which_pin_factory_to_set(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """Issue 20: the example config's [gate] on a machine without GPIO was a
    BadPinFactory traceback."""
    import os

    from gateway.config import write_secret

    monkeypatch.delenv("GPIOZERO_PIN_FACTORY", raising=False)
    write_secret(tmp_path / "root.key", os.urandom(32))
    write_secret(tmp_path / "locks.json", b"{}")
    (tmp_path / "gw.toml").write_text(
        '[gateway]\nid = "gw-1"\nsite = "s"\nroot_key_file = "root.key"\nlocks_file = "locks.json"\n'
        '[gate]\nid = "gate-A"\n'
        "pins = { strike = 17, contact = 27, exit_button = 22, led = 23, buzzer = 24 }\n"
    )
    assert main(["gateway", "run", "--config", str(tmp_path / "gw.toml")]) == 2
    err = capsys.readouterr().err
    assert "GPIOZERO_PIN_FACTORY=mock" in err and "Traceback" not in err


def test_the_cloud_cli_says_what_is_wrong_with_its_files(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    import os

    from gateway.config import write_secret

    write_secret(tmp_path / "short.json", b'{"lock-1": "abcd"}')
    write_secret(tmp_path / "roots.json", ('{"lock-1": "%s"}' % os.urandom(32).hex()).encode())
    write_secret(tmp_path / "junk.json", b"[1, 2]")
    cases = [
        (["--db", str(tmp_path / "x.db"), "--roots", str(tmp_path / "short.json")], "a root key is 32 bytes"),
        (
            ["--db", str(tmp_path / "no" / "x.db"), "--roots", str(tmp_path / "roots.json")],
            "folder does not exist",
        ),
        (["--db", str(tmp_path / "x.db"), "--roots", str(tmp_path / "junk.json")], "expected JSON"),
    ]
    for args, says in cases:
        assert main(["cloud", *args, "report"]) == 2
        err = capsys.readouterr().err
        assert says in err and "Traceback" not in err, err


def test_every_option_of_every_subcommand_says_what_it_does() -> None:
    """Issue 20: the help text of every option says what it does."""
    import argparse

    from lockedge.cli import build_parser

    silent: list[str] = []
    seen = 0

    def walk(p: argparse.ArgumentParser, path: tuple[str, ...]) -> None:
        nonlocal seen
        for a in p._actions:  # every parser, not only the leaves: `office --site` too
            if isinstance(a, argparse._SubParsersAction):
                for name, child in a.choices.items():
                    walk(child, (*path, name))
            elif not isinstance(a, argparse._HelpAction):
                seen += 1
                if not (a.help or "").strip():
                    silent.append(
                        " ".join(path) + " " + (a.option_strings[0] if a.option_strings else a.dest)
                    )

    walk(build_parser(), ())
    assert silent == [] and seen > 80
