"""Call-backs that keep the place, on real calls through the test bed's Asterisk.

The installation is flows/main.yaml with shorter waits, so a test does not wait minutes:
sales waits 6 s for an agent and then offers the call-back (instead of the backup group
first), and a call-back that is not answered is tried again after 10 s, twice in all.

1. The turn: the sales queue has one agent. A first caller talks to them (tt-monkeys,
   16 s); a second caller waits, accepts the call-back, keeps their own number and hangs
   up. When the agent is free again and nobody who was ahead waits, the engine dials the
   customer (the test bed's [testbed-callee] answers) into the sales queue, where the agent
   answers. Stored: the booking with the caller's place in line, one try "turn",
   answered, with the call-back channel's uniqueid; the AMI saw one Originate.
2. A restart: `ivr serve` runs as a process while no agent of sales can answer (their only
   member does not exist: JOINEMPTY); one caller books a call-back on their own number,
   another types a number that is busy (486...). `ivr serve` is stopped and started
   again with agents: each call-back is dialled by the new process, the first exactly
   once (answered), the busy one twice, 10 s apart, then failed. The dashboard and the
   call page of the QA web app show them.
3. A crash while the phone rings: the customer's phone (408...) rings and is never
   answered (the ring time is 8 s in this installation). `ivr serve` is killed (SIGKILL)
   while it rings; the one started next closes that try as interrupted once it cannot
   ring any more (the ring time and the margin over) and dials again only after the pause: two tries in all (interrupted, no answer), two Originates, and
   the call-back failed.
"""

from __future__ import annotations

import contextlib
import os
import re
import signal
import subprocess
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable

import pytest
import sqlalchemy as sa
import yaml

from ivr.asterisk.dialplan import with_members
from ivr.live.callbacks import HOUSEKEEPING, STALE_MARGIN
from ivr.prompts.audio import inspect
from ivr.settings.config import load_config
from ivr.store.db import create_db_engine
from ivr.store.models import CallEvent, Callback, CallbackAttempt
from ivr.testbed.ami_session import AmiSession
from ivr.testbed.server import REPO
from ivr.web import create_app
from ivr.web.users import add_user
from .live_support import (AGENTS, Caller, EventPump, live_installation, serve_process, serving, wait_for_outcomes,
                           wait_until)
from .testbed_support import IVR

if TYPE_CHECKING:
    from ivr.testbed.server import Testbed

pytestmark = pytest.mark.asterisk

QUEUE_WAIT = 6  # sales' max_wait in the test's flow
RETRY_PAUSE = 10
ONE_AGENT = "Local/209@agents/n"
NOBODY = "PJSIP/nobody"  # no such endpoint: sales cannot be joined (JOINEMPTY), nobody's turn comes
NUMBERS = {"blocker": "482200701", "keeper": "482200702", "restart": "482200703", "busy": "482200704",
           "unanswered": "408200705"}  # [testbed-callee] lets a 408... number ring unanswered
RING_SECONDS = 8  # asterisk.callback.timeout of the crash test's installation
BUSY_NUMBER = "486000777"  # [testbed-callee] answers a 486... number with Busy()


@pytest.fixture(scope="module")
def built(testbed: "Testbed") -> None:
    done = subprocess.run([str(IVR), "--config", str(testbed.config_path), "prompts", "build"],
                          capture_output=True, text=True, cwd=REPO)
    assert done.returncode == 0, f"`ivr prompts build` failed:\n{done.stdout}{done.stderr}"


def installation(folder: Path, testbed: "Testbed", ring: float = 30) -> Path:
    """live_installation's config.yaml (a customer's phone rings `ring` seconds), and beside
    it flows/ with the shorter waits."""
    config = live_installation(folder, testbed)
    raw = yaml.safe_load(config.read_text(encoding="utf-8"))
    raw["asterisk"]["callback"] = {**raw["asterisk"].get("callback", {}), "timeout": f"{ring:g}s"}
    config.write_text(yaml.safe_dump(raw, allow_unicode=True, sort_keys=False), encoding="utf-8")
    flows = folder / "flows"
    flows.mkdir()
    main = yaml.safe_load((REPO / "flows" / "main.yaml").read_text(encoding="utf-8"))
    main["nodes"]["sales"].update(max_wait=f"{QUEUE_WAIT}s", on_timeout="callback_offer")
    main["nodes"]["callback_offer"].update(retry_pause=f"{RETRY_PAUSE}s", call_attempts=2)
    (flows / "main.yaml").write_text(yaml.safe_dump(main, allow_unicode=True, sort_keys=False), encoding="utf-8")
    (flows / "faq.yaml").write_text((REPO / "flows" / "faq.yaml").read_text(encoding="utf-8"), encoding="utf-8")
    return config


