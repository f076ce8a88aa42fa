"""Recorded prompts: WAV, MP3 and OGG files, dropped in as prompts/recorded/<language>/
<prompt>.<ext> or named by `file:` in the flow, are converted to 8 kHz mono 16-bit and win
over text-to-speech. `ivr prompts check` (and `ivr validate`) report a named file that is
missing, a file that is no audio and a silent one, each at the prompt's line."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from click.testing import CliRunner

from ivr.cli import cli
from ivr.prompts.audio import inspect
from ivr.prompts.check import check_prompts, recorded_findings
from prompt_helpers import SPEECH_RMS, flow_text, leftovers, line_of, silent_file, soxi, tone_file, wave_facts
from prompt_helpers import install, mp3_support, tools  # noqa: F401 (fixtures)

# long texts: spoken, each lasts several seconds, far from any recording's length
LONG = {
    "pl": "Dzień dobry, dziękujemy za telefon do firmy Przykład. Rozmowa może być nagrywana.",
    "en": "Hello, thank you for calling Example Limited. This call may be recorded for training.",
}


def _assert_recording(path: Path, seconds: float) -> None:
    """A built prompt in Asterisk's format, as long as its recording, not silent."""
    rate, channels, width, duration = wave_facts(path)
    assert (rate, channels, width) == (8000, 1, 2), path
    assert duration == pytest.approx(seconds, abs=0.1), f"{path} lasts {duration:.2f} s, the recording {seconds} s"
    assert inspect(path).rms > SPEECH_RMS


def test_recordings_in_every_format_win_over_speech(install, mp3_support):
    recorded = install.prompts / "recorded"
    tone_file(recorded / "pl" / "welcome.wav", 1.5)  # 44.1 kHz stereo
    tone_file(recorded / "en" / "welcome.mp3", 2.5, freq=550)
    tone_file(install.root / "media" / "closing.ogg", 2.0, freq=660)
    tone_file(install.root / "media" / "menu_pl.wav", 1.0, rate=16000, channels=1)
    text = flow_text({
        "welcome": LONG,
        "closing": {"file": "media/closing.ogg"},  # one file for every language
        "menu": {"pl": {"file": "media/menu_pl.wav", "text": LONG["pl"]}, "en": LONG["en"]},
    })
    sources = [*recorded.rglob("*.*"), *(install.root / "media").iterdir()]
    # the sources need converting: closing.ogg, menu_pl.wav, en/welcome.mp3, pl/welcome.wav
    assert [soxi(p) for p in sorted(sources)] == [(44100, 2), (16000, 1), (44100, 2), (44100, 2)]

    result = install.build(install.flow(text))
    assert result.errors == []
    assert (result.rendered, result.reused) == (5, 1)  # closing: one conversion for pl and en
    _assert_recording(install.out("demo", "welcome", "pl"), 1.5)
    _assert_recording(install.out("demo", "welcome", "en"), 2.5)
    _assert_recording(install.out("demo", "closing", "pl"), 2.0)
    _assert_recording(install.out("demo", "closing", "en"), 2.0)
    _assert_recording(install.out("demo", "menu", "pl"), 1.0)
    spoken = wave_facts(install.out("demo", "menu", "en"))[3]
    assert spoken > 4.0  # the English menu has no recording: it is speech, as long as its text
    assert leftovers(install.prompts) == []


def test_a_dropped_wav_beats_a_dropped_mp3_of_the_same_name(install, mp3_support):
    tone_file(install.prompts / "recorded" / "pl" / "welcome.mp3", 2.5)
    tone_file(install.prompts / "recorded" / "pl" / "welcome.wav", 1.5)
    install.build(install.flow(flow_text({"welcome": LONG})))
    _assert_recording(install.out("demo", "welcome", "pl"), 1.5)


