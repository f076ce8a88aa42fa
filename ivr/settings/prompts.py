"""The `prompts` section of config.yaml: where audio goes, which speech backend and voices."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Mapping

from ivr.yamldoc.diagnostics import Findings, did_you_mean
from ivr.yamldoc.loader import describe
from ivr.settings.sections import duration_seconds

BACKENDS = ("espeak-ng", "gtts")
FIELDS = ("dir", "tts", "voices", "speed", "timeout")


@dataclass(frozen=True)
class PromptSettings:
    dir: str = "prompts"
    tts: str = "espeak-ng"
    voices: Mapping[str, str] = field(default_factory=dict)  # language -> backend voice
    speed: int = 150  # espeak-ng words per minute; slower than its 175 suits phone lines
    timeout: float = 15.0  # seconds an online backend may take

    def voice(self, language: str) -> str:
        return self.voices.get(language, language)


def parse_prompt_settings(value: Any, findings: Findings) -> PromptSettings:
    path = ("prompts",)
    if value is None:
        return PromptSettings()
    if not isinstance(value, dict):
        findings.error(path, f"prompts must be a mapping such as {{dir: prompts, tts: espeak-ng}}, not {describe(value)}")
        return PromptSettings()
    for key in value:
        if key not in FIELDS:
            findings.error(path + (key,), f'"{key}" is no field of prompts{did_you_mean(key, FIELDS)}', at_key=True)
    settings: dict[str, Any] = {}
    folder = value.get("dir", "prompts")
    if not isinstance(folder, str) or not folder.strip():
        findings.error(path + ("dir",), f"prompts dir must be a folder name, not {describe(folder)}")
    else:
        settings["dir"] = folder
    tts = value.get("tts", "espeak-ng")
    if tts not in BACKENDS:
        findings.error(path + ("tts",), f"unknown speech backend {describe(tts)}{did_you_mean(tts, BACKENDS)}; use one of {', '.join(BACKENDS)}")
    else:
        settings["tts"] = tts
    voices = value.get("voices", {})
    if not isinstance(voices, dict) or not all(isinstance(v, str) and v for v in voices.values()):
        findings.error(path + ("voices",), f"voices must map languages to voice names, such as {{pl: pl, en: en-gb}}, not {describe(voices)}")
    else:
        settings["voices"] = {str(k): v for k, v in voices.items()}
    speed = value.get("speed", 150)
    if isinstance(speed, bool) or not isinstance(speed, int) or not 80 <= speed <= 450:
        findings.error(path + ("speed",), f"speed must be words per minute from 80 to 450, not {describe(speed)}")
    else:
        settings["speed"] = speed
    if "timeout" in value:
        seconds = duration_seconds(value["timeout"], path + ("timeout",), "timeout", "15s", findings)
        if seconds is not None:
            settings["timeout"] = seconds
    return PromptSettings(**settings)
