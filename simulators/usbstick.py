"""Simulated USB devices for pyusb (a `usb.backend.IBackend`), so the
gateway's stick detection runs its real pyusb code in tests and in the site
simulator: device, configuration and interface descriptors, and string
descriptors (serial numbers) answered over control transfers. Each
simulated stick has a folder that stands for its mounted file system.
"""

from __future__ import annotations

import array
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import usb.backend

GET_DESCRIPTOR = 6
STRING = 3


@dataclass
class _Desc:
    """Attribute bag shaped like pyusb's descriptor structs."""

    values: dict[str, Any] = field(default_factory=dict)

    def __getattr__(self, name: str) -> Any:
        try:
            return self.values[name]
        except KeyError:
            raise AttributeError(name) from None


@dataclass
class SimDevice:
    vendor: int
    product: int
    serial: str
    interface_class: int = 0x08  # mass storage
    folder: Path | None = None  # where the stick is "mounted"
    bus: int = 1
    address: int = 2
    strings: dict[int, str] = field(default_factory=dict)
    no_access: bool = False  # as for a user without the udev rule: opening it is refused

    def __post_init__(self) -> None:
        self.strings = {1: "Sim Vendor", 2: "Sim Stick", 3: self.serial}


class SimBackend(usb.backend.IBackend):
    def __init__(self) -> None:
        super().__init__()
        self.devices: list[SimDevice] = []

    def insert(self, dev: SimDevice) -> SimDevice:
        self.devices.append(dev)
        return dev

    def remove(self, dev: SimDevice) -> None:
        self.devices.remove(dev)

    def mounts(self) -> dict[str, Path]:
        return {d.serial: d.folder for d in self.devices if d.folder is not None}

    # -- IBackend ----------------------------------------------------------------

    def enumerate_devices(self) -> list[SimDevice]:
        return list(self.devices)

    def get_device_descriptor(self, dev: SimDevice) -> _Desc:
        return _Desc(dict(
            bLength=18, bDescriptorType=1, bcdUSB=0x0200, bDeviceClass=0, bDeviceSubClass=0,
            bDeviceProtocol=0, bMaxPacketSize0=64, idVendor=dev.vendor, idProduct=dev.product,
            bcdDevice=0x0100, iManufacturer=1, iProduct=2, iSerialNumber=3 if dev.serial else 0,
            bNumConfigurations=1, address=dev.address, bus=dev.bus, port_number=1, port_numbers=(1,),
            speed=3,
        ))  # fmt: skip

    def get_configuration_descriptor(self, dev: SimDevice, config: int) -> _Desc:
        return _Desc(dict(
            bLength=9, bDescriptorType=2, wTotalLength=32, bNumInterfaces=1, bConfigurationValue=1,
            iConfiguration=0, bmAttributes=0x80, bMaxPower=50, extra_descriptors=[],
        ))  # fmt: skip

    def get_interface_descriptor(self, dev: SimDevice, intf: int, alt: int, config: int) -> _Desc:
        if intf != 0 or alt != 0:
            raise IndexError("no such interface")
        return _Desc(dict(
            bLength=9, bDescriptorType=4, bInterfaceNumber=0, bAlternateSetting=0, bNumEndpoints=0,
            bInterfaceClass=dev.interface_class, bInterfaceSubClass=0x06, bInterfaceProtocol=0x50,
            iInterface=0, extra_descriptors=[],
        ))  # fmt: skip

    def open_device(self, dev: SimDevice) -> SimDevice:
        if dev.no_access:  # what libusb answers a user the device node does not admit
            raise usb.core.USBError("Access denied (insufficient permissions)", -3, 13)
        return dev

    def close_device(self, dev_handle: SimDevice) -> None:
        pass

    def get_configuration(self, dev_handle: SimDevice) -> int:
        return 1

    def set_configuration(self, dev_handle: SimDevice, config_value: int) -> None:
        pass

    def claim_interface(self, dev_handle: SimDevice, intf: int) -> None:
        pass

    def release_interface(self, dev_handle: SimDevice, intf: int) -> None:
        pass

    def ctrl_transfer(self, dev_handle: SimDevice, bmRequestType: int, bRequest: int, wValue: int,
                      wIndex: int, data: Any, timeout: int) -> int:  # fmt: skip
        # As a device answers GET_DESCRIPTOR (USB 2.0 section 9.4.3): a standard,
        # device-to-host request; string 0 (the language ids) with wIndex 0,
        # other strings in a language the device offers. Anything else
        # stalls, so a wrong request fails here as it would on a stick.
        if bmRequestType != 0x80 or bRequest != GET_DESCRIPTOR or (wValue >> 8) != STRING:
            raise usb.core.USBError("request not supported by the simulated device")
        index = wValue & 0xFF
        if (index == 0 and wIndex != 0) or (index != 0 and wIndex != 0x0409):
            raise usb.core.USBError("no such language")
        if index == 0:
            payload = bytes((4, STRING)) + (0x0409).to_bytes(2, "little")  # English (US)
        else:
            text = dev_handle.strings.get(index, "").encode("utf-16-le")
            payload = bytes((2 + len(text), STRING)) + text
        n = min(len(payload), len(data))
        if isinstance(data, array.array):
            data[:n] = array.array("B", payload[:n])
        return n
