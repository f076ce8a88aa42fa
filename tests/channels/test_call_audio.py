"""`ivr simulate --record`: the WAV holds the prompts, the key tones where the keys were
pressed, silence for waits, and nothing of a sensitive input (its tones are muted)."""

from __future__ import annotations

import json
import math
import wave
from pathlib import Path

from click.testing import CliRunner

from ivr.cli import cli
from ivr.prompts.audio import DTMF, RATE

ROOT = Path(__file__).resolve().parents[2]


def _samples(path: Path) -> list[int]:
    import array

    with wave.open(str(path), "rb") as wav:
        assert (wav.getframerate(), wav.getnchannels(), wav.getsampwidth()) == (RATE, 1, 2)
        data = array.array("h")
        data.frombytes(wav.readframes(wav.getnframes()))
    return list(data)


def _power(samples: list[int], freq: float) -> float:
    """Goertzel: the energy of one frequency in a window."""
    coeff = 2 * math.cos(2 * math.pi * freq / RATE)
    s1 = s2 = 0.0
    for x in samples:
        s1, s2 = x + coeff * s1 - s2, s1
    return (s1 * s1 + s2 * s2 - coeff * s1 * s2) / max(1, len(samples))


def _key_at(samples: list[int], end: float) -> str | None:
    """The DTMF key sounding in the 0.12 s before `end`, if one clearly is."""
    window = samples[int((end - 0.11) * RATE): int((end - 0.01) * RATE)]
    if not window or max(abs(x) for x in window) < 1000:
        return None
    scores = {key: min(_power(window, lo), _power(window, hi)) for key, (lo, hi) in DTMF.items()}
    best = max(scores, key=scores.get)
    return best


def _simulate(tmp_path: Path, monkeypatch, keys: str, queue: str = "answered") -> tuple[list[dict], list[int]]:
    monkeypatch.chdir(ROOT)
    monkeypatch.setenv("IVR_CONFIG", str(ROOT / "config.yaml"))
    out = tmp_path / "call.wav"
    result = CliRunner().invoke(cli, ["simulate", "flows/main.yaml", "--keys", keys, "--queue", queue, "--json",
                                      "--caller", "+48221234567", "--at", "2026-11-24T10:00:00+01:00", "--record", str(out)])
    assert result.exit_code == 0, result.output
    events = [json.loads(line) for line in result.stdout.splitlines() if line.startswith("{")]
    return events, _samples(out)


def test_recording_lasts_as_long_as_the_call_and_holds_the_key_tones(tmp_path, monkeypatch):
    events, samples = _simulate(tmp_path, monkeypatch, "2 1")
    assert abs(len(samples) / RATE - events[-1]["duration"]) < 0.01
    keys = [e for e in events if e["type"] == "key"]
    assert [e["key"] for e in keys] == ["2", "1"]
    for event in keys:
        assert _key_at(samples, event["t"]) == event["key"]
    # the welcome prompt is speech, not silence
    welcome = samples[: int(2 * RATE)]
    assert math.sqrt(sum(x * x for x in welcome) / len(welcome)) > 300


def test_a_sensitive_account_number_leaves_no_tones_in_the_recording(tmp_path, monkeypatch):
    events, samples = _simulate(tmp_path, monkeypatch, "1 3 90012345#")
    [entry] = [e for e in events if e["type"] == "input"]
    assert entry["digits"] == "********"
    # nine presses (eight digits and #) of one second each end at the input event
    typed = samples[int((entry["t"] - 9.0) * RATE): int(entry["t"] * RATE)]
    assert len(typed) == 9 * RATE
    # 5 ms at each edge may hold the last sample of the prompt before (times in float
    # seconds round to one sample either way); a key tone lasts 100 ms and is far louder
    edge = RATE // 200
    assert max(abs(x) for x in typed[edge:-edge]) == 0
    assert max(abs(x) for x in typed) < 50
    # the prompt before them is kept for QA, and the menu keys are there
    prompt = samples[int((entry["t"] - 11.0) * RATE): int((entry["t"] - 9.0) * RATE)]
    assert max(abs(x) for x in prompt) > 1000
    assert _key_at(samples, next(e["t"] for e in events if e["type"] == "key" and e["key"] == "3")) == "3"
