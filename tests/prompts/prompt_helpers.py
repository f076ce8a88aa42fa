"""Helpers and fixtures of the prompt tests: the real tools (espeak-ng, sox with MP3) or
a clear failure, a throwaway installation, flow texts with known line numbers, real audio
made with sox, and facts of WAV files read with Python's `wave`.

Nothing is skipped: a machine without espeak-ng or sox fails these tests and says what to
install, because a skipped test proves nothing. The fixtures live here, not in a
conftest.py, so that this folder adds no second module named `conftest` (the tests at
the top level import theirs by that name); each test module imports the ones it uses.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import wave
from pathlib import Path
from typing import Iterable, Mapping, Optional, Union

import pytest

from ivr.settings.config import Config
from ivr.flow.model import Flow
from ivr.flow.project import compile_text
from ivr.prompts.build import BuildResult, build, output_path, plan, prompts_dir
from ivr.settings.prompts import PromptSettings

VOICES = {"pl": "pl", "en": "en-gb"}
SPEECH_RMS = 0.01  # espeak-ng speech is far louder than this (about 0.1 of full scale)

PromptValue = Union[str, Mapping[str, str]]


def flow_text(prompts: Mapping[str, Mapping[str, PromptValue]], flow: str = "demo",
              languages: Iterable[str] = ("pl", "en")) -> str:
    """A flow that plays its first prompt and hangs up; every prompt on lines of its own.

    A prompt's value per language is a text, or a mapping such as {"file": ..., "text": ...};
    the key "file" (instead of a language) names one recording for every language.
    """
    names = list(prompts)
    lines = [f"flow: {flow}", f"languages: [{', '.join(languages)}]", "start: start", "prompts:"]
    for name, values in prompts.items():
        lines.append(f"  {name}:")
        for key, value in values.items():
            lines.append(f"    {key}: {json.dumps(value, ensure_ascii=False)}")
    lines += ["nodes:", "  start:", "    type: play", f"    prompt: {names[0]}", "    next: end",
              "  end:", "    type: hangup"]
    return "\n".join(lines) + "\n"


def line_of(text: str, prompt: str) -> int:
    """The line (from 1) where a prompt is defined in a flow text."""
    for number, line in enumerate(text.splitlines(), 1):
        if line == f"  {prompt}:":
            return number
    raise AssertionError(f"prompt {prompt} not in the flow text")


class Install:
    """An installation in a folder: config (root = the folder), flows/, prompts/."""

    def __init__(self, root: Path, voices: Optional[Mapping[str, str]] = None):
        self.root = root
        self.voices = dict(voices or VOICES)
        self.tts = "espeak-ng"
        self.timeout = 15.0

    @property
    def config(self) -> Config:
        return Config(path=str(self.root / "config.yaml"), root=self.root,
                      prompts=PromptSettings(tts=self.tts, voices=self.voices, timeout=self.timeout))

    @property
    def prompts(self) -> Path:
        return prompts_dir(self.config)

    def flow(self, text: str) -> Flow:
        """Compile a flow text; it is also written to flows/<id>.yaml, the file it names."""
        flow_id = text.split("\n", 1)[0].split(":", 1)[1].strip()
        path = self.root / "flows" / f"{flow_id}.yaml"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text, encoding="utf-8")
        return compile_text(text, f"flows/{flow_id}.yaml", self.config)

    def build(self, *flows: Flow, force: bool = False, workers: Optional[int] = None) -> BuildResult:
        config = self.config
        return build(plan(flows, config), config, force=force, workers=workers)

    def out(self, flow: str, prompt: str, language: str) -> Path:
        return output_path(self.prompts, flow, prompt, language)

    def outputs(self) -> list[Path]:
        return sorted(p for p in self.prompts.rglob("*.wav") if ".cache" not in p.parts)


def sox(*args: Union[str, Path]) -> None:
    """Run sox; fail the test with sox's own complaint when it fails."""
    done = subprocess.run(["sox", *map(str, args)], capture_output=True, text=True)
    assert done.returncode == 0, f"sox {' '.join(map(str, args))}: {done.stderr.strip()}"


def tone_file(path: Path, seconds: float, *, rate: int = 44100, channels: int = 2, freq: int = 440) -> Path:
    """A real recording-like file (format by extension: .wav, .mp3, .ogg): a sine tone."""
    path.parent.mkdir(parents=True, exist_ok=True)
    sox("-n", "-r", rate, "-c", channels, path, "synth", seconds, "sine", freq, "vol", "0.5")
    return path


def silent_file(path: Path, seconds: float = 1.0) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    sox("-n", "-r", 44100, "-c", 2, path, "synth", seconds, "sine", 0)
    return path


def soxi(path: Path) -> tuple[int, int]:
    """(rate, channels) of any audio file sox reads (Python's wave reads plain PCM only)."""
    facts = []
    for option in ("-r", "-c"):
        done = subprocess.run(["soxi", option, str(path)], capture_output=True, text=True)
        assert done.returncode == 0, f"soxi {path}: {done.stderr.strip()}"
        facts.append(int(done.stdout))
    return facts[0], facts[1]


def wave_facts(path: Path) -> tuple[int, int, int, float]:
    """(rate, channels, sample width in bytes, seconds) read with Python's wave module."""
    with wave.open(str(path), "rb") as wav:
        return wav.getframerate(), wav.getnchannels(), wav.getsampwidth(), wav.getnframes() / wav.getframerate()


def leftovers(folder: Path) -> list[Path]:
    """Temporary files (dot-names) left anywhere under a folder, its cache included."""
    return sorted(p for p in folder.rglob(".*") if p.name not in (".manifest.json", ".cache"))


# --- fixtures ------------------------------------------------------------------------------
def _require(program: str, package: str) -> None:
    if shutil.which(program) is None:
        pytest.fail(f"{program} is not installed; the prompt tests need it: apt-get install {package} "
                    f"(or run scripts/bootstrap.sh test)", pytrace=False)


@pytest.fixture(autouse=True)
def tools() -> None:
    """espeak-ng and sox, or a failure that names the Debian packages."""
    _require("espeak-ng", "espeak-ng")
    _require("sox", "sox libsox-fmt-mp3")


@pytest.fixture
def mp3_support() -> None:
    """sox reads and writes MP3 only with the libsox-fmt-mp3 package."""
    formats = subprocess.run(["sox", "-h"], capture_output=True, text=True).stdout
    if " mp3 " not in formats:
        pytest.fail("sox cannot read or write MP3; install it with: apt-get install libsox-fmt-mp3 "
                    "(or run scripts/bootstrap.sh test)", pytrace=False)


@pytest.fixture
def install(tmp_path) -> "Install":
    """An empty installation in tmp_path: voices pl -> pl, en -> en-gb, prompts in prompts/."""
    return Install(tmp_path)
