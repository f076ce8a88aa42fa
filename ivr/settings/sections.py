"""What the parsers of config.yaml's sections share: a section's mapping with its unknown
keys reported, a TCP port, a duration, and the form of a secret (a reference to an environment
variable)."""

from __future__ import annotations

import re
from typing import Any, Optional
from urllib.parse import urlsplit

from ivr.yamldoc.diagnostics import Findings, did_you_mean
from ivr.yamldoc.loader import describe
from ivr.yamldoc.values import parse_duration

# A secret is never written into config.yaml, only the variable that holds it: "${NAME}".
# group 1 is the variable's name; a setting that must be a reference is matched whole (fullmatch)
ENV_REFERENCE = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)\}")


def section_fields(value: Any, path: tuple, allowed: tuple[str, ...], example: str, findings: Findings) -> Optional[dict]:
    """The mapping at `path` (such as ("asterisk", "agi")) with its unknown keys reported;
    None when it is absent, or no mapping (reported too)."""
    if value is None:
        return None
    where = ".".join(str(p) for p in path)
    if not isinstance(value, dict):
        findings.error(path, f"{where} must be a mapping such as {example}, not {describe(value)}")
        return None
    for key in value:
        if key not in allowed:
            findings.error(path + (key,), f'"{key}" is no field of {where}{did_you_mean(str(key), allowed)}', at_key=True)
    return value


def port_number(value: Any, path: tuple, what: str, findings: Findings) -> Optional[int]:
    """A TCP port, 1 to 65535; None once reported."""
    if isinstance(value, bool) or not isinstance(value, int) or not 1 <= value <= 65535:
        findings.error(path, f"{what} port must be a number from 1 to 65535, not {describe(value)}")
        return None
    return value


def secret_reference(value: Any, path: tuple, what: str, example: str, findings: Findings) -> Optional[str]:
    """A secret written as the environment variable that holds it (`example`, such as
    "${IVR_WEB_SECRET}"); None once reported."""
    if not isinstance(value, str) or not ENV_REFERENCE.fullmatch(value):
        # never echo it: it may be a real secret written into the file by mistake
        findings.error(path, f'{what} must name an environment variable, such as "{example}"; '
                       "a secret is never written into config.yaml")
        return None
    return value


def duration_seconds(value: Any, path: tuple, what: str, example: str, findings: Findings) -> Optional[float]:
    """A duration such as `example` (30s, 2m) or a plain number of seconds; None once reported."""
    seconds = parse_duration(value)
    if seconds is None:
        findings.error(path, f"{what} must be a duration such as {example}, not {describe(value)}")
    return seconds


def http_address_problem(url: Any, name: str, shape: str, stand_ins: tuple[tuple[str, str], ...] = ()) -> Optional[str]:
    """What makes `url` no http(s) address, or None: the checks every address in config.yaml
    shares. `shape` finishes "<name> must be ..."; `stand_ins` replace placeholders (such as
    a lookup's {number}) before the address is parsed; ${NAME} references stand for text."""
    if not isinstance(url, str) or not url.strip():
        return f"{name} must be {shape}, not {describe(url)}"
    if any(c.isspace() for c in url):
        return f"{name} must have no spaces or line breaks: {describe(url)}"
    parsed = ENV_REFERENCE.sub("x", url)
    for placeholder, stand_in in stand_ins:
        parsed = parsed.replace(placeholder, stand_in)
    try:
        parts = urlsplit(parsed)
        parts.port  # noqa: B018 - raises ValueError on a port that is no number
    except ValueError as exc:
        return f"{name} {describe(url)} is no address: {exc}"
    if parts.scheme not in ("http", "https"):
        return f"{name} must start with http:// or https://, not {describe(url)}"
    if not parts.hostname:
        return f"{name} {describe(url)} names no host"
    return None
