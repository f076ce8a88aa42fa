"""Benchmark of `ivr recordings index`: N recordings (default 500) of 30 s to 5 min of
8 kHz 16-bit audio with their calls in a temporary SQLite installation; prints the
recordings and megabytes indexed per second, and the time of the second run, which has
nothing to do. Figures only: exit status 0 whatever they are.

    .venv/bin/python bench/index_bench.py [--recordings 500] [--seed 1]
"""

from __future__ import annotations

import argparse
import array
import datetime as dt
import math
import os
import random
import sys
import tempfile
import time
import wave
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from sqlalchemy import insert  # noqa: E402

from ivr.settings.config import load_config  # noqa: E402
from ivr.recordings.index import index_recordings  # noqa: E402
from ivr.recordings.store import open_database  # noqa: E402
from ivr.store.models import Call  # noqa: E402

RATE = 8000
CONFIG = "database: sqlite:///ivr.db\nrecordings: {dir: recordings, retention_days: 90}\n"


def seconds_of_signal(rng: random.Random, count: int = 24) -> list[bytes]:
    """One-second blocks to build calls from: tones at speech-like levels, noise, silence."""
    blocks = []
    for i in range(count):
        level = rng.choice((0.0, 0.05, 0.2, 0.4, 0.7))
        freq = rng.uniform(150, 1200)
        samples = array.array("h", (
            max(-32768, min(32767, int(32767 * level * math.sin(2 * math.pi * freq * n / RATE)
                                       + rng.gauss(0, 200 if level else 20))))
            for n in range(RATE)))
        if sys.byteorder == "big":
            samples.byteswap()
        blocks.append(samples.tobytes())
    return blocks


def make_installation(folder: Path, count: int, rng: random.Random) -> tuple[int, float]:
    """config.yaml, the calls and their recordings; the bytes and seconds of audio written."""
    (folder / "config.yaml").write_text(CONFIG, encoding="utf-8")
    config = load_config(folder / "config.yaml")
    engine = open_database(config)
    blocks = seconds_of_signal(rng)
    start = dt.datetime(2026, 11, 24, 8, 0, tzinfo=dt.timezone.utc)
    calls, size, audio = [], 0, 0.0
    settled = time.time() - 3600  # written an hour ago: nothing is left for a later run
    for i in range(count):
        at = start + dt.timedelta(minutes=3 * i)
        uniqueid = f"{int(at.timestamp())}.{i}"
        length = rng.randint(30, 300)
        path = config.recordings_dir / at.date().isoformat() / f"{uniqueid}.wav"
        path.parent.mkdir(parents=True, exist_ok=True)
        with wave.open(str(path), "wb") as wav:
            wav.setnchannels(1)
            wav.setsampwidth(2)
            wav.setframerate(RATE)
            wav.writeframes(b"".join(rng.choice(blocks) for _ in range(length)))
        os.utime(path, (settled, settled))
        size += path.stat().st_size
        audio += length
        calls.append({"id": uniqueid, "uniqueid": uniqueid, "source": "live", "flow": "main", "caller": "",
                      "caller_digits": "", "keys": "", "abandoned": False, "reviewed": False, "started_at": at,
                      "ended_at": at + dt.timedelta(seconds=length), "duration": float(length),
                      "outcome": "answered"})
    with engine.begin() as conn:
        conn.execute(insert(Call.__table__), calls)
    engine.dispose()
    return size, audio


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--recordings", type=int, default=500)
    parser.add_argument("--seed", type=int, default=1)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="ivr-index-bench-") as tmp:
        folder = Path(tmp)
        size, audio = make_installation(folder, args.recordings, random.Random(args.seed))
        config = load_config(folder / "config.yaml")
        started, cpu = time.perf_counter(), time.process_time()
        first = index_recordings(config)
        took, cpu = time.perf_counter() - started, time.process_time() - cpu
        started = time.perf_counter()
        second = index_recordings(config)
        again = time.perf_counter() - started
    mb = size / 1e6
    print(f"index {len(first.indexed)} recordings ({mb:,.0f} MB, {audio / 3600:.1f} h of audio, 30 s to 5 min each; "
          f"files in the page cache): {took:.1f} s, {len(first.indexed) / took:.1f} recordings/s, {mb / took:.1f} MB/s "
          f"(CPU {cpu:.1f} s; {len(first.errors)} errors, {len(first.pending)} left)")
    print(f"second run, nothing to do: {again:.2f} s ({second.unchanged} unchanged, {len(second.indexed)} read)")


if __name__ == "__main__":
    main()
