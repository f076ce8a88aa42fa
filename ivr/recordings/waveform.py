"""Waveform peaks of a WAV file, for the web player to draw without loading the audio.

The file is cut into a fixed number of buckets of frames (`MAX_BUCKETS`, fewer for a
short file so a bucket never holds less than 10 ms), and each bucket gives its peak
absolute amplitude as a share of full scale, rounded to 3 digits: a short JSON list.

A five-minute call is 2.4 million samples: they are read in chunks and reduced with
`max`/`min` over a memoryview of an `array('h')`, which loop in C (numpy is no
dependency of the project).
"""

from __future__ import annotations

import array
import sys
import wave
from pathlib import Path
from typing import Union

MAX_BUCKETS = 800
MIN_BUCKET_SECONDS = 0.01
CHUNK_FRAMES = 1 << 16  # 128 KB of 16-bit mono audio per read
FULL_SCALE = 32768


def bucket_count(frames: int, rate: int, max_buckets: int = MAX_BUCKETS) -> int:
    """How many buckets a file of `frames` frames at `rate` Hz is drawn with."""
    if frames <= 0:
        return 0
    min_frames = max(1, int(rate * MIN_BUCKET_SECONDS))
    return max(1, min(max_buckets, frames // min_frames))


class PeakMeter:
    """Takes the 16-bit PCM of a file chunk by chunk; `result()` is its peaks.

    Bucket i holds frames [i*frames//buckets, (i+1)*frames//buckets), so the buckets
    cover the file evenly whatever the chunk size. Frames past `frames` are ignored.
    """

    def __init__(self, frames: int, buckets: int, channels: int = 1):
        self.frames = max(0, frames)
        self.buckets = min(buckets, self.frames) if self.frames else 0
        self.channels = max(1, channels)
        self._values: list[int] = []
        self._pos = 0  # frames taken so far
        self._peak = 0
        self._end = self._edge(1)  # the first frame of the next bucket

    def _edge(self, bucket: int) -> int:
        return bucket * self.frames // self.buckets if self.buckets else 0

    def feed(self, pcm: bytes) -> None:
        """Take the next chunk of little-endian 16-bit samples (whole frames)."""
        samples = array.array("h")
        samples.frombytes(pcm[: len(pcm) - len(pcm) % 2])
        if sys.byteorder == "big":
            samples.byteswap()
        view = memoryview(samples)
        ch = self.channels
        count = len(samples) // ch
        i = 0
        while i < count and len(self._values) < self.buckets:
            take = min(count - i, self._end - self._pos)
            piece = view[i * ch:(i + take) * ch]
            peak = max(max(piece), -min(piece))
            if peak > self._peak:
                self._peak = peak
            i += take
            self._pos += take
            if self._pos >= self._end:
                self._values.append(self._peak)
                self._peak = 0
                self._end = self._edge(len(self._values) + 1)

    def result(self) -> list[float]:
        """The peaks, 0..1; buckets the audio never reached (a short file) are 0."""
        values = self._values + ([self._peak] if self._pos > self._edge(len(self._values)) else [])
        values += [0] * (self.buckets - len(values))
        return [round(min(v, FULL_SCALE) / FULL_SCALE, 3) for v in values[: self.buckets]]


def peaks(path: Union[str, Path], max_buckets: int = MAX_BUCKETS) -> list[float]:
    """The waveform peaks of a 16-bit PCM WAV file (wave.Error or OSError if it is none)."""
    with wave.open(str(path), "rb") as wav:
        if wav.getsampwidth() != 2:
            raise wave.Error(f"16-bit PCM expected, not {8 * wav.getsampwidth()}-bit")
        frames = wav.getnframes()
        meter = PeakMeter(frames, bucket_count(frames, wav.getframerate(), max_buckets), wav.getnchannels())
        while True:
            chunk = wav.readframes(CHUNK_FRAMES)
            if not chunk:
                break
            meter.feed(chunk)
    return meter.result()


def duration(frames: int, rate: int) -> float:
    """Seconds, to the millisecond."""
    return round(frames / rate, 3) if rate else 0.0

