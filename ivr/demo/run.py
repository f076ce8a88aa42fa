"""`ivr demo --calls N`: an installation filled with simulated calls, so the QA web app has
calls to show from its first start.

Each call of the plan (`ivr.demo.plan`: callers, times, keys, queue results, survey
answers, all from the seed) runs through the real Engine on the scripted channel with a
virtual clock, as `ivr simulate --record` runs one: its events go to the database through
CallWriter (source "simulated"), and what the caller heard goes to
`<recordings>/simulated/<YYYY-MM-DD>/<call id>.wav`, linked to the call. Nothing is
overwritten: a run adds calls with new ids; `if_empty` leaves a database with calls alone.

    result = run_demo(Path("config.yaml"), calls=200, seed=DEFAULT_SEED, days=30)
    print(result.summary())
"""

from __future__ import annotations

import asyncio
import datetime as dt
import os
import random
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterable, Optional

from sqlalchemy import Engine as DbEngine
from sqlalchemy import select

from ivr.channels.call_audio import CallAudio
from ivr.clock import VirtualClock
from ivr.settings.config import Config
from ivr.demo.audio import AgentSpeech, DemoChannel
from ivr.demo.plan import PlannedCall, plan_calls
from ivr.engine import Engine
from ivr.engine.sampling import SurveySampler
from ivr.errors import DemoError, PromptError
from ivr.flow.model import FlowSet
from ivr.installation import load_installation
from ivr.filemodes import recordings_root
from ivr.prompts.build import build, plan as plan_prompts
from ivr.prompts.library import PromptLibrary

DEFAULT_SEED = 20261124
DEFAULT_DAYS = 30
FLOW = "main"
FOLDER = "simulated"  # under the recordings folder: never mixed with live recordings
FLUSH_EVERY = 50  # calls between waits for the writer, so a big run never outgrows its queue

Progress = Callable[[int, int], Any]  # (calls done, calls in all)


@dataclass
class DemoResult:
    calls: int = 0  # calls added
    outcomes: Counter = field(default_factory=Counter)
    recordings: int = 0  # WAV files written
    bytes: int = 0  # their size on disk
    seconds: float = 0.0  # wall-clock time of the run
    prompts_built: int = 0  # prompts that had to be rendered first
    skipped: bool = False  # if_empty and the database had calls: nothing done
    index_report: Any = None  # the recordings indexer's report; None when it is not installed
    ids: list[str] = field(default_factory=list)
    unexpected: list[str] = field(default_factory=list)  # calls whose outcome is not their journey's
    recordings_dir: Optional[Path] = None

    def summary(self) -> str:
        if self.skipped:
            return "the database already holds calls; no demo calls added"
        mix = ", ".join(f"{count} {outcome}" for outcome, count in sorted(self.outcomes.items(), key=lambda i: -i[1]))
        where = self.recordings_dir / FOLDER if self.recordings_dir is not None else FOLDER
        line = (f"{self.calls} simulated calls ({mix}); {self.recordings} recordings, "
                f"{self.bytes / 1e6:.1f} MB in {where}; {self.seconds:.1f}s")
        if self.prompts_built:
            line = f"{self.prompts_built} prompt file(s) built first\n" + line
        if self.unexpected:
            line += f"\n{len(self.unexpected)} call(s) ended other than planned, e.g. {self.unexpected[0]}"
        if self.index_report is not None and hasattr(self.index_report, "summary"):
            line += f"\nrecordings index: {self.index_report.summary()}"
        return line


def run_demo(config_path: Path, *, calls: int = 200, seed: int = DEFAULT_SEED, days: int = DEFAULT_DAYS,
             if_empty: bool = False, now: Optional[dt.datetime] = None, flows_dir: Optional[Path] = None,
             progress: Optional[Progress] = None, index_progress: Optional[Progress] = None) -> DemoResult:
    """Add `calls` simulated calls to the installation of `config_path` (its database and
    recordings folder; flows from `flows_dir`, default the flows/ folder beside it).

    `progress(done, total)` is called after each call, `index_progress(done, total)` by the
    recordings indexer; `now` fixes the end of the time window (tests).
    Raises DemoError, PromptError, StoreError, FlowError or ConfigError.
    """
    from ivr.store import CallWriter, database_url, init_db

    began = time.monotonic()
    folder = flows_dir or Path(config_path).resolve().parent / "flows"
    if not folder.is_dir():
        raise DemoError(f"no flows folder at {folder}; the demo runs the example flows (flows/main.yaml)")
    flows, config = load_installation([folder], config_path)
    result = DemoResult(recordings_dir=config.recordings_dir)
    recordings_root(config.recordings_dir)  # 2770 when the demo makes it: Asterisk records there later
    plans = plan_calls(flows, config, calls, seed=seed, days=days, now=now)  # flows not the example's: stop here
    db = init_db(database_url(config), root=config.root)
    try:
        if if_empty and _has_calls(db):
            result.skipped = True
            return result
        result.prompts_built = ensure_prompts(flows, config)
        speech = AgentSpeech(config, flows[FLOW].languages)
        speech.prepare()
        ids = _new_ids(db, config, plans)
        writer = CallWriter(db, source="simulated", recordings_dir=config.recordings_dir)
        try:
            asyncio.run(_run_calls(plans, ids, flows, config, speech, writer, result, progress))
        finally:
            done = writer.close(timeout=60)
        stats = writer.stats
        if not done or stats.dropped:
            raise DemoError(f"{stats.dropped or stats.pending} call records could not be written to the database "
                            f"({stats.last_error or 'time-out'}); the recordings are in place")
    finally:
        db.dispose()
    result.index_report = index_recordings(config, index_progress, now)
    result.seconds = time.monotonic() - began
    return result


