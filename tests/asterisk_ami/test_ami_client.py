"""The AMI client against a fake Asterisk Manager over loopback: login, the Ping watchdog,
reconnects with back-off and re-sync, no replay of an Originate, exact MixMonitorMute
headers, header injection refused, and the secret kept out of every log line."""

from __future__ import annotations

import asyncio
import logging
import random

import pytest

from fake_ami import FakeAmi
from ivr.asterisk.ami import AmiClient, QueueState
from ivr.asterisk.callback import OriginateOutcome, dial_string
from ivr.settings.asterisk import AsteriskSettings, CallbackSettings
from ivr.settings.config import load_config
from ivr.errors import AmiConnectionLost, AmiError, AmiLoginError, AmiRefused

SECRET = "s3cret-Pa55"


def run(coro, timeout: float = 20.0):
    return asyncio.run(asyncio.wait_for(coro, timeout))


def client_for(fake: FakeAmi, secret: str = SECRET, **kwargs) -> AmiClient:
    kwargs.setdefault("backoff_base", 0.02)
    kwargs.setdefault("backoff_cap", 0.2)
    kwargs.setdefault("rng", random.Random(7))
    kwargs.setdefault("action_timeout", 2.0)
    return AmiClient("127.0.0.1", fake.port, "ivr", secret, **kwargs)


async def until(predicate, timeout: float = 5.0) -> None:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while not predicate():
        assert loop.time() < deadline, "waited in vain"
        await asyncio.sleep(0.01)


def fields(received) -> dict:
    return {k: v for k, v in received.pairs if k != "ActionID"}


# --- login ---------------------------------------------------------------------------------
def test_login_subscribes_to_call_and_agent_events_then_resyncs():
    resyncs = []

    async def main():
        fake = FakeAmi(queue_entries=[{"Queue": "sales", "Position": "1", "Channel": "PJSIP/200-0001",
                                       "Uniqueid": "1700000000.11", "CallerIDNum": "600100200", "Wait": "40",
                                       "Priority": "0"}],
                       channels=[{"Channel": "PJSIP/200-0001", "Uniqueid": "1700000000.11", "Linkedid": "1700000000.11",
                                  "Context": "ivr", "Exten": "100", "ChannelStateDesc": "Up"}])
        await fake.start()
        client = client_for(fake, on_resync=lambda q, c: resyncs.append((q, c)))
        await client.start()
        try:
            assert client.connected
            # the session filter is tried, and refused: the user has no system class
            assert [r.action for r in fake.received] == ["Login", "Filter", "QueueStatus", "CoreShowChannels"]
            login = fields(fake.received[0])
            assert login == {"Action": "Login", "Username": "ivr", "Secret": SECRET, "Events": "call,agent"}
            assert fake.received[0].get("ActionID")
            return client.facts("1700000000.11")
        finally:
            await client.close()
            await fake.close()

    facts = run(main())
    (queues, channels), = resyncs
    assert set(queues) == {"sales"}
    sales = queues["sales"]
    assert isinstance(sales, QueueState)
    assert sales.params["Completed"] == "3"
    assert [m["Location"] for m in sales.members] == ["PJSIP/101"]
    assert [e["Uniqueid"] for e in sales.entries] == ["1700000000.11"]
    assert [c["Channel"] for c in channels] == ["PJSIP/200-0001"]
    # a caller already waiting when we connected is known to the tracker
    assert facts.status == "waiting" and facts.queue == "sales" and facts.resynced and facts.position == 1


def test_login_refused_is_a_clear_error_without_the_secret(caplog):
    caplog.set_level(logging.DEBUG)
    wrong = "Wr0ng-S3cret-xyz"

    async def main():
        fake = FakeAmi()
        await fake.start()
        client = client_for(fake, secret=wrong)
        try:
            with pytest.raises(AmiLoginError) as info:
                await client.start()
            assert not client.connected
            await asyncio.sleep(0.1)
            assert fake.count("QueueStatus") == 0 and fake.count("Ping") == 0
            return str(info.value)
        finally:
            await client.close()
            await fake.close()

    message = run(main())
    assert "refused user 'ivr'" in message and "Authentication failed" in message and "127.0.0.1" in message
    assert wrong not in message
    assert wrong not in caplog.text and SECRET not in caplog.text


