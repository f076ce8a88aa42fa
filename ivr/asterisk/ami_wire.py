"""The AMI wire as this project writes it: every header checked in one place, and
panoramisk's protocol made to fail, not replay, what was in flight when a connection drops.

An AMI action is a block of `Name: value` lines ended by a blank line, so a line break in
a value starts a header, or a whole action, of the sender's choosing (`\\r\\nAction:
Command\\r\\nCommand: ...`). `header_value()` is the one function every value passes
through on its way out (`AmiProtocol.submit` calls it for each header of each action,
panoramisk's own included); it refuses CR, LF and NUL rather than strip them, so a value
is sent as given or not at all.

panoramisk's `AMIProtocol.close()` puts actions that had no answer yet into the
manager's `awaiting_actions`, and its manager sends them again on the next `FullyBooted`
event, after a reconnect. For an `Originate` that is a second call to the customer.
`AmiProtocol` instead fails each waiting action with `AmiConnectionLost`, and reports the
loss to its manager once, however the connection ended (a `Shutdown` event, the peer
closing, or our own `transport.abort()` from the Ping watchdog).
"""

from __future__ import annotations

import re
from typing import Any, Mapping, Optional

from panoramisk.actions import Action
from panoramisk.ami_protocol import AMIProtocol

from ivr.errors import AmiConnectionLost, AmiRefused

_NAME = re.compile(r"^[A-Za-z][A-Za-z0-9_-]*$")
_BREAKS = re.compile(r"[\r\n\x00]")
_NUMBER_SPACING = re.compile(r"[ \-.()/]")  # how people write numbers: "+48 (22) 555-01-01"
_NUMBER = re.compile(r"^\+?[0-9]{3,20}$")
_QUEUE = re.compile(r"^[A-Za-z0-9_-]+$")  # as config.yaml's departments allow


def header_value(name: str, value: Any) -> str:
    """The text of one AMI header; AmiRefused for a name or value that could break the block.

    The message names the header, never its value: a value may be a secret, and an
    injection attempt has no business in the logs verbatim.
    """
    if not isinstance(name, str) or not _NAME.match(name):
        raise AmiRefused(f"refused to send an AMI header named {name!r}: header names are letters, digits, '-' and '_'")
    if isinstance(value, bool):
        text = "true" if value else "false"
    elif value is None:
        text = ""
    else:
        text = str(value)
    if _BREAKS.search(text):
        raise AmiRefused(f"refused to send AMI header {name}: its value holds a line break or NUL (header injection)")
    return text


def checked_headers(headers: Mapping[str, Any]) -> dict[str, Any]:
    """Every header through `header_value`; a list value becomes repeated headers."""
    out: dict[str, Any] = {}
    for name, value in headers.items():
        if isinstance(value, (list, tuple)):
            out[name] = [header_value(name, item) for item in value]
        else:
            out[name] = header_value(name, value)
    return out


def normalise_number(number: str) -> str:
    """A phone number to dial: digits with an optional leading '+', 3 to 20 digits.

    Spaces, dashes, dots, slashes and parentheses are dropped; anything else (letters,
    '@', ';', line breaks) is refused, so an untrusted number cannot choose the channel
    technology, the trunk or an AMI header.
    """
    if not isinstance(number, str):
        raise AmiRefused("refused to dial: the number is no text")
    compact = _NUMBER_SPACING.sub("", number)
    if not _NUMBER.match(compact):
        raise AmiRefused("refused to dial: a number is digits with an optional leading '+' (3 to 20 digits)")
    return compact


def check_queue(queue: str) -> str:
    if not isinstance(queue, str) or not _QUEUE.match(queue):
        raise AmiRefused("refused: a queue name is letters, digits, '-' and '_'")
    return queue


class AmiProtocol(AMIProtocol):
    """panoramisk's AMI protocol (parsing, ActionID matching, event dispatch) with checked
    writes, no replay of actions after a reconnect, and a loss reported exactly once."""

    def connection_made(self, transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        self.loss_reported = False

    def submit(self, headers: Mapping[str, Any], as_list: Optional[bool] = None) -> Action:
        """Write one action; its `future` gets the answer. Nothing is written if a header
        is refused or the connection is closed."""
        if self.closed:
            raise AmiConnectionLost("the AMI connection is closed; the action was not sent")
        action = Action(checked_headers(headers), as_list=as_list)
        action.as_list = as_list
        self.responses[action.id] = action
        encoding = getattr(self, "encoding", "utf8")
        # str(action) renders the block; it is never logged (a Login block holds the secret)
        self.transport.write(str(action).encode(encoding))
        return action

    def send(self, data, as_list=None):  # panoramisk's entry point, for its own callers
        return self.submit(dict(data), as_list=as_list).future

    def forget(self, action: Action) -> None:
        """Stop waiting for an action's answer (after a time-out)."""
        self.responses.pop(action.id, None)

    def close(self) -> None:
        waiting = {id(a): a for a in self.responses.values()}
        self.responses.clear()
        for action in waiting.values():
            if not action.future.done():
                name = action.get("Action", "an action")
                action.future.set_exception(AmiConnectionLost(
                    f"the AMI connection dropped while {name} waited for its answer; it is not sent again"
                    " (it may or may not have been carried out)"))
        if not self.closed:
            self.closed = True
            self.transport.close()

    def connection_lost(self, exc) -> None:
        self.close()
        if not self.loss_reported:
            self.loss_reported = True
            factory = self.factory
            if factory is not None:
                factory.protocol_lost(self, exc)
