"""Differential fuzzing: the lock's decoder (MicroPython) and the gateway's
(CPython) must give the same answer for every input, accepted or refused.

A seeded corpus of thousands of inputs (valid encodings, their truncations
and mutations, random bytes) is decoded on both interpreters; the outcome
(canonical re-encoding, or the refusal reason) must match one for one.
"""

from __future__ import annotations

import json
import random
from pathlib import Path

import pytest
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

from protocol import cbor, envelope, keys
from protocol.errors import ProtocolError
from tests.conftest import run_micropython
from tests.strategies import depth, values

pytestmark = pytest.mark.micropython

N_VALID = 400


def _outcome_cpython(data: bytes) -> str:
    try:
        return "ok:" + cbor.encode(cbor.decode(data)).hex()
    except ProtocolError as e:
        return "err:" + e.reason


def _corpus() -> list[bytes]:
    seeds: list[bytes] = []

    @settings(max_examples=N_VALID, database=None, derandomize=True, suppress_health_check=list(HealthCheck))
    @given(values)
    def collect(v: object) -> None:
        if depth(v) < cbor.MAX_DEPTH:
            seeds.append(cbor.encode(v))

    collect()
    rng = random.Random(20261122)
    corpus = list(seeds)
    for s in seeds:
        corpus.append(s[: rng.randrange(len(s))])
        m = bytearray(s)
        for _ in range(rng.randint(1, 3)):
            m[rng.randrange(len(m))] = rng.randrange(256)
        corpus.append(bytes(m))
        corpus.append(s + bytes([rng.randrange(256)]))
    for _ in range(1200):
        corpus.append(bytes(rng.randrange(256) for _ in range(rng.randint(0, 24))))
    # UTF-8 edge cases, where MicroPython's own str decoding is lax.
    for t in (
        b"\xc0\x80",
        b"\xed\xa0\x80",
        b"\xed\x9f\xbf",
        b"\xf4\x8f\xbf\xbf",
        b"\xf4\x90\x80\x80",
        b"\xe0\x9f\xbf",
        b"\xe0\xa0\x80",
        b"\xf0\x8f\xbf\xbf",
        b"\xf0\x90\x80\x80",
        b"\xef\xbf\xbf",
    ):
        corpus.append(bytes([0x60 + len(t)]) + t)
    return corpus


def test_decoders_agree_on_thousands_of_inputs(tmp_path: Path) -> None:
    corpus = _corpus()
    assert len(corpus) >= 2000
    expected = [_outcome_cpython(d) for d in corpus]
    corpus_file = tmp_path / "corpus.json"
    corpus_file.write_text(json.dumps([d.hex() for d in corpus]))
    code = (
        "import binascii, json\n"
        "from protocol import cbor\n"
        "from protocol.errors import ProtocolError\n"
        "with open('/data/corpus.json') as f:\n"
        "    CORPUS = json.load(f)\n"
        "for h in CORPUS:\n"
        "    d = binascii.unhexlify(h)\n"
        "    try:\n"
        "        print('ok:' + binascii.hexlify(cbor.encode(cbor.decode(d))).decode())\n"
        "    except ProtocolError as e:\n"
        "        print('err:' + e.reason)\n"
    )
    # One outcome per line: the runner's stdout is line-buffered in chunks.
    got = run_micropython(code, put=[(corpus_file, "/data/corpus.json")]).splitlines()
    assert len(got) == len(expected)
    diffs = [(corpus[i].hex(), expected[i], got[i]) for i in range(len(corpus)) if expected[i] != got[i]]
    assert not diffs, f"{len(diffs)} disagreements, first: {diffs[:5]}"


@given(values, st.integers(min_value=1, max_value=2**40), st.integers(min_value=0, max_value=2**32 - 1))
@settings(max_examples=200)
def test_envelopes_sealed_on_cpython_roundtrip(body: object, seq: int, ts: int) -> None:
    key = keys.derive(bytes(32), keys.UPLINK, "lock-1")
    assume(depth(body) < cbor.MAX_DEPTH)
    wire = envelope.seal(key, "evt", "lock-1", seq, ts, body)
    env = envelope.verify(envelope.parse(wire), key)
    assert env.body == body and env.seq == seq and env.ts == ts


def test_envelopes_sealed_on_micropython_verify_on_cpython() -> None:
    code = (
        "import binascii\n"
        "from protocol import envelope, keys\n"
        "k = keys.derive(bytes(32), keys.UPLINK, 'lock-1')\n"
        "for s in range(1, 51):\n"
        "    w = envelope.seal(k, 'rec', 'lock-1', s, 1795000000 + s, [s, b'x' * s, {'k': s}])\n"
        "    print(binascii.hexlify(w).decode())\n"
    )
    lines = run_micropython(code).split()
    assert len(lines) == 50  # every envelope came back: none lost to a crash or a short read
    key = keys.derive(bytes(32), keys.UPLINK, "lock-1")
    rx = envelope.Receiver(lambda s, t: key if s == "lock-1" else None)
    for i, h in enumerate(lines, start=1):
        env = rx.open(bytes.fromhex(h))
        assert env.body == [i, b"x" * i, {"k": i}]
