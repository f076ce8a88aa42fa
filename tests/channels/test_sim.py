"""The console simulator channel: it shows what the caller hears in the caller's
language, reads keys typed at the terminal (Enter: no key, q: hang up) and asks how each
queue ends."""

import asyncio
from types import MappingProxyType

import click
import pytest

from ivr.channels.sim import SimChannel
from ivr.settings.config import Department
from ivr.engine.channel import TransferRequest
from ivr.events import TransferStatus
from ivr.errors import CallerHangup
from ivr.flow.model import Prompt

PROMPT = Prompt("menu", MappingProxyType({"pl": "Sprzedaż, wciśnij 1.", "en": "For sales press 1."}), MappingProxyType({}))


def channel(answers):
    said = []
    answers = list(answers)
    sim = SimChannel(ask=lambda text: answers.pop(0), say=said.append)
    return sim, said


def run(coro):
    return asyncio.run(coro)


def test_prompts_are_shown_in_the_callers_language():
    sim, said = channel([])
    run(sim.play(PROMPT, "pl"))
    run(sim.play(PROMPT, "en"))
    assert "[pl]" in said[0] and "Sprzedaż, wciśnij 1." in said[0]
    assert "[en]" in said[1] and "For sales press 1." in said[1]
    assert sim.played == [("menu", "pl"), ("menu", "en")]


def test_keys_typed_at_the_prompt():
    sim, _ = channel(["1", "12 34 #", ""])
    assert run(sim.read_digits(1, 5.0)) == "1"
    assert run(sim.read_digits(10, 5.0, "#")) == "1234"  # spaces are ignored
    assert run(sim.read_digits(1, 5.0)) == ""  # Enter alone is no key


@pytest.mark.parametrize("answer", ["q", "Q", "quit", "hangup"])
def test_q_hangs_up(answer):
    sim, _ = channel([answer])
    with pytest.raises(CallerHangup):
        run(sim.read_digits(1, 5.0))


@pytest.mark.parametrize("answer, status", [("a", TransferStatus.ANSWERED), ("", TransferStatus.ANSWERED),
                                            ("t", TransferStatus.TIMED_OUT), ("u", TransferStatus.ABANDONED),
                                            ("Timeout", TransferStatus.TIMED_OUT)])
def test_queue_outcome_is_asked(answer, status):
    sim, said = channel([answer])
    result = run(sim.transfer(TransferRequest(Department("sales", "sales-q"), 60.0, True, 0, "")))
    assert result.status == status
    assert f"queue sales-q: {status}" in said[-1]


def test_queue_script_given_is_not_asked():
    sim = SimChannel(queue=["timeout"], ask=lambda text: pytest.fail("asked"), say=lambda text: None)
    result = run(sim.transfer(TransferRequest(Department("sales", "sales"), 60.0, True, 0, "")))
    assert result.status == TransferStatus.TIMED_OUT


def test_hangup_is_shown():
    sim, said = channel([])
    run(sim.hangup())
    assert sim.hung_up is True
    assert "call ended" in said[-1]


@pytest.mark.parametrize("error", [click.exceptions.Abort(), EOFError()])
def test_end_of_input_is_the_caller_hanging_up(error):
    def ask(text):
        raise error

    sim = SimChannel(ask=ask, say=lambda text: None)
    with pytest.raises(CallerHangup):
        run(sim.read_digits(1, 5.0))
    with pytest.raises(CallerHangup):
        run(sim.transfer(TransferRequest(Department("sales", "sales"), 60.0, True, 0, "")))
