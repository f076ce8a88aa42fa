"""config.yaml's `lines` checked against the flows: each number must start a call in a
flow that exists. Reported at the line in config.yaml (file:line:col), with a did-you-mean."""

from __future__ import annotations

from typing import Iterable

from ivr.settings.config import Config
from ivr.yamldoc.diagnostics import Diagnostic, did_you_mean


def line_findings(config: Config, flow_ids: Iterable[str]) -> list[Diagnostic]:
    """An error for every line of config.yaml that names no flow of `flow_ids`."""
    known = sorted(set(flow_ids))
    findings = []
    for what, flow, where in config.lines.written():
        if flow not in known:
            listed = ", ".join(known) if known else "none"
            findings.append(Diagnostic(where, f'{what} goes to flow "{flow}", which is no flow of the installation'
                                              f"{did_you_mean(flow, known)} (flows: {listed})"))
    return findings