def test_a_new_recording_is_built_again_and_a_removed_one_falls_back_to_speech(install):
    recording = tone_file(install.prompts / "recorded" / "en" / "welcome.wav", 1.5)
    flow = install.flow(flow_text({"welcome": LONG}))
    install.build(flow)
    _assert_recording(install.out("demo", "welcome", "en"), 1.5)

    tone_file(recording, 3.0)
    result = install.build(flow)
    assert (result.rendered, result.up_to_date) == (1, 1)
    _assert_recording(install.out("demo", "welcome", "en"), 3.0)

    recording.unlink()
    result = install.build(flow)
    assert (result.rendered, result.up_to_date) == (1, 1)
    assert wave_facts(install.out("demo", "welcome", "en"))[3] > 4.0


# --- check -------------------------------------------------------------------------------
def _bad_installation(install) -> str:
    """A flow whose recordings are: fine, missing, random bytes, silent (dropped in)."""
    media = install.root / "media"
    tone_file(media / "fine.wav", 1.0)
    media.joinpath("noise.wav").write_bytes(os.urandom(5000))
    silent_file(install.prompts / "recorded" / "pl" / "quiet.wav")
    return flow_text({
        "fine": {"file": "media/fine.wav"},
        "gone": {"file": "media/gone.wav"},
        "noise": {"pl": {"file": "media/noise.wav", "text": "Szum."}, "en": "Noise."},
        "quiet": {"pl": "Cicho.", "en": "Quiet."},
    })


EXPECTED = {  # prompt -> (the file as reported, its problem, its languages)
    "gone": ("media/gone.wav", "is missing", "pl, en"),
    "noise": ("media/noise.wav", "is unreadable", "pl"),
    "quiet": ("prompts/recorded/pl/quiet.wav", "is silent", "pl"),
}


def _assert_findings(findings, text: str) -> None:
    found = {}
    for d in findings:
        name = d.message.split('"')[1]
        found[name] = d
        assert d.location.file == "flows/demo.yaml"
        assert d.location.line == line_of(text, name), str(d)
    assert sorted(found) == sorted(EXPECTED)
    for name, (shown, problem, languages) in EXPECTED.items():
        message = found[name].message
        assert message.startswith(f'the recorded file of prompt "{name}" ({languages}), {shown}, {problem}'), message


def test_check_reports_missing_unreadable_and_silent_files_at_their_lines(install):
    text = _bad_installation(install)
    flow = install.flow(text)
    _assert_findings(recorded_findings([flow], install.config), text)
    found = check_prompts([flow], install.config)
    recorded = [d for d in found if "recorded file" in d.message]
    _assert_findings(recorded, text)
    # and nothing is built yet: every other prompt and language is reported as such
    unbuilt = sorted(d.message for d in found if d not in recorded)
    assert unbuilt == sorted(f'prompt "{p}" ({lang}) is not built; run `ivr prompts build`'
                             for p, lang in [("fine", "pl"), ("fine", "en"), ("noise", "en"), ("quiet", "en")])


def test_a_prompt_recorded_in_one_language_and_spoken_in_the_other_checks_cleanly(install):
    tone_file(install.root / "media" / "hello_pl.wav", 1.0)
    text = flow_text({"hello": {"pl": {"file": "media/hello_pl.wav"}, "en": "Hello."}})
    flow = install.flow(text)
    assert recorded_findings([flow], install.config) == []
    install.build(flow)
    assert check_prompts([flow], install.config) == []


def _cli_installation(install, monkeypatch, text: str) -> None:
    install.root.joinpath("config.yaml").write_text("prompts: {voices: {pl: pl, en: en-gb}}\n", encoding="utf-8")
    install.flow(text)  # writes flows/demo.yaml
    monkeypatch.delenv("IVR_CONFIG", raising=False)
    monkeypatch.chdir(install.root)


