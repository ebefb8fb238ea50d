# Everything the lock, the gateway and the simulators must agree on, with no
# I/O: deterministic CBOR, keys, the authenticated envelope, pass records.
# Deployed to the lock as-is (MicroPython), imported by the gateway (CPython).
__version__ = "0.1.0"