def test_unreachable_ami_is_a_clear_error():
    async def main():
        fake = FakeAmi()
        await fake.start()
        await fake.close()  # nobody listens on that port now
        client = client_for(fake)
        with pytest.raises(AmiError, match="cannot reach the AMI at 127.0.0.1"):
            await client.start()
        await client.close()

    run(main())


def test_a_task_that_failed_before_close_is_logged_not_swallowed(caplog):
    async def main():
        fake = FakeAmi()
        await fake.start()
        client = client_for(fake, ping_interval=0.02)
        await client.start()
        sent = client._send_on

        async def broken(protocol, headers, **kwargs):
            if headers.get("Action") == "Ping":
                raise RuntimeError("a bug in the watchdog")
            return await sent(protocol, headers, **kwargs)

        client._send_on = broken
        try:
            await until(lambda: client._watchdog.done())
        finally:
            await client.close()
            await fake.close()

    run(main())
    [record] = [r for r in caplog.records if r.getMessage() == "AMI: ami-watchdog failed"]
    assert "a bug in the watchdog" in str(record.exc_info[1])


def test_the_secret_never_reaches_a_log_line_at_debug(caplog):
    caplog.set_level(logging.DEBUG)

    async def main():
        fake = FakeAmi()
        await fake.start()
        client = client_for(fake, ping_interval=0.05, ping_timeout=0.5)
        await client.start()
        try:
            await asyncio.sleep(0.15)  # some Pings
            fake.drop()
            await until(lambda: client.connections == 2 and fake.count("CoreShowChannels") == 2)
            await client.mute("PJSIP/101-00000001", True)
            assert SECRET not in repr(client)
        finally:
            await client.close()
            await fake.close()

    run(main())
    assert "logged in" in caplog.text and "reconnecting" in caplog.text
    assert SECRET not in caplog.text
    assert all(SECRET not in str(r.args) for r in caplog.records)


# --- the watchdog and reconnects -------------------------------------------------------------
def test_ping_watchdog_finds_a_silent_server_and_reconnects():
    async def main():
        fake = FakeAmi()
        await fake.start()
        client = client_for(fake, ping_interval=0.1, ping_timeout=0.2)
        await client.start()
        try:
            fake.silent_connections = {1}  # Asterisk freezes: the TCP connection stays open
            await until(lambda: client.connections == 2, timeout=3.0)
            assert fake.count("Ping") >= 1
            pings_on_1 = [r for r in fake.actions("Ping") if r.connection == 1]
            assert pings_on_1, "the watchdog pinged the frozen connection"
            assert fake.connections == 2
            # after the reconnect: a re-sync, and the watchdog pings the new connection
            await until(lambda: any(r.connection == 2 for r in fake.actions("Ping")))
            assert [r.action for r in fake.received if r.connection == 2][:4] == ["Login", "Filter", "QueueStatus",
                                                                                   "CoreShowChannels"]
        finally:
            await client.close()
            await fake.close()

    run(main())


def test_reconnect_after_the_server_closes_backs_off_then_resyncs():
    resyncs = []

    async def main():
        fake = FakeAmi()
        await fake.start()
        client = client_for(fake, on_resync=lambda q, c: resyncs.append((q, c)), backoff_base=0.02, backoff_cap=0.16)
        await client.start()
        try:
            # Asterisk restarts: connections closed, nobody listening for a while
            await fake.stop_listening()
            fake.drop()
            await until(lambda: not client.connected)
            with pytest.raises(AmiConnectionLost, match="not connected"):
                await client.send_action("Ping")
            await until(lambda: len(client.reconnect_delays) >= 4)
            # meanwhile a caller joined a queue and an agent answered another
            fake.queue_entries = [{"Queue": "sales", "Position": "1", "Channel": "PJSIP/300-0002",
                                   "Uniqueid": "1700000000.22", "CallerIDNum": "600300300", "Wait": "5",
                                   "Priority": "0"}]
            fake.channels = [{"Channel": "PJSIP/300-0002", "Uniqueid": "1700000000.22"}]
            await fake.start(fake.port)
            await until(lambda: client.connections == 2 and len(resyncs) == 2)
            return list(client.reconnect_delays), client.facts("1700000000.22")
        finally:
            await client.close()
            await fake.close()

    delays, facts = run(main())
    for attempt, delay in enumerate(delays):
        ceiling = min(0.16, 0.02 * 2 ** attempt)
        assert ceiling * 0.5 <= delay <= ceiling
    assert delays[3] > delays[0]  # it backs off
    queues, channels = resyncs[1]
    assert [e["Uniqueid"] for e in queues["sales"].entries] == ["1700000000.22"]
    assert [c["Uniqueid"] for c in channels] == ["1700000000.22"]
    assert facts.status == "waiting" and facts.resynced


