"""Journey tests: `*.test.yaml` files of cases that place simulated calls and check them.

Admins check a flow without a phone. Each case gives the call (time, caller, keys, how
queues end) and what must happen (prompts heard, path, transfer, voicemail, ...). The
runner also measures which edges of the flows the cases took, so a gap shows.
"""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterable, Optional

from ivr.channels.scripted import QueueScript, ScriptedChannel
from ivr.engine.channel import QueueLoad
from ivr.clock import VirtualClock
from ivr.engine import Engine
from ivr import events as ev
from ivr.engine.lookups import FAILED, MEMBER, NOT_MEMBER, LookupAnswer
from ivr.engine.sampling import SurveySampler
from ivr.errors import FlowError, UsageError
from ivr.yamldoc.diagnostics import Diagnostic, Findings, did_you_mean, sort_best_first
from ivr.yamldoc.loader import Document, LoadError, describe, load_file
from ivr.flow.model import FlowSet
from ivr.yamldoc.values import parse_duration
from ivr.settings.config import Config
from ivr.simulation.simulate import parse_time

CASE_FIELDS = ("name", "at", "caller", "keys", "language", "queue", "queues", "call_number", "barge_in", "variables", "segments", "expect")
EXPECT_FIELDS = ("heard", "heard_exactly", "path", "visits", "transfer", "transfers", "voicemail", "callback", "outcome", "survey", "language", "vars", "ends_at", "overflow")
QUEUE_LOAD_FIELDS = ("waiting", "longest_wait", "free_agents", "logged_in")
QUEUE_STATUSES = tuple(ev.TransferStatus)
OUTCOMES = tuple(ev.Outcome)


@dataclass
class Case:
    file: str
    line: int
    column: int
    name: str
    flow: str
    call: dict[str, Any]
    expect: dict[str, Any]

    @property
    def id(self) -> str:
        return f"{self.file}::{self.name}"


@dataclass
class CaseResult:
    case: Case
    problems: list[str]
    call: Any = None
    unused_keys: list[str] = field(default_factory=list)

    @property
    def passed(self) -> bool:
        return not self.problems


def find_journey_files(paths: Iterable[str | Path]) -> list[Path]:
    result = []
    for raw in paths:
        path = Path(raw)
        if path.is_dir():
            result.extend(sorted(path.rglob("*.test.yaml")))
        elif path.is_file():
            result.append(path)
        else:
            raise UsageError(f"{raw}: no such file or directory")
    return result


def load_cases(path: Path, flows: FlowSet, config: Config, display: Optional[str] = None) -> list[Case]:
    """The cases of one test file; a FlowError lists every mistake in it."""
    try:
        doc = load_file(path, display)
    except LoadError as exc:
        raise FlowError(exc.diagnostics) from None
    findings = Findings(doc)
    cases = _cases(doc, findings, flows, config)
    errors = [d for d in findings.items if d.is_error]
    if errors:
        raise FlowError(sort_best_first(errors))
    return cases


