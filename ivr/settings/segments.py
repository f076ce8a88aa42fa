"""Caller segments (VIP customers, say): who is in one, as config.yaml says.

A segment is either a list of phone numbers (written in config.yaml, or the first column of
a CSV file that a running server reads again when it changes) or an HTTP lookup that asks
another system (a CRM) about each caller, with a time-out. This module only reads and
checks the settings; the lookup itself runs in `ivr.lookup`.
"""

from __future__ import annotations

import csv
import io
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Optional

from ivr.settings.sections import ENV_REFERENCE, duration_seconds, http_address_problem
from ivr.yamldoc.diagnostics import Diagnostic, Findings, Location, WARNING, did_you_mean
from ivr.yamldoc.loader import describe
from ivr.yamldoc.values import parse_duration

_NON_DIGITS = re.compile(r"\D")
# what may stand in a phone number besides digits: "+48 (22) 555-01-01", "0048.22.555/0101"
_NUMBER_TEXT = re.compile(r"^[0-9+\s().\-/]+$")
SEGMENT_FIELDS = ("numbers", "lookup", "match_digits", "description")
LOOKUP_FIELDS = ("url", "timeout", "answer", "field", "cache", "headers")
ANSWERS = ("json", "status")
NUMBER_PLACEHOLDER = "{number}"
# the caller waits in silence while the lookup runs: a short wait, or none at all
MIN_TIMEOUT, MAX_TIMEOUT = 0.05, 5.0
MAX_CACHE = 86400.0
# header names that carry credentials: their values must come from the environment
_SECRET_HEADERS = ("authorization", "proxy-authorization", "cookie", "x-api-key", "api-key")


def normalize_number(number: str, match_digits: int) -> str:
    """The last `match_digits` digits of a number, so +48 22 123 45 67 equals 0221234567."""
    digits = _NON_DIGITS.sub("", number or "")
    return digits[-match_digits:] if len(digits) >= match_digits else digits


@dataclass(frozen=True)
class Lookup:
    """How a lookup segment asks about a caller (config.yaml `segments: {NAME: {lookup: ...}}`).

    `url` and the header values are as written: a `${NAME}` in them is read from the
    environment only when the lookup runs, so they may be shown and logged as they are.
    """

    url: str  # with {number}: the caller's number, URL-encoded
    timeout: float = 0.5  # seconds, for the whole request: connect, send, answer
    answer: str = "json"  # json: 200 with {field: true|false}; status: 200 in, 404 not in
    answer_field: str = "segment"  # config.yaml `field`: the JSON key that says true or false
    cache: float = 60.0  # seconds an answer is kept for the same number; 0: never
    headers: tuple[tuple[str, str], ...] = ()


@dataclass(frozen=True)
class Segment:
    name: str
    numbers: frozenset[str] = frozenset()
    match_digits: int = 9
    lookup: Optional[Lookup] = None
    source: Optional[Path] = field(default=None, compare=False)  # the CSV file the numbers came from

    def __contains__(self, caller: str) -> bool:
        """Whether a caller is among the numbers (a lookup segment has none: ask `ivr.lookup`)."""
        key = normalize_number(caller, self.match_digits)
        return bool(key) and key in self.numbers


def parse_segment(name: str, value: Any, path: tuple, findings: Findings, base_dir: Path) -> Segment | None:
    if not isinstance(value, dict):
        findings.error(path, f'segment "{name}" must be a mapping such as {{numbers: data/vip.csv}}, not {describe(value)}')
        return None
    for key in value:
        if key not in SEGMENT_FIELDS:
            findings.error(path + (key,), f'"{key}" is no field of a segment{did_you_mean(key, SEGMENT_FIELDS)}', at_key=True)
    digits = value.get("match_digits", 9)
    if isinstance(digits, bool) or not isinstance(digits, int) or not 4 <= digits <= 15:
        findings.error(path + ("match_digits",), f"match_digits must be a whole number from 4 to 15, not {describe(digits)}")
        return None
    if "lookup" in value:
        if "numbers" in value:
            findings.error(path + ("lookup",), f'segment "{name}" has both numbers and lookup: give one of them', at_key=True)
            return None
        lookup = parse_lookup(name, value["lookup"], path + ("lookup",), findings)
        return Segment(name, frozenset(), digits, lookup=lookup) if lookup is not None else None
    source = value.get("numbers")
    file: Optional[Path] = None
    if isinstance(source, list):
        raw = [str(n) for n in source]
    elif isinstance(source, str):
        file = base_dir / source
        raw = _numbers_file(name, source, file, path + ("numbers",), findings)
        if raw is None:
            return None
    else:
        findings.error(path if source is None else path + ("numbers",),
                       f'segment "{name}" needs numbers (a CSV file or a list of numbers) or a lookup', at_key=source is None)
        return None
    numbers = frozenset(k for k in (normalize_number(n, digits) for n in raw) if k)
    return Segment(name, numbers, digits, source=file)


