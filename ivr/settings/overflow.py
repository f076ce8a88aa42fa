"""A department's overflow thresholds (`overflow_when` in config.yaml), and the reason a
caller is sent past them.

```yaml
departments:
  sales: {queue: sales, members: [...], overflow: backup,
          overflow_when: {waiting: 5, longest_wait: 2m, no_free_agents: false}}
```

Before a caller joins the department's queue, the engine compares the queue's live state
(read from Asterisk's manager interface) with these limits. Any one limit reached is
enough: the caller goes to the `overflow` department instead of waiting.

- `waiting: N`: N callers already wait in the queue (the next one would be N+1st).
- `longest_wait: D`: the caller who has waited longest has waited D or more.
- `no_free_agents: true`: no member is free (all talking, ringing, paused or logged out).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Optional

from ivr.yamldoc.diagnostics import Findings, did_you_mean
from ivr.yamldoc.loader import describe
from ivr.yamldoc.values import parse_duration

FIELDS = ("waiting", "longest_wait", "no_free_agents")


@dataclass(frozen=True)
class OverflowWhen:
    """Limits of one department's queue; None (or False) means that limit is not used."""

    waiting: Optional[int] = None
    longest_wait: Optional[float] = None  # seconds
    no_free_agents: bool = False

    def reasons(self, queue: str, waiting: int, longest_wait: float, free_agents: int, logged_in: int) -> list[str]:
        """Why a caller may not join `queue` now, one sentence per limit reached; [] when none is."""
        found = []
        if self.waiting is not None and waiting >= self.waiting:
            found.append(f"{waiting} caller{'s' if waiting != 1 else ''} waiting in {queue} (limit {self.waiting})")
        if self.longest_wait is not None and waiting > 0 and longest_wait >= self.longest_wait:
            found.append(f"longest wait {short_duration(longest_wait)} in {queue} "
                         f"(limit {short_duration(self.longest_wait)})")
        if self.no_free_agents and free_agents <= 0:
            found.append(f"no free agent in {queue} ({logged_in} logged in, none free)")
        return found


def short_duration(seconds: float) -> str:
    """`2m10s`, `2m`, `45s`, `1h5m`: a duration as config.yaml writes it (whole seconds)."""
    total = int(round(seconds))
    hours, rest = divmod(total, 3600)
    minutes, secs = divmod(rest, 60)
    text = (f"{hours}h" if hours else "") + (f"{minutes}m" if minutes else "") + (f"{secs}s" if secs else "")
    return text or "0s"


def parse_overflow_when(department: str, value: Any, path: tuple, findings: Findings) -> Optional[OverflowWhen]:
    """`overflow_when` of a department; None (with an error in `findings`) when it is wrong."""
    example = "{waiting: 5, longest_wait: 2m, no_free_agents: true}"
    if not isinstance(value, dict) or not value:
        findings.error(path, f'overflow_when of department "{department}" must be a mapping such as {example}, '
                             f"not {describe(value)}")
        return None
    ok = True
    for key in value:
        if key not in FIELDS:
            findings.error(path + (key,), f'"{key}" is no field of overflow_when{did_you_mean(key, FIELDS)} '
                                          f"(fields: {', '.join(FIELDS)})", at_key=True)
            ok = False
    waiting = value.get("waiting")
    if waiting is not None and (isinstance(waiting, bool) or not isinstance(waiting, int) or waiting < 1):
        findings.error(path + ("waiting",), f"waiting must be a whole number of callers from 1, not {describe(waiting)}")
        ok = False
    longest = value.get("longest_wait")
    seconds = None
    if longest is not None:
        seconds = parse_duration(longest)
        if seconds is None:
            findings.error(path + ("longest_wait",), f"longest_wait must be a duration such as 90s or 2m, not {describe(longest)}")
            ok = False
    no_free = value.get("no_free_agents", False)
    if not isinstance(no_free, bool):
        findings.error(path + ("no_free_agents",), f"no_free_agents must be true or false, not {describe(no_free)}")
        ok = False
    if ok and waiting is None and seconds is None and not no_free:
        findings.error(path, f'overflow_when of department "{department}" sets no limit: give waiting, longest_wait '
                             "or no_free_agents: true")
        ok = False
    return OverflowWhen(waiting, seconds, no_free) if ok else None
