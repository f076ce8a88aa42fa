"""config.yaml: one file for the installation (Asterisk, database, departments, schedules).

It is loaded with the same marks as flow files, so its errors name file:line:col too.
Secrets are written as `${NAME}` and read from the environment only when used.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Mapping
from zoneinfo import ZoneInfo

from ivr.errors import ConfigError, MissingSecret, UsageError
from ivr.yamldoc.diagnostics import Diagnostic, Findings, did_you_mean, sort_best_first
from ivr.yamldoc.loader import Document, LoadError, describe, load_file
from ivr.settings.announce import Announcements, parse_announcements
from ivr.settings.asterisk import AsteriskSettings, parse_asterisk_settings
from ivr.settings.sections import ENV_REFERENCE
from ivr.settings.prompts import PromptSettings, parse_prompt_settings
from ivr.settings.qa import (QaSettings, RecordingSettings, WebSettings, parse_qa_settings, parse_recording_settings,
                              parse_web_settings)
from ivr.settings.hours import Schedule, parse_schedule
from ivr.settings.lines import LineSettings, parse_line_settings
from ivr.settings.segments import Segment, parse_segment
from ivr.settings.overflow import OverflowWhen, parse_overflow_when
from ivr.settings.crm import CrmSettings, parse_crm_settings

SECTIONS = ("asterisk", "database", "recordings", "prompts", "departments", "schedules", "segments", "web", "qa", "fallback", "lines", "crm")
STRATEGIES = ("ringall", "leastrecent", "fewestcalls", "random", "rrmemory", "linear", "wrandom", "rrordered")


@dataclass(frozen=True)
class Department:
    name: str
    queue: str
    members: tuple[str, ...] = ()
    overflow: str | None = None
    strategy: str = "ringall"
    overflow_when: OverflowWhen | None = None  # limits past which callers go to `overflow` at once
    announce: Announcements | None = None  # what waiting callers are told (ivr.settings.announce)


@dataclass(frozen=True)
class Config:
    path: str | None = None
    departments: Mapping[str, Department] = field(default_factory=dict)
    schedules: Mapping[str, Schedule] = field(default_factory=dict)
    segments: Mapping[str, Segment] = field(default_factory=dict)
    fallback: str | None = None  # department callers reach when the engine fails
    raw: Mapping[str, Any] = field(default_factory=dict)
    prompts: PromptSettings = field(default_factory=PromptSettings)
    # the installation's folder (config.yaml's): relative paths in the config start here
    root: Path = field(default_factory=Path.cwd)
    qa: QaSettings = field(default_factory=QaSettings)
    web: WebSettings = field(default_factory=WebSettings)
    recordings: RecordingSettings = field(default_factory=RecordingSettings)
    asterisk: AsteriskSettings = field(default_factory=AsteriskSettings)
    lines: LineSettings = field(default_factory=LineSettings)  # dialled numbers -> the flows calls start in
    crm: CrmSettings = field(default_factory=CrmSettings)  # the webhook ended calls are posted to

    @property
    def recordings_dir(self) -> Path:
        return self.root / self.recordings.dir

    @property
    def timezone(self) -> ZoneInfo:
        """The installation's time zone: its first schedule's (UTC without one). QA pages
        show times and count days in it."""
        office = next(iter(self.schedules.values()), None)
        return office.timezone if office is not None else ZoneInfo("UTC")

    @property
    def fallback_department(self) -> Department | None:
        if self.fallback and self.fallback in self.departments:
            return self.departments[self.fallback]
        return next(iter(self.departments.values()), None)


def expand_env(value: str, environ: Mapping[str, str] = os.environ) -> str:
    """Replace ${NAME} by the environment's value; a missing variable is a MissingSecret."""
    for match in ENV_REFERENCE.finditer(value):
        if match.group(1) not in environ:
            raise MissingSecret(match.group(1))
    return ENV_REFERENCE.sub(lambda m: environ[m.group(1)], value)


def find_config(start: Path | None = None) -> Path | None:
    """config.yaml of the installation: $IVR_CONFIG, else the nearest one upwards."""
    env = os.environ.get("IVR_CONFIG")
    if env:
        return Path(env)
    here = (start or Path.cwd()).resolve()
    if here.is_file():
        here = here.parent
    for folder in (here, *here.parents):
        candidate = folder / "config.yaml"
        if candidate.is_file():
            return candidate
    return None


def installation_config(path: str | Path | None) -> Config:
    """config.yaml of the installation a command works on: `path` (--config), else the
    nearest one upwards from here; UsageError when there is none."""
    found = path or find_config(Path.cwd())
    if found is None:
        raise UsageError("no config.yaml found here or above; name it with --config")
    return load_config(found)


def load_config(path: str | Path | None) -> Config:
    """Load and check config.yaml; raise ConfigError with every finding."""
    if path is None:
        return Config()
    config, findings = check_config(Path(path))
    errors = [d for d in findings if d.is_error]
    if errors:
        raise ConfigError(findings)
    assert config is not None
    return config


