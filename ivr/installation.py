"""An installation checked as a whole: config.yaml, its flows, and the recorded prompt
files those flows play.

The flow package checks flows against config.yaml; a recorded file (missing, unreadable,
silent) is a matter of the prompts package, which builds on flows. What runs calls or
shows them (`ivr validate`, the live runtime's reloads, the web app, the demo) loads
flows through here, so a broken recording is found wherever flows are loaded.
"""

from __future__ import annotations

from pathlib import Path
from typing import Iterable

from ivr.flow.model import FlowSet
from ivr.flow.project import Report, check_project, compiled
from ivr.prompts.check import recorded_findings
from ivr.settings.config import Config
from ivr.yamldoc.diagnostics import sort_best_first


def check_installation(paths: Iterable[str | Path], config_path: Path | None = None, *,
                       siblings: bool = True) -> Report:
    """`check_project`, plus the problems of the recorded files the named flows play."""
    report = check_project(paths, config_path, siblings=siblings)
    named = report.named_flows()
    if named:
        report.recorded = recorded_findings(named, report.config)
        report.diagnostics.extend(report.recorded)
        report.diagnostics[:] = sort_best_first(report.diagnostics)
    return report


def load_installation(paths: Iterable[str | Path], config_path: Path | None = None) -> tuple[FlowSet, Config]:
    """Every flow under `paths`, compiled, with config.yaml; FlowError/ConfigError on any
    error, a broken recorded prompt file included."""
    return compiled(check_installation(paths, config_path))
