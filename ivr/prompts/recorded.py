"""Human recordings: an admin's WAV, MP3 or OGG wins over text-to-speech.

A prompt names its file (`file: prompts/recorded/closed.wav`, for every language or per
language), or a file is simply dropped in as prompts/recorded/<language>/<prompt>.<ext>.
"""

from __future__ import annotations

import hashlib
import os
import tempfile
from pathlib import Path
from typing import Optional

from ivr.errors import PromptError
from ivr.flow.model import Prompt
from ivr.prompts import audio

EXTENSIONS = (".wav", ".mp3", ".ogg")
SILENT = "is silent"


def named_file(prompt: Prompt, language: str, root: Path) -> Optional[Path]:
    """The file a prompt names for a language (relative to the installation), if any."""
    name = prompt.file(language)
    return (root / name) if name else None


def dropped_files(recorded_dir: Path) -> dict[tuple[str, str], Path]:
    """Files dropped as recorded/<language>/<prompt>.<ext>, by (language, prompt).

    Read once per build: one folder listing instead of a look-up per prompt.
    """
    found: dict[tuple[str, str], Path] = {}
    try:
        languages = [d for d in os.scandir(recorded_dir) if d.is_dir()]
    except OSError:
        return found
    for language in sorted(languages, key=lambda d: d.name):
        for entry in sorted(os.scandir(language.path), key=lambda e: e.name):
            stem, ext = os.path.splitext(entry.name)
            if ext.lower() in EXTENSIONS and entry.is_file():
                # by EXTENSIONS order: a WAV beats an MP3 of the same name
                key = (language.name, stem)
                if key not in found or EXTENSIONS.index(ext.lower()) < EXTENSIONS.index(found[key].suffix.lower()):
                    found[key] = Path(entry.path)
    return found


# What a file's probe found, by its path and a digest of its bytes: every flow load checks
# the recorded files (a hot reload of `ivr serve`, the web app's start), and converting
# each with sox again would make a reload of a site with hundreds of them take seconds.
# Reading and hashing a file costs a millisecond; its size and time would be cheaper but
# miss a same-size rewrite within the file system's clock tick.
_PROBED: dict[str, tuple[bytes, Optional[str]]] = {}


def recording_problem(path: Path) -> Optional[str]:
    """Why a recording cannot be played: missing, unreadable or silent; None when fine."""
    if not path.is_file():
        return "is missing"
    if path.suffix.lower() not in EXTENSIONS:
        return f"is a {path.suffix or 'extensionless'} file; use WAV, MP3 or OGG"
    try:
        with path.open("rb") as f:
            stamp = hashlib.file_digest(f, "blake2b").digest()
    except OSError as exc:
        return f"is unreadable ({exc.strerror})"
    key = str(path.resolve())
    known = _PROBED.get(key)
    if known is not None and known[0] == stamp:
        return known[1]
    problem = _probe(path)
    # only what the bytes decide is kept: a file that could not be converted is tried again,
    # since the cause may be the machine's (sox or its MP3 support missing, a full disk)
    if problem is None or problem == SILENT:
        _PROBED[key] = (stamp, problem)
    return problem


def _probe(path: Path) -> Optional[str]:
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
        return SILENT
    return None
