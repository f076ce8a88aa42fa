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

The number is normalised and checked before it reaches the dial string (digits and a
leading '+' only), the queue name too; every header then passes `ami_wire.header_value`.
"""

from __future__ import annotations

from typing import Any, Optional

from ivr.asterisk.ami_wire import check_queue, normalise_number
from ivr.settings.asterisk import CallbackSettings


def dial_string(settings: CallbackSettings, number: str) -> str:
    """The channel Asterisk dials to reach the customer at `number`."""
    return settings.channel.replace("{number}", normalise_number(number))


def originate_headers(settings: CallbackSettings, number: str, queue: str, caller_id: Optional[str] = None) -> dict[str, Any]:
    """The Originate's headers (without Action and ActionID); AmiError if refused."""
    dialled, queue = normalise_number(number), check_queue(queue)
    headers: dict[str, Any] = {
        "Channel": dial_string(settings, dialled),
        "Async": "true",
        "Timeout": str(int(settings.timeout * 1000)),
        "Variable": [f"IVR_CALLBACK_QUEUE={queue}", f"IVR_CALLBACK_NUMBER={dialled}"],
    }
    if settings.context:
        headers.update({"Context": settings.context, "Exten": queue, "Priority": "1"})
    else:
        headers.update({"Application": "Queue", "Data": queue})
    cid = caller_id if caller_id is not None else settings.caller_id
    if cid:
        headers["CallerID"] = cid
    return headers