def _cases(doc: Document, findings: Findings, flows: FlowSet, config: Config) -> list[Case]:
    data = doc.data
    if not isinstance(data, dict):
        findings.error((), f"a journey test file must be a mapping with flow and cases, not {describe(data)}", rank=0)
        return []
    for key in data:
        if key not in ("flow", "cases", "description"):
            findings.error((key,), f'"{key}" is no field of a journey test file{did_you_mean(key, ["flow", "cases"])}', at_key=True)
    flow_id = data.get("flow")
    if flow_id not in flows:
        findings.error(("flow",), f"journey tests name flow {describe(flow_id)}, which is not among the flows{did_you_mean(flow_id, flows.flows)}")
        return []
    raw_cases = data.get("cases")
    if not isinstance(raw_cases, list) or not raw_cases:
        findings.error(("cases",), "cases must be a list of test cases")
        return []
    nodes = {n for f in flows.flows.values() for n in f.nodes}
    prompts = {p for f in flows.flows.values() for p in f.prompts}
    cases, names = [], set()
    for i, item in enumerate(raw_cases):
        path = ("cases", i)
        if not isinstance(item, dict):
            findings.error(path, f"case {i + 1} must be a mapping with name, keys and expect, not {describe(item)}")
            continue
        for key in item:
            if key not in CASE_FIELDS:
                findings.error(path + (key,), f'"{key}" is no field of a case{did_you_mean(key, CASE_FIELDS)}', at_key=True)
        name = str(item.get("name") or f"case {i + 1}")
        if name in names:
            findings.error(path + ("name",), f'two cases are named "{name}"')
        names.add(name)
        call = _call_settings(item, path, findings)
        queues = sorted({d.queue for d in config.departments.values()})
        for queue in call["queues"]:
            if queue not in queues:
                findings.error(path + ("queues", queue), f"queues names {describe(queue)}, which is no queue of config.yaml's departments{did_you_mean(queue, queues)}", at_key=True)
        call["segments"] = _given_lookups(item.get("segments"), path + ("segments",), findings, config)
        expect = item.get("expect")
        if not isinstance(expect, dict) or not expect:
            findings.error(path, f'case "{name}" needs expect: what must happen (heard, transfer, voicemail, ...)')
            continue
        for key, value in expect.items():
            where = path + ("expect", key)
            if key not in EXPECT_FIELDS:
                findings.error(where, f'"{key}" is nothing a case can expect{did_you_mean(key, EXPECT_FIELDS)}', at_key=True)
            elif key in ("heard", "heard_exactly", "path", "visits", "transfers"):
                if not isinstance(value, list):
                    findings.error(where, f"{key} must be a list, not {describe(value)}")
                    continue
                pool = prompts if key.startswith("heard") else nodes if key in ("path", "visits") else config.departments
                for j, name_ in enumerate(value):
                    if name_ not in pool:
                        findings.error(where + (j,), f"{key} names {describe(name_)}, which is no {'prompt' if key.startswith('heard') else 'node' if key != 'transfers' else 'department'}{did_you_mean(name_, pool)}")
            elif key in ("transfer", "callback") and value not in config.departments:
                findings.error(where, f"{key} names {describe(value)}, which is no department{did_you_mean(value, config.departments)}")
            elif key == "ends_at" and value not in nodes:
                findings.error(where, f"ends_at names {describe(value)}, which is no node{did_you_mean(value, nodes)}")
            elif key == "outcome" and value not in OUTCOMES:
                findings.error(where, f"outcome {describe(value)} is none of {', '.join(OUTCOMES)}{did_you_mean(value, OUTCOMES)}")
        line, column = doc.at(path).line, doc.at(path).column
        cases.append(Case(doc.file, line, column, name, flow_id, call, expect))
    return cases


def _call_settings(item: dict, path: tuple, findings: Findings) -> dict[str, Any]:
    call: dict[str, Any] = {}
    if "at" in item:
        try:
            call["at"] = parse_time(item["at"])
        except ValueError:
            findings.error(path + ("at",), f"at must be a time such as 2026-11-24T10:00:00+01:00, not {describe(item['at'])}")
    keys = item.get("keys", "")
    if isinstance(keys, int) and not isinstance(keys, bool):
        keys = str(keys)
    if isinstance(keys, list):
        keys = " ".join(str(k) for k in keys)
    if not isinstance(keys, str):
        findings.error(path + ("keys",), f'keys must be text such as "1 - 2", not {describe(keys)}')
        keys = ""
    call["keys"] = keys
    call["caller"] = str(item.get("caller", ""))
    call["language"] = item.get("language")
    call["barge_in"] = bool(item.get("barge_in", False))
    call["variables"] = {str(k): str(v) for k, v in (item.get("variables") or {}).items()}
    number = item.get("call_number", 1)
    if isinstance(number, bool) or not isinstance(number, int) or number < 1:
        findings.error(path + ("call_number",), f"call_number must be a whole number from 1, not {describe(number)}")
        number = 1
    call["call_number"] = number
    call["queue"] = _queue(item.get("queue", []), path + ("queue",), findings)
    call["queues"] = _queue_loads(item.get("queues", {}), path + ("queues",), findings)
    return call


