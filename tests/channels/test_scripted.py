"""The scripted channel (journey tests, `ivr simulate --keys`): key tokens, time-outs,
hang-ups, digits typed during a prompt, queue scripts and the virtual clock."""

import asyncio
import datetime as dt
from types import MappingProxyType

import pytest

from ivr.channels.scripted import (
    CHARS_PER_SECOND,
    KEY_SECONDS,
    QueueScript,
    ScriptedChannel,
    parse_keys,
    prompt_seconds,
)
from ivr.clock import VirtualClock
from ivr.settings.config import Department
from ivr.engine.channel import CallbackRequest, TransferRequest, TransferResult
from ivr.events import TransferStatus
from ivr.errors import CallerHangup
from ivr.flow.model import Prompt

PROMPT = Prompt("p", MappingProxyType({"pl": "x" * 28, "en": "y" * 42}), MappingProxyType({}))
SALES = Department("sales", "sales")


def run(coro):
    return asyncio.run(coro)


def test_parse_keys():
    assert parse_keys("1 - 123456#  hangup") == ["1", "-", "123456#", "hangup"]
    assert parse_keys(["1", 2]) == ["1", "2"]
    assert parse_keys(None) == []
    assert parse_keys("") == []


def test_prompt_seconds():
    assert CHARS_PER_SECOND == 14.0
    assert prompt_seconds("x" * 28) == 2.0
    assert prompt_seconds("") == 1.0  # a prompt takes at least a second


def test_play_records_the_prompt_and_moves_the_clock():
    channel = ScriptedChannel()
    assert run(channel.play(PROMPT, "pl")) is None
    assert run(channel.play(PROMPT, "en", "123")) is None
    assert channel.played == [("p", "pl"), ("p", "en")]
    assert channel.clock.elapsed() == 2.0 + 3.0
    assert channel.unused_keys == []


def test_read_digits():
    channel = ScriptedChannel("1 123456# 12345678901 12#34 -")
    assert run(channel.read_digits(1, 5.0)) == "1"
    assert run(channel.read_digits(10, 5.0, "#")) == "123456"
    assert run(channel.read_digits(10, 5.0, "#")) == "1234567890"
    assert run(channel.read_digits(10, 5.0, "#")) == "12"
    before = channel.clock.elapsed()
    assert run(channel.read_digits(10, 7.0, "#")) == ""
    assert channel.clock.elapsed() - before == 7.0  # a time-out waits the whole time-out


def test_read_digits_without_a_terminator_keeps_every_key():
    assert run(ScriptedChannel("12#").read_digits(5, 5.0)) == "12#"


def test_keys_take_time():
    channel = ScriptedChannel("123")
    run(channel.read_digits(10, 5.0))
    assert channel.clock.elapsed() == 3 * KEY_SECONDS


def test_hangup_token_and_an_empty_script_hang_up():
    channel = ScriptedChannel("hangup")
    with pytest.raises(CallerHangup):
        run(channel.read_digits(1, 5.0))
    with pytest.raises(CallerHangup):
        run(ScriptedChannel("").read_digits(1, 5.0))


def test_barge_in_returns_the_first_key_and_keeps_the_rest_for_the_read():
    channel = ScriptedChannel("123456#", barge_in=True)
    assert run(channel.play(PROMPT, "pl", "0123456789")) == "1"
    assert channel.clock.elapsed() == 1.0  # half of the 2 s prompt
    assert run(channel.read_digits(10, 5.0, "#", "1")) == "123456"
    assert channel.unused_keys == []


def test_barge_in_only_with_a_key_the_prompt_listens_for():
    channel = ScriptedChannel("7 -", barge_in=True)
    assert run(channel.play(PROMPT, "pl", "12")) is None
    assert run(channel.play(PROMPT, "pl", "")) is None
    assert channel.unused_keys == ["7", "-"]
    assert run(channel.read_digits(1, 5.0)) == "7"
    assert run(channel.play(PROMPT, "pl", "12")) is None  # "-" is no key
    assert run(channel.read_digits(1, 5.0)) == ""


def test_without_barge_in_keys_wait_for_the_prompt():
    channel = ScriptedChannel("1")
    assert run(channel.play(PROMPT, "pl", "1")) is None
    assert channel.unused_keys == ["1"]


def request(max_wait=None):
    return TransferRequest(SALES, max_wait, True, 0, "+48221234567")


def test_queue_defaults():
    channel = ScriptedChannel(queue=["answered", "timeout", "timeout", "abandoned"])
    assert run(channel.transfer(request())) == TransferResult(TransferStatus.ANSWERED, 20.0, "PJSIP/101", 240.0)
    assert channel.clock.elapsed() == 260.0
    assert run(channel.transfer(request(90.0))) == TransferResult(TransferStatus.TIMED_OUT, 90.0, ended="TIMEOUT")
    assert run(channel.transfer(request())) == TransferResult(TransferStatus.TIMED_OUT, 300.0, ended="TIMEOUT")
    assert run(channel.transfer(request())) == TransferResult(TransferStatus.ABANDONED, 45.0)
    assert channel.clock.elapsed() == 260.0 + 90.0 + 300.0 + 45.0
    # past the script, agents answer
    assert run(channel.transfer(request())).status == TransferStatus.ANSWERED
    assert len(channel.transfers) == 5


def test_queue_script_times():
    channel = ScriptedChannel(queue=[QueueScript(TransferStatus.TIMED_OUT, wait=12.0),
                                     QueueScript(TransferStatus.ANSWERED, 5.0, 30.0, "PJSIP/9")])
    assert run(channel.transfer(request(60.0))) == TransferResult(TransferStatus.TIMED_OUT, 12.0, ended="TIMEOUT")
    assert run(channel.transfer(request())) == TransferResult(TransferStatus.ANSWERED, 5.0, "PJSIP/9", 30.0)


def test_callbacks_voicemail_recording_and_hangup():
    channel = ScriptedChannel(voicemail_seconds=50.0)
    run(channel.request_callback(CallbackRequest(SALES, "+48221234567")))
    assert channel.callbacks == [CallbackRequest(SALES, "+48221234567")]
    result = run(channel.record_voicemail("general", 30.0))
    assert result.duration == 30.0 and channel.voicemails == ["general"]
    assert run(channel.record_voicemail("general", 120.0)).duration == 50.0
    run(channel.pause_recording())
    assert channel.recording_paused is True
    run(channel.resume_recording())
    assert channel.recording_paused is False
    run(channel.set_language("en"))
    assert channel.language == "en"
    run(channel.hangup())
    assert channel.hung_up is True


def test_virtual_clock():
    start = dt.datetime(2026, 11, 24, 10, 0, tzinfo=dt.timezone.utc)
    clock = VirtualClock(start)
    clock.advance(90.5)
    assert clock.elapsed() == 90.5
    assert clock.now() == start + dt.timedelta(seconds=90.5)
    naive = VirtualClock(dt.datetime(2026, 11, 24, 10, 0))
    assert naive.now().tzinfo is None  # schedules read it in their own zone
    assert VirtualClock().now().tzinfo is not None
