"""`ivr serve` as a whole: a call from a fake Asterisk through the real runtime (FastAGI,
hot reload, the call-records writer on SQLite) leaves its full record: path, keys (the
account masked), queue wait and agent, outcome, events in order, and its recording. So
does a call that asks for a flow that is not loaded, which the QA app then shows."""

from __future__ import annotations

import asyncio
import shutil
import sys
from pathlib import Path

import pytest
import sqlalchemy as sa

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "channels"))

from fake_asterisk import Caller, environment, place_call  # noqa: E402
from ivr.live.serve import AmiPart, build_runtime  # noqa: E402
from ivr.settings.config import Department, load_config  # noqa: E402
from ivr.engine.channel import CallbackRequest  # noqa: E402
from ivr.errors import ChannelError  # noqa: E402
from ivr.store.db import create_db_engine  # noqa: E402
from ivr.store.models import Call, CallEvent, Recording, SurveyCount  # noqa: E402
from ivr.web import create_app  # noqa: E402
from ivr.web.users import add_user  # noqa: E402
from web.support import log_in  # noqa: E402

ROOT = Path(__file__).resolve().parents[2]


def _installation(tmp_path: Path) -> Path:
    shutil.copy(ROOT / "config.yaml", tmp_path / "config.yaml")
    shutil.copytree(ROOT / "data", tmp_path / "data")
    shutil.copytree(ROOT / "flows", tmp_path / "flows", ignore=shutil.ignore_patterns("*.test.yaml"))
    # Tuesday 10:00 in Warsaw, whatever day the test runs: an office-hours schedule for every day
    text = (tmp_path / "config.yaml").read_text()
    text = text.replace('weekly: {mon-fri: "08:00-18:00", sat: "09:00-13:00"}', 'weekly: {mon-sun: "00:00-24:00"}')
    text = text.replace("      - {country: PL}           # Polish public holidays, every year\n", "")
    text = text.replace("      - 2026-12-31              # company day off\n", "")
    (tmp_path / "config.yaml").write_text(text)
    return tmp_path


def _one_call(root: Path, caller: Caller, env: dict[str, str]) -> None:
    runtime = build_runtime([root / "flows"], root / "config.yaml", port=0, ami=False, metrics_port=0)

    async def main():
        await runtime.start()
        try:
            await place_call(runtime.server.port, caller, env)
        finally:
            await runtime.close()

    asyncio.run(main())


def test_a_live_call_leaves_its_full_record(tmp_path):
    root = _installation(tmp_path)
    env = environment("1700000123.7", agi_calleridname='A \\"Quote\\" Test')
    _one_call(root, Caller(keys=["1", "3", "9", "0", "0", "1", "2", "3", "4", "5", "#"]), env)
    db = create_db_engine(f"sqlite:///{root / 'ivr.db'}")
    with db.connect() as conn:
        call = conn.execute(sa.select(Call).where(Call.id == "1700000123.7")).mappings().one()
        events = conn.execute(sa.select(CallEvent.type, CallEvent.seq).where(CallEvent.call_id == call["id"])
                              .order_by(CallEvent.seq)).all()
        recordings = conn.execute(sa.select(Recording.path, Recording.call_id)).all()
    assert call["flow"] == "main" and call["source"] == "live" and call["uniqueid"] == "1700000123.7"
    assert call["caller_name"] == 'A "Quote" Test'
    assert call["outcome"] == "answered" and call["department"] == "support"
    assert call["agent"] == "Agent 101" and call["queue_wait"] == 12.0
    assert "900123" not in (call["keys"] or "") and "********" in call["keys"]
    assert call["last_node"] == "survey"  # the fake caller had no key left for the survey and hung up
    assert [seq for _type, seq in events] == list(range(len(events)))
    assert events[0][0] == "call_started" and events[-1][0] == "outcome"
    assert recordings and recordings[0][1] == "1700000123.7"


def test_the_survey_is_counted_in_the_database_and_counts_on_after_a_restart(tmp_path):
    root = _installation(tmp_path)
    keys = ["1", "3", "9", "0", "0", "1", "2", "3", "4", "5", "#"]  # to support, then the survey
    for n in (1, 2):  # each its own `ivr serve`: the second starts where the first stopped
        _one_call(root, Caller(keys=list(keys)), environment(f"1700000125.{n}"))
    db = create_db_engine(f"sqlite:///{root / 'ivr.db'}")
    with db.connect() as conn:
        counts = conn.execute(sa.select(SurveyCount.flow, SurveyCount.node, SurveyCount.calls)).all()
        last = conn.execute(sa.select(Call.last_node).order_by(Call.id)).scalars().all()
    db.dispose()
    assert last == ["survey", "survey"]
    assert counts == [("main", "survey", 2)]


