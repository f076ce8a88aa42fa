"""`ivr demo`: simulated calls of the example line written into an installation, as the QA
web app will find them: call rows (source simulated) with the planned outcomes, events,
masked account numbers, survey scores, and a WAV recording of each call linked to it."""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import shutil
import wave
from collections import Counter
from pathlib import Path
from types import SimpleNamespace

import pytest
import sqlalchemy as sa
import yaml
from click.testing import CliRunner

from ivr.cli import cli
from ivr.settings.config import load_config
from ivr.demo.run import FOLDER, run_demo
from ivr.demo.plan import plan_calls
from ivr import events as ev
from ivr.errors import DemoError
from ivr.flow.project import load_flows
from ivr.prompts import audio
from ivr.store.db import create_db_engine
from ivr.store.models import Call, CallEvent, Recording

REPO = Path(__file__).resolve().parents[2]
NOW = dt.datetime(2026, 11, 24, 12, 0, tzinfo=dt.timezone.utc)  # its 30 days hold Nov 1 and Nov 11 (holidays)
CALLS, SEED = 40, 7
OUTCOMES = {ev.Outcome.ANSWERED, ev.Outcome.ABANDONED, ev.Outcome.VOICEMAIL, ev.Outcome.SELF_SERVICE, ev.Outcome.CALLBACK,
            ev.Outcome.UNANSWERED}


def make_installation(root: Path) -> Path:
    """config.yaml, data/ and flows/ of the repository; its built prompts when there are any
    (the demo builds whatever is missing)."""
    root.mkdir(parents=True, exist_ok=True)
    shutil.copy(REPO / "config.yaml", root / "config.yaml")
    shutil.copytree(REPO / "data", root / "data")
    shutil.copytree(REPO / "flows", root / "flows", ignore=shutil.ignore_patterns("*.test.yaml"))
    if (REPO / "prompts").is_dir():
        shutil.copytree(REPO / "prompts", root / "prompts")
    return root / "config.yaml"


def rows(root: Path, *columns) -> list:
    db = create_db_engine(f"sqlite:///{root / 'ivr.db'}")
    try:
        with db.connect() as conn:
            return conn.execute(sa.select(*columns)).all()
    finally:
        db.dispose()


def events(root: Path) -> list[SimpleNamespace]:
    """Every stored event, its columns as attributes (a Row's `.t` would be its own method)."""
    db = create_db_engine(f"sqlite:///{root / 'ivr.db'}")
    try:
        with db.connect() as conn:
            return [SimpleNamespace(**m) for m in conn.execute(sa.select(CallEvent)).mappings()]
    finally:
        db.dispose()


def plans_of(config_path: Path, calls: int = CALLS, seed: int = SEED):
    flows, config = load_flows([config_path.parent / "flows"], config_path)
    return plan_calls(flows, config, calls, seed=seed, days=30, now=NOW)


@pytest.fixture(scope="module")
def demo(tmp_path_factory):
    config_path = make_installation(tmp_path_factory.mktemp("demo") / "site")
    result = run_demo(config_path, calls=CALLS, seed=SEED, now=NOW)
    return config_path.parent, result, plans_of(config_path)


def calls_by_id(root: Path) -> dict:
    return {c.id: c for c in rows(root, Call)}


# --- the calls ---------------------------------------------------------------------------
def test_every_call_is_stored_as_simulated_with_its_planned_outcome(demo):
    root, result, plans = demo
    calls = calls_by_id(root)
    assert len(calls) == CALLS == result.calls == len(result.ids)
    assert {c.source for c in calls.values()} == {"simulated"}
    assert result.unexpected == []
    for call_id, plan in zip(result.ids, plans):
        call = calls[call_id]
        assert call.outcome == plan.expected, (call_id, plan.kind, plan.keys)
        assert call.caller == plan.caller.number and call.flow == "main"
        assert call.started_at == plan.at.astimezone(dt.timezone.utc)
        assert call.duration and call.ended_at and call.flow_version
    assert Counter(c.outcome for c in calls.values()) == result.outcomes


def test_the_mix_holds_every_outcome_and_no_failure(demo):
    root, result, _plans = demo
    outcomes = Counter(c.outcome for c in calls_by_id(root).values())
    assert set(outcomes) == OUTCOMES, outcomes
    assert outcomes[ev.Outcome.ANSWERED] > outcomes[ev.Outcome.UNANSWERED]


