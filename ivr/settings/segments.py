"""Caller segments (VIP customers, say): lists of phone numbers from CSV files or config."""

from __future__ import annotations

import csv
import io
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ivr.yamldoc.diagnostics import Findings, did_you_mean
from ivr.yamldoc.loader import describe

_NON_DIGITS = re.compile(r"\D")


def normalize_number(number: str, match_digits: int) -> str:
    """The last `match_digits` digits of a number, so +48 22 123 45 67 equals 0221234567."""
    digits = _NON_DIGITS.sub("", number or "")
    return digits[-match_digits:] if len(digits) >= match_digits else digits


@dataclass(frozen=True)
class Segment:
    name: str
    numbers: frozenset[str]
    match_digits: int = 9

    def __contains__(self, caller: str) -> bool:
        key = normalize_number(caller, self.match_digits)
        return bool(key) and key in self.numbers


def parse_segment(name: str, value: Any, path: tuple, findings: Findings, base_dir: Path) -> Segment | None:
    if not isinstance(value, dict):
        findings.error(path, f'segment "{name}" must be a mapping such as {{numbers: data/vip.csv}}, not {describe(value)}')
        return None
    for key in value:
        if key not in ("numbers", "match_digits", "description"):
            findings.error(path + (key,), f'"{key}" is no field of a segment{did_you_mean(key, ["numbers", "match_digits"])}', at_key=True)
    digits = value.get("match_digits", 9)
    if isinstance(digits, bool) or not isinstance(digits, int) or not 4 <= digits <= 15:
        findings.error(path + ("match_digits",), f"match_digits must be a whole number from 4 to 15, not {describe(digits)}")
        return None
    source = value.get("numbers")
    if isinstance(source, list):
        raw = [str(n) for n in source]
    elif isinstance(source, str):
        file = base_dir / source
        try:
            raw = read_numbers_csv(file.read_text(encoding="utf-8"))
        except OSError:
            findings.error(path + ("numbers",), f'cannot read the numbers of segment "{name}" from {describe(source)}')
            return None
    else:
        findings.error(path if source is None else path + ("numbers",), f'segment "{name}" needs numbers: a CSV file or a list of numbers', at_key=source is None)
        return None
    numbers = frozenset(k for k in (normalize_number(n, digits) for n in raw) if k)
    return Segment(name, numbers, digits)


def read_numbers_csv(text: str) -> list[str]:
    """Phone numbers from the first column; a header row and '#' comments are skipped."""
    numbers = []
    for row in csv.reader(io.StringIO(text)):
        if not row or row[0].strip().startswith("#"):
            continue
        cell = row[0].strip()
        if sum(c.isdigit() for c in cell) >= 4:
            numbers.append(cell)
    return numbers
