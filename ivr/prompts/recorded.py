"""Human recordings: an admin's WAV, MP3 or OGG wins over text-to-speech.

A prompt names its file (`file: prompts/recorded/closed.wav`, for every language or per
language), or a file is simply dropped in as prompts/recorded/<language>/<prompt>.<ext>.
"""

from __future__ import annotations

import tempfile
from pathlib import Path
from typing import Optional

from ivr.errors import PromptError
from ivr.flow.model import Prompt
from ivr.prompts import audio

EXTENSIONS = (".wav", ".mp3", ".ogg")


def named_file(prompt: Prompt, language: str, root: Path) -> Optional[Path]:
    """The file a prompt names for a language (relative to the installation), if any."""
    name = prompt.file(language)
    return (root / name) if name else None


def dropped_file(prompt: Prompt, language: str, recorded_dir: Path) -> Optional[Path]:
    """A file dropped under recorded/<language>/ with the prompt's name, if any."""
    for ext in EXTENSIONS:
        candidate = recorded_dir / language / f"{prompt.name}{ext}"
        if candidate.is_file():
            return candidate
    return None


def recording_problem(path: Path) -> Optional[str]:
    """Why a recording cannot be played: missing, unreadable or silent; None when fine."""
    if not path.is_file():
        return "is missing"
    if path.suffix.lower() not in EXTENSIONS:
        return f"is a {path.suffix or 'extensionless'} file; use WAV, MP3 or OGG"
    with tempfile.TemporaryDirectory(prefix="ivr-rec-") as folder:
        out = Path(folder) / "check.wav"
        try:
            audio.convert(path, out)
            info = audio.inspect(out)
        except PromptError as exc:
            return f"is unreadable ({exc})"
        except OSError as exc:
            return f"is unreadable ({exc.strerror})"
    if info.is_silent:
        return "is silent"
    return None
