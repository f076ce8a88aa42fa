"""What the index stores of one recording, read in a single pass over the file: its
sha256, size, duration and waveform peaks.

The file is read once: `wave` takes its frames through a reader that hashes every byte
on the way, and whatever follows the audio (trailing chunks) is hashed after it.
"""

from __future__ import annotations

import hashlib
import wave
from dataclasses import dataclass
from pathlib import Path
from typing import Any, BinaryIO

from ivr.recordings.waveform import CHUNK_FRAMES, MAX_BUCKETS, PeakMeter, bucket_count, duration

_TAIL_READ = 1 << 20


@dataclass(frozen=True)
class FileFacts:
    size: int  # bytes read, the whole file
    duration: float  # seconds
    checksum: str  # sha256, hex
    peaks: list[float]
    rate: int
    channels: int


class _HashingReader:
    """A file reader that hashes all it hands out. It has no tell(), so `wave` treats it
    as a stream and reads through the chunks it skips rather than seeking past them."""

    def __init__(self, f: BinaryIO):
        self._f = f
        self.hash = hashlib.sha256()
        self.size = 0

    def read(self, n: int = -1) -> bytes:
        data = self._f.read(n)
        self.hash.update(data)
        self.size += len(data)
        return data


def read_facts(path: Path, max_buckets: int = MAX_BUCKETS) -> FileFacts:
    """The facts of a 16-bit PCM WAV file; wave.Error, EOFError or OSError when it is none."""
    with open(path, "rb") as f:
        reader = _HashingReader(f)
        wav: Any = wave.open(reader, "rb")  # type: ignore[arg-type]  # any object with read() will do
        try:
            if wav.getsampwidth() != 2:
                raise wave.Error(f"16-bit PCM expected, not {8 * wav.getsampwidth()}-bit samples")
            frames, rate, channels = wav.getnframes(), wav.getframerate(), wav.getnchannels()
            meter = PeakMeter(frames, bucket_count(frames, rate, max_buckets), channels)
            while True:
                chunk = wav.readframes(CHUNK_FRAMES)
                if not chunk:
                    break
                meter.feed(chunk)
        finally:
            wav.close()
        while reader.read(_TAIL_READ):
            pass
    return FileFacts(reader.size, duration(frames, rate), reader.hash.hexdigest(), meter.result(), rate, channels)
