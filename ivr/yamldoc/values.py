"""Parsers of the small value types of the flow format: durations, keypad keys, names."""

from __future__ import annotations

import re

DTMF_KEYS = "0123456789*#"
_DURATION = re.compile(r"^\s*(?:(\d+(?:\.\d+)?)h)?\s*(?:(\d+(?:\.\d+)?)m(?!s))?\s*(?:(\d+(?:\.\d+)?)s)?\s*(?:(\d+)ms)?\s*$")
_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_-]*$")


def parse_duration(value: object) -> float | None:
    """Seconds of `5s`, `3m`, `1h`, `1m30s`, `500ms` or a plain number; None if not one."""
    if isinstance(value, bool):
        return None
    if isinstance(value, (int, float)):
        return float(value) if value > 0 else None
    if not isinstance(value, str) or not value.strip():
        return None
    match = _DURATION.match(value)
    if not match or not any(match.groups()):
        return None
    hours, minutes, seconds, millis = (float(g) if g else 0.0 for g in match.groups())
    total = hours * 3600 + minutes * 60 + seconds + millis / 1000
    return total if total > 0 else None


def parse_key(value: object) -> str | None:
    """One keypad key ("0"-"9", "*", "#"); YAML's unquoted 1 counts as "1"."""
    if isinstance(value, bool):
        return None
    if isinstance(value, int) and 0 <= value <= 9:
        return str(value)
    if isinstance(value, str) and len(value) == 1 and value in DTMF_KEYS:
        return value
    return None


def is_name(value: object) -> bool:
    """A node, prompt, variable or flow name: letters, digits, '_' and '-'."""
    return isinstance(value, str) and bool(_NAME.match(value))
