"""Queue events into per-call facts: over the AMI wire (the fake server pushes the events
Asterisk 22's app_queue sends) and directly (odd orders, overflow, re-sync)."""

from __future__ import annotations

import asyncio
import datetime as dt

from fake_ami import FakeAmi
from ivr.asterisk.ami import AmiClient
from ivr.asterisk.queue_tracker import QueueTracker
from ivr.clock import VirtualClock

T0 = dt.datetime(2026, 11, 24, 9, 0, tzinfo=dt.timezone.utc)
CALLER = {"Channel": "PJSIP/200-00000007", "Uniqueid": "1700000000.7", "Linkedid": "1700000000.7",
          "CallerIDNum": "600100200", "CallerIDName": "Jan Kowalski", "Queue": "sales"}


def collect():
    seen: list[tuple] = []
    return seen, lambda kind, uniqueid, queue, data, at: seen.append((kind, uniqueid, queue, data, at))


async def push_and_wait(events: list[tuple[str, dict]], seen: list, expected: int):
    fake = FakeAmi()
    await fake.start()
    client = AmiClient("127.0.0.1", fake.port, "ivr", fake.secret, on_queue_event=seen_sink(seen),
                       clock=VirtualClock(T0))
    await client.start()
    try:
        for name, headers in events:
            fake.push(name, **headers)
        loop = asyncio.get_running_loop()
        deadline = loop.time() + 5
        while len(seen) < expected:
            assert loop.time() < deadline, seen
            await asyncio.sleep(0.01)
        return client.facts(CALLER["Uniqueid"]), client.tracker
    finally:
        await client.close()
        await fake.close()


def seen_sink(seen):
    return lambda kind, uniqueid, queue, data, at: seen.append((kind, uniqueid, queue, data, at))


def test_join_agent_connect_complete_gives_wait_agent_and_talk():
    seen: list = []
    stamp = T0.timestamp()
    events = [
        ("QueueCallerJoin", {**CALLER, "Position": "2", "Count": "2", "Timestamp": f"{stamp:.6f}"}),
        ("QueueCallerLeave", {**CALLER, "Position": "1", "Count": "1", "Timestamp": f"{stamp + 12:.6f}"}),
        ("AgentConnect", {**CALLER, "DestChannel": "PJSIP/101-00000008", "DestUniqueid": "1700000000.8",
                          "MemberName": "Agent 101", "Interface": "PJSIP/101", "RingTime": "3", "HoldTime": "12",
                          "Timestamp": f"{stamp + 12:.6f}"}),
        ("AgentComplete", {**CALLER, "DestChannel": "PJSIP/101-00000008", "MemberName": "Agent 101",
                           "Interface": "PJSIP/101", "HoldTime": "12", "TalkTime": "95", "Reason": "caller",
                           "Timestamp": f"{stamp + 107:.6f}"}),
        ("Hangup", {**CALLER, "Cause": "16", "Cause-txt": "Normal Clearing"}),
    ]
    facts, _ = asyncio.run(push_and_wait(events, seen, 5))
    assert (facts.status, facts.queue, facts.position) == ("completed", "sales", 2)
    assert (facts.agent, facts.interface) == ("Agent 101", "PJSIP/101")
    assert (facts.wait, facts.ring, facts.talk, facts.reason) == (12.0, 3.0, 95.0, "caller")
    assert facts.joined_at == T0 and facts.completed_at == T0 + dt.timedelta(seconds=107)
    assert (facts.hangup_cause, facts.hangup_cause_text) == (16, "Normal Clearing")
    assert [s[0] for s in seen] == ["queue_joined", "queue_left", "agent_connected", "agent_completed", "hangup"]
    assert all(s[1] == "1700000000.7" and s[2] == "sales" for s in seen)
    assert seen[0][3] == {"position": 2, "count": 2, "channel": "PJSIP/200-00000007", "caller": "600100200",
                          "linkedid": "1700000000.7"}
    assert seen[2][3] == {"agent": "Agent 101", "interface": "PJSIP/101", "wait": 12.0, "ring": 3.0,
                          "agent_channel": "PJSIP/101-00000008"}
    assert seen[3][3] == {"agent": "Agent 101", "interface": "PJSIP/101", "wait": 12.0, "talk": 95.0,
                          "reason": "caller"}
    assert seen[3][4] == T0 + dt.timedelta(seconds=107)  # the event's own Timestamp
    assert seen[4][4] == T0  # no Timestamp header: the client's clock


def test_join_then_abandon_gives_abandoned_with_the_wait():
    seen: list = []
    events = [
        ("QueueCallerJoin", {**CALLER, "Position": "1", "Count": "1"}),
        ("QueueCallerAbandon", {**CALLER, "Position": "1", "OriginalPosition": "1", "HoldTime": "30"}),
        ("QueueCallerLeave", {**CALLER, "Position": "1", "Count": "0"}),
    ]
    facts, _ = asyncio.run(push_and_wait(events, seen, 3))
    assert facts.status == "abandoned" and facts.abandoned
    assert facts.wait == 30.0 and facts.agent is None and facts.talk is None
    assert [s[0] for s in seen] == ["queue_joined", "queue_abandoned", "queue_left"]
    assert seen[1][3] == {"position": 1, "original_position": 1, "wait": 30.0}
    assert seen[2][3]["wait"] == 30.0  # the leave keeps the abandon's wait