def test_an_originate_in_flight_when_the_connection_drops_fails_and_is_never_sent_again():
    async def main():
        fake = FakeAmi(hold={"originate"})  # Asterisk takes the Originate, then the line dies
        await fake.start()
        client = client_for(fake)
        await client.start()
        try:
            pending = asyncio.create_task(client.call_back("600100200", "sales"))
            await until(lambda: fake.count("Originate") == 1)
            fake.drop()
            with pytest.raises(AmiConnectionLost) as info:
                await pending
            # reconnected (the fake sends FullyBooted after each login, panoramisk's replay
            # trigger) and re-synced, and still only one Originate ever reached Asterisk
            await until(lambda: client.connections == 2 and fake.count("CoreShowChannels") == 2)
            await asyncio.sleep(0.2)
            assert fake.count("Originate") == 1
            return str(info.value)
        finally:
            await client.close()
            await fake.close()

    message = run(main())
    assert "Originate" in message and "not sent again" in message


def test_an_action_with_no_answer_times_out_and_is_not_resent():
    async def main():
        fake = FakeAmi(hold={"originate", "mixmonitormute"})
        await fake.start()
        client = client_for(fake, action_timeout=0.2)
        await client.start()
        try:
            with pytest.raises(AmiError, match="no answer to MixMonitorMute within 0.2 s; it is not sent again"):
                await client.mute("PJSIP/101-1", True)
            # an Originate without its reply: its OriginateResponse is still awaited, then given up
            with pytest.raises(AmiError, match="no OriginateResponse"):
                await client.call_back("600100200", "sales", wait=0.5)
            await asyncio.sleep(0.2)
            assert fake.count("Originate") == 1 and client.connected
        finally:
            await client.close()
            await fake.close()

    run(main())


def test_a_shutdown_event_is_a_lost_connection_and_a_refused_resync_is_a_clear_error(caplog):
    async def main():
        fake = FakeAmi()
        await fake.start()
        client = client_for(fake)
        await client.start()
        try:
            fake.queue_params = None  # QueueStatus now answers "Permission denied"
            fake.push("Shutdown", Shutdown="Cleanly", Restart="True")
            await until(lambda: client.connections == 2 and fake.count("QueueStatus") == 2)
            await until(lambda: "re-sync failed: QueueStatus failed: Permission denied" in caplog.text)
            assert client.connected
            with pytest.raises(AmiError, match="QueueStatus failed: Permission denied"):
                await client.resync()
        finally:
            await client.close()
            await fake.close()

    run(main())


def test_a_resync_refused_while_asterisk_boots_is_tried_again_until_it_answers(caplog):
    # after `core restart now` the manager takes logins before app_queue is loaded, and
    # QueueStatus is an unknown command for a moment: the re-sync must come once it is known
    async def main():
        fake = FakeAmi()
        await fake.start()
        client = client_for(fake, backoff_base=0.05)
        await client.start()
        try:
            params = fake.queue_params
            fake.queue_params = None  # QueueStatus refused, as while the modules load
            fake.push("Shutdown", Shutdown="Cleanly", Restart="True")
            await until(lambda: client.connections == 2 and "re-sync failed" in caplog.text)
            await until(lambda: fake.count("QueueStatus") >= 4)  # tried again, and again
            synced = caplog.text.count("AMI: re-synced")
            fake.queue_params = params  # booted
            await until(lambda: "re-synced after" in caplog.text)
            assert caplog.text.count("AMI: re-synced") >= synced + 1
            assert client.board.fresh and client.board.queues() == ["sales"] and client.connected
            tried = fake.count("QueueStatus")
            await asyncio.sleep(0.5)  # done: no more tries than the queue refresher's
            assert fake.count("QueueStatus") <= tried + 1
        finally:
            await client.close()
            await fake.close()

    run(main())


