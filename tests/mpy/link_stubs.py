"""Lay out micropython-esp32-stubs (and its stdlib stubs) where mypy can use
them for firmware/: DIR/stdlib is a custom typeshed, DIR/path the module
stubs (machine, network, umqtt, MicroPython's time, ...). mypy will not take
site-packages itself as a stub path, hence the links."""

from __future__ import annotations

import shutil
import sys
import sysconfig
from pathlib import Path


def main(target: Path) -> None:
    sp = Path(sysconfig.get_paths()["purelib"])
    if target.exists():
        shutil.rmtree(target)
    (target / "path").mkdir(parents=True)
    (target / "stdlib").symlink_to((sp / "stdlib").resolve())
    for p in sp.glob("*.pyi"):
        (target / "path" / p.name).symlink_to(p.resolve())
    for name in ("umqtt", "_mpy_shed", "mypy_extensions.py"):
        if (sp / name).exists():
            (target / "path" / name).symlink_to((sp / name).resolve())


if __name__ == "__main__":
    main(Path(sys.argv[1]))
