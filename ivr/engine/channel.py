"""The Channel protocol: everything the engine asks of a phone line.

FastAGI (live Asterisk), the console simulator and the scripted test channel implement
it; the engine never knows which one it drives. Every method may raise CallerHangup.
"""

from __future__ import annotations

import datetime as dt
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
    # how the line said a wait ended without an agent, as Asterisk's QUEUESTATUS: TIMEOUT,
    # JOINEMPTY, LEAVEEMPTY, FULL, ... ("" when the line cannot tell)
    ended: str = ""


@dataclass(frozen=True, slots=True)
class QueueLoad:
    """A department queue's live state, as the line knows it when a caller is about to join.

    `fresh` is False when the line cannot vouch for it (the manager connection is down, or
    its last refresh is too old): the engine then queues the caller without comparing.
    """

    waiting: int = 0  # callers in the queue now
    longest_wait: float = 0.0  # seconds the first of them has waited
    free_agents: int = 0  # members logged in, not paused, not in a call
    logged_in: int = 0  # members that can take calls (busy or paused ones included)
    fresh: bool = True
    node: str = ""  # the Asterisk it was read on, with several (config.yaml asterisk.nodes)


@dataclass(frozen=True, slots=True)
class CallbackRequest:
    """A call-back to book: whom to call, for which queue, and the promise made to them.
    The live line stores it and dials it later (ivr.live.callbacks)."""

    department: Department
    number: str  # digits only: the caller's own number or one they typed
    call_id: str = ""
    place_at: Optional[dt.datetime] = None  # when the caller joined the queue: their place in line
    booked_at: Optional[dt.datetime] = None
    due_by: Optional[dt.datetime] = None  # the promise: dialled at the latest then (in opening hours)
    schedule: Optional[str] = None  # a schedule of config.yaml: dialled only while it is open
    attempts: int = 3  # dialled at most this often
    retry_pause: float = 300.0  # seconds between tries
    priority: int = 1  # the customer's queue priority once they answer


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

    def queue_load(self, queue: str) -> Optional[QueueLoad]:
        """The queue's live state now, without a round trip; None when the line keeps none."""

    async def request_callback(self, request: CallbackRequest) -> None: ...

    async def record_voicemail(self, mailbox: str, max_length: float) -> VoicemailResult: ...

    async def pause_recording(self) -> None: ...

    async def resume_recording(self) -> None: ...

    async def hangup(self) -> None: ...
