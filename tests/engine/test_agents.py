"""Nodes that hand the caller on: transfer (answered, timed out, abandoned, overflow,
the request the channel gets), callback (accepted, declined, never offered without a
number) and voicemail (mailbox, max_length, outcome)."""

import pytest

from helpers import CONFIG_YAML, make_flow, of_type, types, write_config
from ivr.channels.scripted import QueueScript, ScriptedChannel
from ivr.clock import VirtualClock
from ivr import events as ev
from ivr.engine.channel import CallbackRequest, TransferRequest

CALLER = "+48221234567"

TRANSFER = make_flow(
    """
    t:
      type: transfer
      department: sales
      prompt: connecting
      announce_position: true
      max_wait: 3m
      priority: 7
      on_timeout: timed_out
      after: after
    after:
      type: hangup
      prompt: bye
    timed_out:
      type: hangup
    """,
    start="t",
)


def test_answered_transfer_goes_to_after(run_flow, config):
    sim = run_flow(TRANSFER, caller=CALLER, queue=["answered"])
    call = sim.call
    assert call.path == ["t", "after"]
    assert of_type(call, ev.NODE_ENTERED)[1].data["via"] == "after"
    assert call.outcome == ev.Outcome.ANSWERED
    assert call.department == "sales"
    assert call.heard == ["connecting", "bye"]
    [transfer] = of_type(call, ev.TRANSFER)
    assert transfer.data == {"department": "sales", "queue": "sales", "priority": 7}
    [result] = of_type(call, ev.TRANSFER_RESULT)
    assert result.data == {"department": "sales", "status": "answered", "wait": 20.0, "agent": "PJSIP/101", "talk": 240.0}
    assert sim.channel.transfers == [TransferRequest(config.departments["sales"], 180.0, True, 7, CALLER)]
    assert call.events[-1].data == {"outcome": "answered", "department": "sales", "survey": None,
                                    "duration": round(call.elapsed(), 3)}
    assert sim.channel.hung_up is True


def test_transfer_request_defaults(run_flow, config):
    text = make_flow(
        """
        t:
          type: transfer
          department: support
        """,
        start="t",
    )
    sim = run_flow(text, caller="", queue=["answered"])
    assert sim.channel.transfers == [TransferRequest(config.departments["support"], None, False, 0, "")]
    assert sim.call.path == ["t"]
    assert sim.call.outcome == ev.Outcome.ANSWERED
    assert sim.call.heard == []


def test_timeout_goes_to_on_timeout(run_flow):
    sim = run_flow(TRANSFER, caller=CALLER, queue=["timeout"])
    call = sim.call
    assert call.path == ["t", "timed_out"]
    assert of_type(call, ev.NODE_ENTERED)[1].data["via"] == "timeout"
    assert of_type(call, ev.TRANSFER_RESULT)[0].data["status"] == "timeout"
    assert of_type(call, ev.TRANSFER_RESULT)[0].data["wait"] == 180.0  # max_wait
    # the caller queued and nobody answered: not a call the IVR solved
    assert call.outcome == ev.Outcome.UNANSWERED


def test_timeout_without_on_timeout_is_unanswered(run_flow):
    text = make_flow(
        """
        t:
          type: transfer
          department: sales
        """,
        start="t",
    )
    call = run_flow(text, queue=["timeout"]).call
    assert call.outcome == ev.Outcome.UNANSWERED
    assert call.department == "sales"
    assert types(call)[-1] == ev.OUTCOME


def test_timeout_without_on_timeout_overflows_to_the_departments_backup(run_flow, tmp_path):
    config = write_config(tmp_path, CONFIG_YAML.replace(
        "sales:    {queue: sales, members: [PJSIP/101, PJSIP/102]}",
        "sales:    {queue: sales, members: [PJSIP/101, PJSIP/102], overflow: support}",
    ))
    text = make_flow(
        """
        t:
          type: transfer
          department: sales
        """,
        start="t",
    )
    sim = run_flow(text, queue=["timeout", "answered"], config_=config)
    call = sim.call
    assert [e.data for e in of_type(call, ev.TRANSFER)] == [
        {"department": "sales", "queue": "sales", "priority": 0},
        {"department": "support", "queue": "support", "priority": 0, "overflow": True,
         "reason": "sales: no agent answered"},
    ]
    assert [r.department.name for r in sim.channel.transfers] == ["sales", "support"]
    assert call.outcome == ev.Outcome.ANSWERED
    assert call.department == "support"


def test_abandoned_in_the_queue(run_flow):
    sim = run_flow(TRANSFER, caller=CALLER, queue=["abandoned"])
    call = sim.call
    assert call.outcome == ev.Outcome.ABANDONED
    assert call.department == "sales"
    assert call.path == ["t"]
    assert types(call)[-3:] == [ev.TRANSFER_RESULT, ev.CALLER_HANGUP, ev.OUTCOME]
    [hangup] = of_type(call, ev.CALLER_HANGUP)
    assert hangup.node == "t"
    assert of_type(call, ev.TRANSFER_RESULT)[0].data["status"] == "abandoned"
    assert call.events[-1].data["outcome"] == "abandoned"
    assert sim.channel.hung_up is False  # nobody to hang up on


