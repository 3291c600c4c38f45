"""The on-disk spool: framing, torn tails, order, bounds, cleanup, and adoption of a dead owner's files."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap

import pytest
from hypothesis import given
from hypothesis import strategies as st

from producer.spool import Record, Spool, adopt_orphans, frame, parse


def rec(seq: int, size: int = 20) -> Record:
    return Record("ns:events:{1}", "ns:seq:{1}:run", seq, b"x" * size + str(seq).encode())


def drain(source, batch: int = 7) -> list[Record]:
    out = []
    while records := source.peek(batch):
        out.extend(records)
        source.ack(len(records))
    return out


@given(st.lists(st.tuples(st.integers(0, 2**40), st.binary(max_size=300)), max_size=20), st.integers(0, 400))
def test_parse_reads_every_whole_record_and_flags_any_cut(items, cut):
    records = [Record("s", "k", seq, payload) for seq, payload in items]
    data = b"".join(frame(r) for r in records)
    whole = parse(data)
    assert [r for r, _ in whole.records] == records and not whole.torn and whole.end == len(data)
    cut_at = min(cut, len(data))
    torn = parse(data[:cut_at])
    assert [r for r, _ in torn.records] == records[:len(torn.records)]
    assert torn.torn == (torn.end != cut_at)
    assert torn.end <= cut_at


def test_a_flipped_byte_stops_the_reader_there():
    data = b"".join(frame(rec(i)) for i in range(5))
    second = len(frame(rec(0)))
    damaged = bytearray(data)
    damaged[second + 12] ^= 0xFF  # inside the second record's body: its checksum no longer matches
    parsed = parse(bytes(damaged))
    assert [r.seq for r, _ in parsed.records] == [0] and parsed.torn and parsed.end == second


def make_spool(tmp_path, **kw) -> Spool:
    options = {"max_bytes": 1 << 20, "segment_bytes": 1 << 16, "fsync_s": 0.0} | kw
    return Spool(tmp_path / "spool", **options)


def test_records_come_back_in_order_across_segments_and_files_go_away(tmp_path):
    spool = make_spool(tmp_path, segment_bytes=1024)
    for start in range(0, 200, 10):
        assert spool.append([rec(i) for i in range(start, start + 10)])
    assert len(list(spool.directory.glob("*.seg"))) > 3  # it rotated
    got = drain(spool)
    assert [r.seq for r in got] == list(range(200))
    assert not spool.pending and spool.bytes_on_disk == 0
    assert list(spool.directory.glob("*.seg")) == []
    spool.append([rec(500)])  # and it starts afresh
    assert [r.seq for r in drain(spool)] == [500]
    spool.close()
    assert list(spool.directory.iterdir()) == []  # empty at close: the lock file goes too


def test_interleaved_writes_and_reads_keep_order(tmp_path):
    spool = make_spool(tmp_path, segment_bytes=600)
    got, seq = [], 0
    for round_ in range(30):
        spool.append([rec(seq + i) for i in range(round_ % 4 + 1)])
        seq += round_ % 4 + 1
        records = spool.peek(3)
        got.extend(records)
        spool.ack(len(records))
    got.extend(drain(spool))
    assert [r.seq for r in got] == list(range(seq))


def test_a_full_spool_refuses_and_stays_bounded(tmp_path):
    spool = make_spool(tmp_path, max_bytes=2048)
    accepted = sum(spool.append([rec(i, size=100)]) for i in range(100))
    assert 0 < accepted < 100
    assert spool.bytes_on_disk <= 2048
    assert sum(p.stat().st_size for p in spool.directory.glob("*.seg")) <= 2048
    drain(spool)
    assert spool.append([rec(1000, size=100)])  # room again once delivered


def test_undelivered_records_survive_close_and_are_adopted_once(tmp_path):
    spool = make_spool(tmp_path, segment_bytes=700)
    spool.append([rec(i) for i in range(40)])
    first = spool.peek(5)
    spool.ack(5)
    spool.close()  # 35 left: the files stay, the lock is free
    assert [r.seq for r in first] == list(range(5))

    adopted = adopt_orphans(spool.directory, skip=set())
    assert len(adopted) == 1
    assert adopt_orphans(spool.directory, skip=set()) == []  # we hold its lock now: nobody else gets it
    backlog = adopted[0]
    assert [r.seq for r in drain(backlog)] == list(range(5, 40))
    assert backlog.empty
    backlog.release(delete_lock=True)
    assert list(spool.directory.iterdir()) == []


def test_a_live_owner_is_never_adopted(tmp_path):
    spool = make_spool(tmp_path)
    spool.append([rec(1)])
    other_process = subprocess.Popen(
        [sys.executable, "-c", textwrap.dedent(f"""
            import fcntl, os, sys, time
            fd = os.open({str(spool.directory / (spool.owner + '.lock'))!r}, os.O_RDWR)
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                print("got it")
            except OSError:
                print("busy")
        """)], stdout=subprocess.PIPE, text=True)
    assert other_process.communicate(timeout=30)[0].strip() == "busy"
    assert adopt_orphans(spool.directory, skip=set()) == []  # our own live lock, seen from a second fd
    spool.close()
    assert len(adopt_orphans(spool.directory, skip=set())) == 1


def test_a_torn_tail_after_a_kill_is_skipped_and_the_rest_delivered(tmp_path):
    spool = make_spool(tmp_path)
    spool.append([rec(i) for i in range(10)])
    segment = next(spool.directory.glob("*.seg"))
    spool.close()
    with open(segment, "ab") as fh:  # what SIGKILL mid-write leaves: the start of a record
        fh.write(frame(rec(10))[:15])
    backlog = adopt_orphans(spool.directory, skip=set())[0]
    assert [r.seq for r in drain(backlog)] == list(range(10))
    assert backlog.skipped_bytes == 15 and backlog.empty


def test_acks_let_a_later_adopter_resume_where_delivery_stopped(tmp_path):
    spool = make_spool(tmp_path)
    spool.append([rec(i) for i in range(10)])
    spool.close()
    first = adopt_orphans(spool.directory, skip=set())[0]
    first.ack(len(first.peek(4)))
    first.release(delete_lock=False)  # this adopter dies after delivering 4
    second = adopt_orphans(spool.directory, skip=set())[0]
    assert [r.seq for r in drain(second)] == list(range(4, 10))


def test_orphans_without_a_lock_file_are_adopted_too(tmp_path):
    spool = make_spool(tmp_path)
    spool.append([rec(1), rec(2)])
    spool.close()
    for lock in spool.directory.glob("*.lock"):
        lock.unlink()
    backlog = adopt_orphans(spool.directory, skip=set())[0]
    assert [r.seq for r in drain(backlog)] == [1, 2]


def test_a_write_that_fails_leaves_no_half_record(tmp_path, monkeypatch):
    spool = make_spool(tmp_path)
    spool.append([rec(1)])
    real_write = os.write

    def short_write(fd, data):
        real_write(fd, data[:7])
        return 7

    monkeypatch.setattr(os, "write", short_write)
    with pytest.raises(OSError):
        spool.append([rec(2)])  # the publisher catches this, drops the batch and says so once
    monkeypatch.setattr(os, "write", real_write)
    spool.append([rec(3)])
    assert [r.seq for r in drain(spool)] == [1, 3]