def _queue_loads(value: Any, path: tuple, findings: Findings) -> dict[str, QueueLoad]:
    """`queues: {sales: {waiting: 6, longest_wait: 3m, free_agents: 0, logged_in: 2}}`: the
    live state of Asterisk queues (by queue name) that the call finds; unnamed ones have none."""
    example = "{sales: {waiting: 6, longest_wait: 3m, free_agents: 0}}"
    if not isinstance(value, dict):
        findings.error(path, f"queues must be a mapping of queue names to their state, such as {example}, not {describe(value)}")
        return {}
    loads = {}
    for queue, state in value.items():
        where = path + (queue,)
        if not isinstance(state, dict):
            findings.error(where, f"the state of queue {describe(queue)} must be a mapping such as {{waiting: 6}}, not {describe(state)}")
            continue
        numbers: dict[str, Any] = {}
        for key, raw in state.items():
            if key not in QUEUE_LOAD_FIELDS:
                findings.error(where + (key,), f'"{key}" is no field of a queue\'s state{did_you_mean(key, QUEUE_LOAD_FIELDS)} (fields: {", ".join(QUEUE_LOAD_FIELDS)})', at_key=True)
            elif key == "longest_wait":
                seconds = 0.0 if raw == 0 else parse_duration(raw)
                if seconds is None:
                    findings.error(where + (key,), f"longest_wait must be a duration such as 90s or 2m, not {describe(raw)}")
                else:
                    numbers[key] = seconds
            elif isinstance(raw, bool) or not isinstance(raw, int) or raw < 0:
                findings.error(where + (key,), f"{key} must be a whole number from 0, not {describe(raw)}")
            else:
                numbers[key] = raw
        waiting = numbers.get("waiting", 0)
        free = numbers.get("free_agents", 0)
        loads[str(queue)] = QueueLoad(waiting, numbers.get("longest_wait", 0.0), free,
                                      max(numbers.get("logged_in", free), free))
    return loads


LOOKUP_ANSWERS = {True: MEMBER, False: NOT_MEMBER, "fails": FAILED}


def _given_lookups(value: Any, path: tuple, findings: Findings, config: Config) -> dict[str, str]:
    """`segments: {gold: true}`: what the lookup of each lookup segment answers in this case
    (true, false, or fails); a journey test asks no server."""
    if value is None:
        return {}
    if not isinstance(value, dict):
        findings.error(path, f"segments must be a mapping such as {{gold: true}}, not {describe(value)}")
        return {}
    given = {}
    for name, answer in value.items():
        segment = config.segments.get(name)
        if segment is None:
            findings.error(path + (name,), f"segments names {describe(name)}, which is no segment of config.yaml{did_you_mean(name, config.segments)}", at_key=True)
        elif segment.lookup is None:
            findings.error(path + (name,), f'segment "{name}" is a list of numbers, not a lookup: give the case a caller: from it (or not)', at_key=True)
        elif not (isinstance(answer, bool) or answer == "fails"):
            findings.error(path + (name,), f"what the lookup of segment \"{name}\" answers is true, false or fails, not {describe(answer)}")
        else:
            given[name] = LOOKUP_ANSWERS[answer]
    return given


class GivenLookups:
    """The lookups of a journey case: its `segments:` answers, no request. A lookup the case
    gives no answer for fails (the caller goes the normal path) and is noted in `unanswered`."""

    def __init__(self, given: dict[str, str]):
        self.given = given
        self.unanswered: list[str] = []

    async def ask(self, segment: Any, caller: str) -> LookupAnswer:
        result = self.given.get(segment.name)
        if result is None:
            self.unanswered.append(segment.name)
            return LookupAnswer(segment.name, FAILED, 0, "the case gives no answer for this lookup")
        return LookupAnswer(segment.name, result, 0, "the case says it fails" if result == FAILED else None)


def _queue(value: Any, path: tuple, findings: Findings) -> list[QueueScript]:
    items = value if isinstance(value, list) else [value]
    result = []
    for i, item in enumerate(items):
        where = path + (i,) if isinstance(value, list) else path
        if isinstance(item, str):
            item = {"result": item}
        if not isinstance(item, dict) or item.get("result") not in QUEUE_STATUSES:
            findings.error(where, f"a queue result is one of {', '.join(QUEUE_STATUSES)} (or {{result: answered, wait: 30s, talk: 1m}}), not {describe(item)}")
            continue
        times = {}
        for key in ("wait", "talk"):
            if key in item:
                seconds = parse_duration(item[key])
                if seconds is None:
                    findings.error(where + (key,), f"{key} must be a duration such as 30s or 2m, not {describe(item[key])}")
                else:
                    times[key] = seconds
        result.append(QueueScript(item["result"], times.get("wait"), times.get("talk", 240.0)))
    return result