def test_callers_times_languages_and_agents_vary_as_a_real_line(demo):
    root, _result, plans = demo
    config = load_config(root / "config.yaml")
    calls = list(calls_by_id(root).values())
    numbers = Counter(c.caller for c in calls if c.caller)
    assert max(numbers.values()) >= 2 and len(numbers) >= CALLS // 3  # repeat callers among many
    assert {c.language for c in calls} == {"pl", "en"}
    assert any(c.department == "premium" for c in calls)  # a VIP from data/vip.csv
    states = {e.call_id: e.data["state"] for e in events(root) if e.type == ev.HOURS}
    assert set(states.values()) == {"open", "closed", "holiday"}
    zone = config.schedules["office"].timezone
    local = [c.started_at.astimezone(zone) for c in calls]
    weekend = {states[c.id] for c in calls if c.started_at.astimezone(zone).weekday() >= 5}
    evening = [c for c in calls if states[c.id] == "closed" and c.started_at.astimezone(zone).hour >= 18]
    assert "closed" in weekend and evening
    assert all(NOW - dt.timedelta(days=31) < c.started_at < NOW for c in calls)
    assert len({t.date() for t in local}) >= 10
    for call in calls:
        if call.agent is not None:
            assert call.agent in config.departments[call.department].members
            assert 20 <= call.talk <= 120 and 0 < call.queue_wait
    assert {p.kind for p in plans} >= {"after_hours", "weekend", "holiday", "faq", "menu_hangup", "vip"}


def test_survey_scores_are_answers_from_zero_to_ten(demo):
    root, _result, _plans = demo
    calls = list(calls_by_id(root).values())
    scores = [c.survey_score for c in calls if c.survey_score is not None]
    assert len(scores) >= 3 and all(0 <= s <= 10 for s in scores)
    assert all(c.outcome == ev.Outcome.ANSWERED for c in calls if c.survey_score is not None)
    asked = [e for e in events(root) if e.type == ev.SURVEY and e.data.get("asked")]
    assert len(asked) >= len(scores)


def test_account_numbers_are_nowhere_in_the_database(demo):
    root, _result, plans = demo
    accounts = [p.account for p in plans if p.account]
    assert len(accounts) >= 3
    # every column but the id (which holds the start time's digits)
    texts = [json.dumps({k: str(v) for k, v in c._mapping.items() if k != "id"}) for c in rows(root, Call)]
    texts += [json.dumps(e.data) for e in events(root)]
    for account in accounts:
        assert not any(account in text for text in texts), account
    support = [c for c in calls_by_id(root).values() if "*" * 7 in c.keys]
    assert support  # typed, and masked
    inputs = [e for e in events(root) if e.type == ev.INPUT]
    assert inputs and all(set(e.data["digits"]) == {"*"} and e.data["sensitive"] for e in inputs)


# --- the recordings ----------------------------------------------------------------------
def test_each_call_has_its_recording_linked(demo):
    root, _result, plans = demo
    zone = load_config(root / "config.yaml").schedules["office"].timezone
    calls = calls_by_id(root)
    links = {r.call_id: r.path for r in rows(root, Recording)}
    assert set(links) == set(calls)
    for call_id, call in calls.items():
        day = call.started_at.astimezone(zone).date().isoformat()
        assert links[call_id] == f"{FOLDER}/{day}/{call_id}.wav"
        path = root / "recordings" / links[call_id]
        with wave.open(str(path), "rb") as wav:
            assert (wav.getframerate(), wav.getnchannels(), wav.getsampwidth()) == (8000, 1, 2)
            assert abs(wav.getnframes() / 8000 - call.duration) < 0.5, call_id
    for call_id in list(calls)[:4]:
        assert not audio.inspect(root / "recordings" / links[call_id]).is_silent


def _pcm(path: Path, start: float, end: float) -> bytes:
    with wave.open(str(path), "rb") as wav:
        wav.setpos(int(start * 8000))
        return wav.readframes(int((end - start) * 8000))


def test_the_agent_speaks_and_typed_account_digits_are_muted(demo):
    root, result, plans = demo
    stored = events(root)
    checked_talk = checked_input = 0
    for call_id, plan in zip(result.ids, plans):
        path = root / "recordings" / FOLDER
        path = next(path.glob(f"*/{call_id}.wav"))
        mine = [e for e in stored if e.call_id == call_id]
        for e in mine:
            if e.type == ev.TRANSFER_RESULT and e.data["status"] == "answered":
                talk_start = e.t - e.data["talk"]  # the result comes when the talk is over
                assert audio.rms(_pcm(path, talk_start, talk_start + 6)) > audio.SILENCE_RMS
                checked_talk += 1
            if e.type == ev.INPUT and plan.account:
                typed = len(plan.account) + 1  # the digits and '#', a second each
                assert audio.rms(_pcm(path, e.t - typed + 0.05, e.t - 0.05)) == 0.0
                checked_input += 1
    assert checked_talk >= 10 and checked_input >= 3


