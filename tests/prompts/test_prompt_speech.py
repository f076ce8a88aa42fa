"""Text-to-speech with the real espeak-ng: Polish and English prompts come out as 8 kHz
mono 16-bit WAV (the format Asterisk plays as it is), last about as long as their text,
and hold speech, not silence."""

from __future__ import annotations

import pytest

from ivr.prompts.audio import CHANNELS, RATE, WIDTH, inspect
from ivr.prompts.backends import EspeakBackend
from ivr.settings.prompts import PromptSettings
from prompt_helpers import SPEECH_RMS, flow_text, wave_facts
from prompt_helpers import install, tools  # noqa: F401 (fixtures)

SENTENCES = {
    "pl": ["Dzień dobry, dziękujemy za telefon do naszej firmy.",
           "Aby połączyć się z działem sprzedaży, wciśnij jeden.",
           "Wszyscy konsultanci są teraz zajęci, prosimy czekać."],
    "en": ["Hello, and thank you for calling our company today.",
           "To speak to someone in our sales team, press one now.",
           "All of our agents are busy right now, please hold on."],
}


def _speak(tmp_path, text: str, language: str, name: str):
    dest = tmp_path / f"{name}.wav"
    EspeakBackend(PromptSettings()).render(text, language, dest)
    return dest


def _assert_speech(path, low: float = 1.0, high: float = 10.0) -> float:
    """The file is Asterisk's format by both readers, holds sound, and lasts low..high s."""
    info = inspect(path)
    assert (info.rate, info.channels, info.width) == (RATE, CHANNELS, WIDTH) == (8000, 1, 2)
    assert info.is_asterisk_format
    rate, channels, width, seconds = wave_facts(path)
    assert (rate, channels, width) == (8000, 1, 2)
    assert seconds == pytest.approx(info.duration)
    assert low < seconds < high, f"{path.name} lasts {seconds:.2f} s"
    assert info.rms > SPEECH_RMS, f"{path.name} is (nearly) silent: RMS {info.rms:.4f}"
    assert not info.is_silent
    return seconds


@pytest.mark.parametrize("language", ["pl", "en"])
def test_a_sentence_is_speech_in_asterisk_format(tmp_path, language):
    _assert_speech(_speak(tmp_path, SENTENCES[language][0], language, "one"))


@pytest.mark.parametrize("language", ["pl", "en"])
def test_duration_grows_with_the_text(tmp_path, language):
    one = _assert_speech(_speak(tmp_path, SENTENCES[language][0], language, "one"))
    three = _assert_speech(_speak(tmp_path, " ".join(SENTENCES[language]), language, "three"), high=30.0)
    assert 2.0 <= three / one <= 4.0, f"one sentence {one:.2f} s, three {three:.2f} s"


def test_polish_diacritics_are_spoken(tmp_path):
    seconds = _assert_speech(_speak(tmp_path, "Dzień dobry, zażółć gęślą jaźń", "pl", "diacritics"))
    # the words with diacritics are spoken, not dropped: the greeting alone is far shorter
    shorter = _assert_speech(_speak(tmp_path, "Dzień dobry", "pl", "short"), low=0.3)
    assert seconds > shorter * 1.5


def test_a_text_that_looks_like_an_option_is_spoken(tmp_path):
    """The text goes to espeak-ng on stdin, never on its command line."""
    _assert_speech(_speak(tmp_path, "--help -v xx wciśnij jeden", "pl", "dashes"))


def test_build_writes_each_language_to_its_folder(install):
    text = flow_text({
        "welcome": {"pl": SENTENCES["pl"][0], "en": SENTENCES["en"][0]},
        "diacritics": {"pl": "Dzień dobry, zażółć gęślą jaźń", "en": "Good morning."},
    })
    result = install.build(install.flow(text))
    assert result.errors == []
    assert (result.rendered, result.reused, result.up_to_date) == (4, 0, 0)
    assert install.outputs() == sorted(install.out("demo", p, lang) for p in ("welcome", "diacritics") for lang in ("pl", "en"))
    for path in install.outputs():
        _assert_speech(path, low=0.3)
    # the same words in two voices are two different renderings
    assert install.out("demo", "welcome", "pl").read_bytes() != install.out("demo", "welcome", "en").read_bytes()