def seconds(testbed: "Testbed", prompt: str) -> float:
    return inspect(testbed.prompts_dir / "pl" / "main" / f"{prompt}.wav").duration


def booking_keys(testbed: "Testbed", queue_wait: float, *then: str) -> tuple[str, float]:
    """Keys (ivr call syntax, fixed timers) of a caller who presses 1 (Polish) and 1 (sales),
    waits out the queue, accepts the call-back some 6 s into the offer, then presses `then`,
    each 3 s into the prompt it answers; and the seconds to hold on for the rest of the call."""
    # 1 at 8 s and 1 at 10 s as the other AMI callers of the live tests press them (an AMI caller's
    # first key lands 1.45 s into the language menu, clear of the welcome); then the connecting
    # prompt, the queue and 6 s of the offer (12.1 s long). A key that comes before the offer is
    # lost: on a loaded machine Asterisk let the caller out of the 6 s queue a second late, and
    # 3.5 s left 2.8 s (6 s leaves 5.3 s); a key that comes late is still in the offer.
    keys = f"6s 1 1 {seconds(testbed, 'connecting') + queue_wait + 4.0:.1f}s 1"
    for key in then:
        keys += f" 1s {key}"
    hold = seconds(testbed, "callback_booked") + seconds(testbed, "goodbye") + 4
    if len(then) > 1:  # the typed number: its prompt, then the keys themselves
        hold += 3
    return keys, hold


def callbacks(db: sa.Engine) -> dict[str, dict[str, Any]]:
    """Every stored call-back by number, with its tries."""
    with db.connect() as conn:
        rows = {r["number"]: dict(r) for r in conn.execute(sa.select(Callback.__table__)).mappings()}
        for row in rows.values():
            query = sa.select(CallbackAttempt.__table__).where(CallbackAttempt.callback_id == row["id"])
            row["tries"] = [dict(t) for t in conn.execute(query.order_by(CallbackAttempt.seq)).mappings()]
    return rows


def finished(db: sa.Engine, number: str, status: str) -> Callable[[], Any]:
    return lambda: (callbacks(db).get(number) or {}).get("status") == status and callbacks(db)[number]


def events_of(db: sa.Engine, call_id: str) -> list[dict[str, Any]]:
    with db.connect() as conn:
        query = sa.select(CallEvent.__table__).where(CallEvent.call_id == call_id).order_by(CallEvent.seq)
        return [dict(r) for r in conn.execute(query).mappings()]


def originates(pump: EventPump) -> list[dict[str, str]]:
    return [e for e in pump.events("OriginateResponse") if e.get("ActionID", "").startswith("ivr-callback-")]


