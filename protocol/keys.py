# Per-purpose keys derived from a device's root key (HKDF-SHA256).
#
# Every device (lock, gate, gateway) has a 32-byte root key, provisioned at
# the factory and known to the cloud. Nothing is ever MACed or encrypted with
# the root key itself: each use has its own key
#
#   key = HKDF-SHA256(ikm=root, salt="lockedge/v1",
#                     info="lockedge/v1/" + purpose + "/" + device_id [+ "/" + epoch], L=32)
#
# Each purpose has an epoch (0 at provisioning; the suffix only from 1 on, so
# epoch-0 keys are what they always were). The cloud moves a device's
# epochs with a rekey command (docs/protocol.md section 7): a stolen
# gateway's copy of a lock's local key becomes worthless without re-rooting
# the lock, and keys of untouched purposes (issued codes) keep working.
#
# so a key that leaks for one purpose (say the gateway's copy of a lock's
# local-link key) gives nothing for another (remote unlock, pass codes).
# device_id in `info` binds the key to its device even if two devices were
# (wrongly) provisioned with the same root.

from protocol.crypto import hkdf
from protocol.errors import BAD_KEY, ProtocolError

SALT = b"lockedge/v1"

# Cloud -> device commands (remote unlock, config). Known to the cloud and
# the device only: a gateway relays these but cannot forge them.
CMD = "cmd"
# Device -> cloud messages (acks, events, pass records), end to end.
UPLINK = "up"
# Gateway <-> device on the local link (time sync, record acks, delivery).
# The gateway holds this one for each of its locks.
LOCAL = "local"
# Offline pass codes verified by this device (or group).
CODE = "code"
# Biometric bundle entries sealed to this lock.
SEAL = "seal"

PURPOSES = (CMD, UPLINK, LOCAL, CODE, SEAL)
MAX_EPOCH = 65535

ROOT_KEY_LEN = 32
MAX_ID_LEN = 64


def check_device_id(device_id: object) -> str:
    if not isinstance(device_id, str) or not (0 < len(device_id) <= MAX_ID_LEN):
        raise ProtocolError(BAD_KEY, "device id must be 1..%d characters" % MAX_ID_LEN)
    for ch in device_id:
        if not (ch.isalpha() or ch.isdigit() or ch in "-_.") or ord(ch) > 127:
            raise ProtocolError(BAD_KEY, "device id may hold only ASCII letters, digits, '-', '_', '.'")
    return device_id


def derive(root: bytes, purpose: str, device_id: str, epoch: int = 0) -> bytes:
    if not isinstance(root, (bytes, bytearray)) or len(root) != ROOT_KEY_LEN:
        # Never echo key bytes; the length is not secret.
        raise ProtocolError(BAD_KEY, "root key must be %d bytes" % ROOT_KEY_LEN)
    if purpose not in PURPOSES:
        raise ProtocolError(BAD_KEY, "unknown key purpose %r" % purpose)
    check_device_id(device_id)
    if not isinstance(epoch, int) or isinstance(epoch, bool) or not (0 <= epoch <= MAX_EPOCH):
        raise ProtocolError(BAD_KEY, "key epoch must be 0..%d" % MAX_EPOCH)
    info = b"lockedge/v1/" + purpose.encode() + b"/" + device_id.encode()
    if epoch:
        info += b"/" + str(epoch).encode()
    return hkdf(bytes(root), SALT, info, 32)
