"""Text-to-speech backends. Each renders one text to a WAV in Asterisk's format.

espeak-ng is the default: a Debian package that works offline and speaks Polish and
English. gTTS is optional, for sites that are online; it needs Google's servers, so it
is guarded: a time-out, a check that the answer is real audio, and a clear error offline.
"""

from __future__ import annotations

import shutil
import subprocess
import tempfile
from pathlib import Path
from typing import Protocol

from ivr.errors import PromptError
from ivr.prompts import audio
from ivr.settings.prompts import PromptSettings

_ESPEAK_TIMEOUT = 60


class Backend(Protocol):
    name: str

    def render(self, text: str, language: str, dest: Path) -> None:
        """Speak `text` into `dest` (8 kHz mono 16-bit WAV); PromptError when it cannot."""

    def identity(self, language: str) -> str:
        """What, besides the text, decides the sound: backend, voice, speed."""


class EspeakBackend:
    name = "espeak-ng"

    def __init__(self, settings: PromptSettings):
        self.settings = settings

    def identity(self, language: str) -> str:
        return f"espeak-ng|{self.settings.voice(language)}|{self.settings.speed}"

    def render(self, text: str, language: str, dest: Path) -> None:
        program = shutil.which("espeak-ng")
        if program is None:
            raise PromptError("espeak-ng is not installed; install it with: apt-get install espeak-ng")
        voice = self.settings.voice(language)
        with tempfile.TemporaryDirectory(prefix="ivr-tts-") as folder:
            raw = Path(folder) / "speech.wav"
            # the text goes on stdin: never on a command line, where a leading '-' is an option
            done = subprocess.run(
                [program, "-v", voice, "-s", str(self.settings.speed), "-w", str(raw), "--stdin"],
                input=text.encode("utf-8"), capture_output=True, timeout=_ESPEAK_TIMEOUT,
            )
            if done.returncode != 0 or not raw.exists():
                message = done.stderr.decode(errors="replace").strip()
                if "voice does not exist" in message:
                    raise PromptError(f'espeak-ng has no voice "{voice}" for language {language}; '
                                      f"list voices with `espeak-ng --voices={language}` and set prompts: voices: in config.yaml")
                raise PromptError(f"espeak-ng failed: {message or 'no audio written'}")
            if audio.inspect(raw).is_silent:
                raise PromptError(f"espeak-ng spoke nothing for this text in voice {voice}: {text[:40]!r}")
            out = Path(folder) / "out.wav"
            audio.convert(raw, out)
            audio.install(out, dest)


class GttsBackend:
    """Google's text-to-speech through the gTTS package (online only)."""

    name = "gtts"

    def __init__(self, settings: PromptSettings):
        self.settings = settings

    def identity(self, language: str) -> str:
        return f"gtts|{self.settings.voice(language)}"

    def render(self, text: str, language: str, dest: Path) -> None:
        try:
            from gtts import gTTS
            from gtts.tts import gTTSError
        except ImportError:
            raise PromptError("the gtts backend needs the gTTS package: pip install gTTS") from None
        try:
            speech = gTTS(text, lang=self.settings.voice(language), timeout=self.settings.timeout)
            with tempfile.TemporaryDirectory(prefix="ivr-tts-") as folder:
                mp3 = Path(folder) / "speech.mp3"
                with open(mp3, "wb") as out:
                    speech.write_to_fp(out)
                if not _is_mp3(mp3.read_bytes()):
                    raise PromptError("gTTS answered with something that is not MP3 audio")
                out = Path(folder) / "out.wav"
                audio.convert(mp3, out)
                if audio.inspect(out).is_silent:
                    raise PromptError("gTTS answered with silence")
                audio.install(out, dest)
        except gTTSError as exc:
            raise PromptError(f"gTTS failed (it needs Google's servers; is this machine online?): {_first_line(exc)}") from None
        except ValueError as exc:  # an unknown language
            raise PromptError(f"gTTS: {exc}") from None


def _is_mp3(data: bytes) -> bool:
    if len(data) < 256:
        return False
    if data[:3] == b"ID3":
        return True
    return data[0] == 0xFF and (data[1] & 0xE0) == 0xE0  # an MPEG frame sync


def _first_line(exc: Exception) -> str:
    return str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__


def make_backend(settings: PromptSettings) -> Backend:
    return GttsBackend(settings) if settings.tts == "gtts" else EspeakBackend(settings)