# --- 1. the turn ---------------------------------------------------------------------------------
def test_the_customer_is_called_back_when_the_agent_frees_up(testbed: "Testbed", built, tmp_path):
    config = installation(tmp_path, testbed)
    with serving(testbed, config, flows=tmp_path / "flows",
                 members=lambda d: [ONE_AGENT] if d.name == "sales" else AGENTS) as srv:
        keys, hold = booking_keys(testbed, QUEUE_WAIT, "1")  # 1: the number I call from
        with AmiSession(testbed.ami_host, testbed.ami_port) as ami:
            ami.login(testbed.ami_username, testbed.ami_secret)
            Caller("ami", NUMBERS["blocker"], "Talks to the agent", keys="6s 1 1", hold=40).place(testbed, ami)
            time.sleep(2)  # queued behind the first caller
            Caller("ami", NUMBERS["keeper"], "Keeps the place", keys=keys, hold=hold).place(testbed, ami)
        rows = wait_for_outcomes(srv, [NUMBERS["blocker"], NUMBERS["keeper"]], timeout=120)
        done = wait_until("the call-back answered", finished(srv.db, NUMBERS["keeper"], "done"), 90)
        # the customer reached the agent through the queue: the AMI's events of the call-back channel
        [response] = wait_until("one call-back Originate", lambda: originates(srv.ami_events), 10)
        channel = response["Channel"]
        wait_until("the agent answering the call-back",
                   lambda: [e for e in srv.ami_events.events("AgentConnect") if e.get("Channel") == channel], 30)
        joined = [e for e in srv.ami_events.events("QueueCallerJoin") if e.get("Channel") == channel]
        # the talk ends (tt-monkeys, 16 s): the call-back's recording is finished
        wait_until("the end of the call-back's talk",
                   lambda: [e for e in srv.ami_events.events("AgentComplete") if e.get("Channel") == channel], 40)
        blocker_events = events_of(srv.db, rows[NUMBERS["blocker"]]["id"])
        keeper_events = events_of(srv.db, rows[NUMBERS["keeper"]]["id"])
        logs = [r.getMessage() for r in srv.logs.records]

    keeper, blocker = rows[NUMBERS["keeper"]], rows[NUMBERS["blocker"]]
    assert blocker["outcome"] == "answered" and blocker["agent"], blocker
    assert keeper["outcome"] == "callback" and keeper["department"] == "sales"
    [booked] = [e["data"] for e in keeper_events if e["type"] == "callback"]
    assert booked == {"offered": True, "accepted": True, "department": "sales", "number_from": "caller", "within": 3600.0}
    heard = [e["data"]["prompt"] for e in keeper_events if e["type"] == "prompt"]
    assert heard[-4:] == ["offer_callback", "callback_number", "callback_booked", "goodbye"]

    # the place in line is when the caller joined sales, before the offer
    [transfer] = [e for e in keeper_events if e["type"] == "transfer"]
    assert abs((done["place_at"] - (keeper["started_at"] + _delta(transfer["t"]))).total_seconds()) < 1
    assert done["place_at"] < done["booked_at"] and done["due_by"] == done["booked_at"] + _delta(3600)
    assert (done["number"], done["queue"], done["schedule"], done["attempts"]) == (NUMBERS["keeper"], "sales", "office", 1)
    [attempt] = done["tries"]
    assert (attempt["reason"], attempt["result"], attempt["asterisk_reason"]) == ("turn", "answered", "4")
    assert attempt["uniqueid"] == response["Uniqueid"] and attempt["channel"] == channel
    assert channel.startswith(f"Local/{NUMBERS['keeper']}@testbed-callee")
    # dialled once the agent was free: after the first caller's talk ended
    [talked] = [e for e in blocker_events if e["type"] == "transfer_result"]
    agent_free = blocker["started_at"] + _delta(talked["t"])
    assert attempt["started_at"] >= agent_free - _delta(1), (attempt["started_at"], agent_free)
    assert joined and joined[0].get("Queue") == "sales"
    assert any(f"call-back {done['id']} booked on call {keeper['id']}" in m for m in logs)

    # the call-back conversation was recorded as the dialplan records calls; the QA call page
    # of the booking call lists the try and links that recording
    report = wait_until("the call-back's recording indexed", lambda: _indexed(config, attempt["uniqueid"]), 20)
    app = create_app(load_config(config), testing=True)
    try:
        add_user(app.extensions["ivr"].engine, "anna", "qa-password-1", "qa")
        client = app.test_client()
        token = re.search(r'name="csrf_token" value="([^"]+)"', client.get("/login").get_data(as_text=True)).group(1)
        assert client.post("/login", data={"name": "anna", "password": "qa-password-1", "csrf_token": token}).status_code == 302
        page = client.get(f"/calls/{keeper['id']}").get_data(as_text=True)
        assert f'id="callback-{done["id"]}-status">done<' in page and attempt["uniqueid"] in page
        assert f'href="/recordings/{report}/audio?download=1">recording</a>' in page
        audio = client.get(f"/recordings/{report}/audio")
        assert audio.status_code == 200 and len(audio.get_data()) > 8000 * 2 * 5  # seconds of talk, not a header
    finally:
        app.extensions["ivr"].engine.dispose()


def _indexed(config: Path, uniqueid: str) -> Any:
    """The id of the indexed recording named by `uniqueid` (after an index run), or None."""
    from ivr.recordings.index import index_recordings
    from ivr.store.models import Recording

    index_recordings(load_config(config), settle_seconds=0)
    db = create_db_engine(load_config(config).raw["database"])
    try:
        with db.connect() as conn:
            return conn.execute(sa.select(Recording.id).where(Recording.uniqueid == uniqueid,
                                                              Recording.duration > 5)).scalar()
    finally:
        db.dispose()


def _delta(seconds: float):
    import datetime as dt

    return dt.timedelta(seconds=seconds)