# --- actions ---------------------------------------------------------------------------------
def test_mixmonitormute_mutes_the_callers_side_only_with_exact_headers():
    async def main():
        fake = FakeAmi()
        await fake.start()
        client = client_for(fake)
        await client.start()
        try:
            await client.mute("PJSIP/101-00000001", True)
            await client.mute("PJSIP/101-00000001", False)
            with pytest.raises(AmiError, match="MixMonitorMute on 'Local/gone' failed: No such channel"):
                await client.mute("Local/gone", True)
            return fake.actions("MixMonitorMute")
        finally:
            await client.close()
            await fake.close()

    on, off, _ = run(main())
    assert fields(on) == {"Action": "MixMonitorMute", "Channel": "PJSIP/101-00000001", "Direction": "read", "State": "1"}
    assert fields(off) == {"Action": "MixMonitorMute", "Channel": "PJSIP/101-00000001", "Direction": "read", "State": "0"}
    assert sorted(k for k, _ in on.pairs) == ["Action", "ActionID", "Channel", "Direction", "State"]
    assert on.raw.endswith("\r\n\r\n") and on.raw.count("\r\n\r\n") == 1


def test_call_back_dials_the_configured_channel_into_the_queue():
    async def main():
        fake = FakeAmi()
        await fake.start()
        client = client_for(fake, callback=CallbackSettings(caller_id='"Shop" <225550000>'))
        await client.start()
        try:
            action_id = "cb-6"
            first = asyncio.create_task(client.call_back("+48 22 555-01-01", "sales", action_id=action_id))
            await fake.wait_for(lambda: fake.count("Originate") == 1)
            fake.push("OriginateResponse", ActionID=action_id, Response="Success", Channel="Local/+48225550101@x",
                      Reason="4", Uniqueid="1700000000.50")
            assert (await first).result == "answered"
            # the scheduler's way: wait for the OriginateResponse
            answer = asyncio.create_task(client.call_back("600 100 200", "support", priority=3, action_id="cb-7"))
            await fake.wait_for(lambda: fake.count("Originate") == 2)
            fake.push("OriginateResponse", ActionID="cb-7", Response="Success", Channel="Local/600100200@x-01;1",
                      Reason="4", Uniqueid="1700000000.51")
            assert await answer == OriginateOutcome("answered", "4", "1700000000.51", "Local/600100200@x-01;1")
            return action_id, fake.actions("Originate")
        finally:
            await client.close()
            await fake.close()

    action_id, (first, second) = run(main())
    assert action_id == first.get("ActionID")
    assert [(k, v) for k, v in first.pairs if k == "Variable"] == [
        ("Variable", "IVR_CALLBACK_QUEUE=sales"), ("Variable", "IVR_CALLBACK_NUMBER=+48225550101")]
    assert {k: v for k, v in first.pairs if k not in ("ActionID", "Variable")} == {
        "Action": "Originate", "Channel": "Local/+48225550101@testbed-callee", "Async": "true", "Timeout": "30000",
        "Context": "ivr-callback", "Exten": "sales", "Priority": "1", "CallerID": '"Shop" <225550000>'}
    assert second.get("Channel") == "Local/600100200@testbed-callee" and second.get("Exten") == "support"
    assert second.get("ActionID") == "cb-7"
    assert [v for k, v in second.pairs if k == "Variable"] == [
        "IVR_CALLBACK_QUEUE=support", "IVR_CALLBACK_NUMBER=600100200", "QUEUE_PRIO=3"]