def ensure_prompts(flows: FlowSet, config: Config) -> int:
    """Build the prompts not built yet (as `ivr prompts build` does); how many were put in place."""
    built = build(plan_prompts(flows.flows.values(), config), config)
    if built.errors:
        raise PromptError(f"the prompts cannot be built ({built.errors[0]}); "
                          "run `ivr prompts build` to see every problem")
    return built.rendered + built.reused


async def _run_calls(plans: list[PlannedCall], ids: list[str], flows: FlowSet, config: Config, speech: AgentSpeech,
                     writer: Any, result: DemoResult, progress: Optional[Progress]) -> None:
    engine = Engine(flows, config, sampler=SurveySampler())  # one sampler: every 10th call is surveyed
    library = PromptLibrary(flows, config)  # keeps each prompt's audio in memory after its first call
    for n, (plan, call_id) in enumerate(zip(plans, ids), 1):
        channel = DemoChannel(list(plan.keys), VirtualClock(plan.at), plan.queue, plan.barge_in,
                              voicemail_seconds=plan.voicemail_seconds, audio=CallAudio(library),
                              speech=speech, rng=random.Random(plan.seed))
        # a premium customer of the English line is greeted in English (no language menu for them)
        language = plan.caller.language if plan.caller.vip else None
        call = await engine.run(channel, FLOW, caller=plan.caller.number, language=language, clock=channel.clock,
                                call_id=call_id, on_event=writer.submit,
                                details={"source": "simulated", "caller_name": plan.caller.name})
        path = recording_path(config, call_id, plan.at)
        ended = plan.at + dt.timedelta(seconds=call.elapsed())
        assert channel.audio is not None
        try:
            channel.audio.write(path)
            # the file's time is the end of its call, as a live recording's is (indexer, retention)
            os.utime(path, (ended.timestamp(), ended.timestamp()))
        except OSError as exc:
            raise DemoError(f"cannot write the recording {path}: {exc.strerror or exc}") from None
        writer.link_recording(call_id, path, at=ended)
        result.calls += 1
        result.outcomes[call.outcome] += 1
        if call.outcome != plan.expected:  # the flow no longer leads where the journey was planned to go
            result.unexpected.append(f"{call_id} ({plan.kind}): {call.outcome}, planned {plan.expected}")
        result.recordings += 1
        result.bytes += path.stat().st_size
        result.ids.append(call_id)
        if n % FLUSH_EVERY == 0:
            await asyncio.get_running_loop().run_in_executor(None, writer.flush, 60)
        if progress is not None:
            progress(n, len(plans))


def recording_path(config: Config, call_id: str, at: dt.datetime) -> Path:
    """Where a demo call's recording goes: the call's date (local to the line) as the folder."""
    return config.recordings_dir / FOLDER / at.date().isoformat() / f"{call_id}.wav"


def _has_calls(db: DbEngine) -> bool:
    from ivr.store.models import Call

    with db.connect() as conn:
        return conn.execute(select(Call.id).limit(1)).first() is not None


def _new_ids(db: DbEngine, config: Config, plans: Iterable[PlannedCall]) -> list[str]:
    """Ids like Asterisk's uniqueid (start time, a number), none in the database or on disk yet."""
    from ivr.store.models import Call

    plans = list(plans)
    ids = [f"sim-{int(p.at.timestamp())}.{p.index}" for p in plans]
    with db.connect() as conn:
        taken: set[str] = set()
        for start in range(0, len(ids), 500):
            chunk = ids[start:start + 500]
            taken.update(conn.execute(select(Call.id).where(Call.id.in_(chunk))).scalars())
        for i, plan in enumerate(plans):
            again = 1
            while ids[i] in taken or recording_path(config, ids[i], plan.at).exists():
                again += 1
                ids[i] = f"sim-{int(plan.at.timestamp())}.{plan.index}-{again}"
                if conn.execute(select(Call.id).where(Call.id == ids[i])).first() is not None:
                    taken.add(ids[i])
    return ids


def index_recordings(config: Config, progress: Optional[Progress] = None, now: Optional[dt.datetime] = None) -> Any:
    """Let the recordings indexer store size, duration, checksum and peaks of the new files.

    The files carry their call's end as their time; with a `now` of the demo's own (tests
    that fix the window, perhaps ahead of this machine's clock) the indexer must not take
    them for files still being written."""
    from ivr.recordings.index import index_recordings as index

    real = dt.datetime.now(dt.timezone.utc)
    return index(config, progress=progress, now=max(now, real) if now is not None else None)
