"""`ivr prompts check`: recorded files that are missing, unreadable or silent, and prompts
that were never built or are out of date. (A prompt lacking a language is a flow error,
which `ivr validate` reports as well.)"""

from __future__ import annotations

from typing import Iterable, Optional

from ivr.settings.config import Config
from ivr.yamldoc.diagnostics import Diagnostic, Location
from ivr.flow.model import Flow
from ivr.prompts.build import MANIFEST, _read_manifest, _relative, plan, prompts_dir
from ivr.prompts.recorded import recording_problem


def recorded_findings(flows: Iterable[Flow], config: Config) -> list[Diagnostic]:
    """Problems of the recorded files the flows use (also part of `ivr validate`)."""
    problems: dict[str, str | None] = {}
    languages: dict[tuple, list[str]] = {}
    for job in plan(flows, config, recorded_only=True):
        if str(job.source) not in problems:
            problems[str(job.source)] = recording_problem(job.source)
        if problems[str(job.source)]:
            languages.setdefault((job.location, job.prompt.name, job.source), []).append(job.language)
    return [
        Diagnostic(location, f'the recorded file of prompt "{name}" ({", ".join(langs)}), '
                             f"{_shown(source, config)}, {problems[str(source)]}")
        for (location, name, source), langs in languages.items()
    ]


def check_prompts(flows: Iterable[Flow], config: Config,
                  recorded: Optional[list[Diagnostic]] = None) -> list[Diagnostic]:
    """Recorded-file problems (`recorded`, when the caller has them already from
    check_installation: each file is converted once) and prompts not built or out of date."""
    flows = list(flows)
    found = recorded_findings(flows, config) if recorded is None else recorded
    base = prompts_dir(config)
    manifest = _read_manifest(base)
    stale = []
    for job in plan(flows, config):
        if job.source is not None and any(d.location == job.location and job.prompt.name in d.message for d in found):
            continue
        if not job.out.exists():
            stale.append(Diagnostic(job.location, f'prompt "{job.prompt.name}" ({job.language}) is not built; run `ivr prompts build`'))
        elif manifest.get(_relative(job.out, base)) != job.key:
            stale.append(Diagnostic(job.location, f'prompt "{job.prompt.name}" ({job.language}) changed since it was built; run `ivr prompts build`'))
    return found + stale


def _shown(path, config: Config) -> str:
    try:
        return str(path.resolve().relative_to(config.root))
    except ValueError:
        return str(path)


__all__ = ["check_prompts", "recorded_findings", "MANIFEST", "Location"]
