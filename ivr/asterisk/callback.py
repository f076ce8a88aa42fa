"""Call-backs: how a customer's number becomes an AMI Originate into a department queue.

The contract with the dialplan (config.yaml `asterisk: callback:`):

    asterisk:
      callback:
        channel: "PJSIP/{number}@trunk"   # default Local/{number}@testbed-callee (the test bed's customer)
        context: ivr-callback             # default; null: run Queue(<queue>) as the Originate's Application
        caller_id: '"Shop" <225550000>'   # optional: what the customer's phone shows
        timeout: 30                       # seconds the customer's phone rings

Asterisk dials `channel` with the customer's number in `{number}`. When the customer
answers, their channel runs extension `<queue>`, priority 1, of `context`, with the
channel variables `IVR_CALLBACK_QUEUE=<queue>` and `IVR_CALLBACK_NUMBER=<number>`; the
generated dialplan sends it on to the queue, one extension per department, e.g.

    [ivr-callback]
    exten => sales,1,Queue(${IVR_CALLBACK_QUEUE})

The number is normalised and checked before it reaches the dial string (digits and a
leading '+' only), the queue name too; every header then passes `ami_wire.header_value`.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Mapping, Optional

from ivr.asterisk.ami_wire import check_queue, normalise_number
from ivr.errors import AmiError

DEFAULT_CALLBACK_CHANNEL = "Local/{number}@testbed-callee"
DEFAULT_CALLBACK_CONTEXT = "ivr-callback"


@dataclass(frozen=True)
class CallbackSettings:
    """config.yaml `asterisk: callback: {channel, context, caller_id, timeout}`."""

    channel: str = DEFAULT_CALLBACK_CHANNEL  # dial string; {number} is the customer's number
    context: Optional[str] = DEFAULT_CALLBACK_CONTEXT  # None: Application=Queue instead
    caller_id: Optional[str] = None  # what the customer's phone shows
    timeout: float = 30.0  # seconds the customer's phone rings

    def __post_init__(self) -> None:
        if "{number}" not in self.channel:
            raise AmiError("asterisk.callback.channel must hold {number}, e.g. PJSIP/{number}@trunk")

    @classmethod
    def from_mapping(cls, data: Optional[Mapping[str, Any]]) -> "CallbackSettings":
        data = data or {}
        return cls(
            channel=str(data.get("channel", DEFAULT_CALLBACK_CHANNEL)),
            context=data["context"] if "context" in data else DEFAULT_CALLBACK_CONTEXT,
            caller_id=data.get("caller_id"),
            timeout=float(data.get("timeout", 30.0)),
        )

    def dial_string(self, number: str) -> str:
        return self.channel.replace("{number}", normalise_number(number))

    def originate(self, number: str, queue: str, caller_id: Optional[str] = None) -> dict[str, Any]:
        """The Originate's headers (without Action and ActionID); AmiError if refused."""
        dialled, queue = normalise_number(number), check_queue(queue)
        headers: dict[str, Any] = {
            "Channel": self.dial_string(dialled),
            "Async": "true",
            "Timeout": str(int(self.timeout * 1000)),
            "Variable": [f"IVR_CALLBACK_QUEUE={queue}", f"IVR_CALLBACK_NUMBER={dialled}"],
        }
        if self.context:
            headers.update({"Context": self.context, "Exten": queue, "Priority": "1"})
        else:
            headers.update({"Application": "Queue", "Data": queue})
        cid = caller_id if caller_id is not None else self.caller_id
        if cid:
            headers["CallerID"] = cid
        return headers
