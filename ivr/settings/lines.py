"""The `lines` section of config.yaml: which flow a call starts in, by the number dialled.

```yaml
lines:
  "+48221234567": main        # a number (DID or extension) exactly as the trunk delivers it
  "800123456": faq
  "_4822123XXXX": main        # an Asterisk pattern: X any digit, Z 1-9, N 2-9, [1-5] a set, . one or more
  default: main               # every other number (the default: main)
```

`ivr asterisk-config` writes one extension of the dialplan's incoming context per line,
each handing its calls to `agi://HOST:PORT/<flow>` with the same recording and fail-safe;
every other number goes to the `default` flow. A number is written in quotes: YAML reads
an unquoted 800123456 as a number, and +48... or 0800... lose their `+` or leading zero.

Numbers are checked here against what an extension name of extensions.conf can hold, so
nothing from this section can break a line of the dialplan. Whether the flows exist is
the installation's check (`ivr.installation`): settings know nothing of flows. Each line
keeps where it was written, so that finding names config.yaml:line:col too.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any, Optional

from ivr.yamldoc.diagnostics import Findings, Location
from ivr.yamldoc.loader import describe
from ivr.yamldoc.values import is_name

DEFAULT_KEY = "default"
DEFAULT_FLOW = "main"  # the flow of every number without a line of its own
EXAMPLE = '{"+48221234567": main, "800123456": faq, default: main}'

# A number: digits, * and #, with an optional leading + (E.164). Dashes and blanks are
# left out on purpose: Asterisk ignores a dash in an extension name, so "22-123" would
# quietly be another number than the one written.
NUMBER = re.compile(r"\+?[0-9*#]+")
# A pattern: `_` then digits, *, #, +, X (0-9), Z (1-9), N (2-9), sets such as [1-5] or
# [137], and at the end `.` (one or more of anything) or `!` (zero or more).
PATTERN = re.compile(r"_(?:[0-9*#+XZNxzn]|\[(?:[0-9](?:-[0-9])?)+\])+[.!]?")


@dataclass(frozen=True)
class Line:
    """Calls to `number` (a number or an Asterisk pattern) start in flow `flow`."""

    number: str
    flow: str
    where: Optional[Location] = field(default=None, compare=False)  # in config.yaml, for findings

    @property
    def is_pattern(self) -> bool:
        return self.number.startswith("_")


@dataclass(frozen=True)
class LineSettings:
    """The whole `lines:` section: the lines in the order written, and the default flow."""

    lines: tuple[Line, ...] = ()
    default: str = DEFAULT_FLOW
    default_where: Optional[Location] = field(default=None, compare=False)  # None: not written

    @property
    def numbers(self) -> set[str]:
        """The extension names the lines take (patterns as Asterisk reads them: _x is _X)."""
        return {line.number.upper() if line.is_pattern else line.number for line in self.lines}

    def flow_for(self, number: str) -> str:
        """The flow a call to `number` starts in, as the generated dialplan decides: the line
        of that exact number, else the most specific pattern that matches, else the default."""
        matching = [line for line in self.lines if line.number == number and not line.is_pattern]
        if not matching:
            matching = sorted((line for line in self.lines if line.is_pattern and _matches(line.number, number)),
                              key=lambda line: _specificity(line.number))
        return matching[0].flow if matching else self.default

    def written(self) -> list[tuple[str, str, Location]]:
        """(what, flow, where) of every flow this section names in config.yaml."""
        found = [(f'line "{line.number}"', line.flow, line.where) for line in self.lines if line.where is not None]
        if self.default_where is not None:
            found.append(("the default line", self.default, self.default_where))
        return found


def parse_line_settings(value: Any, findings: Findings) -> LineSettings:
    if value is None:
        return LineSettings()
    if not isinstance(value, dict):
        findings.error(("lines",), f"lines must be a mapping of numbers to flows such as {EXAMPLE}, not {describe(value)}")
        return LineSettings()
    lines: list[Line] = []
    settings: dict[str, Any] = {}
    seen: dict[str, str] = {}
    for key, flow in value.items():
        path = ("lines", key)
        if key == DEFAULT_KEY:
            if _flow(flow, path, "the default line", findings):
                settings["default"], settings["default_where"] = flow, findings.doc.at(path)
            continue
        if not isinstance(key, str):
            findings.error(path, f"write the number {key} of a line in quotes, such as \"{key}\": YAML reads an "
                           "unquoted number as a number, and a leading + or 0 is lost", at_key=True)
            continue
        if not (NUMBER.fullmatch(key) or PATTERN.fullmatch(key)):
            findings.error(path, f'"{key}" is no number of a line: write digits (with * # and a leading +), or an '
                           "Asterisk pattern such as _4822123XXXX (X any digit, Z 1-9, N 2-9, [1-5] a set, "
                           "a final . one or more)", at_key=True)
            continue
        same = key.upper() if key.startswith("_") else key  # Asterisk reads _x as _X
        if same in seen:
            findings.error(path, f'line "{key}" is the same pattern as "{seen[same]}"', at_key=True)
            continue
        seen[same] = key
        if _flow(flow, path, f'line "{key}"', findings):
            lines.append(Line(key, flow, findings.doc.at(path)))
    return LineSettings(tuple(lines), **settings)


_CLASSES = {"X": "[0-9]", "Z": "[1-9]", "N": "[2-9]", ".": ".+", "!": ".*"}
_TOKEN = re.compile(r"\[[^\]]*\]|.")


def _tokens(pattern: str) -> list[str]:
    return _TOKEN.findall(pattern[1:].upper())


def _matches(pattern: str, number: str) -> bool:
    regex = "".join(_CLASSES.get(t, t if t.startswith("[") else re.escape(t)) for t in _tokens(pattern))
    return re.fullmatch(regex, number) is not None


def _specificity(pattern: str) -> list[int]:
    """How many characters each place of a pattern takes, place by place: Asterisk tries the
    pattern with the fewest first (a digit before N, N before X, X before `.`)."""
    sizes = []
    for token in _tokens(pattern):
        if token.startswith("["):
            digits = set()
            for low, high in re.findall(r"([0-9])(?:-([0-9]))?", token):
                digits.update(str(d) for d in range(int(low), int(high or low) + 1))
            sizes.append(len(digits))
        else:
            sizes.append({"X": 10, "Z": 9, "N": 8, ".": 100, "!": 101}.get(token, 1))
    return sizes


def _flow(value: Any, path: tuple, what: str, findings: Findings) -> bool:
    if not is_name(value):
        findings.error(path, f"{what} must name a flow, such as main, not {describe(value)}")
        return False
    return True
