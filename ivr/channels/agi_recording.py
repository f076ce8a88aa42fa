"""A live call's recording when the dialplan started none.

The dialplan `ivr asterisk-config` writes starts MixMonitor on
`<recordings>/<YYYY-MM-DD>/<UNIQUEID>.wav` and keeps the path in `IVR_RECORDING` before it
hands the call over; the FastAGI server reads that variable with the call's first command
(which costs such a call nothing here). A hand-written dialplan that only runs
`AGI(agi://...)` leaves it unset: the call would have no recording, and nobody would know.
Then the engine starts the same recording itself: the date as Asterisk's STRFTIME gives it
(read by that same first command, so the folder is the one the generated dialplan would
use), then `MixMonitor` and `IVR_RECORDING`, so that muting and the call's record work as usual. The
log says so once for the call, with what to add to the dialplan; if the recording cannot
be started (a refusal, an error reply of Asterisk), the log says that the call is not
recorded, and why; the call goes on all the same.
"""

from __future__ import annotations

import logging
import re
import unicodedata
from pathlib import Path
from typing import Optional

from ivr.channels.agi import AgiChannel
from ivr.errors import CallerHangup, ChannelError

log = logging.getLogger(__name__)

DATE = "STRFTIME(${EPOCH},,%Y-%m-%d)"  # ${DATE}: as the generated dialplan names the day's folder
_DATE = re.compile(r"\d{4}-\d{2}-\d{2}")
# Asterisk's: <epoch>.<sequence>, after `<systemname>-` where asterisk.conf sets one (each
# node of several Asterisks does, so that their uniqueids never clash)
_UNIQUEID = re.compile(r"(?:[A-Za-z0-9_]+(?:-[A-Za-z0-9_]+)*-)?[0-9]+\.[0-9]+")
# a comma starts MixMonitor's options, `|` did in old releases; the rest would be read as
# dialplan syntax by whoever copies the path into a dialplan
_FORBIDDEN = set(",|;$()[]{}\"'\\`")
DIALPLAN_HINT = ("Set(IVR_RECORDING=<recordings>/${STRFTIME(${EPOCH},,%Y-%m-%d)}/${UNIQUEID}.wav) and "
                 "MixMonitor(${IVR_RECORDING}) before AGI(), as `ivr asterisk-config` writes them")


async def start_recording(channel: AgiChannel, recordings_dir: Path, call: str, date: str) -> Optional[str]:
    """Start the call's recording as the generated dialplan would, in the folder of `date`
    (`${DATE}` as Asterisk evaluated it); its path, or None (logged) when it could not be
    started. A caller who hangs up meanwhile ends it quietly."""
    uniqueid = channel.env.uniqueid
    if not _UNIQUEID.fullmatch(uniqueid):
        return not_recorded(call, f"its uniqueid {uniqueid!r} is not Asterisk's [<systemname>-]<epoch>.<n>")
    folder = str(recordings_dir)
    if any(ch in _FORBIDDEN or unicodedata.category(ch).startswith("C") for ch in folder):
        return not_recorded(call, f"the recordings folder {folder!r} holds characters MixMonitor would split at")
    if not _DATE.fullmatch(date):
        return not_recorded(call, f"Asterisk gave no date for the folder ({date!r})")
    path = f"{folder}/{date}/{uniqueid}.wav"
    try:
        reply = await channel.send("EXEC", "MixMonitor", path)
        if reply.number != 0:
            return not_recorded(call, f"MixMonitor answered {reply.line!r} (is app_mixmonitor loaded?)")
        await channel.send("SET VARIABLE", "IVR_RECORDING", path)
    except CallerHangup:
        return None
    except ChannelError as exc:  # a 520 reply, an unexpected line: no recording, the call goes on
        return not_recorded(call, f"Asterisk answered with an error ({exc})")
    log.warning("call %s came without IVR_RECORDING: its dialplan started no recording, so the engine started "
                "MixMonitor on %s itself; add %s", call, path, DIALPLAN_HINT)
    return path


def not_recorded(call: str, why: str) -> None:
    """The one warning of a call whose recording the dialplan did not start and the engine could not."""
    log.warning("call %s is NOT recorded: its dialplan started no recording (IVR_RECORDING is unset) and the engine "
                "could not start one: %s; add %s", call, why, DIALPLAN_HINT)
    return None