def test_a_call_to_a_flow_that_is_not_loaded_is_recorded_and_shown_to_qa(tmp_path):
    root = _installation(tmp_path)
    _one_call(root, Caller(), environment("1700000124.8", script="nosuchflow"))
    db = create_db_engine(f"sqlite:///{root / 'ivr.db'}")
    with db.connect() as conn:
        call = conn.execute(sa.select(Call).where(Call.id == "1700000124.8")).mappings().one()
        events = conn.execute(sa.select(CallEvent.type, CallEvent.data).where(CallEvent.call_id == call["id"])
                              .order_by(CallEvent.seq)).all()
        recordings = conn.execute(sa.select(Recording.call_id)).scalars().all()
    assert call["flow"] == "nosuchflow" and call["source"] == "live" and call["flow_version"] is None
    assert call["outcome"] == "failed" and call["department"] == "operator"
    assert [kind for kind, _data in events] == ["call_started", "error", "transfer", "transfer_result", "outcome"]
    assert events[2][1]["fallback"] is True and events[2][1]["department"] == "operator"
    assert recordings == ["1700000124.8"]

    app = create_app(load_config(root / "config.yaml"), testing=True)
    try:
        add_user(app.extensions["ivr"].engine, "qa", "qa-password-1", "qa")
        client = app.test_client()
        assert log_in(client, "qa", "qa-password-1").status_code == 302
        page = client.get("/calls/1700000124.8")
        assert page.status_code == 200
        text = page.get_data(as_text=True)
        assert "The flow nosuchflow is not loaded now" in text and "FlowNotLoaded" in text
    finally:
        app.extensions["ivr"].engine.dispose()


def test_the_ami_part_serves_the_line_with_mutes_and_call_backs():
    class Client:
        connected = True

        def __init__(self):
            self.done = []

        async def mute(self, channel, muted):
            self.done.append(("mute", channel, muted))

    class Scheduler:  # stores the booking; dials later (tests/live/test_callback_scheduler.py)
        def __init__(self):
            self.booked = []

        async def book(self, request):
            self.booked.append(request)

    client, scheduler = Client(), Scheduler()
    part = AmiPart(client, callbacks=scheduler)
    request = CallbackRequest(Department("support", "support-queue"), "600100200")
    asyncio.run(part.mute("PJSIP/101-1", True))
    asyncio.run(part.book_callback(request))
    assert client.done == [("mute", "PJSIP/101-1", True)]  # nothing dialled while the caller is on the line
    assert scheduler.booked == [request]
    with pytest.raises(ChannelError, match="call records database"):  # the caller then reaches the fallback queue
        asyncio.run(AmiPart(client).book_callback(request))
    client.connected = False
    with pytest.raises(ConnectionError):  # the line then stops the recorder over AGI instead
        asyncio.run(part.mute("PJSIP/101-1", False))


def test_the_ami_part_lends_the_line_the_queue_board_as_queue_loads():
    import datetime as dt

    from ivr.asterisk.queue_board import QueueBoard
    from ivr.clock import VirtualClock
    from ivr.engine.channel import QueueLoad

    clock = VirtualClock(dt.datetime(2026, 11, 24, 9, 0, tzinfo=dt.timezone.utc))

    class Client:
        board = QueueBoard(clock)

    part = AmiPart(Client())
    assert part.queue_load("sales") == QueueLoad(0, 0.0, 0, 0, fresh=False)  # never synced: not vouched for
    Client.board.apply_status([{"Event": "QueueParams", "Queue": "sales"},
                               {"Event": "QueueMember", "Queue": "sales", "Location": "PJSIP/101", "Status": "2",
                                "Paused": "0", "InCall": "1"},
                               {"Event": "QueueEntry", "Queue": "sales", "Uniqueid": "1.1", "Wait": "30"}],
                              Client.board.begin_sync(), clock.now())
    assert part.queue_load("sales") == QueueLoad(1, 30.0, 0, 1, fresh=True)
    assert part.queue_load("nosuch") is None  # Asterisk has no such queue: nothing to compare
    Client.board.connection_lost()
    assert part.queue_load("sales").fresh is False


def test_ivr_serve_log_level_debug_logs_each_call_and_keeps_libraries_quiet(tmp_path):
    # `ivr serve --log-level debug`, as the README names it: the line each call starts with,
    # and nothing of the libraries' own debug output (AMI events carry callers' numbers)
    import os
    import signal
    import socket
    import subprocess
    import time

    root = _installation(tmp_path)
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    env = {k: v for k, v in os.environ.items() if k != "IVR_AMI_SECRET"}  # no AMI: nothing to connect to
    ivr = Path(sys.executable).with_name("ivr")
    process = subprocess.Popen([str(ivr), "serve", "--log-level", "debug", "--port", str(port), "--metrics-port", "0"], cwd=root, env=env,
                               stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        deadline = time.monotonic() + 30
        lines: list[str] = []
        while time.monotonic() < deadline and not any("FastAGI listening" in line for line in lines):
            lines.append(process.stdout.readline())
        assert any("FastAGI listening" in line for line in lines), "".join(lines)
        asyncio.run(place_call(port, Caller(keys=["hangup"]), environment("1700000000.77")))
        time.sleep(0.5)
    finally:
        process.send_signal(signal.SIGTERM)
        out, _ = process.communicate(timeout=30)
    said = "".join(lines) + out
    assert "DEBUG ivr.channels.fastagi: call 1700000000.77 on PJSIP/caller-1700000000.77 from '48221234567'" in said
    assert not [line for line in said.splitlines() if " DEBUG " in line and " ivr." not in line]
