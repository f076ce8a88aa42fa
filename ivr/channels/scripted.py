"""A channel driven by a script of keys: journey tests, `ivr simulate --keys`, benchmarks.

Keys are tokens, one per time the flow waits for the caller: "1", "123456#" for an
input, "-" for no key (a time-out), "hangup" for a caller who hangs up. When the script
runs out the caller hangs up. Queue results come from their own script (`queue`), so a
test can say whether the agent answers, the wait times out or the caller gives up. The
queues' live state comes from `queues` (queue name -> QueueLoad), so a test can say
"sales has 6 waiting"; a queue not named there has no known state, as on a line without
the manager connection (no peak unless told).
Time is virtual: prompts, waits and talk move the call's clock, not the machine's.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Iterable, Mapping, Optional, Sequence, Union

from ivr.channels.call_audio import CallAudio, duration, key_tones, silence
from ivr.clock import VirtualClock
from ivr.engine.channel import CallbackRequest, QueueLoad, TransferRequest, TransferResult, VoicemailResult
from ivr.errors import CallerHangup
from ivr.events import TransferStatus
from ivr.flow.model import Prompt

NO_KEY = "-"
HANG_UP = "hangup"
KEY_SECONDS = 1.0  # a caller's time to press a key
CHARS_PER_SECOND = 14.0  # speaking rate used to time prompts


@dataclass(frozen=True)
class QueueScript:
    """How one transfer ends in a simulation."""

    status: TransferStatus = TransferStatus.ANSWERED  # or its value, such as "timeout"
    wait: Optional[float] = None  # default: 20 s answered, max_wait timed out, 45 s abandoned
    talk: float = 240.0
    agent: str = "PJSIP/101"

    def __post_init__(self) -> None:
        object.__setattr__(self, "status", TransferStatus(self.status))


def prompt_seconds(text: str) -> float:
    return max(1.0, len(text) / CHARS_PER_SECOND)


def parse_keys(keys: Union[str, Iterable[str], None]) -> list[str]:
    if keys is None:
        return []
    if isinstance(keys, str):
        return keys.split()
    return [str(k) for k in keys]


@dataclass
class ScriptedChannel:
    keys: Union[str, Sequence[str], None] = None
    clock: VirtualClock = field(default_factory=VirtualClock)
    queue: Sequence[Union[str, QueueScript]] = ()
    barge_in: bool = False  # deliver each key during the prompt instead of after it
    voicemail_seconds: float = 20.0
    audio: Optional[CallAudio] = None  # when set, what the caller hears is recorded into it
    queues: Mapping[str, QueueLoad] = field(default_factory=dict)  # live state by queue name

    def __post_init__(self) -> None:
        self.tokens = parse_keys(self.keys)
        self.queue_results = [q if isinstance(q, QueueScript) else QueueScript(q) for q in self.queue]
        self.played: list[tuple[str, str]] = []
        self.transfers: list[TransferRequest] = []
        self.callbacks: list[CallbackRequest] = []
        self.voicemails: list[str] = []
        self.language: Optional[str] = None
        self.recording_paused = False
        self.hung_up = False
        self._pending = ""  # the rest of a token whose first key interrupted a prompt

    # --- where keys come from (the console simulator overrides this) ----------------------
    def next_token(self) -> str:
        if not self.tokens:
            raise CallerHangup("the script has no more keys")
        return self.tokens.pop(0)

    @property
    def unused_keys(self) -> list[str]:
        return list(self.tokens)

    # --- Channel ------------------------------------------------------------------------
    async def answer(self) -> None:
        pass

    async def set_language(self, language: str) -> None:
        self.language = language

    def _spend(self, seconds: float, sound: Optional[bytes] = None, from_caller: bool = False) -> None:
        """Move the call's clock on; a recording gets the sound (or silence) of that time.

        A paused recording mutes the caller's side only, as a live one does: QA still
        hears the prompt, never the keys typed.
        """
        if self.audio is not None:
            muted = from_caller and self.recording_paused
            self.audio.add(sound if sound is not None and not muted else silence(seconds))
        self.clock.advance(seconds)

    async def play(self, prompt: Prompt, language: str, escape: str = "") -> Optional[str]:
        self.played.append((prompt.name, language))
        sound = self.audio.prompt(prompt, language) if self.audio is not None else None
        seconds = duration(sound) if sound is not None else prompt_seconds(prompt.text(language))
        if self.barge_in and escape and self.tokens and self.tokens[0][:1] in escape:
            token = self.next_token()
            self._pending = token[1:]
            # the caller presses during the first half; the prompt stops at the key
            half = sound[: len(sound) // 4 * 2] if sound is not None else None
            self._spend(duration(half) if half is not None else seconds / 2, half)
            return token[0]
        self._spend(seconds, sound)
        return None

    async def read_digits(self, max_digits: int, timeout: float, terminator: Optional[str] = None, first: str = "") -> str:
        if first:
            token, self._pending = first + self._pending, ""
        else:
            token = self.next_token()
        if token == HANG_UP:
            raise CallerHangup("the caller hung up")
        if token == NO_KEY:
            self._spend(timeout)
            return ""
        digits = []
        pressed = ""
        for key in token:
            pressed += key
            if terminator and key == terminator:
                break
            digits.append(key)
            if len(digits) == max_digits:
                break
        self._spend(KEY_SECONDS * len(pressed), key_tones(pressed, KEY_SECONDS) if self.audio is not None else None,
                    from_caller=True)
        return "".join(digits)

    async def transfer(self, request: TransferRequest) -> TransferResult:
        self.transfers.append(request)
        script = self.queue_results.pop(0) if self.queue_results else QueueScript()
        if script.status == TransferStatus.TIMED_OUT:
            wait = script.wait if script.wait is not None else (request.max_wait or 300.0)
            self._spend(wait)
            return TransferResult(TransferStatus.TIMED_OUT, wait, ended="TIMEOUT")
        if script.status == TransferStatus.ABANDONED:
            wait = script.wait if script.wait is not None else 45.0
            self._spend(wait)
            return TransferResult(TransferStatus.ABANDONED, wait)
        wait = script.wait if script.wait is not None else 20.0
        self._spend(wait + script.talk)
        return TransferResult(TransferStatus.ANSWERED, wait, script.agent, script.talk)

    def queue_load(self, queue: str) -> Optional[QueueLoad]:
        return self.queues.get(queue)

    async def request_callback(self, request: CallbackRequest) -> None:
        self.callbacks.append(request)

    async def record_voicemail(self, mailbox: str, max_length: float) -> VoicemailResult:
        self.voicemails.append(mailbox)
        seconds = min(self.voicemail_seconds, max_length)
        self._spend(seconds)
        return VoicemailResult(seconds)

    async def pause_recording(self) -> None:
        self.recording_paused = True

    async def resume_recording(self) -> None:
        self.recording_paused = False

    async def hangup(self) -> None:
        self.hung_up = True
