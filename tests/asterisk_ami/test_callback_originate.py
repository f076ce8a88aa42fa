"""Call-back Originates on the AMI (a fake Asterisk over loopback): the OriginateResponse read
as the try's result, refusals, a lost connection, and a queue's state for the scheduler."""

from __future__ import annotations

import asyncio

import pytest

from fake_ami import FakeAmi
from ivr.asterisk.callback import OriginateOutcome, attempt_result
from ivr.errors import AmiConnectionLost, AmiError, AmiRefused
from test_ami_client import client_for, run


@pytest.mark.parametrize("response, reason, result", [
    ("Success", "4", "answered"), ("Failure", "5", "busy"), ("Failure", "3", "no answer"),
    ("Failure", "1", "no answer"), ("Failure", "8", "failed"), ("Failure", "0", "failed"),
    ("Failure", "4", "failed"), ("Failure", "", "failed"), ("Failure", "77", "failed"),
])
def test_the_originate_response_is_the_result_of_the_try(response, reason, result):
    outcome = attempt_result({"Response": response, "Reason": reason, "Uniqueid": "<null>", "Channel": "Local/1@x"})
    assert outcome == OriginateOutcome(result, reason, None, "Local/1@x")


def test_a_refused_or_lost_originate_is_an_error_and_never_sent_again():
    async def main():
        fake = FakeAmi()
        await fake.start()
        client = client_for(fake)
        await client.start()
        try:
            with pytest.raises(AmiError, match="refused to dial"):
                await client.call_back("600;Local/1", "sales")
            assert fake.count("Originate") == 0
            fake.hold.add("originate")  # Asterisk takes it and says nothing; the line drops
            ringing = asyncio.create_task(client.call_back("600100200", "sales", action_id="cb-1"))
            await fake.wait_for(lambda: fake.count("Originate") == 1)
            fake.drop()
            with pytest.raises(AmiConnectionLost):
                await ringing
            await client.wait_connected(10)
            return fake.count("Originate")
        finally:
            await client.close()
            await fake.close()

    assert run(main()) == 1


def test_no_originate_response_in_time_is_an_error():
    async def main():
        fake = FakeAmi()
        await fake.start()
        client = client_for(fake)
        await client.start()
        try:
            with pytest.raises(AmiError, match="no OriginateResponse"):
                await client.call_back("600100200", "sales", wait=0.3)
        finally:
            await client.close()
            await fake.close()

    run(main())


def test_the_queue_status_of_one_queue():
    async def main():
        fake = FakeAmi(queue_entries=[{"Queue": "sales", "Position": "1", "Uniqueid": "1.1", "Wait": "42"}])
        await fake.start()
        client = client_for(fake)
        await client.start()
        try:
            state = await client.queue_status("sales")
            with pytest.raises(AmiError):
                await client.queue_status("sales\r\nAction: Logoff")
            return state, fake.actions("QueueStatus")[-1]
        finally:
            await client.close()
            await fake.close()

    state, sent = run(main())
    assert sent.get("Queue") == "sales"
    assert state.name == "sales" and state.params["Calls"] == "1"
    assert [m["Location"] for m in state.members] == ["PJSIP/101"]
    assert [e["Wait"] for e in state.entries] == ["42"]


def test_an_originate_asterisk_refuses_is_an_ami_refused():
    async def main():
        fake = FakeAmi(refuse_originate="Extension does not exist.")
        await fake.start()
        client = client_for(fake)
        await client.start()
        try:
            with pytest.raises(AmiRefused, match="Extension does not exist"):
                await client.call_back("600100200", "sales", action_id="cb-1", wait=5)
            with pytest.raises(AmiRefused, match="refused to dial"):
                await client.call_back("600;Local/1", "sales")
        finally:
            await client.close()
            await fake.close()

    run(main())


def test_an_answer_after_the_originates_reply_timed_out_still_finishes_the_try():
    async def main():
        fake = FakeAmi(hold={"originate"})  # Asterisk takes the Originate, its reply is lost
        await fake.start()
        client = client_for(fake, action_timeout=0.2)
        await client.start()
        try:
            ringing = asyncio.create_task(client.call_back("600100200", "sales", action_id="cb-9", wait=5))
            await fake.wait_for(lambda: fake.count("Originate") == 1)
            await asyncio.sleep(0.5)  # past the reply's time-out: the phone rings on
            assert not ringing.done()
            fake.push("OriginateResponse", ActionID="cb-9", Response="Success", Channel="Local/600100200@x-01;1",
                      Reason="4", Uniqueid="1700000000.60")
            return await ringing, fake.count("Originate")
        finally:
            await client.close()
            await fake.close()

    outcome, sent = run(main())
    assert outcome == OriginateOutcome("answered", "4", "1700000000.60", "Local/600100200@x-01;1")
    assert sent == 1
