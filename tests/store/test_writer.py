"""CallWriter on SQLite and PostgreSQL: simulated calls of the example line round-trip
into the calls row and their events; queue events and recordings land too."""

from __future__ import annotations

import datetime as dt

import pytest
from sqlalchemy import select

from ivr.channels.scripted import QueueScript
from ivr import events as ev
from ivr.store import Call, CallEvent, CallNode, CallWriter, QueueEvent, Recording, session_factory
from tests_support import run_call

UTC = dt.timezone.utc
BUSINESS_PATH = ["welcome", "open_check", "vip_check", "language", "main_menu", "support_account", "account_route",
                 "business_support", "survey", "goodbye"]


def load(db, call_id):
    with session_factory(db)() as session:
        call = session.get(Call, call_id)
        events = session.scalars(select(CallEvent).where(CallEvent.call_id == call_id).order_by(CallEvent.seq)).all()
        nodes = session.scalars(select(CallNode).where(CallNode.call_id == call_id).order_by(CallNode.t)).all()
        return call, events, nodes


def test_a_simulated_call_round_trips(db, line):
    writer = CallWriter(db, source="simulated")
    call = run_call(line, "1 3 90012345# 9#", call_id="sim-1", on_event=writer.submit,
                    queue=[QueueScript("answered", wait=35.0, talk=120.0, agent="PJSIP/104")])
    assert writer.flush(10)
    row, events, nodes = load(db, "sim-1")

    assert call.path == BUSINESS_PATH
    assert row.flow == "main" and row.flow_version == call.flow.version
    assert row.source == "simulated"
    assert row.caller == "+48 22 123 45 67" and row.caller_digits == "48221234567"
    assert row.language == "pl"
    assert row.keys == "1 3 ******** 9"  # the account number never reaches the database
    assert "90012345" not in repr([e.data for e in events])
    assert row.outcome == ev.Outcome.ANSWERED and row.department == "support"
    assert (row.queue_wait, row.agent, row.talk) == (35.0, "PJSIP/104", 120.0)
    assert row.survey_score == 9 and not row.abandoned
    assert (row.last_flow, row.last_node) == ("main", "goodbye")
    assert row.started_at == dt.datetime(2026, 11, 24, 9, 0, tzinfo=UTC)
    assert row.started_at.tzinfo is not None and row.ended_at.utcoffset() == dt.timedelta(0)
    assert row.duration == pytest.approx(call.elapsed(), abs=0.001)
    assert row.ended_at == row.started_at + dt.timedelta(seconds=row.duration)
    assert not row.reviewed

    assert [e.seq for e in events] == list(range(len(call.events)))
    assert [e.to_dict() for e in events] == [e.to_dict() for e in call.events]
    entered = {e.node: e.t for e in reversed(events) if e.type == ev.NODE_ENTERED}  # first time in each
    assert {n.node: n.t for n in nodes} == entered and set(entered) == set(BUSINESS_PATH)
    stats = writer.stats
    assert stats.written == stats.submitted == len(call.events) and stats.dropped == 0 and stats.healthy
    assert writer.close()


def test_overflow_then_abandon_sums_the_waits(db, line):
    writer = CallWriter(db)
    call = run_call(line, "1 1", call_id="sim-2", on_event=writer.submit, survey=False,
                    queue=[QueueScript("timeout", wait=180.0), QueueScript("abandoned", wait=45.0)])
    assert writer.close()
    row, events, _ = load(db, "sim-2")
    assert row.outcome == ev.Outcome.ABANDONED == call.outcome
    assert row.department == "backup" and row.abandoned
    assert row.queue_wait == 225.0 and row.agent is None and row.talk is None
    assert row.keys == "1 1" and row.survey_score is None
    assert row.source == "live"
    assert len(events) == len(call.events)