def test_queue_times_move_the_clock(run_flow):
    sim = run_flow(TRANSFER, queue=[QueueScript("answered", wait=35.0, talk=60.0, agent="PJSIP/102")])
    [result] = of_type(sim.call, ev.TRANSFER_RESULT)
    assert result.data["wait"] == 35.0 and result.data["talk"] == 60.0 and result.data["agent"] == "PJSIP/102"
    after = of_type(sim.call, ev.NODE_ENTERED)[1]
    assert after.t - result.t == 0.0
    assert result.t == pytest.approx(of_type(sim.call, ev.TRANSFER)[0].t + 95.0)


CALLBACK = make_flow(
    """
    cb:
      type: callback
      prompt: offer
      department: sales
      confirm_prompt: booked
      timeout: 6s
      next: bye
      declined: vm
    bye:
      type: hangup
      prompt: bye
    vm:
      type: voicemail
      prompt: leave
      mailbox: sales
      max_length: 30s
      next: bye
    """,
    start="cb",
)


def test_callback_accepted(run_flow, config):
    sim = run_flow(CALLBACK, "1", caller="+48 601 200 300")
    call = sim.call
    assert sim.channel.callbacks == [CallbackRequest(config.departments["sales"], "+48 601 200 300")]
    assert call.outcome == ev.Outcome.CALLBACK
    assert call.department == "sales"
    assert call.heard == ["offer", "booked", "bye"]
    assert call.path == ["cb", "bye"]
    assert of_type(call, ev.NODE_ENTERED)[1].data["via"] == "accepted"
    [callback] = of_type(call, ev.CALLBACK)
    assert callback.data == {"offered": True, "accepted": True, "department": "sales"}
    assert of_type(call, ev.KEY)[0].data == {"key": "1"}


def test_callback_accepted_during_the_offer(run_flow):
    sim = run_flow(CALLBACK, "1", caller=CALLER, barge_in=True)
    assert sim.call.outcome == ev.Outcome.CALLBACK
    assert len(sim.channel.callbacks) == 1


@pytest.mark.parametrize("keys", ["2", "-", "9"])
def test_callback_declined(run_flow, keys):
    sim = run_flow(CALLBACK, keys, caller=CALLER)
    call = sim.call
    assert sim.channel.callbacks == []
    assert call.path == ["cb", "vm", "bye"]
    assert of_type(call, ev.NODE_ENTERED)[1].data["via"] == "declined"
    assert of_type(call, ev.CALLBACK)[0].data == {"offered": True, "accepted": False}
    assert call.outcome == ev.Outcome.VOICEMAIL
    assert call.heard == ["offer", "leave", "bye"]


def test_callback_no_key_waits_the_nodes_timeout(run_flow):
    call = run_flow(CALLBACK, "-", caller=CALLER).call
    offer = of_type(call, ev.PROMPT)[0]
    vm = of_type(call, ev.NODE_ENTERED)[1]
    from ivr.channels.scripted import prompt_seconds

    assert vm.t - offer.t == pytest.approx(prompt_seconds("offer po polsku.") + 6.0)


@pytest.mark.parametrize("caller", ["", "anonymous", "101"])
def test_callback_never_offered_without_a_number(run_flow, caller):
    sim = run_flow(CALLBACK, "1", caller=caller)
    call = sim.call
    assert "offer" not in call.heard
    assert sim.channel.callbacks == []
    assert call.path == ["cb", "vm", "bye"]
    assert of_type(call, ev.CALLBACK)[0].data == {"offered": False, "reason": "no caller number"}
    assert sim.channel.unused_keys == ["1"]


def test_voicemail_honours_max_length(run_flow):
    channel = ScriptedChannel("", VirtualClock(), voicemail_seconds=200.0)
    sim = run_flow(CALLBACK, channel=channel, caller="")
    call = sim.call
    [voicemail] = of_type(call, ev.VOICEMAIL)
    assert voicemail.data == {"mailbox": "sales", "duration": 30.0}
    assert channel.voicemails == ["sales"]


def test_voicemail_shorter_than_max_length(run_flow):
    channel = ScriptedChannel("", VirtualClock(), voicemail_seconds=12.5)
    call = run_flow(CALLBACK, channel=channel, caller="").call
    assert of_type(call, ev.VOICEMAIL)[0].data["duration"] == 12.5


def test_voicemail_without_next_ends_the_call(run_flow):
    text = make_flow(
        """
        vm:
          type: voicemail
          mailbox: general
        """,
        start="vm",
    )
    sim = run_flow(text)
    call = sim.call
    assert call.outcome == ev.Outcome.VOICEMAIL
    assert call.department is None
    assert call.heard == []
    assert of_type(call, ev.VOICEMAIL)[0].data == {"mailbox": "general", "duration": 20.0}
    assert sim.channel.hung_up is True
    assert call.events[-1].data["outcome"] == "voicemail"
