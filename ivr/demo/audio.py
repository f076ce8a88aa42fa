"""The sound of demo calls: an agent's voice for the talk time, queue and voicemail tones,
and the scripted channel that puts them into each call's recording.

A demo recording is what `ivr simulate --record` writes (prompts, key tones, silence for
the caller's own time, keys of a sensitive input muted) with two additions, so a QA
reviewer has something to listen to: ringback while the caller queues, and an agent who
speaks (greeting, questions, solution, "anything else?", goodbye) while the caller talks
to one. The agent's lines are spoken once per language by espeak-ng, kept in the prompts
cache on disk and in memory, and cut to each call's talk time.
"""

from __future__ import annotations

import array
import hashlib
import math
import random
import sys
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Iterable, Optional

from ivr.channels.scripted import QueueScript, ScriptedChannel
from ivr.settings.config import Config
from ivr.engine.channel import TransferRequest, TransferResult, VoicemailResult
from ivr.events import TransferStatus
from ivr.prompts import audio
from ivr.prompts.audio import RATE, silence
from ivr.prompts.backends import EspeakBackend
from ivr.prompts.build import CACHE, prompts_dir
from ivr.settings.prompts import PromptSettings

# A QA scorecard walks through these steps, so the agent says each of them once per round.
OPENING, BODY, ANYTHING_ELSE, CLOSING = "greeting", ("diagnosis", "cause", "solution", "next_steps", "logged"), \
    "anything_else", "closing"
AGENT_LINES: dict[str, dict[str, str]] = {
    "pl": {
        "greeting": "Dzień dobry, dział obsługi klienta, w czym mogę pomóc?",
        "diagnosis": "Rozumiem. Proszę podać numer zamówienia i powiedzieć, od kiedy występuje problem.",
        "cause": "Dziękuję, chwileczkę. Widzę przyczynę: paczka została zatrzymana w naszym magazynie.",
        "solution": "Wyślę ją ponownie jeszcze dziś, bez dodatkowych kosztów.",
        "next_steps": "Numer do śledzenia przesyłki przyjdzie mailem w ciągu godziny.",
        "logged": "Wszystko zapisałam w zgłoszeniu, więc koledzy też to zobaczą.",
        "anything_else": "Czy mogę jeszcze w czymś pomóc?",
        "closing": "Dziękuję za telefon i życzę miłego dnia. Do widzenia.",
    },
    "en": {
        "greeting": "Good morning, customer service. How can I help you today?",
        "diagnosis": "I see. Could you give me your order number, and tell me when the problem started?",
        "cause": "Thank you, one moment please. I can see the cause: the parcel was held at our warehouse.",
        "solution": "I will send it again today, free of charge.",
        "next_steps": "You will get an email with the tracking number within the hour.",
        "logged": "I have noted all of this in your case, so my colleagues will see it too.",
        "anything_else": "Is there anything else I can help you with?",
        "closing": "Thank you for calling, and have a nice day. Goodbye.",
    },
}
AGENT_VARIANT = "+f3"  # an espeak-ng voice variant: the agent must not sound like the menu
RINGBACK_HZ, RINGBACK_ON, RINGBACK_OFF = 425.0, 1.0, 4.0  # the European ringing tone
BEEP_HZ, BEEP_SECONDS = 1000.0, 0.5  # "leave a message after the tone"


def sine(hz: float, seconds: float, level: float) -> bytes:
    """A sine tone, 16-bit 8 kHz mono."""
    count = int(round(seconds * RATE))
    samples = array.array("h", (int(level * 32767 * math.sin(2 * math.pi * hz * n / RATE)) for n in range(count)))
    if sys.byteorder == "big":
        samples.byteswap()
    return samples.tobytes()


