"""The console simulator: a call in the terminal, for admins trying a menu without a phone.

Shows what the caller hears, in the caller's language, and reads keys typed at the
prompt. Enter alone is "no key" (a time-out); q hangs up.
"""

from __future__ import annotations

from typing import Callable, Optional

import click

from ivr.channels.scripted import HANG_UP, NO_KEY, QueueScript, ScriptedChannel
from ivr.engine.channel import TransferRequest, TransferResult
from ivr.errors import CallerHangup
from ivr.events import TransferStatus
from ivr.flow.model import Prompt


class SimChannel(ScriptedChannel):
    def __init__(self, *args, ask: Optional[Callable[[str], str]] = None, say: Callable[[str], None] = click.echo, **kwargs):
        super().__init__(*args, **kwargs)
        self._ask = ask or (lambda text: click.prompt(text, default="", show_default=False))
        self._say = say

    def _prompt(self, text: str) -> str:
        try:
            return self._ask(text)
        except (click.exceptions.Abort, EOFError):
            # end of input or Ctrl-C: the caller hangs up; any other error would look to
            # the engine like a failure and send the caller to the fallback queue
            raise CallerHangup("the caller hung up (end of input)") from None

    def next_token(self) -> str:
        if self.tokens:
            return super().next_token()
        answer = self._prompt(click.style("  keys (Enter: no key, q: hang up)", dim=True)).strip()
        if answer.lower() in ("q", "quit", HANG_UP):
            return HANG_UP
        return answer.replace(" ", "") or NO_KEY

    async def play(self, prompt: Prompt, language: str, escape: str = "") -> Optional[str]:
        self._say(f"{click.style(f'[{language}]', fg='cyan')} {prompt.text(language)}")
        return await super().play(prompt, language, escape)

    async def transfer(self, request: TransferRequest) -> TransferResult:
        if not self.queue_results:
            answer = self._prompt(click.style(f"  queue {request.department.queue}: agent [a]nswers, wait [t]imes out, caller gives [u]p?", dim=True)).strip().lower()
            chosen = {"t": TransferStatus.TIMED_OUT, "u": TransferStatus.ABANDONED}
            status = chosen.get(answer[:1], TransferStatus.ANSWERED)
            self.queue_results.append(QueueScript(status))
        result = await super().transfer(request)
        self._say(click.style(f"  -> queue {request.department.queue}: {result.status} after {result.wait:g}s", fg="yellow"))
        return result

    async def hangup(self) -> None:
        self._say(click.style("  (call ended)", dim=True))
        await super().hangup()
