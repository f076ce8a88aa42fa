"""Call-backs: how a customer's number becomes an AMI Originate into a department queue.

The contract with the dialplan, set in config.yaml `asterisk: callback:` (read by
`ivr.settings.asterisk.CallbackSettings`): Asterisk dials `channel` with the customer's
number in `{number}`. When the customer answers, their channel runs extension `<queue>`,
priority 1, of `context`, with the channel variables `IVR_CALLBACK_QUEUE=<queue>` and
`IVR_CALLBACK_NUMBER=<number>`; the generated dialplan sends it on to the queue, one
extension per department, e.g.

    [ivr-callback]
    exten => sales,1,Queue(${IVR_CALLBACK_QUEUE})

Without a context, the Originate runs Queue(<queue>) as its Application instead.

With a `priority`, the customer's channel also gets `QUEUE_PRIO=<priority>`, so once they
answer they queue ahead of callers who joined after their place in line.

The number is normalised and checked before it reaches the dial string (digits and a
leading '+' only), the queue name too; every header then passes `ami_wire.header_value`.

`attempt_result` reads Asterisk's OriginateResponse: its Reason is the last control frame
the dialled channel gave (main/manager.c hands `ast_pbx_outgoing_exten`'s outcome on):
4 answered, 5 busy, 3 rang without an answer (the Originate's Timeout), 1 hung up before
answering (a refused call), 8 congestion, 0 no channel could be made.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Mapping, Optional

from ivr.asterisk.ami_wire import check_queue, normalise_number
from ivr.settings.asterisk import CallbackSettings


def dial_string(settings: CallbackSettings, number: str) -> str:
    """The channel Asterisk dials to reach the customer at `number`."""
    return settings.channel.replace("{number}", normalise_number(number))


ANSWERED, BUSY, NO_ANSWER, FAILED = "answered", "busy", "no answer", "failed"
_REASONS = {"4": ANSWERED, "5": BUSY, "3": NO_ANSWER, "1": NO_ANSWER, "8": FAILED, "0": FAILED}


@dataclass(frozen=True)
class OriginateOutcome:
    """How one call-back Originate ended, from its OriginateResponse."""

    result: str  # answered, busy, no answer or failed
    reason: str  # Asterisk's Reason code, as sent
    uniqueid: Optional[str] = None  # the customer's channel
    channel: Optional[str] = None


def attempt_result(response: Mapping[str, Any]) -> OriginateOutcome:
    """An OriginateResponse event's headers as the outcome of a call-back try."""
    reason = str(response.get("Reason", "") or "")
    if str(response.get("Response", "")) == "Success":
        result = ANSWERED
    else:
        result = _REASONS.get(reason, FAILED)
        if result == ANSWERED:  # answered, and yet no Success: the dialplan side failed
            result = FAILED
    uniqueid = str(response.get("Uniqueid") or "") or None
    channel = str(response.get("Channel") or "") or None
    return OriginateOutcome(result, reason, uniqueid if uniqueid != "<null>" else None, channel)


def originate_headers(settings: CallbackSettings, number: str, queue: str, caller_id: Optional[str] = None,
                      priority: Optional[int] = None) -> dict[str, Any]:
    """The Originate's headers (without Action and ActionID); AmiError if refused."""
    dialled, queue = normalise_number(number), check_queue(queue)
    variables = [f"IVR_CALLBACK_QUEUE={queue}", f"IVR_CALLBACK_NUMBER={dialled}"]
    if priority is not None:
        variables.append(f"QUEUE_PRIO={int(priority)}")
    headers: dict[str, Any] = {
        "Channel": dial_string(settings, dialled),
        "Async": "true",
        "Timeout": str(int(settings.timeout * 1000)),
        "Variable": variables,
    }
    if settings.context:
        headers.update({"Context": settings.context, "Exten": queue, "Priority": "1"})
    else:
        headers.update({"Application": "Queue", "Data": queue})
    cid = caller_id if caller_id is not None else settings.caller_id
    if cid:
        headers["CallerID"] = cid
    return headers
