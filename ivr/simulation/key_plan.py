"""When a caller who knows the menu presses each key: planned from the flow itself.

`ivr call 1 1` places a real call that presses keys on its own clock, with no ear on
the line. Keys pressed while nothing listens are lost (Asterisk drops a key no prompt or
wait is taking), so fixed timers fail as soon as a prompt is longer than the timer: the
6.7 s welcome takes no key. Instead the call is simulated first, as the live engine will
run it (the same flows and config, now, the same caller number, the same keys) with each
prompt as long as its built audio, and each key is planned a little (`lead`) after the
flow starts listening for it:

- when a prompt takes the key (it is one of the prompt's escape digits, as a menu's
  options are for its prompt), the key is pressed `lead` seconds into the first such
  prompt; the simulated prompt stops there, as the live one will (barge-in), so the
  later keys stay in step;
- otherwise (a key the menu does not offer, for one) it is pressed `lead` seconds into
  the wait that follows the prompt.

The lead is the margin for the live call running a little behind the plan (the answer,
AGI's start, each command's round trip): a key is lost only if the live call is more
than `lead` seconds late, while being early costs nothing, since the prompt or wait still
takes the key. A barge-in puts both clocks in step again.

The keys of one token (an account number, say) follow the first one `key_gap` apart, as
SIPp presses them. A `-` token presses nothing: that question times out.

Only what comes before the first transfer or voicemail can be planned: how long the
queue and the agent take is known on the line alone. Keys left after a transfer are
refused; keys the flow never asks for (the office is closed, say, so no menu comes) are
reported as unused. The plan says where and when it ends (`ending`, `ends_at`): the call
that places it stays on the line from there, not from its last key, so a call with no
key at all still reaches the queue or leaves its message.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import re
from dataclasses import dataclass, field
from typing import Callable, Optional

from ivr import events as ev
from ivr.channels.scripted import NO_KEY, ScriptedChannel
from ivr.clock import VirtualClock
from ivr.engine import Engine
from ivr.engine.channel import TransferRequest, TransferResult, VoicemailResult
from ivr.errors import CallerHangup, UsageError
from ivr.events import Event
from ivr.flow.model import Prompt

# seconds after the flow starts listening that a key is pressed. On the test bed a SIPp call's
# first key reaches the engine some 0.4 s sooner than the plan has it, so a lead of 1 s put it
# 0.6 s into the language menu on a busy machine: that close to the welcome, which takes no key.
LEAD = 1.5
KEY_GAP = 0.3  # seconds between the keys of one token
_TOKEN = re.compile(r"^(?:[0-9*#]+|-)$")
TRANSFER, VOICEMAIL, HANGUP = "transfer", "voicemail", "hangup"  # how a plan ends

PromptSeconds = Callable[[Prompt, str], float]


@dataclass(frozen=True)
class PlannedToken:
    """One token of KEYS: its keys pressed from `at` (seconds after the answer), `gap` apart."""

    keys: str  # "" for a `-` token: nothing is pressed, the question times out
    at: float
    node: str  # the node listening for it
    node_type: str
    in_prompt: bool  # the first key cuts a prompt short (else it falls in the wait after it)
    sensitive: bool  # typed while the recording is paused (an account number): not to be shown
    gap: float = KEY_GAP

    @property
    def presses(self) -> list[tuple[float, str]]:
        return [(self.at + i * self.gap, key) for i, key in enumerate(self.keys)]

    def describe(self) -> str:
        """How the plan reads: `key 1 at 8.2 s (menu language, during its prompt)`."""
        where = f"{self.node_type} {self.node}, " + ("during its prompt" if self.in_prompt else "in its wait")
        if not self.keys:
            return f"no key for {self.node_type} {self.node}: it times out at {self.at:.1f} s"
        shown = ev.mask(self.keys) if self.sensitive else self.keys
        if len(self.keys) == 1:
            return f"key {shown} at {self.at:.1f} s ({where})"
        return f"keys {shown} from {self.at:.1f} s, {self.gap:g} s apart ({where})"


@dataclass(frozen=True)
class KeyPlan:
    tokens: list[PlannedToken]
    unused: list[str]  # tokens the flow did not ask for
    path: list[str]  # the nodes of the simulated call, up to its first transfer
    department: Optional[str]  # the department of the first transfer, if the plan reaches one
    ending: str = HANGUP  # TRANSFER, VOICEMAIL (the recording of a message starts) or HANGUP (the flow ends)
    ends_at: float = 0.0  # seconds after the answer
    mailbox: Optional[str] = None  # the voicemail's, when the plan ends at one

    @property
    def presses(self) -> list[tuple[float, str]]:
        """Every key with its moment, in order."""
        return [press for token in self.tokens for press in token.presses]


def check_tokens(keys: str) -> list[str]:
    """The tokens of KEYS; UsageError on one that is neither keys nor `-`."""
    tokens = keys.split()
    for token in tokens:
        if not _TOKEN.match(token):
            raise UsageError(f"KEYS token {token!r}: keys are 0-9, * and #, and - lets a question time out "
                             "(a wait such as 5s switches to fixed timers)")
    return tokens


@dataclass
class _PlanningChannel(ScriptedChannel):
    """The scripted channel, keys delivered at planned moments (see the module docstring)."""

    prompt_seconds: Optional[PromptSeconds] = None
    lead: float = LEAD
    key_gap: float = KEY_GAP
    planned: list[PlannedToken] = field(default_factory=list)
    department: Optional[str] = None
    ending: Optional[tuple[str, float]] = None  # (TRANSFER or VOICEMAIL, the moment)
    mailbox: Optional[str] = None
    node: str = ""
    node_type: str = ""
    _listening_since: Optional[float] = None  # start of the first prompt that takes the next key

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.prompt_seconds is None:
            raise TypeError("a planning channel needs the length of each prompt (prompt_seconds)")

    def on_event(self, event: Event) -> None:
        if event.type == ev.NODE_ENTERED and event.node:
            self.node, self.node_type = event.node, str(event.data.get("node_type", ""))
            self._listening_since = None

    def _plan(self, token: str, at: float, in_prompt: bool) -> PlannedToken:
        planned = PlannedToken("" if token == NO_KEY else token, at, self.node, self.node_type, in_prompt,
                               self.recording_paused, self.key_gap)
        self.planned.append(planned)
        self._listening_since = None
        return planned

    async def play(self, prompt: Prompt, language: str, escape: str = "") -> Optional[str]:
        self.played.append((prompt.name, language))
        assert self.prompt_seconds is not None  # __post_init__ made sure
        seconds = self.prompt_seconds(prompt, language)
        start = self.clock.elapsed()
        token = self.tokens[0] if self.tokens else None
        if token is not None and token != NO_KEY and token[0] in escape:
            if self._listening_since is None:
                self._listening_since = start
            press = self._listening_since + self.lead
            if press < start + seconds:  # the key cuts this prompt short
                self.tokens.pop(0)
                self._plan(token, press, in_prompt=True)
                self._pending = token[1:]
                self.clock.advance(press - start)
                return token[0]
        else:
            self._listening_since = None  # this prompt does not take the key: Asterisk would drop it
        self.clock.advance(seconds)
        return None

    async def read_digits(self, max_digits: int, timeout: float, terminator: Optional[str] = None,
                          first: str = "") -> str:
        if first:
            token, self._pending = first + self._pending, ""
        else:
            token = self.next_token()
            now = self.clock.elapsed()
            if token == NO_KEY:
                self._plan(token, now + timeout, in_prompt=False)
                self.clock.advance(timeout)
                return ""
            since = self._listening_since if self._listening_since is not None else now
            press = max(now, since + self.lead)
            if press - now >= timeout:  # a wait shorter than the lead: press early in it
                press = now + timeout / 2
            self._plan(token, press, in_prompt=False)
            self.clock.advance(press - now)
        digits: list[str] = []
        used = 0  # keys of the token this read takes, the terminator included
        for key in token:
            used += 1
            if terminator and key == terminator:
                break
            digits.append(key)
            if len(digits) == max_digits:
                break
        self.clock.advance(self.key_gap * (used - 1))  # each key after the first, key_gap after the one before
        return "".join(digits)

    async def transfer(self, request: TransferRequest) -> TransferResult:
        # the plan ends here: how long the queue and the agent take only the line knows
        self.department = request.department.name
        self.ending = (TRANSFER, self.clock.elapsed())
        raise CallerHangup("the plan ends at the first transfer")

    async def record_voicemail(self, mailbox: str, max_length: float) -> VoicemailResult:
        # the plan ends here too: how long the message is, the caller decides on the line
        self.mailbox = mailbox
        self.ending = (VOICEMAIL, self.clock.elapsed())
        raise CallerHangup("the plan ends at the voicemail")


def plan_keys(engine: Engine, flow: str, keys: str, *, caller: str = "", at: Optional[dt.datetime] = None,
              prompt_seconds: PromptSeconds, lead: float = LEAD, key_gap: float = KEY_GAP) -> KeyPlan:
    """The moment of each key of KEYS in a call to `flow` by `caller` at `at` (default:
    now), with prompts `prompt_seconds` long. UsageError on a bad token or on keys that
    come after the first transfer."""
    tokens = check_tokens(keys)
    channel = _PlanningChannel(tokens, VirtualClock(at), prompt_seconds=prompt_seconds, lead=lead, key_gap=key_gap)
    call = asyncio.run(engine.run(channel, flow, caller=caller, clock=channel.clock, on_event=channel.on_event))
    left = channel.unused_keys
    if left and channel.department is not None:
        raise UsageError(f"{' '.join(left)}: these keys come after the transfer to {channel.department}, and how "
                         "long the queue and the agent take is known only on the line; press them on fixed timers "
                         "instead (--wait SECONDS, and waits such as 30s between the keys)")
    ending, ends_at = channel.ending or (HANGUP, channel.clock.elapsed())
    return KeyPlan(channel.planned, left, list(call.path), channel.department, ending, ends_at, channel.mailbox)
