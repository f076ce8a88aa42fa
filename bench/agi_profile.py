"""Where `ivr serve`'s time goes under load: py-spy samples the server while the FastAGI load
generator (bench/agi_load.py) places a burst of the bench call, and the samples are
grouped into the parts of the server, each with its share and its CPU per call.

    .venv/bin/python bench/agi_profile.py                     # 4,000 calls, 200 at once
    .venv/bin/python bench/agi_profile.py --raw prof.txt      # keep py-spy's samples too
    PYTHONPATH=<checkout of another commit> .venv/bin/python bench/agi_profile.py

The last form profiles the `ivr` package of that checkout with this script: the way to
put the profile of a change beside the one before it. py-spy samples from outside the
process (about 250 times a second) and slows the server only a little; a sample of a thread
waiting for work (the call writer between batches) is left out. The parts:

- loop: event loop and sockets -- asyncio/uvloop, accepting, reading, writing the socket
- loop: AGI protocol -- the environment block, quoting, replies, the channel's commands
- loop: engine -- the flow walk, its events
- loop: logging, loop: other
- writer: rows from events -- the call writer's own Python (events to rows, the calls row)
- writer: SQLAlchemy -- statements run through SQLAlchemy (parameters, result handling)
- writer: SQLite itself -- the driver's executemany and commit (the interpreter is released)

The server's CPU per call is read from /proc before the burst and after the writer has
stored its last call (the writer holds rows through a rush and writes them after it); each
part's microseconds per call are its share of the samples times that. The figures are printed last.
"""

from __future__ import annotations

import argparse
import asyncio
import collections
import os
import shutil
import signal
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Optional

sys.path.insert(0, str(Path(__file__).resolve().parent))

from agi_load_asterisk import Behaviour  # noqa: E402
from agi_load_run import Plan, Target, run  # noqa: E402
from agi_load_servers import start_ivr, wait_stored, workspace  # noqa: E402

# a thread waiting for work (py-spy counts a wait inside C, such as a queue's get, as active)
IDLE_LEAVES = ("Condition.wait", "Event.wait", "CallWriter._take ", "_worker (concurrent/futures/thread.py")
WRITER_C = ("DefaultDialect.do_executemany", "DefaultDialect.do_commit", "DefaultDialect.do_execute")


def part(frames: list[str]) -> Optional[str]:
    """The part of the server a sample (its stack, outermost first) belongs to; None: idle."""
    leaf, stack = frames[-1], ";".join(frames)
    if frames[0].startswith("Thread._bootstrap"):
        if leaf.startswith(IDLE_LEAVES):
            return None
        if "CallWriter" not in stack:
            return "other threads"
        if leaf.startswith(WRITER_C):
            return "writer: SQLite itself (C, interpreter released)"
        if "sqlalchemy/" in stack:
            return "writer: SQLAlchemy"
        return "writer: rows from events (Python)"
    if "logging/" in stack:
        return "loop: logging"
    if "panoramisk/" in stack or "ivr/asterisk/" in stack:
        return "loop: AMI (events, queue board, actions)"
    if "ivr/live/callbacks.py" in stack or "ivr/live/reload.py" in stack:
        return "loop: call-back scheduler, flow reloader"
    if "ivr/store/" in leaf:
        return "loop: handing events to the writer"
    if any(name in leaf for name in ("asyncio/", "uvloop", "socket.py", "selectors.py", "runners.py")):
        return "loop: event loop and sockets"
    if any(name in leaf for name in ("agi_wire.py", "channels/agi.py", "fastagi.py", "agi_recording.py",
                                     "agi_connection.py", "agi_refusals.py")):
        return "loop: AGI protocol (environment, quoting, replies)"
    if any(name in leaf for name in ("ivr/engine/", "ivr/events.py", "ivr/clock.py", "<string>")):
        return "loop: engine (flow walk, events)"
    return "loop: other"


def group(raw: str) -> tuple[collections.Counter, int]:
    """py-spy's raw output (`frame;frame;... count` lines) by part; and the samples counted."""
    parts: collections.Counter = collections.Counter()
    for line in raw.splitlines():
        stack, _, count = line.rstrip().rpartition(" ")
        if not stack or not count.isdigit():
            continue
        name = part(stack.split(";"))
        if name is not None:
            parts[name] += int(count)
    return parts, sum(parts.values())


async def profile(calls: int, concurrency: int, raw_copy: Optional[Path]) -> str:
    folder = workspace()
    server = await start_ivr(folder)
    spy_out = Path(tempfile.mkdtemp(prefix="agi-profile-")) / "samples.txt"
    try:
        behaviour = Behaviour(0.0, 0.0, recordings=str(folder / "recordings"))
        warm_up = (await run(Target(port=server.port), Plan("burst", calls=200, concurrency=concurrency),
                             behaviour)).tally.completed
        spy = subprocess.Popen([str(Path(sys.executable).with_name("py-spy")), "record", "--pid",
                                str(server.process.pid), "--rate", "250", "--format", "raw", "--output", str(spy_out)],
                               stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        await asyncio.sleep(1.0)  # py-spy attaches
        if spy.poll() is not None:
            raise SystemExit(f"py-spy could not sample the server: {spy.stderr.read().decode(errors='replace')}")
        cpu_before = server.cpu_seconds()
        measured = await run(Target(port=server.port), Plan("burst", calls=calls, concurrency=concurrency), behaviour)
        # the writer holds its rows through a rush and writes them after it: its share of the
        # calls' cost comes once the burst is over, so sample (and count CPU) until all are stored
        expected = warm_up + measured.tally.completed
        assert server.database is not None
        stored = await wait_stored(server.database, expected)
        if stored.calls < expected:
            raise SystemExit(f"the writer stored {stored.calls} of {expected} calls within a minute")
        cpu = (server.cpu_seconds() or 0.0) - (cpu_before or 0.0)
        spy.send_signal(signal.SIGINT)
        spy.wait(30)
    finally:
        server.stop()
        shutil.rmtree(folder, ignore_errors=True)
    raw = spy_out.read_text(encoding="utf-8", errors="replace")
    shutil.rmtree(spy_out.parent, ignore_errors=True)
    if raw_copy is not None:
        raw_copy.write_text(raw, encoding="utf-8")
    parts, total = group(raw)
    per_call_us = cpu / max(1, measured.tally.completed) * 1e6
    import ivr

    lines = [f"ivr serve ({Path(ivr.__file__).parent}) under a burst of {measured.tally.completed:,} calls, "
             f"{concurrency} at once: {measured.tally.completed / measured.wall:,.0f} calls/s, "
             f"{per_call_us:,.0f} µs of server CPU a call, {total:,} samples (a waiting thread's left out)",
             f"{'part':<52} {'share':>6} {'µs/call':>8}"]
    for name, count in parts.most_common():
        lines.append(f"{name:<52} {count / total:>6.0%} {per_call_us * count / total:>8,.0f}")
    return "\n".join(lines)


def main(argv: Optional[list[str]] = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--calls", type=int, default=4000)
    parser.add_argument("--concurrency", type=int, default=200)
    parser.add_argument("--raw", type=Path, help="also write py-spy's raw samples here")
    args = parser.parse_args(argv)
    print(asyncio.run(profile(args.calls, args.concurrency, args.raw)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
