# The single error type of the protocol core. Every malformed, forged,
# replayed or out-of-policy input surfaces as ProtocolError, so a caller
# needs one except clause at its trust boundary, and `reason` (a short,
# stable code) is what gets logged and counted. Messages never include key
# material or payload bytes.

# Reason codes. Stable strings: they appear in pass records, logs and tests.
MALFORMED = "malformed"  # not well-formed CBOR / not the expected shape
TOO_LARGE = "too-large"  # input, string or container over a limit
TOO_DEEP = "too-deep"  # nesting over the depth limit
NON_CANONICAL = "non-canonical"  # well-formed but not deterministic encoding
UNSUPPORTED = "unsupported"  # CBOR feature outside the protocol subset
VERSION = "version"  # unknown format version
INVALID = "invalid-field"  # a field has the wrong type or range
BAD_TAG = "bad-tag"  # MAC does not verify
DUPLICATE = "duplicate"  # sequence number already accepted
STALE = "stale"  # sequence number older than the replay window
UNKNOWN_SENDER = "unknown-sender"  # no key for this sender
BAD_KEY = "bad-key"  # key material of the wrong size or type


class ProtocolError(Exception):
    def __init__(self, reason: str, message: str) -> None:
        super().__init__(message)
        self.reason = reason
        self.message = message

    def __str__(self) -> str:
        return self.reason + ": " + self.message
