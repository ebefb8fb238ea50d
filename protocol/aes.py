# AES-128-CBC decryption for the lock (FIPS 197, SP 800-38A).
#
# Real MicroPython ports have `cryptolib.aes` (mbedTLS or axTLS in C), and
# `cbc_decrypt` uses it. The WebAssembly port the tests run on has no
# cryptolib, so a small pure-Python inverse cipher stands in; it is checked
# block for block against `cryptography` by the tests. Only decryption is
# here: sealing happens at the office, with `cryptography`.
#
# The fallback uses table lookups indexed by secret bytes, so it is not
# constant-time; it exists for the test port and for boards without
# cryptolib, where the attacker would need a timing probe on the lock's CPU
# while a bundle entry is being opened.

try:
    import cryptolib  # type: ignore[import-not-found,unused-ignore]
except ImportError:
    cryptolib = None  # type: ignore[assignment,unused-ignore]


def _xtime(a: int) -> int:
    a <<= 1
    return (a ^ 0x11B) if a & 0x100 else a


def _mul(a: int, b: int) -> int:
    r = 0
    while b:
        if b & 1:
            r ^= a
        a = _xtime(a)
        b >>= 1
    return r


def _tables() -> tuple:
    # The S-box from its definition (inverse in GF(2^8), then the affine
    # map), so no 256-entry literal has to be trusted or typed.
    inv = bytearray(256)
    for a in range(1, 256):
        for b in range(1, 256):
            if _mul(a, b) == 1:
                inv[a] = b
                break
    sbox = bytearray(256)
    for a in range(256):
        x = inv[a]
        s = x
        for _ in range(4):
            x = ((x << 1) | (x >> 7)) & 0xFF
            s ^= x
        sbox[a] = s ^ 0x63
    isbox = bytearray(256)
    for a in range(256):
        isbox[sbox[a]] = a
    m9 = bytearray(_mul(a, 9) for a in range(256))
    m11 = bytearray(_mul(a, 11) for a in range(256))
    m13 = bytearray(_mul(a, 13) for a in range(256))
    m14 = bytearray(_mul(a, 14) for a in range(256))
    return bytes(sbox), bytes(isbox), bytes(m9), bytes(m11), bytes(m13), bytes(m14)


_T = None  # built on first use: the lock only pays for it when a bundle arrives


def _round_keys(key: bytes) -> bytearray:
    sbox = _T[0]  # type: ignore[index]
    w = bytearray(176)
    w[:16] = key
    rcon = 1
    for i in range(16, 176, 4):
        a = w[i - 4]
        b = w[i - 3]
        c = w[i - 2]
        d = w[i - 1]
        if i % 16 == 0:
            a0 = a
            a = sbox[b] ^ rcon
            b = sbox[c]
            c = sbox[d]
            d = sbox[a0]
            rcon = _xtime(rcon)
        w[i] = w[i - 16] ^ a
        w[i + 1] = w[i - 15] ^ b
        w[i + 2] = w[i - 14] ^ c
        w[i + 3] = w[i - 13] ^ d
    return w


def _decrypt_block(w, buf, at, s, t) -> None:  # type: ignore[no-untyped-def]
    # In place on buf[at:at+16], with two 16-byte scratch buffers: a lock
    # opening a 5 KB entry must not allocate per block.
    _, isbox, m9, m11, m13, m14 = _T  # type: ignore[misc]
    for i in range(16):
        s[i] = buf[at + i] ^ w[160 + i]
    for r in range(9, -1, -1):
        # InvShiftRows and InvSubBytes (column-major state), AddRoundKey.
        k = 16 * r
        for c in range(4):
            for row in range(4):
                t[4 * c + row] = isbox[s[4 * ((c - row) & 3) + row]] ^ w[k + 4 * c + row]
        if r == 0:
            break
        for c in range(0, 16, 4):
            # One name per line: MicroPython builds a tuple for a 4-way unpack.
            a0 = t[c]
            a1 = t[c + 1]
            a2 = t[c + 2]
            a3 = t[c + 3]
            s[c] = m14[a0] ^ m11[a1] ^ m13[a2] ^ m9[a3]
            s[c + 1] = m9[a0] ^ m14[a1] ^ m11[a2] ^ m13[a3]
            s[c + 2] = m13[a0] ^ m9[a1] ^ m14[a2] ^ m11[a3]
            s[c + 3] = m11[a0] ^ m13[a1] ^ m9[a2] ^ m14[a3]
    for i in range(16):
        buf[at + i] = t[i]


def cbc_decrypt_pure(key: bytes, iv: bytes, data: "bytes | memoryview") -> bytearray:
    global _T
    if _T is None:
        _T = _tables()
    w = _round_keys(key)
    out = bytearray(data)
    s = bytearray(16)
    t = bytearray(16)
    prev = bytearray(iv)
    cur = bytearray(16)
    for at in range(0, len(out), 16):
        for i in range(16):
            cur[i] = out[at + i]
        _decrypt_block(w, out, at, s, t)
        for i in range(16):
            out[at + i] ^= prev[i]
        prev, cur = cur, prev
    return out


def cbc_decrypt(key: bytes, iv: bytes, data: "bytes | memoryview") -> "bytes | bytearray":
    """Decrypt whole blocks; the caller has checked the MAC and the length
    (a multiple of 16) and removes the padding."""
    if len(key) != 16 or len(iv) != 16 or len(data) % 16:
        raise ValueError("AES-128-CBC needs a 16-byte key and IV and whole blocks")
    if cryptolib is not None:
        return cryptolib.aes(key, 2, iv).decrypt(data)  # type: ignore[no-any-return,unused-ignore]
    return cbc_decrypt_pure(key, iv, data)