def test_the_check_command_fails_on_bad_recordings_and_passes_once_fixed(install, monkeypatch):
    text = _bad_installation(install)
    _cli_installation(install, monkeypatch, text)
    expected = [str(d) for d in recorded_findings([install.flow(text)], install.config)]

    result = CliRunner().invoke(cli, ["prompts", "check"], catch_exceptions=False)
    assert result.exit_code == 1
    lines = result.stdout.splitlines()
    for line in expected:
        assert lines.count(line) == 1, (line, lines)  # each problem once
    assert len(lines) == len(expected) + 4  # and the four prompts not built yet

    # fix the recordings, build: clean
    tone_file(install.root / "media" / "gone.wav", 1.0)
    tone_file(install.root / "media" / "noise.wav", 1.0)
    tone_file(install.prompts / "recorded" / "pl" / "quiet.wav", 1.0)
    built = CliRunner().invoke(cli, ["prompts", "build"], catch_exceptions=False)
    assert built.exit_code == 0, built.output
    result = CliRunner().invoke(cli, ["prompts", "check"], catch_exceptions=False)
    assert (result.exit_code, result.stdout) == (0, ""), result.output


def test_validate_reports_the_same_recording_problems(install, monkeypatch):
    text = _bad_installation(install)
    _cli_installation(install, monkeypatch, text)
    expected = [str(d) for d in recorded_findings([install.flow(text)], install.config)]
    assert len(expected) == 3

    result = CliRunner().invoke(cli, ["validate"], catch_exceptions=False)
    assert result.exit_code == 1, result.output
    lines = result.stdout.splitlines()
    for line in expected:
        assert lines.count(line) == 1, (line, lines)


def test_validate_accepts_a_recording_in_one_language(install, monkeypatch):
    """A recording in one language only, next to speech in the other, is no problem."""
    tone_file(install.root / "media" / "hello_pl.wav", 1.0)
    _cli_installation(install, monkeypatch, flow_text({"hello": {"pl": {"file": "media/hello_pl.wav"}, "en": "Hello."}}))
    result = CliRunner().invoke(cli, ["validate"], catch_exceptions=False)
    assert result.exit_code == 0, result.output
    assert leftovers(install.root) == []


def test_a_reload_converts_only_the_recordings_that_changed(install, monkeypatch):
    # every flow load checks the recorded files (a hot reload, the web app's start): an
    # unchanged file is not converted again, a rewritten one is, whatever its size and time
    from ivr.prompts import audio
    converted: list[str] = []
    real_convert = audio.convert
    monkeypatch.setattr(audio, "convert", lambda src, out, *a, **k: (converted.append(Path(src).name), real_convert(src, out, *a, **k))[1])
    media = install.root / "media"
    tone_file(media / "one.wav", 1.0)
    tone_file(media / "two.wav", 1.0, freq=550)
    flow = install.flow(flow_text({"one": {"pl": {"file": "media/one.wav"}, "en": {"file": "media/one.wav"}},
                                   "two": {"pl": {"file": "media/two.wav"}, "en": {"file": "media/two.wav"}}}))
    assert recorded_findings([flow], install.config) == []
    assert sorted(converted) == ["one.wav", "two.wav"]  # each once, though used in two languages

    assert recorded_findings([flow], install.config) == []
    assert sorted(converted) == ["one.wav", "two.wav"]  # nothing changed: no conversion

    before = (media / "two.wav").stat()
    silent_file(media / "two.wav", 1.0)  # the same length and size, at once: a silent take
    os.utime(media / "two.wav", ns=(before.st_atime_ns, before.st_mtime_ns))
    assert (media / "two.wav").stat().st_size == before.st_size
    [finding] = recorded_findings([flow], install.config)
    assert "media/two.wav, is silent" in finding.message
    assert sorted(converted) == ["one.wav", "two.wav", "two.wav"]

    # a file sox cannot read is tried again at every load: the cause may be the machine's
    # (sox's MP3 support not installed yet), not the file's
    (media / "one.wav").write_bytes(b"RIFF, but no audio")
    for _ in range(2):
        [finding] = [f for f in recorded_findings([flow], install.config) if "one.wav" in f.message]
        assert "media/one.wav, is unreadable" in finding.message
    assert converted.count("one.wav") == 3

    (media / "one.wav").unlink()
    assert [f.message for f in recorded_findings([flow], install.config) if "one.wav" in f.message] == [
        'the recorded file of prompt "one" (pl, en), media/one.wav, is missing']
