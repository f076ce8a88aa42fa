"""The corpus of broken flows: every finding, its line and column, and nothing else.

Each `invalid/NN_short_name.yaml` is a flow with deliberate mistakes. Its leading comment
lines name what the checker must report, one finding per line:

    # expect: 12:9: option "2" of menu "main_menu" goes to "complants", ...
    # expect: 23:3: warning: node "old_offer" is never reached from start "main_menu"

A file is checked on its own through the public API, with the installation's
config.yaml and the valid flows of `invalid/targets/` (what its goto nodes reach). The
findings must be exactly the expected ones: none missing, none extra, none twice, and
errors before warnings.
"""

from __future__ import annotations

import re
from collections import Counter
from pathlib import Path

import pytest

from ivr.flow.project import check_project

REPO = Path(__file__).resolve().parents[2]
CONFIG = REPO / "config.yaml"
CORPUS = Path(__file__).resolve().parent / "invalid"
TARGETS = sorted((CORPUS / "targets").glob("*.yaml"))
FILE_NAME = re.compile(r"^\d\d_[a-z0-9_]+\.yaml$")
FILES = sorted(p for p in CORPUS.glob("*.yaml") if FILE_NAME.match(p.name))
EXPECT = re.compile(r"^# expect: (\d+:\d+: .+)$")


def expected_findings(path: Path) -> list[str]:
    """The `line:col: [warning: ]message` lines a corpus file expects."""
    lines = path.read_text(encoding="utf-8").splitlines()
    return [m.group(1) for m in (EXPECT.match(line) for line in lines) if m]


def _check(path: Path):
    return check_project([path, *TARGETS], CONFIG, siblings=False)


def _shown(finding, path: Path) -> str:
    """`line:col: message` for a finding in `path`; other files keep their name."""
    text = str(finding)
    file = finding.location.file
    if Path(file).resolve() == path.resolve():
        return text[len(file) + 1 :]
    return text


@pytest.fixture(autouse=True)
def _in_repository(monkeypatch: pytest.MonkeyPatch) -> None:
    # Paths in findings are shown relative to the working folder (config.yaml among
    # them), so the expectations hold from wherever pytest is started.
    monkeypatch.chdir(REPO)


def test_the_corpus_is_large_enough() -> None:
    assert len(FILES) >= 25
    several = [p.name for p in FILES if sum(not e.split(": ", 1)[1].startswith("warning:") for e in expected_findings(p)) >= 3]
    assert len(several) >= 3, f"files with 3+ errors: {several}"


def test_every_file_of_the_corpus_is_named_nn_short_name() -> None:
    misnamed = [p.name for p in CORPUS.glob("*") if p.is_file() and not FILE_NAME.match(p.name)]
    assert misnamed == []
    numbers = [p.name[:2] for p in FILES]
    assert len(numbers) == len(set(numbers)), "two files share a number"


def test_the_goto_targets_are_valid_flows() -> None:
    report = check_project(TARGETS, CONFIG, siblings=False)
    assert [str(d) for d in report.diagnostics] == []
    assert set(report.flows) == {"billing"}


@pytest.mark.parametrize("path", FILES, ids=[p.stem for p in FILES])
def test_broken_flow_reports_exactly_the_expected_findings(path: Path) -> None:
    expected = expected_findings(path)
    assert expected, f"{path.name} names no '# expect:' finding"

    report = _check(path)
    found = [_shown(d, path) for d in report.diagnostics]

    missing = sorted((Counter(expected) - Counter(found)).elements())
    extra = sorted((Counter(found) - Counter(expected)).elements())
    assert (missing, extra) == ([], []), "\n".join(
        [f"{path.name}:", *[f"  missing: {m}" for m in missing], *[f"  extra:   {e}" for e in extra]]
    )

    severities = [d.is_error for d in report.diagnostics]
    assert severities == sorted(severities, reverse=True), "an error is listed after a warning"

    # Only warnings: the flow still compiles. Any error: it does not.
    has_errors = any(severities)
    assert report.ok is not has_errors
    assert ("main" in report.flows) is not has_errors
