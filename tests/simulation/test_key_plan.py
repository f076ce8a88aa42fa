"""The key plan of `ivr call` (ivr.simulation.key_plan), without Asterisk.

Each plan is checked against a model of the live line (`LiveLine`): keys arrive at their
planned moments, a prompt stops at a key among its escape digits, a wait takes a key that
arrives within it, and a key arriving while nothing listens is lost, as Asterisk drops it.
A plan is right when the modelled call takes every key, at the node it was meant for,
even when the line runs somewhat behind or ahead of the plan.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import re
import shutil
from dataclasses import dataclass, field
from typing import Optional

import pytest
import yaml
from click.testing import CliRunner

from helpers import REPO
from ivr import events as ev
from ivr.channels.scripted import ScriptedChannel, prompt_seconds
from ivr.cli import cli
from ivr.clock import VirtualClock
from ivr.engine import Engine
from ivr.engine.channel import TransferRequest, TransferResult
from ivr.errors import CallerHangup, UsageError
from ivr.flow.model import Prompt
from ivr.installation import load_installation
from ivr.simulation.key_plan import LEAD, check_tokens, plan_keys
from ivr.testbed.sipp import MESSAGE_AFTER_TONE

WARSAW = dt.timezone(dt.timedelta(hours=1))  # November and December: CET
OPEN = [dt.datetime(2026, 11, 24, 10, 0, tzinfo=WARSAW),  # a Tuesday morning
        dt.datetime(2026, 11, 28, 12, 30, tzinfo=WARSAW)]  # a Saturday, before 13:00
CLOSED = [dt.datetime(2026, 11, 24, 22, 0, tzinfo=WARSAW),  # a Tuesday night
          dt.datetime(2026, 11, 29, 10, 0, tzinfo=WARSAW),  # a Sunday
          dt.datetime(2026, 12, 25, 10, 0, tzinfo=WARSAW)]  # Christmas Day
CALLER = "48221234567"  # `ivr call`'s default number: no VIP


def seconds(prompt: Prompt, language: str) -> float:
    return prompt_seconds(prompt.text(language))


@pytest.fixture(scope="module")
def engine() -> Engine:
    flows, config = load_installation([REPO / "flows"], REPO / "config.yaml")
    return Engine(flows, config)


@dataclass
class LiveLine(ScriptedChannel):
    """The live line as modelled here (see the module docstring); the call ends at its
    first transfer, as the plan does."""

    arrivals: list[tuple[float, str]] = field(default_factory=list)
    lost: list[tuple[float, str]] = field(default_factory=list)
    department: Optional[str] = None

    def _drop_before(self, moment: float) -> None:
        while self.arrivals and self.arrivals[0][0] < moment:
            self.lost.append(self.arrivals.pop(0))

    async def play(self, prompt: Prompt, language: str, escape: str = "") -> Optional[str]:
        start = self.clock.elapsed()
        end = start + seconds(prompt, language)
        self._drop_before(start)
        if self.arrivals and self.arrivals[0][0] < end and self.arrivals[0][1] in escape:
            at, key = self.arrivals.pop(0)
            self.clock.advance(at - start)
            return key
        self._drop_before(end)  # a prompt ignores keys that are not its escape digits
        self.clock.advance(end - start)
        return None

    async def read_digits(self, max_digits: int, timeout: float, terminator: Optional[str] = None,
                          first: str = "") -> str:
        digits, wait = first, timeout
        while len(digits) < max_digits:
            now = self.clock.elapsed()
            self._drop_before(now)
            if not self.arrivals or self.arrivals[0][0] >= now + wait:
                self.clock.advance(wait)
                break
            at, key = self.arrivals.pop(0)
            self.clock.advance(at - now)
            if terminator and key == terminator:
                break
            digits += key
            wait = 3.0  # the live channel's wait for each further key
        return digits

    async def transfer(self, request: TransferRequest) -> TransferResult:
        self.department = request.department.name
        raise CallerHangup("the model ends at the first transfer")


def replay(engine: Engine, presses: list[tuple[float, str]], at: dt.datetime, late: float = 0.0):
    """The call on the modelled line, the live call `late` seconds behind the plan (keys
    then arrive that much earlier in the flow's time; negative: ahead of it)."""
    line = LiveLine(None, VirtualClock(at), arrivals=[(t - late, key) for t, key in presses])
    call = asyncio.run(engine.run(line, "main", caller=CALLER, clock=line.clock))
    return call, line


def keys_taken(call) -> list[tuple[str, str]]:
    return [(e.node, e.data["key"]) for e in call.events if e.type == ev.KEY]


SCENARIOS = {
    # keys: (where each key is taken, department, path before the transfer)
    "1 1": ([("language", "1"), ("main_menu", "1")], "sales"),
    "2 1": ([("language", "2"), ("main_menu", "1")], "sales"),
    "1 2": ([("language", "1"), ("main_menu", "2")], "complaints"),
    "2 * 1": ([("language", "2"), ("main_menu", "*"), ("main_menu", "1")], "sales"),
    # a key the menu does not offer: pressed in the wait after the prompt, three times
    "2 9 9 9": ([("language", "2"), ("main_menu", "9"), ("main_menu", "9"), ("main_menu", "9")], "operator"),
    # the language menu left to time out once, then Polish
    "- 1 1": ([("language", "1"), ("main_menu", "1")], "sales"),
}


@pytest.mark.parametrize("at", OPEN, ids=lambda t: t.strftime("%a %H:%M"))
@pytest.mark.parametrize("keys", SCENARIOS)
@pytest.mark.parametrize("late", [0.0, 0.7, -1.5])
def test_in_office_hours_every_key_lands_while_its_menu_listens(engine, keys, at, late):
    plan = plan_keys(engine, "main", keys, caller=CALLER, at=at, prompt_seconds=seconds)
    expected, department = SCENARIOS[keys]
    assert plan.unused == [] and plan.department == department
    call, line = replay(engine, plan.presses, at, late)
    assert line.lost == [] and line.arrivals == []
    assert keys_taken(call) == expected
    assert line.department == department


def test_the_old_fixed_timers_lose_the_first_key_in_the_welcome(engine):
    # the call: a key every 3 s; the first is pressed while the welcome (no keys) plays
    call, line = replay(engine, [(3.0, "1"), (6.0, "1")], OPEN[0])
    assert line.lost[0] == (3.0, "1") and line.department != "sales"


def test_the_account_number_is_typed_over_its_prompt_and_reaches_the_route(engine):
    plan = plan_keys(engine, "main", "1 3 90012345#", caller=CALLER, at=OPEN[0], prompt_seconds=seconds)
    account = plan.tokens[-1]
    assert (account.node, account.in_prompt, account.sensitive) == ("support_account", True, True)
    assert "90012345" not in account.describe() and "*********" in account.describe()
    call, line = replay(engine, plan.presses, OPEN[0], late=0.5)
    assert line.lost == [] and line.department == "support"
    assert "business_support" in call.path  # the number arrived whole: it starts with 9


def test_each_key_is_pressed_a_lead_after_its_menu_starts_listening(engine):
    plan = plan_keys(engine, "main", "1 1", caller=CALLER, at=OPEN[0], prompt_seconds=seconds)
    call, _ = replay(engine, plan.presses, OPEN[0])
    prompts = {e.node: e.t for e in reversed(call.events) if e.type == ev.PROMPT}  # the first prompt of each node
    language, main_menu = plan.tokens
    assert (language.node, language.in_prompt) == ("language", True)
    assert language.at == pytest.approx(prompts["language"] + LEAD)
    assert main_menu.at == pytest.approx(language.at + LEAD)  # the menu starts when the first key cuts the prompt
    assert language.describe() == f"key 1 at {language.at:.1f} s (menu language, during its prompt)"


@pytest.mark.parametrize("at", CLOSED, ids=lambda t: t.strftime("%a %d %b %H:%M"))
def test_out_of_office_hours_no_menu_asks_so_no_key_is_pressed(engine, at):
    plan = plan_keys(engine, "main", "1 1", caller=CALLER, at=at, prompt_seconds=seconds)
    assert plan.tokens == [] and plan.presses == [] and plan.unused == ["1", "1"]
    assert "after_hours" in plan.path and "language" not in plan.path
    call, line = replay(engine, plan.presses, at)
    assert keys_taken(call) == [] and "after_hours" in call.path


def test_a_vip_caller_skips_the_menus_so_keys_would_come_after_the_transfer(engine):
    plan = plan_keys(engine, "main", "", caller="+48225550101", at=OPEN[0], prompt_seconds=seconds)
    assert plan.tokens == [] and plan.department == "premium"
    with pytest.raises(UsageError, match="after the transfer to premium"):
        plan_keys(engine, "main", "1 1", caller="+48225550101", at=OPEN[0], prompt_seconds=seconds)


@pytest.mark.parametrize("keys", ["1 x", "12a", "1;2", "hangup", "5s", "1 -1"])
def test_bad_keys_are_usage_errors(engine, keys):
    with pytest.raises(UsageError, match="keys are 0-9, \\* and #"):
        plan_keys(engine, "main", keys, caller=CALLER, at=OPEN[0], prompt_seconds=seconds)


def test_keys_after_the_transfer_cannot_be_planned(engine):
    with pytest.raises(UsageError, match="after the transfer to sales.*fixed timers"):
        plan_keys(engine, "main", "1 1 9#", caller=CALLER, at=OPEN[0], prompt_seconds=seconds)


def test_both_spellings_are_one_list_of_tokens():
    assert check_tokens(" ".join(("1", "1"))) == check_tokens("1 1") == ["1", "1"]
    assert check_tokens("2  3 90012345#") == ["2", "3", "90012345#"]


# --- the command ---------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def always_open(tmp_path_factory):
    """An installation of the repository's flows whose office never closes (so "now" is
    always within opening hours), its prompts built into a folder of its own."""
    folder = tmp_path_factory.mktemp("always-open")
    raw = yaml.safe_load((REPO / "config.yaml").read_text(encoding="utf-8"))
    raw["schedules"]["office"] = {"timezone": "Europe/Warsaw", "weekly": {"mon-sun": "00:00-24:00"}}
    raw["prompts"]["dir"] = str(folder / "prompts")
    raw["database"] = f"sqlite:///{folder / 'ivr.db'}"
    raw["segments"]["vip"]["numbers"] = str(REPO / "data" / "vip.csv")
    (folder / "config.yaml").write_text(yaml.safe_dump(raw, allow_unicode=True), encoding="utf-8")
    shutil.copytree(REPO / "flows", folder / "flows")
    return folder / "config.yaml"


def _dry_run(config, *keys: str):
    return CliRunner().invoke(cli, ["--config", str(config), "call", "--dry-run", *keys])


def test_the_command_plans_from_the_built_prompts_and_both_spellings_agree(always_open):
    words, quoted = _dry_run(always_open, "1", "1"), _dry_run(always_open, "1 1")
    assert words.exit_code == 0, words.output
    assert words.output == quoted.output
    lines = words.output.splitlines()
    assert lines[0] == "keys planned from flow main for a call from 48221234567 now, prompts as long as their audio:"
    first = re.fullmatch(r"key 1 at (\d+\.\d) s \(menu language, during its prompt\)", lines[1])
    second = re.fullmatch(r"key 1 at (\d+\.\d) s \(menu main_menu, during its prompt\)", lines[2])
    assert first and second, words.output
    # the welcome, as rendered, plays first: the first key comes after it
    welcome = (always_open.parent / "prompts" / "pl" / "main" / "welcome.wav").stat().st_size - 44
    assert float(first.group(1)) > welcome / 16000
    assert lines[3] == "then the call goes to sales"


def test_the_command_refuses_bad_keys(always_open):
    result = _dry_run(always_open, "1", "x")
    assert result.exit_code == 2 and "KEYS token 'x'" in result.output


def test_fixed_timers_stay_for_scripts(always_open):
    result = CliRunner().invoke(cli, ["--config", str(always_open), "call", "--dry-run", "--wait", "2", "1 4s 1"])
    assert result.exit_code == 0, result.output
    assert result.output.splitlines() == ["key 1 at 2.0 s (fixed timers)", "key 1 at 8.0 s (fixed timers)"]


# --- where the plan ends: the call stays on the line until then --------------------------------------
def test_out_of_hours_the_plan_ends_where_the_message_is_recorded(engine):
    flows = engine.flows["main"]
    plan = plan_keys(engine, "main", "", caller=CALLER, at=CLOSED[0], prompt_seconds=seconds)
    assert (plan.ending, plan.mailbox, plan.department) == ("voicemail", "general", None)
    heard = seconds(flows.prompts["welcome"], "pl") + seconds(flows.prompts["closed"], "pl")
    assert plan.ends_at == pytest.approx(heard)


def test_in_hours_the_plan_ends_at_the_transfer(engine):
    plan = plan_keys(engine, "main", "1 1", caller=CALLER, at=OPEN[0], prompt_seconds=seconds)
    assert (plan.ending, plan.department, plan.mailbox) == ("transfer", "sales", None)
    last_key = plan.presses[-1][0]
    connecting = seconds(engine.flows["main"].prompts["connecting"], "pl")
    assert plan.ends_at == pytest.approx(last_key + connecting)  # the sales node plays "connecting" first


@pytest.fixture(scope="module")
def always_closed(always_open):
    """The same installation, the office never open."""
    raw = yaml.safe_load(always_open.read_text(encoding="utf-8"))
    raw["schedules"]["office"]["weekly"] = {"mon-sun": "closed"}
    path = always_open.with_name("closed.yaml")
    path.write_text(yaml.safe_dump(raw, allow_unicode=True), encoding="utf-8")
    return path


def test_the_command_out_of_hours_leaves_a_message_after_the_tone(always_closed):
    result = _dry_run(always_closed, "--hold", "3")
    assert result.exit_code == 0, result.output
    found = re.fullmatch(r"then a 4 s message for mailbox general at (\d+\.\d) s, and the caller hangs up 3 s after it",
                         result.output.splitlines()[-1])
    assert found, result.output
    prompts = always_closed.parent / "prompts" / "pl" / "main"
    heard = sum((prompts / f"{name}.wav").stat().st_size - 44 for name in ("welcome", "closed")) / 16000
    assert float(found.group(1)) == pytest.approx(heard + MESSAGE_AFTER_TONE, abs=0.1)  # after the beep, with a margin


def test_the_command_in_hours_holds_from_the_transfer_not_the_last_key(always_open):
    result = _dry_run(always_open, "1", "1")
    assert result.exit_code == 0, result.output
    assert re.fullmatch(r"the caller hangs up 10 s after the transfer \(\d+\.\d s\), unless Asterisk does first",
                        result.output.splitlines()[-1]), result.output