def test_a_live_call_keeps_untrusted_caller_text_as_data(db, line):
    writer = CallWriter(db)
    name = "Robert'); DROP TABLE calls;-- \x00 \udcff Zażółć 📞"
    number = "+48 22 <script>alert(1)</script> 555"
    details = {"channel": "PJSIP/trunk-00000012", "uniqueid": "1700000000.42", "caller_name": name,
               "source": "live"}
    call = run_call(line, "1 0", call_id="1700000000.42", caller=number, details=details, on_event=writer.submit)
    assert writer.close()
    row, events, _ = load(db, "1700000000.42")
    assert row.caller == number and row.caller_digits == "48221555"
    assert row.caller_name == "Robert'); DROP TABLE calls;-- \ufffd \ufffd Zażółć 📞"
    assert (row.channel, row.uniqueid, row.source) == ("PJSIP/trunk-00000012", "1700000000.42", "live")
    assert events[0].to_dict()["caller"] == number
    assert row.outcome == call.outcome == ev.Outcome.ANSWERED and row.department == "operator"


def test_many_calls_interleaved(db, line):
    """Events of concurrent calls arrive mixed; every call gets its own row."""
    calls = []
    buffered = []
    for i in range(20):
        calls.append(run_call(line, ["1 1", "1 2", "2 4 1", "1 hangup"][i % 4], call_id=f"c{i}", on_event=buffered.append,
                              queue=["answered"]))
    writer = CallWriter(db, max_batch=7)
    by_call = [[e for e in buffered if e.call_id == c.id] for c in calls]
    while any(by_call):
        for events in by_call:
            if events:
                writer.submit(events.pop(0))
    assert writer.close()
    with session_factory(db)() as session:
        rows = {c.id: c for c in session.scalars(select(Call))}
        count = len(session.scalars(select(CallEvent.seq)).all())
    assert count == len(buffered)
    for call in calls:
        assert rows[call.id].outcome == call.outcome
        assert rows[call.id].last_node == call.path[-1]


def test_queue_events_and_recordings(db, line, tmp_path):
    recordings = tmp_path / "recordings"
    writer = CallWriter(db, recordings_dir=recordings)
    at = dt.datetime(2026, 11, 24, 10, 0, 5, tzinfo=dt.timezone(dt.timedelta(hours=1)))
    # the recording and the queue event come before the call's row: an orphan, linked later
    writer.link_recording("1700000000.7", recordings / "2026" / "11" / "24" / "1700000000.7.wav")
    writer.queue_event("QueueCallerJoin", "1700000000.7", "sales", {"Position": "1", "Count": "1"}, at)
    assert writer.flush(10)
    with session_factory(db)() as session:
        orphan = session.scalars(select(Recording)).one()
        assert orphan.call_id is None and orphan.path == "2026/11/24/1700000000.7.wav"
    run_call(line, "1 1", call_id="1700000000.7", on_event=writer.submit, queue=["answered"],
             details={"uniqueid": "1700000000.7", "channel": "PJSIP/trunk-7"})
    writer.link_recording("1700000000.7", "2026/11/24/1700000000.7-agent.wav")
    writer.link_recording("no-such-call", "stray.wav")
    assert writer.close()
    with session_factory(db)() as session:
        links = {r.path: (r.call_id, r.uniqueid) for r in session.scalars(select(Recording))}
        qe = session.scalars(select(QueueEvent)).one()
    assert links == {"2026/11/24/1700000000.7.wav": ("1700000000.7", "1700000000.7"),
                     "2026/11/24/1700000000.7-agent.wav": ("1700000000.7", "1700000000.7"),
                     "stray.wav": (None, "no-such-call")}
    assert (qe.kind, qe.uniqueid, qe.queue, qe.data) == ("QueueCallerJoin", "1700000000.7", "sales",
                                                         {"Position": "1", "Count": "1"})
    assert qe.at == at and qe.at.tzinfo is not None