def test_originate_without_a_context_runs_queue_as_the_application():
    async def main():
        fake = FakeAmi()
        await fake.start()
        settings = CallbackSettings(channel="PJSIP/{number}@trunk", context=None, timeout=20)
        client = client_for(fake, callback=settings)
        await client.start()
        try:
            ringing = asyncio.create_task(client.call_back("600100200", "complaints", action_id="cb-1"))
            await fake.wait_for(lambda: fake.count("Originate") == 1)
            fake.push("OriginateResponse", ActionID="cb-1", Response="Failure", Reason="3")
            assert (await ringing).result == "no answer"
            return fake.actions("Originate")[0]
        finally:
            await client.close()
            await fake.close()

    sent = run(main())
    assert sent.get("Channel") == "PJSIP/600100200@trunk"
    assert (sent.get("Application"), sent.get("Data"), sent.get("Timeout")) == ("Queue", "complaints", "20000")
    assert sent.get("Context") is None and sent.get("Exten") is None


@pytest.mark.parametrize("number, queue, caller_id", [
    ("600100200\r\nAction: Command\r\nCommand: core stop now", "sales", None),
    ("600100200\nAction: Command", "sales", None),
    ("600100200", "sales\r\nAction: Command", None),
    ("600100200", "sales", "Shop\r\nAction: Command\r\nCommand: core stop now"),
])
def test_header_injection_is_refused_and_nothing_is_sent(number, queue, caller_id):
    async def main():
        fake = FakeAmi()
        await fake.start()
        client = client_for(fake)
        await client.start()
        try:
            with pytest.raises(AmiRefused, match="refused"):
                await client.call_back(number, queue, caller_id=caller_id)
            with pytest.raises(AmiError, match="line break"):
                await client.send_action("Originate", {"Channel": "PJSIP/1@trunk\r\nAction: Command",
                                                       "Context": "ivr-callback"})
            await client.mute("PJSIP/101-1", True)  # the connection is still in step
        finally:
            await client.close()
            await fake.close()
        return fake

    fake = run(main())
    assert fake.count("Originate") == 0 and fake.count("Command") == 0
    assert not any("Command" in r.raw for r in fake.received)


def test_a_failing_event_sink_does_not_stop_the_event_stream():
    seen = []

    def sink(kind, uniqueid, queue, data, at):
        seen.append(kind)
        if kind == "queue_joined":
            raise RuntimeError("database down")

    async def main():
        fake = FakeAmi()
        await fake.start()
        client = client_for(fake, on_queue_event=sink)
        await client.start()
        try:
            fake.push("QueueCallerJoin", Queue="sales", Uniqueid="1.1", Position="1", Count="1")
            fake.push("QueueCallerAbandon", Queue="sales", Uniqueid="1.1", Position="1", OriginalPosition="1",
                      HoldTime="3")
            await until(lambda: len(seen) == 2)
            await client.mute("PJSIP/101-1", True)
            assert client.connected
        finally:
            await client.close()
            await fake.close()

    run(main())
    assert seen == ["queue_joined", "queue_abandoned"]


# --- configuration -------------------------------------------------------------------------
def test_from_settings_reads_the_secret_from_the_environment(monkeypatch, tmp_path):
    monkeypatch.setenv("IVR_AMI_SECRET", SECRET)
    (tmp_path / "config.yaml").write_text(
        'asterisk:\n'
        '  ami: {host: 127.0.0.1, port: 5039, username: ivr, secret: "${IVR_AMI_SECRET}"}\n'
        '  callback: {channel: "PJSIP/{number}@trunk", context: ivr-callback, caller_id: "225550000"}\n',
        encoding="utf-8")
    settings = load_config(tmp_path / "config.yaml").asterisk
    client = AmiClient.from_settings(settings)
    assert (client.host, client.port, client.username) == ("127.0.0.1", 5039, "ivr")
    assert dial_string(client.callback, "600 100 200") == "PJSIP/600100200@trunk"
    assert client.callback.caller_id == "225550000"
    assert SECRET not in repr(client)
    monkeypatch.delenv("IVR_AMI_SECRET")
    with pytest.raises(Exception, match="IVR_AMI_SECRET is not set"):
        AmiClient.from_settings(settings)
    with pytest.raises(AmiError, match="no asterisk.ami"):
        AmiClient.from_settings(AsteriskSettings())
    assert dial_string(CallbackSettings(), "123") == "Local/123@testbed-callee"
