"""bench/agi_profile.py: py-spy's samples of `ivr serve` under a burst, grouped into the
server's parts with their CPU per call."""

from __future__ import annotations

import sys
from pathlib import Path

BENCH = Path(__file__).resolve().parents[2] / "bench"
sys.path.insert(0, str(BENCH))

import agi_profile  # noqa: E402

LOOP = "<module> (ivr:8);serve_forever (ivr/live/serve.py:188);Runner.run (asyncio/runners.py:118)"
WRITER = "Thread._bootstrap (threading.py:1002);Thread.run (threading.py:982);CallWriter._run (ivr/store/writer.py:273)"


def test_samples_are_told_apart_by_part_and_a_waiting_writer_is_left_out():
    raw = "\n".join([
        f"{LOOP} 40",
        f"{LOOP};FastAgiServer.handle (ivr/channels/fastagi.py:150);parse_reply (ivr/channels/agi_wire.py:130) 10",
        f"{LOOP};FastAgiServer.handle (ivr/channels/fastagi.py:150);Call.emit (ivr/engine/call.py:73) 5",
        f"{WRITER};CallWriter._write (ivr/store/writer.py:500);DefaultDialect.do_commit (sqlalchemy/engine/default.py:954) 20",
        f"{WRITER};CallWriter._write (ivr/store/writer.py:500);Connection.execute (sqlalchemy/engine/base.py:1400) 15",
        f"{WRITER};CallWriter._prepare (ivr/store/writer.py:400);CallWriter._take_event (ivr/store/writer.py:441) 10",
        f"{WRITER};CallWriter._take (ivr/store/writer.py:307) 500",  # waiting for events: idle
        "not a sample line",
    ])
    parts, total = agi_profile.group(raw)
    assert total == 100
    assert parts == {"loop: event loop and sockets": 40, "loop: AGI protocol (environment, quoting, replies)": 10,
                     "loop: engine (flow walk, events)": 5, "writer: SQLite itself (C, interpreter released)": 20,
                     "writer: SQLAlchemy": 15, "writer: rows from events (Python)": 10}


def test_a_short_profile_of_the_real_server(capsys):
    assert agi_profile.main(["--calls", "1000", "--concurrency", "50"]) == 0
    out = capsys.readouterr().out.splitlines()
    assert out[0].startswith("ivr serve (") and "under a burst of 1,000 calls" in out[0] and "µs of server CPU a call" in out[0]
    rows = {line[:52].strip(): line[52:].split() for line in out[2:]}
    assert "loop: event loop and sockets" in rows and "writer: SQLite itself (C, interpreter released)" in rows
    assert abs(sum(float(share.rstrip("%")) for share, _ in rows.values()) - 100) <= len(rows)  # rounded shares