def fit(pcm: bytes, seconds: float) -> bytes:
    """`pcm` repeated or cut to exactly `seconds` (as `silence(seconds)` counts samples)."""
    size = len(silence(seconds))
    if not pcm or size == 0:
        return bytes(size)
    return (pcm * (size // len(pcm) + 1))[:size]


_RINGBACK: Optional[bytes] = None


def ringback(seconds: float) -> bytes:
    """What a queued caller hears: ringing, 1 s on, 4 s off, quietly."""
    global _RINGBACK
    if _RINGBACK is None:
        _RINGBACK = sine(RINGBACK_HZ, RINGBACK_ON, 0.12) + silence(RINGBACK_OFF)
    return fit(_RINGBACK, seconds)


class AgentSpeech:
    """The agent's lines per language as PCM, spoken once (cached under prompts/.cache)."""

    def __init__(self, config: Config, languages: Iterable[str]):
        settings = config.prompts
        self.languages = list(languages)
        # gTTS voices are language codes, which espeak-ng knows too
        voices = {lang: (settings.voice(lang) if settings.tts == "espeak-ng" else lang) + AGENT_VARIANT
                  for lang in self.languages}
        self.backend = EspeakBackend(PromptSettings(dir=settings.dir, voices=voices, speed=settings.speed + 10))
        self.cache = prompts_dir(config) / CACHE
        self.lines: dict[str, dict[str, bytes]] = {}

    def prepare(self) -> None:
        """Speak every line of every language (in parallel: each is an espeak-ng and a sox run)."""
        # a language the demo has no script for gets the English words in its own voice
        todo = [(lang, part, text) for lang in self.languages
                for part, text in AGENT_LINES.get(lang, AGENT_LINES["en"]).items()]
        with ThreadPoolExecutor(max_workers=4) as pool:
            spoken = list(pool.map(lambda job: self._speak(job[0], job[2]), todo))
        for (lang, part, _text), pcm in zip(todo, spoken):
            self.lines.setdefault(lang, {})[part] = pcm

    def _speak(self, language: str, text: str) -> bytes:
        identity = f"demo-agent|{self.backend.identity(language)}|{text}"
        path = self.cache / f"demo-{hashlib.sha256(identity.encode('utf-8')).hexdigest()[:20]}.wav"
        if not path.exists():
            self.backend.render(text, language, path)
        return audio.read_pcm(path)

    def conversation(self, language: Optional[str], seconds: float, rng: random.Random) -> bytes:
        """`seconds` of the agent: greeting, the body lines in turn, then "anything else?" and
        goodbye at the very end; the gaps between lines are the caller speaking."""
        lines = self.lines.get(language or "") or next(iter(self.lines.values()))

        def pause(low: float, high: float) -> bytes:
            return silence(round(rng.uniform(low, high), 1))

        ending = lines[ANYTHING_ELSE] + pause(1.5, 3.0) + lines[CLOSING] + silence(0.5)
        total = len(silence(seconds))
        room = max(0, total - len(ending))
        head = [lines[OPENING], pause(2.0, 5.0)]
        start, size = rng.randrange(len(BODY)), sum(len(c) for c in head)
        turn = 0
        while size < room:
            line = lines[BODY[(start + turn) % len(BODY)]] + pause(2.0, 8.0)
            head.append(line)
            size += len(line)
            turn += 1
        pcm = b"".join(head)[:room] + ending
        return pcm[-total:] if len(pcm) > total else pcm + bytes(total - len(pcm))


@dataclass
class DemoChannel(ScriptedChannel):
    """The scripted channel with the sounds of queues, agents and voicemail in its recording.

    Queue scripts say how each transfer ends and how long the caller waited and talked;
    the agent is one of the department's members from config.yaml, picked by `rng`.
    """

    speech: Optional[AgentSpeech] = None
    rng: random.Random = field(default_factory=random.Random)
    queue_timeout: float = 120.0  # a queue the flow gives no max_wait lets the caller go after this

    def _wait(self, seconds: float) -> None:
        self._spend(seconds, ringback(seconds) if self.audio is not None else None)

    async def transfer(self, request: TransferRequest) -> TransferResult:
        self.transfers.append(request)
        script = self.queue_results.pop(0) if self.queue_results else QueueScript()
        limit = request.max_wait or self.queue_timeout
        if script.status == TransferStatus.TIMED_OUT:
            self._wait(limit)
            return TransferResult(TransferStatus.TIMED_OUT, limit)
        # answered or given up before the queue would have timed out
        wait = min(script.wait if script.wait is not None else 20.0, limit - 1.0)
        self._wait(wait)
        if script.status == TransferStatus.ABANDONED:
            return TransferResult(TransferStatus.ABANDONED, wait)
        members = request.department.members
        agent = self.rng.choice(members) if members else script.agent
        talk = script.talk
        voice = None
        if self.audio is not None and self.speech is not None:
            voice = self.speech.conversation(self.language, talk, self.rng)
        self._spend(talk, voice)
        return TransferResult(TransferStatus.ANSWERED, wait, agent, talk)

    async def record_voicemail(self, mailbox: str, max_length: float) -> VoicemailResult:
        self.voicemails.append(mailbox)
        seconds = min(self.voicemail_seconds, max_length)
        beep = min(BEEP_SECONDS, seconds)
        self._spend(beep, sine(BEEP_HZ, beep, 0.3) if self.audio is not None else None)
        self._spend(seconds - beep)  # the caller speaks: their own voice is not what they hear
        return VoicemailResult(seconds)