async def run_case(case: Case, flows: FlowSet, config: Config) -> CaseResult:
    settings = case.call
    lookups = GivenLookups(settings.get("segments", {}))
    engine = Engine(flows, config, sampler=SurveySampler(start=settings["call_number"] - 1), lookups=lookups)
    channel = ScriptedChannel(settings["keys"], VirtualClock(settings.get("at")), settings["queue"], settings["barge_in"],
                              queues=settings["queues"])
    problems: list[str] = []
    call = await engine.run(channel, case.flow, caller=settings["caller"], language=settings["language"],
                            variables=settings["variables"], clock=channel.clock)
    if "at" not in settings and any(e.type == ev.HOURS for e in call.events):
        problems.append("the call passed an hours node but the case gives no `at:`; its result would change with the day it runs")
    for name in dict.fromkeys(lookups.unanswered):
        problems.append(f"the call asked the lookup of segment {name} but the case gives no `segments: {{{name}: true}}` "
                        "(or false, or fails); a journey test asks no server")
    problems.extend(compare(case.expect, call, channel))
    if channel.unused_keys and not problems:
        problems.append(f"keys left unused: {' '.join(channel.unused_keys)} (the call ended before the flow asked for them)")
    return CaseResult(case, problems, call, channel.unused_keys)


def compare(expect: dict[str, Any], call: Any, channel: ScriptedChannel) -> list[str]:
    transfers = [e.data["department"] for e in call.events if e.type == ev.TRANSFER]
    overflows = [e.data.get("reason") for e in call.events if e.type == ev.TRANSFER and e.data.get("overflow")]
    actual = {
        "heard_exactly": call.heard,
        "path": call.path,
        "transfer": transfers[-1] if transfers else None,
        "transfers": transfers,
        "voicemail": next((e.data["mailbox"] for e in call.events if e.type == ev.VOICEMAIL), None),
        "callback": next((e.data.get("department") for e in call.events if e.type == ev.CALLBACK and e.data.get("accepted")), None),
        "outcome": call.outcome,
        "survey": call.survey_score,
        "language": call.language,
        "ends_at": call.path[-1] if call.path else None,
        "overflow": overflows[-1] if overflows else None,  # why the caller last overflowed
    }
    problems = []
    for key, wanted in expect.items():
        if key == "visits":
            if not _in_order(wanted, call.path):
                problems.append(f"visits: expected {' > '.join(wanted)} in this order, got path {' > '.join(call.path)}")
        elif key == "heard":
            # the prompts named, in this order; others may come between (use heard_exactly for all)
            if not _in_order(wanted, call.heard):
                problems.append(f"heard: expected {_show(wanted)} in this order, got {_show(call.heard)}")
        elif key == "vars":
            got = call.safe_vars()
            for name, value in wanted.items():
                if got.get(name) != str(value):
                    problems.append(f"vars.{name}: expected {value!r}, got {got.get(name)!r}")
        elif key == "survey" and wanted is None:
            if actual["survey"] is not None:
                problems.append(f"survey: expected no score, got {actual['survey']}")
        elif actual[key] != wanted and not (isinstance(wanted, (int, float)) and actual[key] == wanted):
            problems.append(f"{key}: expected {_show(wanted)}, got {_show(actual[key])}")
    return problems


def _in_order(wanted: list[str], path: list[str]) -> bool:
    it = iter(path)
    return all(any(step == w for step in it) for w in wanted)


def _show(value: Any) -> str:
    if isinstance(value, list):
        return "[" + ", ".join(str(v) for v in value) + "]"
    return "nothing" if value is None else str(value)


def coverage(results: Iterable[CaseResult], flows: FlowSet) -> dict[str, tuple[set, set]]:
    """Per flow: (every edge, edges the cases took); an edge is (node, label)."""
    taken: set[tuple[str, str, str]] = set()
    for result in results:
        if result.call is None:
            continue
        previous: dict[str, str] = {}
        for event in result.call.events:
            if event.type != ev.NODE_ENTERED:
                continue
            source = previous.get(event.flow)
            if source is not None and event.data["via"] not in ("start", "goto"):
                taken.add((event.flow, source, event.data["via"]))
            previous[event.flow] = event.node
    report = {}
    for flow in flows.flows.values():
        edges = {(src, label) for src, label, _dst in flow.edges()}
        report[flow.id] = (edges, {(s, l) for f, s, l in taken if f == flow.id and (s, l) in edges})
    return report


async def run_all(cases: list[Case], flows: FlowSet, config: Config) -> list[CaseResult]:
    return [await run_case(case, flows, config) for case in cases]


def run_files(files: list[Path], flows: FlowSet, config: Config, display=str) -> tuple[list[CaseResult], list[Diagnostic], float]:
    """Run every case of every file; broken test files are reported, the rest still run."""
    started = time.perf_counter()
    cases: list[Case] = []
    broken: list[Diagnostic] = []
    for path in files:
        try:
            cases.extend(load_cases(path, flows, config, display(path)))
        except FlowError as exc:
            broken.extend(exc.diagnostics)
    results = asyncio.run(run_all(cases, flows, config))
    return results, broken, time.perf_counter() - started
