"""The AMI events the engine reads, and the filters that make Asterisk send its user only those.

Asterisk sends an AMI session every event of the classes its user may read (`read =
call,agent`) unless an event filter narrows them; on a contact-centre line that is a
Newchannel, Newstate, DialBegin, BridgeEnter, Hangup, ... for every channel of every call,
most of which the engine would parse only to drop. The engine reads the queue events (its
queue tracker and live queue board), the `Hangup` of callers it saw in a queue, and the
`OriginateResponse` of its call-backs: `EVENTS`.

Two places narrow what Asterisk sends, and the engine uses both:

- manager.conf: `eventfilter(action(include),name(<Event>)) =` lines in the engine's user
  (`manager_conf_lines`, written by `ivr asterisk-config`), the advanced form of Asterisk
  20.8/21.3 and later: matched by the event's name (a hash look-up), not a regular
  expression run over every event's text. Include filters only, so an event passes when
  it matches any one of them (Asterisk's rule: with include filters, everything else is
  left out). They hold for every session of the user, whatever client logs in.
- the engine's own login: the same filters as `Filter` actions (`filter_actions`), for a
  site that writes its own manager.conf. Asterisk allows the action only to a user with
  the `system` write class (a session filter could undo manager.conf's); the generated
  user does not have it, so there the action is refused and manager.conf's lines do the
  work. A session filter lasts as long as its connection: every login sends them again.

Neither touches the answers to the engine's own actions: the events of an event list
(QueueStatus's QueueParams / QueueMember / QueueEntry, CoreShowChannels'
CoreShowChannel) are written to the asking session as its answer, never through the
filters (`tests/asterisk/test_live_ami_filter.py` shows both on the real Asterisk).
"""

from __future__ import annotations

from typing import Any

from ivr.asterisk.queue_board import EVENTS as BOARD_EVENTS
from ivr.asterisk.queue_tracker import EVENTS as TRACKER_EVENTS

__all__ = ["EVENTS", "filter_actions", "manager_conf_lines", "match_criteria"]

# every event the engine reads, once each: the queue tracker's, the queue board's, and the
# end of a call-back's ringing
EVENTS: tuple[str, ...] = tuple(dict.fromkeys((*TRACKER_EVENTS, *BOARD_EVENTS, "OriginateResponse")))


def match_criteria(event: str) -> str:
    """The advanced filter that lets `event` through, by its name alone."""
    return f"action(include),name({event})"


def manager_conf_lines(events: tuple[str, ...] = EVENTS) -> list[str]:
    """The eventfilter lines of the engine's user in manager.conf, one an event."""
    return [f"eventfilter({match_criteria(event)}) =" for event in events]


def filter_actions(events: tuple[str, ...] = EVENTS) -> list[dict[str, Any]]:
    """The `Filter` actions (headers but the ActionID) that narrow one session to `events`."""
    # Filter is empty: name() alone decides (method none)
    return [{"Action": "Filter", "Operation": "Add", "MatchCriteria": match_criteria(event), "Filter": ""}
            for event in events]
