"""What callers waiting in a department's queue are told: config.yaml's `announce`.

```yaml
departments:
  sales:
    queue: sales
    members: [PJSIP/101]
    announce: {position: true, wait: once, every: 60s}
  premium: {queue: premium, members: [PJSIP/110], announce: off}
```

`announce: on` is `{position: true, wait: once}`; `announce: off` (or leaving it out) says
nothing. The fields map onto the queue's options in the generated queues.conf:

| field | queues.conf | meaning |
| --- | --- | --- |
| position | announce-position | say "you are caller number N" (yes / no) |
| position_limit | announce-position = limit, announce-position-limit | say it only to the first N callers |
| wait | announce-holdtime | say the expected wait: yes, once (in the first announcement only), no |
| every | announce-frequency | seconds between two announcements to one caller |
| min_interval | min-announce-frequency | at least this long between two, also when the place changes |
| round | announce-round-seconds | say the wait in seconds rounded to 5, 10, 15, 20 or 30 s; 0: whole minutes |
| reminder | periodic-announce-frequency | "all our representatives are busy" every so often |

Asterisk announces per queue, not per call: a flow's `announce_position: true` on a
transfer node turns `position` on for the whole queue of its department (see
`ivr.asterisk.dialplan.with_announcements`).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Optional

from ivr.settings.sections import duration_seconds
from ivr.yamldoc.diagnostics import Findings, did_you_mean
from ivr.yamldoc.loader import describe
from ivr.yamldoc.values import parse_duration

ANNOUNCE_FIELDS = ("position", "position_limit", "wait", "every", "min_interval", "round", "reminder")
WAIT_VALUES = ("yes", "once", "no")
ROUND_SECONDS = (0, 5, 10, 15, 20, 30)  # what Asterisk accepts; it ignores any other value
EXAMPLE = "{position: true, wait: once, every: 60s}"
_ON = ("on", "yes", "true")
_OFF = ("off", "no", "false")


@dataclass(frozen=True)
class Announcements:
    """A queue's announcements. `position` None: config.yaml does not say (a flow may)."""

    position: Optional[bool] = None
    position_limit: Optional[int] = None  # the position is said to callers 1..N only
    wait: str = "no"  # announce-holdtime: yes, once or no
    every: int = 60  # seconds
    min_interval: int = 15  # seconds; never more than `every`
    round: int = 0  # seconds; 0 says the wait in whole minutes
    reminder: Optional[int] = None  # seconds between "all representatives are busy"; None: never

    @property
    def speaks(self) -> bool:
        """True when callers hear a position or wait announcement."""
        return bool(self.position) or self.wait != "no"


OFF = Announcements(position=False)
ON = Announcements(position=True, wait="once")


def parse_announcements(name: str, value: Any, path: tuple, findings: Findings) -> Optional[Announcements]:
    """config.yaml's `announce` of department `name` (at `path`); None once reported."""
    if value is None:
        return None
    switch = _switch(value)
    if switch is not None:
        return ON if switch else OFF
    if not isinstance(value, dict):
        findings.error(path, f'announce of department "{name}" must be on, off or a mapping such as {EXAMPLE}, '
                             f"not {describe(value)}")
        return None
    ok = True
    for key in value:
        if key not in ANNOUNCE_FIELDS:
            hint = did_you_mean(str(key), ANNOUNCE_FIELDS) or f" (fields: {', '.join(ANNOUNCE_FIELDS)})"
            findings.error(path + (key,), f'"{key}" is no field of announce{hint}', at_key=True)
            ok = False
    settings: dict[str, Any] = {}
    if "position" in value:
        position = _switch(value["position"])
        if position is None:
            findings.error(path + ("position",), f"position must be true or false, not {describe(value['position'])}")
            ok = False
        settings["position"] = position
    if "position_limit" in value:
        limit = value["position_limit"]
        if isinstance(limit, bool) or not isinstance(limit, int) or not 1 <= limit <= 100:
            findings.error(path + ("position_limit",), f"position_limit must be a whole number from 1 to 100 (the "
                                                       f"last place told its position), not {describe(limit)}")
            ok = False
        else:
            settings["position_limit"] = limit
    if "wait" in value:
        wait = value["wait"]
        switch = _switch(wait)
        wait = {True: "yes", False: "no"}.get(switch, wait) if switch is not None else wait
        if wait not in WAIT_VALUES:
            findings.error(path + ("wait",), f"wait must be yes, once or no, not {describe(value['wait'])}"
                                             f"{did_you_mean(str(wait), WAIT_VALUES)}")
            ok = False
        else:
            settings["wait"] = wait
    for key, example in (("every", "60s"), ("min_interval", "15s"), ("reminder", "45s")):
        if key in value:
            seconds = _whole_seconds(value[key], path + (key,), f"{key} of announce", example, findings)
            if seconds is None:
                ok = False
            else:
                settings[key] = seconds
    if "round" in value:
        rounding = _round(value["round"])
        if rounding is None:
            findings.error(path + ("round",), f"round must be one of {', '.join(f'{s}s' for s in ROUND_SECONDS)} "
                                              f"(Asterisk ignores any other), not {describe(value['round'])}")
            ok = False
        else:
            settings["round"] = rounding
    if not ok:
        return None
    if "position" not in settings and "position_limit" in settings:
        settings["position"] = True  # a limit says which callers are told their place
    every = settings.get("every", Announcements.every)
    if "min_interval" in settings and settings["min_interval"] > every:
        findings.error(path + ("min_interval",), f"min_interval ({settings['min_interval']}s) is longer than every "
                                                 f"({every}s): announcements could never come every {every}s")
        return None
    settings.setdefault("min_interval", min(Announcements.min_interval, every))
    return Announcements(**settings)


def _switch(value: Any) -> Optional[bool]:
    if isinstance(value, bool):
        return value
    if isinstance(value, str) and value.strip().lower() in _ON + _OFF:
        return value.strip().lower() in _ON
    return None


def _whole_seconds(value: Any, path: tuple, what: str, example: str, findings: Findings) -> Optional[int]:
    seconds = duration_seconds(value, path, what, example, findings)
    if seconds is None:
        return None
    if seconds != int(seconds):
        findings.error(path, f"{what} must be whole seconds (Asterisk counts in seconds), not {describe(value)}")
        return None
    return int(seconds)


def _round(value: Any) -> Optional[int]:
    if isinstance(value, bool):
        return None
    if value == 0 or isinstance(value, str) and value.strip() in ("0", "0s"):
        return 0
    seconds = parse_duration(value)
    return int(seconds) if seconds is not None and seconds in ROUND_SECONDS else None