def test_the_recording_its_call_started_event_names_is_linked_with_no_help_from_the_sink(db, line, tmp_path):
    # the FastAGI server puts the dialplan's recording into call_started; the runtime's sink
    # is the writer's submit alone
    recordings = tmp_path / "recordings"
    writer = CallWriter(db, recordings_dir=recordings)
    details = {"uniqueid": "1700000000.9", "channel": "PJSIP/trunk-9", "source": "live",
               "recording": str(recordings / "2026" / "11" / "24" / "1700000000.9.wav")}
    call = run_call(line, "1 1", call_id="1700000000.9", on_event=writer.submit, queue=["answered"], details=details)
    assert writer.close()
    with session_factory(db)() as session:
        [recording] = session.scalars(select(Recording)).all()
    assert (recording.call_id, recording.uniqueid, recording.path) == ("1700000000.9", "1700000000.9",
                                                                        "2026/11/24/1700000000.9.wav")
    assert recording.created_at == call.started_at == dt.datetime(2026, 11, 24, 9, 0, tzinfo=UTC)
    stats = writer.stats  # the link is part of its event, not an item of its own
    assert stats.written == stats.submitted == len(call.events) and stats.dropped == 0


def test_an_event_is_stored_in_its_dict_form_secrets_masked(db):
    writer = CallWriter(db)
    at = dt.datetime(2026, 11, 24, 9, 0, tzinfo=UTC)
    events = [ev.Event("s-1", 0, 0.0, ev.CALL_STARTED, "main", None,
                       {"caller": "", "language": "pl", "version": "v1", "at": at.isoformat()}),
              ev.Event("s-1", 1, 1.23456, ev.VARIABLE, "main", "acct",
                       {"name": "card", "value": {"digits": ev.Secret("4111"), "tries": [ev.Secret("41")], "at": at,
                                                  "status": ev.TransferStatus.TIMED_OUT}})]
    for event in events:
        writer.submit(event)
    assert writer.close()
    _, stored, _ = load(db, "s-1")
    assert [e.to_dict() for e in stored] == [e.to_dict() for e in events]
    assert stored[1].t == 1.235 and stored[1].data == {
        "name": "card", "value": {"digits": "****", "tries": ["**"], "at": at.isoformat(), "status": "timeout"}}


def test_a_late_event_does_not_reset_a_finished_call(db, line):
    writer = CallWriter(db)
    call = run_call(line, "1 0", call_id="late", on_event=writer.submit, queue=["answered"])
    last = call.events[-1]
    writer.submit(ev.Event(last.call_id, last.seq + 1, last.t + 1, ev.ERROR, last.flow, None, {"error": "late"}))
    assert writer.close()
    row, events, _ = load(db, "late")
    assert row.outcome == ev.Outcome.ANSWERED and len(events) == len(call.events) + 1


def test_events_without_their_call_started_still_make_a_row(db, line):
    buffered = []
    call = run_call(line, "1 0", call_id="headless", on_event=buffered.append, queue=["answered"])
    writer = CallWriter(db)
    for event in buffered[1:]:
        writer.submit(event)
    assert writer.close()
    row, events, _ = load(db, "headless")
    assert row.outcome == call.outcome and len(events) == len(buffered) - 1
    assert row.started_at.tzinfo is not None


def test_from_config_uses_the_installation_database_and_recordings(tmp_path, line):
    from ivr.settings.config import Config
    from ivr.settings.qa import RecordingSettings
    from ivr.store import init_db

    config = Config(raw={"database": "sqlite:///data/calls.db", "recordings": {"dir": "rec"}}, root=tmp_path,
                    recordings=RecordingSettings(dir="rec"))
    init_db(f"sqlite:///{tmp_path / 'data' / 'calls.db'}").dispose()
    writer = CallWriter.from_config(config)
    assert writer.recordings_dir == (tmp_path / "rec").resolve()
    writer.link_recording("x", tmp_path / "rec" / "a.wav")
    assert writer.close()
    with session_factory(writer.engine)() as session:
        assert session.scalars(select(Recording.path)).all() == ["a.wav"]


