"""The gateway daemon (CPython on the Raspberry Pi at the community entrance)."""