def _numbers_file(name: str, source: str, file: Path, path: tuple, findings: Findings) -> Optional[list[str]]:
    """The numbers of a segment's CSV file; None once an error says why there are none."""
    try:
        data = file.read_bytes()
    except OSError as exc:
        findings.error(path, f'cannot read the numbers of segment "{name}" from {describe(source)}: '
                             f"{exc.strerror or exc}{_similar_file(source, file)}")
        return None
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        line = data[: exc.start].count(b"\n") + 1
        findings.error(path, f'the numbers of segment "{name}" in {describe(source)} are not UTF-8 text '
                             f"(line {line}: byte 0x{data[exc.start]:02x}); save the file as UTF-8")
        return None
    try:
        numbers, problems = parse_numbers_csv(text)
    except csv.Error as exc:
        findings.error(path, f'the numbers of segment "{name}" in {describe(source)} are no CSV: {exc}')
        return None
    shown = _shown_path(findings, source)
    for line, message in problems:
        # in the CSV file itself, so an editor jumps to the row
        findings.items.append(Diagnostic(Location(shown, line, 1), f'segment "{name}": {message}', WARNING, 3))
    return numbers


def _similar_file(source: str, file: Path) -> str:
    """A did-you-mean for a file name with a typo, among the files beside where it should be."""
    try:
        names = sorted(p.name for p in file.parent.iterdir() if p.is_file())
    except OSError:
        return ""
    return did_you_mean(source, [str(Path(source).parent / name) for name in names])


def _shown_path(findings: Findings, source: str) -> str:
    """The CSV file as the user names it: beside config.yaml as config.yaml is shown."""
    if Path(source).is_absolute():
        return source
    return str(Path(str(findings.doc.file)).parent / source)


def parse_numbers_csv(text: str) -> tuple[list[str], list[tuple[int, str]]]:
    """Phone numbers from the first column, and (line, message) for each row whose first
    cell is no phone number. A first row without digits is a header; blank rows and rows
    starting with '#' are skipped. csv.Error when the text is no CSV (a NUL byte, say)."""
    numbers: list[str] = []
    problems: list[tuple[int, str]] = []
    reader = csv.reader(io.StringIO(text))
    seen_row = False
    for row in reader:
        line = reader.line_num
        if not row or not any(cell.strip() for cell in row) or row[0].strip().startswith("#"):
            continue
        cell = row[0].strip()
        first, seen_row = not seen_row, True
        digits = sum(c.isdigit() for c in cell)
        if digits >= 4 and _NUMBER_TEXT.match(cell):
            numbers.append(cell)
        elif not (first and digits == 0):
            problems.append((line, f"{describe(cell)} is no phone number (at least 4 digits; '#' starts a comment); the row is left out"))
    return numbers, problems


def read_numbers_csv(text: str) -> list[str]:
    """Phone numbers from the first column; a header row and '#' comments are skipped."""
    return parse_numbers_csv(text)[0]


