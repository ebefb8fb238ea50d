# The lock firmware's version (MicroPython). The lock says it in a `hello`
# event each time it connects (firmware/link.py); the gateway shows it in
# its retained `info` message, so an installer sees which locks run what.
VERSION = "0.1.0"