# --- 2. a restart between booking and dialling -------------------------------------------------------
def test_a_restart_of_ivr_serve_loses_no_call_back_and_dials_none_twice(testbed: "Testbed", built, tmp_path):
    config = installation(tmp_path, testbed)
    db = create_db_engine(load_config(config).raw["database"])
    keep_keys, keep_hold = booking_keys(testbed, 0, "1")
    busy_keys, busy_hold = booking_keys(testbed, 0, "2", BUSY_NUMBER + "#")  # 2: another number, typed
    pump = EventPump(testbed)
    try:
        with serve_process(testbed, config, tmp_path / "serve-1.log"):
            testbed.reconfigure(with_members(load_config(config), lambda d: [NOBODY] if d.name == "sales" else AGENTS))
            with AmiSession(testbed.ami_host, testbed.ami_port) as ami:
                ami.login(testbed.ami_username, testbed.ami_secret)
                Caller("ami", NUMBERS["restart"], "Books before a restart", keys=keep_keys, hold=keep_hold).place(testbed, ami)
                Caller("ami", NUMBERS["busy"], "Gives a busy number", keys=busy_keys, hold=busy_hold).place(testbed, ami)
            wait_until("two call-backs booked", lambda: len(callbacks(db)) == 2, 90)
            time.sleep(3)  # a pass or two of the scheduler: nobody's turn (no agent), nothing due
            before = callbacks(db)
            assert originates(pump) == []
        with serve_process(testbed, config, tmp_path / "serve-2.log"):  # agents again, as serve_process sets them
            answered = wait_until("the call-back answered after the restart",
                                  finished(db, NUMBERS["restart"], "done"), 60)
            busy = wait_until("the busy call-back failed after its two tries",
                              finished(db, BUSY_NUMBER, "failed"), 60 + 2 * RETRY_PAUSE)
            time.sleep(5)  # a few more passes: nothing more is dialled
            after = callbacks(db)
        first_log = (tmp_path / "serve-1.log").read_text(errors="replace")
        second_log = (tmp_path / "serve-2.log").read_text(errors="replace")
    finally:
        pump.close()

    assert {n: (r["status"], r["attempts"]) for n, r in before.items()} == \
        {NUMBERS["restart"]: ("pending", 0), BUSY_NUMBER: ("pending", 0)}
    assert before[BUSY_NUMBER]["call_id"] != before[NUMBERS["restart"]]["call_id"]
    # exactly one Originate for the answered call-back, two for the busy one: all by the second process
    sent = originates(pump)
    numbers = [re.match(r"Local/(\d+)@", e.get("Channel", "")) for e in sent]
    assert sorted(m.group(1) for m in numbers if m) == sorted([NUMBERS["restart"], BUSY_NUMBER, BUSY_NUMBER]), sent
    assert [(t["seq"], t["result"], t["asterisk_reason"]) for t in answered["tries"]] == [(1, "answered", "4")]
    assert [(t["result"], t["asterisk_reason"]) for t in busy["tries"]] == [("busy", "5"), ("busy", "5")]
    gap = (busy["tries"][1]["started_at"] - busy["tries"][0]["ended_at"]).total_seconds()
    # the pause, then the next pass (every 2 s) and a slow machine's lag: never sooner than the pause
    assert RETRY_PAUSE <= gap < RETRY_PAUSE + 20, gap
    assert busy["note"] == "not answered in 2 tries; the last: busy"
    assert after[NUMBERS["restart"]]["attempts"] == 1 and after[BUSY_NUMBER]["attempts"] == 2
    assert first_log.count("booked on call") == 2 and not re.search(r"call-back \d+ try", first_log)
    assert len(re.findall(r"call-back \d+ try", second_log)) == 3

    # the QA web app: the call page of the busy booking and the dashboard
    app = create_app(load_config(config), testing=True)
    try:
        add_user(app.extensions["ivr"].engine, "anna", "qa-password-1", "qa")
        client = app.test_client()
        token = re.search(r'name="csrf_token" value="([^"]+)"', client.get("/login").get_data(as_text=True)).group(1)
        response = client.post("/login", data={"name": "anna", "password": "qa-password-1", "csrf_token": token})
        assert response.status_code == 302, response.get_data(as_text=True)
        page = client.get(f"/calls/{busy['call_id']}").get_data(as_text=True)
        assert "Call-back" in page and BUSY_NUMBER in page and page.count(">busy<") == 2 and ">failed<" in page
        dashboard = client.get("/dashboard/").get_data(as_text=True)
        assert 'data-callbacks-done="1"' in dashboard and 'data-callbacks-failed="1"' in dashboard
    finally:
        app.extensions["ivr"].engine.dispose()


