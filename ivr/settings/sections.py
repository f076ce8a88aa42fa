"""What the parsers of config.yaml's sections share: a section's mapping with its unknown
keys reported, and the form of a secret (a reference to an environment variable)."""

from __future__ import annotations

import re
from typing import Any, Optional

from ivr.yamldoc.diagnostics import Findings, did_you_mean
from ivr.yamldoc.loader import describe

# A secret is never written into config.yaml, only the variable that holds it: "${NAME}".
ENV_REFERENCE = re.compile(r"\$\{[A-Za-z_][A-Za-z0-9_]*\}")  # whole value: fullmatch


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
