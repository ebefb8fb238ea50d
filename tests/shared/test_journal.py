# The lock's flash journal, on CPython and on MicroPython: durability,
# acks, bounded size, and power cuts at many byte positions.
from firmware.fsio import FlashFS
from firmware.journal import Journal
from simulators.lockfs import PowerCut, PowerCutFS
from tests.shared.util import fresh_dir


def _dir():
    return fresh_dir("journal")


def _rec(j, i, granted=True):
    return j.append(1795000000 + i, "door-1", "code", "pc-%d" % i, granted, "ok" if granted else "wrong-code")


def test_append_ack_delete_and_sequence_never_reused():
    d = _dir()
    j = Journal(FlashFS(d), "lock-1", segment_bytes=400, max_segments=50)
    recs = [_rec(j, i) for i in range(30)]
    assert [r.seq for r in recs] == list(range(1, 31))
    assert [r.seq for r in j.pending(100)] == list(range(1, 31))
    assert j.ack(list(range(1, 21))) == 20
    assert j.ack([5]) == 0
    assert [r.seq for r in j.pending(100)] == list(range(21, 31))
    j2 = Journal(FlashFS(d), "lock-1", segment_bytes=400, max_segments=50)
    assert [r.seq for r in j2.pending(100)] == list(range(21, 31))
    j2.ack(list(range(21, 31)))
    assert j2.backlog() == 0
    j3 = Journal(FlashFS(d), "lock-1", segment_bytes=400, max_segments=50)
    assert _rec(j3, 99).seq == 31  # numbers survive the deletion of every record


def test_full_journal_counts_instead_of_dropping_and_reports_later():
    d = _dir()
    j = Journal(FlashFS(d), "lock-1", segment_bytes=300, max_segments=2)
    stored = []
    lost = 0
    for i in range(40):
        r = _rec(j, i, granted=(i % 3 != 0))
        if r is None:
            lost += 1
        else:
            stored.append(r.seq)
    assert lost > 0 and len(stored) + lost == 40
    j = Journal(FlashFS(d), "lock-1", segment_bytes=300, max_segments=2)  # counts survive a reboot
    j.ack(stored)
    r = _rec(j, 100)
    summary = [x for x in j.pending(100) if x.reason == "journal-overflow"]
    assert len(summary) == 1
    g, dn = summary[0].ref.split("/")
    assert int(g[1:]) + int(dn[1:]) == lost
    assert r is not None and r.seq == summary[0].seq + 1


def test_power_cut_at_many_bytes_loses_nothing_acknowledged():
    # Each round: write and ack until the power fails at byte k, reboot, check.
    rounds = 0
    torn_seen = 0
    for k in range(0, 1400, 5):
        d = _dir()
        fs = PowerCutFS(d)
        j = Journal(fs, "lock-1", segment_bytes=250, max_segments=50)
        done = []  # appends that returned: the door may have opened for these
        ack_requested = set()
        fs.arm(k)
        cut = False
        try:
            for i in range(40):
                done.append(_rec(j, i).seq)
                if i % 7 == 6:
                    batch = done[-5:-2]
                    ack_requested.update(batch)
                    j.ack(batch)
        except PowerCut:
            cut = True
        if not cut:
            continue
        rounds += 1
        j2 = Journal(PowerCutFS(d), "lock-1", segment_bytes=250, max_segments=50)
        torn_seen += 1 if j2.torn else 0
        left = [r.seq for r in j2.pending(1000)]
        for s in done:
            assert s in left or s in ack_requested, (k, s)  # never lost unless acked
        for s in left:
            assert s in done or s == (done[-1] + 1 if done else 1), (k, s)  # nothing invented
        assert left == sorted(left)
        nxt = _rec(j2, 999)
        assert nxt.seq > max(done + left + [0]), (k, nxt.seq)  # never reused
    assert rounds > 200 and torn_seen > 50


def test_encoded_upload_equals_the_decoded_batch():
    from protocol import cbor, record

    fs = FlashFS(fresh_dir("jenc"))
    j = Journal(fs, "lock-1", segment_bytes=600, max_segments=64)
    for i in range(40):
        j.append(
            1795000000 + i * 977,
            "door-1",
            "code",
            "pc-%d" % (i * 7919),
            i % 3 != 0,
            "ok" if i % 3 else "wrong-code",
        )
    j.ack([2, 3, 10, 11, 12])
    for limit in (1, 7, 30, 50):
        seqs, body = j.pending_encoded(limit)
        recs = j.pending(limit)
        assert seqs == [r.seq for r in recs]
        assert body == cbor.encode(record.batch_body(recs))
        assert [r.seq for r in record.batch_from_body(cbor.decode(body))] == seqs
    j2 = Journal(fs, "lock-1", segment_bytes=600, max_segments=64)  # after a reboot too
    assert j2.pending_encoded(50)[0] == j.pending_encoded(50)[0]
    assert Journal(FlashFS(fresh_dir("jenc2")), "x").pending_encoded(5) == ([], bytes((0x82, 1, 0x80)))
    big = [
        record.PassRecord("lock-1", s, 1, "d", "code", "", False, "wrong-code")
        for s in (1, 23, 24, 255, 256, 65536, 2**32, 2**40)
    ]
    for r in big:
        assert record.peek_seq(r.encode()) == r.seq
