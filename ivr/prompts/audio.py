"""Audio files in Asterisk's own format (8 kHz, mono, 16-bit WAV): facts, conversion, tones.

sox does the conversions; reading facts and making tones and silence is plain Python, so
tests and the call recorder need no extra library.
"""

from __future__ import annotations

import array
import errno
import math
import os
import shutil
import subprocess
import sys
import tempfile
import wave
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator, Union

from ivr.errors import PromptError
from ivr.filemodes import FILE_MODE, private_dir

RATE = 8000
CHANNELS = 1
WIDTH = 2  # bytes per sample: 16-bit
SILENCE_RMS = 0.002  # below this (of full scale) a file holds no speech
_SOX_TIMEOUT = 120

# DTMF: (low, high) frequencies in Hz of each key (ITU-T Q.23)
_ROWS = (697, 770, 852, 941)
_COLS = (1209, 1336, 1477, 1633)
_KEYPAD = ("123A", "456B", "789C", "*0#D")
DTMF = {key: (_ROWS[r], _COLS[c]) for r, row in enumerate(_KEYPAD) for c, key in enumerate(row)}


@dataclass(frozen=True)
class AudioInfo:
    rate: int
    channels: int
    width: int
    frames: int
    rms: float  # 0..1 of full scale

    @property
    def duration(self) -> float:
        return self.frames / self.rate if self.rate else 0.0

    @property
    def is_asterisk_format(self) -> bool:
        return (self.rate, self.channels, self.width) == (RATE, CHANNELS, WIDTH)

    @property
    def is_silent(self) -> bool:
        return self.rms < SILENCE_RMS


def inspect(path: Union[str, Path]) -> AudioInfo:
    """Facts of a PCM WAV file; PromptError if it is not one."""
    try:
        with wave.open(str(path), "rb") as wav:
            rate, channels, width, frames = wav.getframerate(), wav.getnchannels(), wav.getsampwidth(), wav.getnframes()
            data = wav.readframes(frames)
    except (wave.Error, EOFError, OSError) as exc:
        raise PromptError(f"{path}: not a readable WAV file ({exc})") from None
    return AudioInfo(rate, channels, width, frames, rms(data, width))


def rms(data: bytes, width: int = WIDTH) -> float:
    """Root mean square of 16-bit PCM samples, as a share of full scale."""
    if width != 2 or len(data) < 2:
        return 0.0
    samples = array.array("h")
    samples.frombytes(data[: len(data) - len(data) % 2])
    if sys.byteorder == "big":
        samples.byteswap()
    total = sum(s * s for s in samples)
    return math.sqrt(total / len(samples)) / 32768.0


def sox() -> str:
    path = shutil.which("sox")
    if path is None:
        raise PromptError("sox is not installed; install it with: apt-get install sox libsox-fmt-mp3")
    return path


def convert(source: Path, dest: Path) -> None:
    """Any audio sox reads (WAV, MP3, OGG) to 8 kHz mono 16-bit WAV, written atomically."""
    with atomic_path(dest) as tmp:
        done = subprocess.run(
            [sox(), "-q", str(source), "-r", str(RATE), "-c", str(CHANNELS), "-b", "16", "-e", "signed-integer", str(tmp)],
            capture_output=True, timeout=_SOX_TIMEOUT,
        )
        # sox exits 0 even when it could not write all of its output (a full disk), and the
        # file it leaves is cut short: its FAIL message is believed over its exit status
        if done.returncode != 0 or b" FAIL " in done.stderr:
            if b"No space left on device" in done.stderr:
                raise OSError(errno.ENOSPC, f"no space left to convert {source.name}")
            raise PromptError(f"cannot convert {source.name}: {_sox_reason(done.stderr)}")


def _sox_reason(stderr: bytes) -> str:
    """sox's complaint without its program path and the file's full path."""
    lines = stderr.decode(errors="replace").strip().splitlines()
    if not lines:
        return "sox failed"
    reason = lines[-1]
    if "': " in reason:  # "... can't open input file `/x/y.wav': WAVE: RIFF header not found"
        reason = reason.rsplit("': ", 1)[1]
    elif " FAIL " in reason:
        reason = reason.split(" FAIL ", 1)[1]
    return reason


@contextmanager
def atomic_path(dest: Path) -> Iterator[Path]:
    """A temporary path beside `dest` that replaces it only when the block succeeds.

    Readers (Asterisk playing a prompt) see the old file or the new one, never half of
    one; on any failure the old file stays and the temporary one is removed. The file is
    0640 (mkstemp makes it 0600, which Asterisk running as its own user in the service's
    group could not play) in folders made 0750: a prompt is no secret, but a recording
    written this way (`simulate --record`, demo calls) may hold what a caller typed.
    """
    private_dir(dest.parent)
    fd, name = tempfile.mkstemp(prefix=f".{dest.stem}.", suffix=dest.suffix, dir=dest.parent)
    os.close(fd)
    tmp = Path(name)
    try:
        yield tmp
        if tmp.stat().st_size == 0:
            raise PromptError(f"{dest.name}: the rendering came out empty")
        os.chmod(tmp, FILE_MODE)
        os.replace(tmp, dest)
    finally:
        if tmp.exists():
            tmp.unlink()


def install(source: Path, dest: Path) -> None:
    """Copy a finished file into place atomically."""
    with atomic_path(dest) as tmp:
        shutil.copyfile(source, tmp)


def write_wav(dest: Path, pcm: bytes) -> None:
    """16-bit mono 8 kHz PCM bytes to a WAV file, atomically."""
    with atomic_path(dest) as tmp:
        with wave.open(str(tmp), "wb") as wav:
            wav.setnchannels(CHANNELS)
            wav.setsampwidth(WIDTH)
            wav.setframerate(RATE)
            wav.writeframes(pcm)


def read_pcm(path: Path) -> bytes:
    """The samples of a WAV in Asterisk's format."""
    with wave.open(str(path), "rb") as wav:
        if (wav.getframerate(), wav.getnchannels(), wav.getsampwidth()) != (RATE, CHANNELS, WIDTH):
            raise PromptError(f"{path}: not 8 kHz mono 16-bit; run `ivr prompts build`")
        return wav.readframes(wav.getnframes())


def silence(seconds: float) -> bytes:
    return bytes(WIDTH * int(round(seconds * RATE)))


def tone(key: str, seconds: float = 0.1, level: float = 0.3) -> bytes:
    """The DTMF tone of one keypad key."""
    low, high = DTMF[key.upper()]
    count = int(round(seconds * RATE))
    samples = array.array("h", (
        int(level * 16383 * (math.sin(2 * math.pi * low * n / RATE) + math.sin(2 * math.pi * high * n / RATE)))
        for n in range(count)
    ))
    if sys.byteorder == "big":
        samples.byteswap()
    return samples.tobytes()
