"""The Channel protocol: everything the engine asks of a phone line.

FastAGI (live Asterisk), the console simulator and the scripted test channel implement
it; the engine never knows which one it drives. Every method may raise CallerHangup.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Optional, Protocol

from ivr.events import TransferStatus
from ivr.settings.config import Department
from ivr.flow.model import Prompt


@dataclass(frozen=True, slots=True)
class TransferRequest:
    department: Department
    max_wait: Optional[float]
    announce_position: bool
    priority: int
    caller: str


@dataclass(frozen=True, slots=True)
class TransferResult:
    status: TransferStatus
    wait: float = 0.0  # seconds in the queue
    agent: Optional[str] = None
    talk: float = 0.0  # seconds with the agent


@dataclass(frozen=True, slots=True)
class CallbackRequest:
    department: Department
    number: str


@dataclass(frozen=True, slots=True)
class VoicemailResult:
    duration: float
    file: Optional[str] = None


class Channel(Protocol):
    async def answer(self) -> None: ...

    async def set_language(self, language: str) -> None: ...

    async def play(self, prompt: Prompt, language: str, escape: str = "") -> Optional[str]:
        """Play a prompt; return the key that interrupted it (one of `escape`), if any."""

    async def read_digits(self, max_digits: int, timeout: float, terminator: Optional[str] = None, first: str = "") -> str:
        """Collect up to `max_digits` keys (after `first`, already pressed); '' on time-out.
        The terminator ends the input early and is not returned."""

    async def transfer(self, request: TransferRequest) -> TransferResult: ...

    async def request_callback(self, request: CallbackRequest) -> None: ...

    async def record_voicemail(self, mailbox: str, max_length: float) -> VoicemailResult: ...

    async def pause_recording(self) -> None: ...

    async def resume_recording(self) -> None: ...

    async def hangup(self) -> None: ...