def test_a_call_to_a_flow_with_a_hostile_name_is_stored_and_logs_one_line(db, line, caplog):
    """The flow a live call asks for is the AGI script path, URL-decoded: a line break or a
    NUL in it must neither forge a log line nor make PostgreSQL refuse the batch (which
    would take other calls' records with it)."""
    import asyncio
    import logging

    from ivr.channels.scripted import ScriptedChannel
    from ivr.clock import VirtualClock
    from ivr.engine import Engine

    hostile = "x\nINFO ivr.live: all good\x00"
    writer = CallWriter(db)
    channel = ScriptedChannel("", VirtualClock())
    with caplog.at_level(logging.ERROR, logger="ivr.engine"):
        call = asyncio.run(Engine(*line).run(channel, hostile, call_id="hostile", clock=channel.clock,
                                           on_event=writer.submit))
    run_call(line, "1 0", call_id="beside", on_event=writer.submit, queue=["answered"])
    assert writer.close()
    assert call.outcome == ev.Outcome.FAILED
    assert all("\n" not in record.getMessage() for record in caplog.records)
    row, events, _ = load(db, "hostile")
    assert row.flow == "x\nINFO ivr.live: all good\ufffd" and row.outcome == ev.Outcome.FAILED
    assert {e.flow for e in events} == {row.flow} and "\x00" not in events[1].data["message"]
    assert load(db, "beside")[0].outcome == ev.Outcome.ANSWERED


def _row(db, call_id):
    with session_factory(db)() as session:
        return session.get(Call, call_id)


def _until(check, seconds=5.0):
    import time

    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        value = check()
        if value:
            return value
        time.sleep(0.02)
    return check()


def test_a_calls_row_is_written_at_start_and_end_and_in_between_at_most_every_refresh(db, monkeypatch):
    import ivr.store.writer as writer_module

    monkeypatch.setattr(writer_module, "ROW_REFRESH", 3.0)
    writer = CallWriter(db)
    at = dt.datetime(2026, 11, 24, 9, 0, tzinfo=UTC).isoformat()

    def event(seq, kind, node, **data):
        writer.submit(ev.Event("r-1", seq, float(seq), kind, "main", node, data))

    event(0, ev.CALL_STARTED, None, caller="48221234567", language="pl", version="v1", at=at)
    event(1, ev.NODE_ENTERED, "menu", node_type="menu", via="start")
    assert _until(lambda: (row := _row(db, "r-1")) is not None and row.last_node == "menu", 2.0)  # at once
    event(2, ev.NODE_ENTERED, "sales", node_type="transfer", via="1")
    assert _until(lambda: len(load(db, "r-1")[1]) == 3)  # the event is stored at once ...
    assert _row(db, "r-1").last_node == "menu"  # ... the row waits for its refresh
    assert _until(lambda: _row(db, "r-1").last_node == "sales", 8.0)  # which comes with no other event
    event(3, ev.NODE_ENTERED, "goodbye", node_type="play", via="next")
    writer.flush()  # flush() writes every row as it is now
    assert _row(db, "r-1").last_node == "goodbye"
    event(4, ev.NODE_ENTERED, "hangup", node_type="hangup", via="next")
    event(5, ev.OUTCOME, "hangup", outcome=ev.Outcome.SELF_SERVICE, duration=5.0)
    assert _until(lambda: _row(db, "r-1").outcome == ev.Outcome.SELF_SERVICE, 0.5)  # the end is written at once
    assert _row(db, "r-1").last_node == "hangup"
    assert writer.close()