# --- the tracker alone ---------------------------------------------------------------------
def test_events_for_a_missed_join_still_make_facts_and_unknown_events_are_ignored():
    seen, sink = collect()
    tracker = QueueTracker(sink)
    tracker.handle("Newexten", {"Uniqueid": "9.9", "Context": "ivr"}, T0)
    tracker.handle("AgentComplete", {"Uniqueid": "", "Queue": "sales"}, T0)  # no caller: ignored
    tracker.handle("AgentConnect", {"Uniqueid": "9.9", "Queue": "sales", "MemberName": "Agent 104",
                                    "Interface": "PJSIP/104", "HoldTime": "7", "RingTime": "1"}, T0)
    facts = tracker.facts("9.9")
    assert facts.status == "answered" and facts.wait == 7.0 and facts.joined_at is None
    assert [s[0] for s in seen] == ["agent_connected"]
    assert tracker.facts("unknown") is None
    tracker.handle("Hangup", {"Uniqueid": "unknown", "Cause": "16"}, T0)  # not a queue caller: nothing
    assert len(seen) == 1


def test_an_overflow_gives_one_stint_per_queue():
    tracker = QueueTracker()
    uid = "1.5"
    tracker.handle("QueueCallerJoin", {"Uniqueid": uid, "Queue": "sales", "Position": "4"}, T0)
    tracker.handle("QueueCallerLeave", {"Uniqueid": uid, "Queue": "sales"}, T0 + dt.timedelta(seconds=60))
    tracker.handle("QueueCallerJoin", {"Uniqueid": uid, "Queue": "backup", "Position": "1"},
                   T0 + dt.timedelta(seconds=61))
    tracker.handle("AgentRingNoAnswer", {"Uniqueid": uid, "Queue": "backup", "MemberName": "Agent 190",
                                         "RingTime": "15"}, T0 + dt.timedelta(seconds=76))
    sales, backup = tracker.stints(uid)
    assert (sales.queue, sales.status, sales.wait) == ("sales", "left", 60.0)
    assert (backup.queue, backup.status, backup.no_answer) == ("backup", "waiting", ["Agent 190"])
    assert tracker.facts(uid) is backup
    assert tracker.waiting() == [backup]


def test_a_hold_time_given_as_an_epoch_is_read_as_a_wait():
    tracker = QueueTracker()
    tracker.handle("QueueCallerJoin", {"Uniqueid": "2.1", "Queue": "sales"}, T0)
    epoch = int(T0.timestamp()) - 25
    tracker.handle("QueueCallerAbandon", {"Uniqueid": "2.1", "Queue": "sales", "HoldTime": str(epoch)}, T0)
    assert tracker.facts("2.1").wait == 25.0


def test_reconcile_after_a_reconnect():
    seen, sink = collect()
    tracker = QueueTracker(sink)
    # before the outage: A waits in sales, B waits in sales, C talks to an agent
    tracker.handle("QueueCallerJoin", {"Uniqueid": "A", "Queue": "sales"}, T0)
    tracker.handle("QueueCallerJoin", {"Uniqueid": "B", "Queue": "sales"}, T0)
    tracker.handle("AgentConnect", {"Uniqueid": "C", "Queue": "support", "MemberName": "Agent 104",
                                    "HoldTime": "5"}, T0)
    seen.clear()
    at = T0 + dt.timedelta(seconds=100)
    # after: A still waits, B is gone from the queue but alive, C hung up, D joined meanwhile
    entries = [{"Queue": "sales", "Uniqueid": "A", "Position": "1", "Wait": "100"},
               {"Queue": "support", "Uniqueid": "D", "Position": "1", "Wait": "20", "Channel": "PJSIP/9-1",
                "CallerIDNum": "700"}]
    channels = [{"Uniqueid": "A"}, {"Uniqueid": "B"}, {"Uniqueid": "D"}]
    tracker.reconcile(entries, channels, at)
    kinds = {(s[0], s[1]) for s in seen}
    assert kinds == {("queue_joined", "D"), ("queue_left", "B"), ("agent_completed", "C")}
    assert tracker.facts("A").status == "waiting" and not tracker.facts("A").resynced
    b = tracker.facts("B")
    assert (b.status, b.wait, b.resynced) == ("left", 100.0, True)
    assert next(s[3] for s in seen if s[1] == "B") == {"wait": 100.0, "channel_alive": True, "resynced": True}
    assert tracker.facts("C").status == "completed" and tracker.facts("C").talk is None
    d = tracker.facts("D")
    assert (d.queue, d.joined_at, d.caller, d.position) == ("support", at - dt.timedelta(seconds=20), "700", 1)
    # a second re-sync with the same state changes nothing
    seen.clear()
    tracker.reconcile(entries, channels, at)
    assert seen == []


def test_the_tracker_keeps_only_the_newest_calls():
    tracker = QueueTracker(max_calls=3)
    for i in range(5):
        tracker.handle("QueueCallerJoin", {"Uniqueid": str(i), "Queue": "sales"}, T0)
    assert [tracker.facts(str(i)) is not None for i in range(5)] == [False, False, True, True, True]