def parse_lookup(name: str, value: Any, path: tuple, findings: Findings) -> Optional[Lookup]:
    """The `lookup` of a segment, every mistake reported; None when there is one."""
    example = '{url: "http://crm.example/vip?number={number}", timeout: 500ms}'
    if not isinstance(value, dict):
        findings.error(path, f'lookup of segment "{name}" must be a mapping such as {example}, not {describe(value)}')
        return None
    ok = True
    for key in value:
        if key not in LOOKUP_FIELDS:
            findings.error(path + (key,), f'"{key}" is no field of a lookup{did_you_mean(str(key), LOOKUP_FIELDS)}', at_key=True)
            ok = False
    url = value.get("url")
    problem = url_problem(url)
    if problem:
        findings.error(path + ("url",) if "url" in value else path, f'lookup of segment "{name}": {problem}', at_key="url" not in value)
        ok = False
    timeout = 0.5
    if "timeout" in value:
        seconds = duration_seconds(value["timeout"], path + ("timeout",), "timeout of a lookup", "500ms or 1s", findings)
        if seconds is None:
            ok = False
        elif not MIN_TIMEOUT <= seconds <= MAX_TIMEOUT:
            findings.error(path + ("timeout",), f"timeout of a lookup must be from 50ms to 5s (the caller waits in silence meanwhile), not {describe(value['timeout'])}")
            ok = False
        else:
            timeout = seconds
    answer = value.get("answer", "json")
    if answer not in ANSWERS:
        findings.error(path + ("answer",), f"answer of a lookup is json (200 with {{\"segment\": true}}) or status (200 in, 404 not in), not {describe(answer)}{did_you_mean(answer, ANSWERS)}")
        ok = False
    answer_field = value.get("field", "segment")
    if not isinstance(answer_field, str) or not answer_field.strip():
        findings.error(path + ("field",), f"field of a lookup is the JSON key that says true or false, such as segment, not {describe(answer_field)}")
        ok = False
    elif "field" in value and answer == "status":
        findings.error(path + ("field",), "field is read only with answer: json; with answer: status the HTTP status decides", at_key=True)
        ok = False
    cache = 60.0
    if "cache" in value:
        raw = value["cache"]
        seconds = 0.0 if raw in (0, "0", "0s", False) else parse_duration(raw)
        if seconds is None or seconds > MAX_CACHE:
            findings.error(path + ("cache",), f"cache of a lookup must be a duration up to 1 day such as 1m, or 0 for none, not {describe(raw)}")
            ok = False
        else:
            cache = seconds
    headers = _headers(value.get("headers"), path + ("headers",), findings)
    if headers is None:
        ok = False
    if not ok:
        return None
    return Lookup(url, timeout, answer, answer_field, cache, headers or ())


def url_problem(url: Any) -> Optional[str]:
    """What is wrong with a lookup's URL template, or None."""
    example = '"http://crm.example/vip?number={number}"'
    problem = http_address_problem(url, "url", f"an http or https address with {{number}}, such as {example}",
                                   stand_ins=((NUMBER_PLACEHOLDER, "0"),))
    if problem is not None:
        return problem
    if NUMBER_PLACEHOLDER not in url:
        return f"url must hold {{number}} where the caller's number goes, such as {example}"
    stray = re.sub(r"\$\{[A-Za-z_][A-Za-z0-9_]*\}", "", url.replace(NUMBER_PLACEHOLDER, ""))
    if "{" in stray or "}" in stray:
        return f"url may hold only {{number}} and ${{NAME}} in braces, not {describe(url)}"
    if NUMBER_PLACEHOLDER in url.split("?", 1)[0].split("//", 1)[-1].split("/", 1)[0]:
        return "url must not put {number} into the host: the caller chooses it"
    return None


def _headers(value: Any, path: tuple, findings: Findings) -> Optional[tuple[tuple[str, str], ...]]:
    if value is None:
        return ()
    if not isinstance(value, dict):
        findings.error(path, f'headers of a lookup must be a mapping such as {{Authorization: "Bearer ${{CRM_TOKEN}}"}}, not {describe(value)}')
        return None
    result = []
    ok = True
    for key, text in value.items():
        if not isinstance(key, str) or not re.fullmatch(r"[A-Za-z0-9-]+", key):
            findings.error(path + (key,), f"{describe(key)} is no HTTP header name", at_key=True)
            ok = False
        elif not isinstance(text, str) or "\n" in text or "\r" in text:
            findings.error(path + (key,), f"the value of header {key} must be one line of text")
            ok = False
        elif key.lower() in _SECRET_HEADERS and not ENV_REFERENCE.search(text):
            # never echo it: it may be a real secret written into the file by mistake
            findings.error(path + (key,), f'header {key} carries a secret: write it as an environment variable, '
                                          'such as "Bearer ${CRM_TOKEN}"; a secret is never written into config.yaml')
            ok = False
        else:
            result.append((key, text))
    return tuple(result) if ok else None