# --- determinism and safety --------------------------------------------------------------
SNAPSHOT = (Call.id, Call.caller, Call.started_at, Call.outcome, Call.duration, Call.keys, Call.survey_score,
            Call.agent, Call.queue_wait, Call.talk, Call.language)


def test_the_same_seed_gives_the_same_calls_and_recordings(demo, tmp_path):
    root, result, _plans = demo
    other = make_installation(tmp_path / "again")
    # the same speech too: sox dithers, so two renderings of a line differ in their last bits
    shutil.rmtree(other.parent / "prompts", ignore_errors=True)
    shutil.copytree(root / "prompts", other.parent / "prompts")
    again = run_demo(other, calls=CALLS, seed=SEED, now=NOW)
    assert again.ids == result.ids
    assert sorted(rows(other.parent, *SNAPSHOT)) == sorted(rows(root, *SNAPSHOT))
    for call_id in result.ids[:5]:
        first = next((root / "recordings").rglob(f"{call_id}.wav")).read_bytes()
        second = next((other.parent / "recordings").rglob(f"{call_id}.wav")).read_bytes()
        assert hashlib.sha256(first).digest() == hashlib.sha256(second).digest()
    assert plans_of(other, seed=SEED + 1) != plans_of(other)


def test_if_empty_does_nothing_and_another_run_adds_new_calls(tmp_path):
    config_path = make_installation(tmp_path / "site")
    missing = tmp_path / "site" / "prompts" / "en" / "main" / "goodbye.wav"
    missing.unlink(missing_ok=True)
    first = run_demo(config_path, calls=6, seed=3, now=NOW, if_empty=True)
    assert first.calls == 6 and not first.skipped
    assert missing.is_file() and first.prompts_built >= 1  # built as `ivr prompts build` would
    files = {p: p.read_bytes() for p in (tmp_path / "site" / "recordings").rglob("*.wav")}
    assert len(files) == 6
    again = run_demo(config_path, calls=6, seed=3, now=NOW, if_empty=True)
    assert again.skipped and again.calls == 0 and "no demo calls added" in again.summary()
    assert len(rows(tmp_path / "site", Call.id)) == 6
    more = run_demo(config_path, calls=6, seed=3, now=NOW)
    assert more.calls == 6 and not set(more.ids) & set(first.ids)
    assert len(rows(tmp_path / "site", Call.id)) == 12
    assert all(p.read_bytes() == data for p, data in files.items())  # nothing overwritten
    assert len(list((tmp_path / "site" / "recordings").rglob("*.wav"))) == 12


def test_flows_other_than_the_example_line_are_refused(tmp_path):
    config_path = make_installation(tmp_path / "site")
    main = tmp_path / "site" / "flows" / "main.yaml"
    flow = yaml.safe_load(main.read_text(encoding="utf-8"))
    del flow["nodes"]["main_menu"]["options"]["4"]  # no way to the FAQ any more
    main.write_text(yaml.safe_dump(flow, allow_unicode=True, sort_keys=False), encoding="utf-8")
    with pytest.raises(DemoError, match='menu "main_menu" of flow "main" has no option to faq'):
        run_demo(config_path, calls=3, now=NOW)
    assert not (tmp_path / "site" / "recordings" / FOLDER).exists()


def test_the_command(tmp_path, monkeypatch):
    monkeypatch.delenv("IVR_CONFIG", raising=False)
    config_path = make_installation(tmp_path / "site")
    run = CliRunner().invoke(cli, ["--config", str(config_path), "demo", "--calls", "4", "--days", "10"],
                             catch_exceptions=False)
    assert run.exit_code == 0, run.output
    assert "4 simulated calls (" in run.stdout and "4 recordings" in run.stdout
    run = CliRunner().invoke(cli, ["--config", str(config_path), "demo", "--calls", "4", "--if-empty"],
                             catch_exceptions=False)
    assert run.exit_code == 0 and "no demo calls added" in run.stdout
    assert len(rows(tmp_path / "site", Call.id)) == 4
    broken = tmp_path / "site" / "flows" / "faq.yaml"
    broken.unlink()
    run = CliRunner().invoke(cli, ["--config", str(config_path), "demo", "--calls", "4"])
    assert run.exit_code == 1 and "faq" in run.stderr