def check_config(path: Path, display: str | None = None, *, partial: bool = False) -> tuple[Config | None, list[Diagnostic]]:
    """Read and check config.yaml: the Config when it has no error, and every finding.

    With `partial`, the Config is returned despite errors (when the file could be read):
    it holds the departments, schedules and segments that passed, and `raw` the rest.
    """
    try:
        doc = load_file(path, display, strict=False, expected=f"a mapping of sections ({', '.join(SECTIONS)})")
    except LoadError as exc:
        return None, exc.diagnostics
    findings = Findings(doc)
    findings.items.extend(doc.problems)  # duplicate keys, reported with the rest
    config = _parse(doc, findings, path.resolve().parent)
    return (None if findings.has_errors and not partial else config), sort_best_first(findings.items)


def _parse(doc: Document, findings: Findings, base_dir: Path) -> Config:
    data = doc.data
    if not isinstance(data, dict):
        findings.error((), f"config.yaml must be a mapping of sections ({', '.join(SECTIONS)}), not {describe(data)}", rank=0)
        return Config()
    for key in data:
        if key not in SECTIONS:
            findings.error((key,), f'"{key}" is no section of config.yaml{did_you_mean(key, SECTIONS)}', at_key=True, rank=0)
    departments = _named_sections(data, "departments", findings, lambda n, v, p: _department(n, v, p, findings))
    # names as written: a department with an error of its own still exists for references
    declared = [str(n) for n in data["departments"]] if isinstance(data.get("departments"), dict) else []
    for dep in departments.values():
        if dep.overflow and dep.overflow not in declared:
            findings.error(("departments", dep.name, "overflow"), f'overflow of department "{dep.name}" goes to "{dep.overflow}", which is no department{did_you_mean(dep.overflow, declared)}')
        if dep.overflow_when is not None and not dep.overflow:
            findings.error(("departments", dep.name, "overflow_when"), f'department "{dep.name}" has overflow_when but no overflow: name the department that takes its callers at peaks (overflow: backup)', at_key=True)
    schedules = _named_sections(data, "schedules", findings, lambda n, v, p: parse_schedule(n, v, p, findings, base_dir))
    segments = _named_sections(data, "segments", findings, lambda n, v, p: parse_segment(n, v, p, findings, base_dir))
    fallback = data.get("fallback")
    if fallback is not None and fallback not in declared:
        findings.error(("fallback",), f"fallback department {describe(fallback)} is no department{did_you_mean(fallback, declared)}")
    if fallback is None and departments:
        findings.warning((), 'no "fallback" department: when the engine fails, callers go to the first department listed', rank=3)
    prompts = parse_prompt_settings(data.get("prompts"), findings)
    qa = parse_qa_settings(data.get("qa"), findings)
    web = parse_web_settings(data.get("web"), findings)
    recordings = parse_recording_settings(data.get("recordings"), findings)
    asterisk = parse_asterisk_settings(data.get("asterisk"), findings)
    lines = parse_line_settings(data.get("lines"), findings)
    crm = parse_crm_settings(data.get("crm"), findings)
    return Config(str(doc.file), departments, schedules, segments, fallback, data, prompts, base_dir, qa, web, recordings,
                  asterisk, lines, crm=crm)


def _named_sections(data: dict, section: str, findings: Findings, parse) -> dict[str, Any]:
    value = data.get(section)
    if value is None:
        return {}
    if not isinstance(value, dict):
        findings.error((section,), f"{section} must be a mapping of names to settings, not {describe(value)}")
        return {}
    result = {}
    for name, item in value.items():
        parsed = parse(str(name), item, (section, name))
        if parsed is not None:
            result[str(name)] = parsed
    return result


def _department(name: str, value: Any, path: tuple, findings: Findings) -> Department | None:
    if not isinstance(value, dict):
        findings.error(path, f'department "{name}" must be a mapping such as {{queue: {name}, members: [PJSIP/101]}}, not {describe(value)}')
        return None
    known = ("queue", "members", "overflow", "strategy", "description", "overflow_when", "announce")
    for key in value:
        if key not in known:
            findings.error(path + (key,), f'"{key}" is no field of a department{did_you_mean(key, known)}', at_key=True)
    queue = value.get("queue", name)
    if not isinstance(queue, str) or not re.match(r"^[A-Za-z0-9_-]+$", queue):
        findings.error(path + ("queue",), f"a queue name is letters, digits, '-' and '_', not {describe(queue)}")
        return None
    members = value.get("members", [])
    if not isinstance(members, list) or not all(isinstance(m, str) and "/" in m for m in members):
        findings.error(path + ("members",), f"members must be a list of Asterisk interfaces such as PJSIP/101, not {describe(members)}")
        return None
    strategy = value.get("strategy", "ringall")
    if strategy not in STRATEGIES:
        findings.error(path + ("strategy",), f"unknown queue strategy {describe(strategy)}{did_you_mean(strategy, STRATEGIES)} (strategies: {', '.join(STRATEGIES)})")
        return None
    overflow = value.get("overflow")
    overflow_when = None
    if "overflow_when" in value:
        overflow_when = parse_overflow_when(name, value["overflow_when"], path + ("overflow_when",), findings)
        if overflow_when is None:
            return None
    announce = parse_announcements(name, value.get("announce"), path + ("announce",), findings)
    if announce is None and value.get("announce") is not None:
        return None
    return Department(name, queue, tuple(members), str(overflow) if overflow is not None else None, strategy,
                      overflow_when, announce)
