"""The sound of a simulated call, as the caller heard it: prompts, key tones, silence.

`ivr simulate --record call.wav` writes it; QA review uses such recordings as demo data.
Every second of the call's virtual clock is one second of audio, so an event at `t`
seconds is at `t` seconds in the recording.
"""

from __future__ import annotations

from pathlib import Path

from ivr.flow.model import Prompt
from ivr.prompts import audio
from ivr.prompts.audio import RATE, WIDTH, silence, tone
from ivr.prompts.library import PromptLibrary

TONE_SECONDS = 0.12  # a key press as the line hears it


def duration(pcm: bytes) -> float:
    return len(pcm) / (RATE * WIDTH)


def key_tones(keys: str, seconds_per_key: float) -> bytes:
    """Each key: a pause while the caller reaches for it, then its DTMF tone."""
    gap = silence(max(0.0, seconds_per_key - TONE_SECONDS))
    return b"".join(gap + tone(key, TONE_SECONDS) for key in keys)


class CallAudio:
    def __init__(self, library: PromptLibrary):
        self.library = library
        self.chunks: list[bytes] = []

    def prompt(self, prompt: Prompt, language: str) -> bytes:
        return self.library.pcm(prompt, language)

    def add(self, pcm: bytes) -> None:
        self.chunks.append(pcm)

    @property
    def duration(self) -> float:
        return sum(len(c) for c in self.chunks) / (RATE * WIDTH)

    def write(self, path: Path) -> None:
        audio.write_wav(path, b"".join(self.chunks))


__all__ = ["CallAudio", "duration", "key_tones", "silence"]
