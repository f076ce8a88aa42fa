"""Helpers of the recordings tests: an installation in a folder, WAV files, calls."""

from __future__ import annotations

import array
import datetime as dt
import math
import os
import struct
import sys
import time
import wave
from pathlib import Path
from typing import Optional

from sqlalchemy import Engine, select
from sqlalchemy.orm import Session

from ivr.settings.config import Config, check_config
from ivr.store.models import Call, Recording

RATE = 8000
UTC = dt.timezone.utc
CONFIG = """\
database: sqlite:///ivr.db
recordings: {{dir: recordings, retention_days: {days}}}
"""


def make_installation(folder: Path, retention_days: Optional[int] = 90) -> Config:
    """config.yaml with its own SQLite database and recordings folder."""
    path = folder / "config.yaml"
    path.write_text(CONFIG.format(days="null" if retention_days is None else retention_days), encoding="utf-8")
    config, findings = check_config(path)
    assert config is not None, [str(d) for d in findings]
    config.recordings_dir.mkdir()
    return config


def samples(seconds: float, amplitude: float = 0.5, freq: float = 440.0) -> bytes:
    """A sine tone (amplitude 0: silence) as 16-bit little-endian PCM at 8 kHz."""
    count = int(round(seconds * RATE))
    peak = min(32767, int(amplitude * 32768))
    data = array.array("h", (int(peak * math.sin(2 * math.pi * freq * n / RATE)) for n in range(count)))
    if sys.byteorder == "big":
        data.byteswap()
    return data.tobytes()


def write_wav(path: Path, seconds: float = 1.0, amplitude: float = 0.5, *, pcm: Optional[bytes] = None,
              age: float = 120.0) -> Path:
    """An 8 kHz mono 16-bit WAV at `path`, last modified `age` seconds ago."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with wave.open(str(path), "wb") as wav:
        wav.setnchannels(1)
        wav.setsampwidth(2)
        wav.setframerate(RATE)
        wav.writeframes(pcm if pcm is not None else samples(seconds, amplitude))
    set_age(path, age)
    return path


def set_age(path: Path, seconds: float) -> None:
    when = time.time() - seconds
    os.utime(path, (when, when))


def lie_about_size(path: Path) -> None:
    """Write 0 into the RIFF and data sizes, as MixMonitor's header says while it records."""
    stat = path.stat()
    with open(path, "r+b") as f:
        f.seek(4)
        f.write(struct.pack("<I", 0))
        f.seek(40)
        f.write(struct.pack("<I", 0))
    os.utime(path, ns=(stat.st_atime_ns, stat.st_mtime_ns))


def add_call(engine: Engine, call_id: str, *, uniqueid: Optional[str] = None, outcome: Optional[str] = "answered",
             source: str = "live", started_at: Optional[dt.datetime] = None) -> None:
    with Session(engine) as session:
        session.add(Call(id=call_id, uniqueid=uniqueid, source=source, flow="main", outcome=outcome,
                         started_at=started_at or dt.datetime.now(UTC) - dt.timedelta(minutes=10)))
        session.commit()


def recordings(engine: Engine) -> dict[str, Recording]:
    """Every recordings row, by path."""
    with Session(engine) as session:
        return {r.path: r for r in session.scalars(select(Recording))}
