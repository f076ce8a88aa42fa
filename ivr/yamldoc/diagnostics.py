"""Findings about input files: where (file:line:col), what, and a likely fix."""

from __future__ import annotations

import difflib
from dataclasses import dataclass
from typing import TYPE_CHECKING, Iterable

if TYPE_CHECKING:  # the loader imports this module
    from ivr.yamldoc.loader import Document

ERROR = "error"
WARNING = "warning"


@dataclass(frozen=True, slots=True)
class Location:
    file: str
    line: int  # 1-based
    column: int  # 1-based

    def __str__(self) -> str:
        return f"{self.file}:{self.line}:{self.column}"


@dataclass(frozen=True, slots=True)
class Diagnostic:
    location: Location
    message: str
    severity: str = ERROR
    # Lower ranks sort first among findings of one severity: a broken structure
    # explains later findings, so it leads.
    rank: int = 1

    @property
    def is_error(self) -> bool:
        return self.severity == ERROR

    def __str__(self) -> str:
        prefix = "warning: " if self.severity == WARNING else ""
        return f"{self.location}: {prefix}{self.message}"

    def to_json(self) -> dict:
        return {
            "file": self.location.file,
            "line": self.location.line,
            "column": self.location.column,
            "severity": self.severity,
            "message": self.message,
        }


def sort_best_first(diagnostics: Iterable[Diagnostic]) -> list[Diagnostic]:
    """Errors before warnings, structural findings first, then in reading order."""
    return sorted(
        diagnostics,
        key=lambda d: (
            d.severity != ERROR,
            d.location.file,
            d.rank,
            d.location.line,
            d.location.column,
        ),
    )


def did_you_mean(word: object, candidates: Iterable[str]) -> str:
    """' (did you mean "x"?)' for the closest candidate, or '' when none is close."""
    if not isinstance(word, str):
        return ""
    pool = list(candidates)
    matches = difflib.get_close_matches(word, pool, n=1, cutoff=0.6)
    if not matches:
        lowered = {c.lower(): c for c in pool}
        if word.lower() in lowered:
            matches = [lowered[word.lower()]]
    return f' (did you mean "{matches[0]}"?)' if matches else ""


class Findings:
    """Collects the findings about one document; paths are turned into locations."""

    def __init__(self, doc: "Document"):
        self.doc = doc
        self.items: list[Diagnostic] = []

    def error(self, path: tuple, message: str, *, at_key: bool = False, rank: int = 1) -> None:
        self._add(path, message, ERROR, at_key, rank)

    def warning(self, path: tuple, message: str, *, at_key: bool = False, rank: int = 3) -> None:
        self._add(path, message, WARNING, at_key, rank)

    def _add(self, path: tuple, message: str, severity: str, at_key: bool, rank: int) -> None:
        where = self.doc.key_at(path) if at_key else self.doc.at(path)
        self.items.append(Diagnostic(where, message, severity, rank))

    @property
    def has_errors(self) -> bool:
        return any(d.is_error for d in self.items)
