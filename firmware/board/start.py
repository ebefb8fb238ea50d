# Boot on the ESP32 board: copy the tree to the board's flash and put
#
#     import firmware.board.start
#     firmware.board.start.main()
#
# in /main.py. Reads the provisioning (firmware/config.py), builds the HAL
# with the configured pins, joins Wi-Fi (the link keeps retrying with
# back-off if the network is not up yet, so a lock whose access point is
# down still opens for codes and fingers), and runs the main loop on
# MicroPython's asyncio. A lock whose provisioning is missing or invalid
# never runs the loop: the strike stays off and the LED blinks, with the
# reason on the console.

import asyncio
import time

from firmware import config
from firmware.board.esp32 import DEFAULT_PINS, Board
from firmware.fpmodule import FingerprintModule
from firmware.fsio import FlashFS
from firmware.main import LockApp


def main(flash_root: str = "/data") -> None:
    fs = FlashFS(flash_root)
    try:
        c = config.load(fs)
    except config.ConfigError as e:
        print("lockedge: cannot start:", e)
        board = Board()
        while True:  # fed, so the watchdog does not reboot into the same failure
            board.wdt_feed()
            board.blink()
            time.sleep(1)
    pins = dict(DEFAULT_PINS)
    pins.update(c["pins"])
    board = Board(pins)
    board.wifi(c["wifi"], c["wifi_pw"])
    fp = FingerprintModule(board.uart, board.fp_ticks)
    app = LockApp(
        board,
        fs,
        c["id"],
        c["root"],
        c["gateway"],
        c["server"],
        c["port"],
        c["mqtt_pw"],
        open_s=c["open_s"],
        held_open_s=c["held_open_s"],
        fp=fp,
    )
    asyncio.run(app.run())