# --- 3. a crash while the phone rings --------------------------------------------------------------
@contextlib.contextmanager
def serve_to_kill(testbed: "Testbed", config: Path, log_path: Path):
    """`ivr serve` on the installation, as serve_process starts it, yielding the process so
    the test can kill it; killed (by its own id) at the end if it still runs."""
    env = {**os.environ, "IVR_CONFIG": str(config), "IVR_AMI_SECRET": testbed.ami_secret}
    testbed.reconfigure(with_members(load_config(config), lambda department: AGENTS))
    with open(log_path, "wb") as log_file:
        process = subprocess.Popen([str(IVR), "serve"], cwd=REPO, env=env, stdin=subprocess.DEVNULL,
                                   stdout=log_file, stderr=subprocess.STDOUT)
    try:
        wait_until("`ivr serve` started", lambda: process.poll() is not None or all(
            line in log_path.read_text(errors="replace") for line in ("FastAGI listening", "AMI connected")), 30)
        assert process.poll() is None, f"`ivr serve` exited:\n{log_path.read_text(errors='replace')}"
        yield process
    finally:
        if process.poll() is None:
            process.kill()
        process.wait(10)


def test_a_crash_while_the_phone_rings_is_an_interrupted_try_retried_after_the_pause(testbed: "Testbed", built,
                                                                                      tmp_path):
    config = installation(tmp_path, testbed, ring=RING_SECONDS)
    db = create_db_engine(load_config(config).raw["database"])
    keys, hold = booking_keys(testbed, 0, "1")  # sales cannot be joined: the offer comes at once
    pump = EventPump(testbed)
    try:
        with serve_to_kill(testbed, config, tmp_path / "serve-1.log") as first:
            # no agent can answer sales: the caller is offered the call-back at once (JOINEMPTY)
            testbed.reconfigure(with_members(load_config(config), lambda d: [NOBODY] if d.name == "sales" else AGENTS))
            with AmiSession(testbed.ami_host, testbed.ami_port) as ami:
                ami.login(testbed.ami_username, testbed.ami_secret)
                Caller("ami", NUMBERS["unanswered"], "Never answers", keys=keys, hold=hold).place(testbed, ami)
            wait_until("the call-back booked", lambda: NUMBERS["unanswered"] in callbacks(db), 90)
            wait_until("the caller gone", lambda: "0 active channels" in testbed.rx("core show channels count"), 40)
            # an agent is free now: the customer's turn comes, and their phone rings
            testbed.reconfigure(with_members(load_config(config), lambda d: AGENTS))
            ringing = wait_until("the phone ringing", finished(db, NUMBERS["unanswered"], "dialling"), 20)
            first.send_signal(signal.SIGKILL)  # a crash: no goodbye, the try is left open
            first.wait(10)
        left = callbacks(db)[NUMBERS["unanswered"]]
        # Asterisk rings on by itself until the ring time is over: that Originate ends unanswered
        wait_until("the first Originate's end", lambda: originates(pump), RING_SECONDS + 10)
        with serve_to_kill(testbed, config, tmp_path / "serve-2.log"):
            failed = wait_until("the call-back failed after its second try",
                                finished(db, NUMBERS["unanswered"], "failed"),
                                RING_SECONDS + STALE_MARGIN + HOUSEKEEPING + RETRY_PAUSE + RING_SECONDS + 30)
        second_log = (tmp_path / "serve-2.log").read_text(errors="replace")
        sent = originates(pump)
    finally:
        pump.close()
        db.dispose()

    assert [(t["seq"], t["result"]) for t in ringing["tries"]] == [(1, None)]
    assert left["status"] == "dialling" and left["tries"][0]["result"] is None  # what the crash left
    tries = failed["tries"]
    assert [(t["seq"], t["result"]) for t in tries] == [(1, "interrupted"), (2, "no answer")], tries
    assert tries[1]["asterisk_reason"] == "3"
    # closed by the new process once it could ring no more, and dialled again only after the pause
    assert "left ringing when the engine stopped" in second_log
    gap = (tries[1]["started_at"] - tries[0]["ended_at"]).total_seconds()
    # the pause, then the next pass (every 2 s) and a slow machine's lag: never sooner than the pause
    assert RETRY_PAUSE <= gap < RETRY_PAUSE + 20, gap
    # one Originate per try: the dead engine's was never sent again
    assert sorted(e["ActionID"] for e in sent) == sorted(f"ivr-callback-{t['id']}" for t in tries)
    assert all(e.get("Response") == "Failure" and e.get("Reason") == "3" for e in sent), sent
    assert failed["note"] == "not answered in 2 tries; the last: no answer"
