"""The AMI client asks for only the events the engine reads, and says when it gets others.

Against the fake AMI, which filters events as Asterisk 22 does (tests/asterisk/
test_live_ami_filter.py shows the same on the real one): a user with the `system` class
takes the login's Filter actions and its session is sent nothing else; the generated user
(no `system`) is refused them, and manager.conf's eventfilter does the work; a user with
neither gets every event, counts what it does not read and says so once in the log."""

from __future__ import annotations

import asyncio
import logging
import random

import pytest

from fake_ami import FakeAmi
from panoramisk.message import Message
from ivr.asterisk.ami import AmiClient
from ivr.asterisk.event_filter import EVENTS, filter_actions, manager_conf_lines
from ivr.errors import AmiError

UNIQUEID = "1700000000.21"


def run(coro, timeout: float = 20.0):
    return asyncio.run(asyncio.wait_for(coro, timeout))


async def until(predicate, timeout: float = 5.0) -> None:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while not predicate():
        assert loop.time() < deadline, "waited in vain"
        await asyncio.sleep(0.01)


def client_for(fake: FakeAmi) -> AmiClient:
    return AmiClient("127.0.0.1", fake.port, fake.username, fake.secret, backoff_base=0.02, backoff_cap=0.2,
                     rng=random.Random(3), action_timeout=2.0)


async def one_call(fake: FakeAmi, client: AmiClient) -> None:
    """A queued call's events as Asterisk sends them, the unused ones among them; then
    until the client has read the last one the engine reads."""
    fake.push("Newchannel", Channel="PJSIP/sipp-00000001", Uniqueid=UNIQUEID)
    fake.push("Newstate", Channel="PJSIP/sipp-00000001", Uniqueid=UNIQUEID, ChannelStateDesc="Up")
    fake.push("QueueCallerJoin", Queue="sales", Uniqueid=UNIQUEID, Position="1", Count="1")
    fake.push("AgentCalled", Queue="sales", Uniqueid=UNIQUEID, Interface="PJSIP/101")
    fake.push("DialBegin", Uniqueid=UNIQUEID, DestChannel="PJSIP/101-00000002")
    fake.push("AgentConnect", Queue="sales", Uniqueid=UNIQUEID, MemberName="Agent 101", Interface="PJSIP/101",
              HoldTime="3", RingTime="1")
    await until(lambda: (client.facts(UNIQUEID) is not None and client.facts(UNIQUEID).status == "answered"))


def test_the_filters_name_every_event_the_engine_reads_in_the_advanced_form():
    assert [a["MatchCriteria"] for a in filter_actions()] == [f"action(include),name({e})" for e in EVENTS]
    assert all(a["Action"] == "Filter" and a["Operation"] == "Add" and a["Filter"] == "" for a in filter_actions())
    assert manager_conf_lines(("Hangup",)) == ["eventfilter(action(include),name(Hangup)) ="]
    assert len(set(EVENTS)) == len(EVENTS) == 12


def test_a_user_allowed_the_filter_action_narrows_its_own_session(caplog):
    caplog.set_level(logging.INFO, logger="ivr.asterisk.ami")

    async def main():
        fake = FakeAmi(filter_allowed=True)
        await fake.start()
        client = client_for(fake)
        await client.start()
        try:
            filters = [r.get("MatchCriteria") for r in fake.actions("Filter")]
            assert filters == [f"action(include),name({e})" for e in EVENTS]
            # the re-sync comes after the filters, and its answer is whole (never filtered)
            assert [r.action for r in fake.received][-2:] == ["QueueStatus", "CoreShowChannels"]
            assert client.board.snapshot("sales").logged_in == 1
            await one_call(fake, client)
            return client.session_filtered, client.events_read, client.events_unused
        finally:
            await client.close()
            await fake.close()

    filtered, read, unused = run(main())
    assert filtered is True
    # QueueCallerJoin and AgentConnect; of the rest only the greeting the session had before
    # its filters, which the fake sends with the login's answer
    assert (read, unused) == (2, 1)
    assert "sent only the 12 events the engine reads" in caplog.text
    assert "does not read" not in caplog.text


def test_the_generated_user_is_refused_the_filter_action_and_relies_on_manager_conf(caplog):
    caplog.set_level(logging.DEBUG, logger="ivr.asterisk.ami")

    async def main():
        fake = FakeAmi(user_filter=set(EVENTS))  # manager.conf as `ivr asterisk-config` writes it
        await fake.start()
        client = client_for(fake)
        await client.start()
        try:
            assert fake.count("Filter") == 1  # refused at the first: not sent again
            await one_call(fake, client)
            return client.session_filtered, client.events_read, client.events_unused
        finally:
            await client.close()
            await fake.close()

    assert run(main()) == (False, 2, 0)
    assert "event filter was refused (Permission denied)" in caplog.text
    assert not [r for r in caplog.records if r.levelno >= logging.WARNING]


def test_a_user_without_any_filter_is_counted_and_reported_once(caplog):
    caplog.set_level(logging.INFO, logger="ivr.asterisk.ami")

    async def main():
        fake = FakeAmi()  # a site's own manager.conf: no eventfilter, no system class
        await fake.start()
        client = client_for(fake)
        await client.start()
        try:
            await one_call(fake, client)
            first = (client.events_read, client.events_unused)
            fake.drop()  # a reconnect does not repeat the report
            await until(lambda: client.connections == 2 and client.connected)
            await one_call(fake, client)
            return first, (client.events_read, client.events_unused)
        finally:
            await client.close()
            await fake.close()

    first, second = run(main())
    # FullyBooted (greeting the session), Newchannel, Newstate, AgentCalled, DialBegin
    assert first == (2, 5) and second == (4, 10)
    [warning] = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING and "does not read" in
                 r.getMessage()]
    assert "user ivr" in warning and "Newchannel is the first" in warning  # not the greeting
    assert "eventfilter lines" in warning and "ivr asterisk-config" in warning


def test_a_filter_refused_after_others_were_taken_stops_the_login():
    # the session would be sent only some of the events the engine needs: not a state to run in
    async def main():
        fake = FakeAmi(filter_allowed=True, refuse_filters={"Hangup"})
        await fake.start()
        client = client_for(fake)
        try:
            with pytest.raises(AmiError, match=r"refused action\(include\),name\(Hangup\): Filter Not Added"):
                await client.start()
            assert not client.connected and fake.count("QueueStatus") == 0
        finally:
            await client.close()
            await fake.close()

    run(main())


def test_an_event_with_a_repeated_name_header_is_counted_not_raised():
    client = AmiClient("127.0.0.1", 1, "ivr", "x")
    client._event(Message({"Event": ["QueueCallerJoin", "Hangup"], "Uniqueid": UNIQUEID}))
    assert (client.events_read, client.events_unused) == (0, 1)