def test_after_a_batch_is_given_up_the_next_event_of_its_call_writes_the_row_again(db, monkeypatch):
    # the rows a refused batch carried never reached the database: without them the call's
    # next events would break the foreign key, and take other calls' records down with them
    from sqlalchemy.exc import DataError

    writer = CallWriter(db, retry_min=0.01, retry_max=0.02)
    real_write = writer._write
    refuse = {"on": True}

    def write(batch):
        if refuse["on"]:
            raise DataError("INSERT", {}, Exception("refused for its content"))
        real_write(batch)

    monkeypatch.setattr(writer, "_write", write)
    at = dt.datetime(2026, 11, 24, 9, 0, tzinfo=UTC).isoformat()
    writer.submit(ev.Event("a-1", 0, 0.0, ev.CALL_STARTED, "main", None, {"caller": "1", "language": "pl", "at": at}))
    assert _until(lambda: writer.stats.dropped >= 1)  # tried three times, then given up
    refuse["on"] = False
    writer.submit(ev.Event("a-1", 1, 1.0, ev.NODE_ENTERED, "main", "menu", {"node_type": "menu", "via": "start"}))
    writer.submit(ev.Event("b-1", 0, 0.0, ev.CALL_STARTED, "main", None, {"caller": "2", "language": "pl", "at": at}))
    writer.submit(ev.Event("b-1", 1, 1.0, ev.NODE_ENTERED, "main", "menu", {"node_type": "menu", "via": "start"}))
    # no flush(): it would write every row anyway; the events go in as they come
    assert _until(lambda: len(load(db, "b-1")[1]) == 2 and len(load(db, "a-1")[1]) == 1)  # the other call lost nothing
    assert _row(db, "a-1").last_node == "menu" and [e.seq for e in load(db, "a-1")[1]] == [1]
    assert writer.stats.dropped == 1 and writer.close()


def _rush(writer, calls, per_call=10, prefix="rush"):
    """Submit `calls` calls of `per_call` events as fast as the thread can: a burst."""
    at = dt.datetime(2026, 11, 24, 9, 0, tzinfo=UTC).isoformat()
    for n in range(calls):
        call = f"{prefix}-{n}"
        writer.submit(ev.Event(call, 0, 0.0, ev.CALL_STARTED, "main", None, {"caller": "1", "language": "pl", "at": at}))
        for seq in range(1, per_call):
            writer.submit(ev.Event(call, seq, float(seq), ev.NODE_ENTERED, "main", "menu",
                                   {"node_type": "menu", "via": "start"}))


def test_a_rush_of_records_is_held_while_it_lasts_then_written_at_once(db):
    import threading
    import time

    writer = CallWriter(db, rush_rate=500.0, rush_hold=5.0)
    _rush(writer, 5, prefix="warm")  # the writer has written something and is caught up
    assert writer.flush(10)
    stop = threading.Event()
    sent = {"calls": 0}

    def burst():  # 5 calls (50 records) every few ms, far above the rush rate, for a second
        while not stop.is_set():
            _rush(writer, 5, prefix=f"b{sent['calls']}")
            sent["calls"] += 5
            time.sleep(0.005)

    before = writer.stats.written
    thread = threading.Thread(target=burst)
    thread.start()
    time.sleep(1.0)
    during = writer.stats.written - before  # (next to) nothing written while the rush lasts
    stop.set()
    thread.join()
    # a busy machine may stall the burst's thread for a whole window: allow a batch or two
    assert 100 <= sent["calls"] * 10 < writer.max_queue // 4 and during <= 2 * writer.max_batch, (during, sent)
    # the rush over, its records follow in big transactions, with no flush() to push them
    assert _until(lambda: writer.stats.written - before == sent["calls"] * 10, 10.0)
    assert writer.stats.dropped == 0 and writer.close()


def test_a_rush_holds_no_flush_and_no_longer_than_its_hold(db):
    import threading
    import time

    writer = CallWriter(db, rush_rate=2_000.0, rush_hold=0.3)
    stop = threading.Event()

    def burst():
        n = 0
        while not stop.is_set():
            _rush(writer, 20, prefix=f"c{n}")
            n += 20
            time.sleep(0.01)

    thread = threading.Thread(target=burst)
    thread.start()
    try:
        time.sleep(0.2)
        began = time.monotonic()
        assert writer.flush(10)  # a flush waiting ends the hold: it does not wait for the rush to end
        assert time.monotonic() - began < 1.5
        written = writer.stats.written
        # a rush longer than the hold is written while it lasts, as with no hold at all
        assert _until(lambda: writer.stats.written > written, 2.0)
    finally:
        stop.set()
        thread.join()
    assert writer.close()
