"""Two `ivr serve` processes on one PostgreSQL, real calls from the test bed's Asterisk 22,
and what the engines share: the survey's sampling counter and the call-backs.

Each engine's config.yaml names two Asterisks (asterisk.nodes): `pbx1`, the test bed, and
`pbx2`, whose AMI nobody answers (a node that is down). The two engines listen on AGI and
metrics ports of their own; the test bed's [testbed-bare] context sends each call to the
engine whose port the call names (AGI_PORT), so calls alternate between them.

1. Twenty calls, ten to each engine, reach a survey that asks every 10th call: exactly two
   are asked across both engines (the count is the database's), the count is 20, and each
   call is recorded as come from node pbx1 (its dialplan names no node: the first).
2. Eight call-backs of node pbx1 come due one after the other (their department's only
   agent does not exist, so only the promise dials them) while both engines poll, and one
   engine is restarted in the middle: each is dialled exactly once (one Originate each, as
   Asterisk's OriginateResponse events show, and one answered try), none is lost. A
   call-back of pbx2 is never dialled through pbx1: it waits for its own node. The QA app's
   call page of a booking names the node each call-back is dialled through, with its try.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import os
import re
import socket
import subprocess
import time
from collections import Counter
from pathlib import Path
from typing import TYPE_CHECKING, Any, Iterator

import pytest
import sqlalchemy as sa
import yaml
from sqlalchemy.orm import Session

from ivr.settings.config import load_config
from ivr.store.callbacks import Booking, CallbackStore
from ivr.store.db import create_db_engine
from ivr.store.models import Call, CallEvent, Callback, CallbackAttempt, SurveyCount
from ivr.testbed.ami_session import AmiSession, originate_keys
from ivr.testbed.postgres import PostgresUnavailable, start_postgres
from ivr.testbed.server import REPO
from ivr.web import create_app
from ivr.web.users import add_user
from .live_support import AGENTS, EventPump, asterisk_side, live_installation, wait_until
from .testbed_support import IVR

if TYPE_CHECKING:
    from ivr.testbed.server import Testbed

pytestmark = pytest.mark.asterisk

CALLS = 20
NOBODY = "PJSIP/nobody"  # no such endpoint: complaints has no agent, so a call-back is dialled when due only
CALLBACKS = 8
DUE_APART = 1.5  # seconds between two call-backs' due times
HOLD = 40  # the caller stays until the engine hangs up, at most this long


def survey_flow(folder: Path) -> Path:
    """flows/ with main.yaml the survey of flows/main.yaml alone (its prompts, so the test
    bed's built audio plays), asking every 10th call."""
    flows = folder / "flows"
    flows.mkdir()
    main = yaml.safe_load((REPO / "flows" / "main.yaml").read_text(encoding="utf-8"))
    survey = {**main["nodes"]["survey"], "sample": {"every": 10}}
    used = ("nps_question", "nps_thanks", "goodbye", "invalid", "no_input")
    flow = {"flow": "main", "description": "The survey alone.", "languages": main["languages"], "start": "survey",
            "defaults": main["defaults"], "prompts": {k: v for k, v in main["prompts"].items() if k in used},
            "nodes": {"survey": survey, "goodbye": main["nodes"]["goodbye"]}}
    (flows / "main.yaml").write_text(yaml.safe_dump(flow, allow_unicode=True, sort_keys=False), encoding="utf-8")
    return flows


def engine_installation(folder: Path, testbed: "Testbed", database: str, ports: tuple[int, int, int]) -> Path:
    """An engine's installation: the shared database, nodes pbx1 (the test bed) and pbx2 (down,
    its AMI on ports[2]), the FastAGI and metrics on ports[0] and ports[1]."""
    folder.mkdir()
    config = live_installation(folder, testbed)
    raw = yaml.safe_load(config.read_text(encoding="utf-8"))
    raw["database"] = database
    raw.pop("lines", None)  # every number to the survey's flow
    asterisk = raw["asterisk"]
    pbx1 = asterisk.pop("ami")
    asterisk["nodes"] = {"pbx1": {"ami": pbx1}, "pbx2": {"ami": {**pbx1, "port": ports[2]}}}
    asterisk["agi"].update(port=ports[0], metrics_port=ports[1], shutdown_grace="5s")
    asterisk["callback"] = {"timeout": "10s"}
    config.write_text(yaml.safe_dump(raw, allow_unicode=True, sort_keys=False), encoding="utf-8")
    survey_flow(folder)
    return config


class Engine:
    """`ivr serve` on one installation, as a process; started and stopped by the test."""

    def __init__(self, config: Path, testbed: "Testbed"):
        self.config = config
        self.env = {**os.environ, "IVR_CONFIG": str(config), "IVR_AMI_SECRET": testbed.ami_secret}
        raw = yaml.safe_load(config.read_text(encoding="utf-8"))
        self.port = int(raw["asterisk"]["agi"]["port"])
        self.process: subprocess.Popen | None = None
        self.starts = 0

    @property
    def log_path(self) -> Path:
        return self.config.parent / f"serve-{self.starts}.log"

    def start(self) -> None:
        self.starts += 1
        with open(self.log_path, "wb") as log_file:
            self.process = subprocess.Popen([str(IVR), "serve", "--log-level", "debug"], cwd=REPO, env=self.env,
                                            stdin=subprocess.DEVNULL, stdout=log_file, stderr=subprocess.STDOUT)
        deadline = time.monotonic() + 30
        while not all(line in self.log_path.read_text(errors="replace")
                      for line in ("FastAGI listening", "AMI connected of node pbx1")):
            if self.process.poll() is not None or time.monotonic() > deadline:
                raise AssertionError(f"`ivr serve` did not start (exit {self.process.poll()}):\n"
                                     f"{self.log_path.read_text(errors='replace')}")
            time.sleep(0.1)

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(20)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(10)

    def logs(self) -> str:
        return "".join((self.config.parent / f"serve-{n}.log").read_text(errors="replace")
                       for n in range(1, self.starts + 1))


def free_ports(count: int) -> list[int]:
    """`count` different TCP ports nobody listens on now."""
    with contextlib.ExitStack() as stack:
        sockets = [stack.enter_context(socket.socket()) for _ in range(count)]
        for probe in sockets:
            probe.bind(("127.0.0.1", 0))
        return [probe.getsockname()[1] for probe in sockets]


@pytest.fixture(scope="module")
def built(testbed: "Testbed") -> None:
    done = subprocess.run([str(IVR), "--config", str(testbed.config_path), "prompts", "build"],
                          capture_output=True, text=True, cwd=REPO)
    assert done.returncode == 0, f"`ivr prompts build` failed:\n{done.stdout}{done.stderr}"


@pytest.fixture(scope="module")
def site(testbed: "Testbed", built, tmp_path_factory) -> Iterator[dict[str, Any]]:
    """Two engines on one PostgreSQL, the test bed's dialplan generated from their config."""
    try:
        postgres = start_postgres()
    except PostgresUnavailable as exc:
        pytest.fail(f"PostgreSQL could not be started: {exc}", pytrace=False)
    folder = tmp_path_factory.mktemp("shared")
    url = postgres.create_database()
    ports = free_ports(5)  # two engines' FastAGI and metrics, and pbx2's AMI, where nobody listens
    engines = [Engine(engine_installation(folder / name, testbed, url, (ports[2 * i], ports[2 * i + 1], ports[4])),
                      testbed) for i, name in enumerate(("a", "b"))]
    members = lambda d: [NOBODY] if d.name == "complaints" else AGENTS  # noqa: E731
    testbed.reconfigure(asterisk_side(engines[0].config, members, engines[0].config.parent / "flows"))
    db = create_db_engine(url)
    pump = None
    try:
        for engine in engines:
            engine.start()
        pump = EventPump(testbed)
        yield {"engines": engines, "db": db, "pump": pump}
    finally:
        if pump is not None:
            pump.close()
        for engine in engines:
            engine.stop()
        db.dispose()
        testbed.reconfigure(testbed.config)
        postgres.stop()


def _number(n: int) -> str:
    return f"48220070{n:02d}"


def test_every_tenth_call_across_two_engines_is_asked(site, testbed: "Testbed"):
    engines, db = site["engines"], site["db"]
    began = time.monotonic()
    with AmiSession(testbed.ami_host, testbed.ami_port) as ami:
        ami.login(testbed.ami_username, testbed.ami_secret)
        for n in range(CALLS):  # alternate calls to the two engines
            originate_keys(ami, "", context="testbed-bare", hold=HOLD, caller_id=f"<{_number(n)}>",
                           variables={"AGI_PORT": str(engines[n % 2].port)})

        answered: set[str] = set()

        def all_ended():
            with db.connect() as conn:
                rows = {r.caller: r for r in conn.execute(sa.select(Call.id, Call.caller, Call.outcome, Call.engine_id,
                                                                    Call.channel))}
                asked = {cid for cid, data in conn.execute(sa.select(CallEvent.call_id, CallEvent.data)
                                                           .where(CallEvent.type == "prompt"))
                         if (data or {}).get("prompt") == "nps_question"}
            for row in rows.values():  # an asked caller answers 9, so the call does not wait out the question
                if row.id in asked and row.id not in answered:
                    answered.add(row.id)
                    ami.action("PlayDTMF", {"Channel": row.channel.rsplit(";", 1)[0] + ";1", "Digit": "9",
                                            "Duration": 250})
            ended = [r for r in rows.values() if r.outcome is not None]
            return len(ended) == CALLS and (rows, asked)

        rows, asked = wait_until(f"{CALLS} calls ended", all_ended, 90)
    took = time.monotonic() - began
    with db.connect() as conn:
        count = conn.execute(sa.select(SurveyCount.calls).where(SurveyCount.node == "survey")).scalar()
        started = {cid: data for cid, data in conn.execute(sa.select(CallEvent.call_id, CallEvent.data)
                                                           .where(CallEvent.type == "call_started"))}
        scores = conn.execute(sa.select(Call.survey_score).where(Call.survey_score.is_not(None))).scalars().all()
    assert sorted(rows) == sorted(_number(n) for n in range(CALLS))
    assert sorted(Counter(r.engine_id for r in rows.values()).values()) == [CALLS // 2, CALLS // 2]  # ten each
    assert len(asked) == CALLS // 10 and count == CALLS  # the 10th and the 20th, over both engines
    assert scores == [9, 9]
    assert {data.get("asterisk_node") for data in started.values()} == {"pbx1"}
    for engine in engines:  # the bare dialplan names no node: the first node, said once per engine
        assert engine.logs().count("names no node: taken for node pbx1") == 1
    print(f"\n{CALLS} survey calls over two engines took {took:.1f} s")


def test_call_backs_are_dialled_once_each_across_two_engines_and_a_restart(site):
    engines, db, pump = site["engines"], site["db"], site["pump"]
    store = CallbackStore(db)
    now = dt.datetime.now(dt.timezone.utc)
    with Session(db) as session:  # the bookings' calls, for the QA call pages at the end
        session.add_all([Call(id=call_id, flow="main", started_at=now, outcome="callback")
                         for call_id in ("booked-0", "booked-pbx2")])
        session.commit()
    numbers = [f"48220080{k:02d}" for k in range(CALLBACKS)]
    for k, number in enumerate(numbers):
        store.book(Booking(call_id=f"booked-{k}", number=number, department="complaints", queue="complaints",
                           place_at=now, booked_at=now, due_by=now + dt.timedelta(seconds=k * DUE_APART),
                           max_attempts=1, retry_pause=60.0, node="pbx1"))
    elsewhere = "4822008099"
    store.book(Booking(call_id="booked-pbx2", number=elsewhere, department="complaints", queue="complaints",
                       place_at=now, booked_at=now, due_by=now, max_attempts=1, node="pbx2"))
    began = time.monotonic()
    time.sleep(CALLBACKS * DUE_APART / 3)  # a few have been dialled: engine b restarts in the middle
    engines[1].stop()
    engines[1].start()
    restarted = time.monotonic() - began

    def all_done():
        with db.connect() as conn:
            rows = conn.execute(sa.select(Callback.number, Callback.status, Callback.id)).all()
        done = [r for r in rows if r.number in numbers and r.status != "pending" and r.status != "dialling"]
        return len(done) == CALLBACKS and rows

    wait_until("every call-back of pbx1 dialled", all_done, 60)
    took = time.monotonic() - began

    def responses():
        found = [e for e in pump.events("OriginateResponse") if e.get("ActionID", "").startswith("ivr-callback-")
                 and any(n in e.get("Channel", "") for n in numbers)]
        return len(found) >= CALLBACKS and found

    found = wait_until("the OriginateResponse of each call-back", responses, 10)
    time.sleep(2 * 2.0)  # two more passes of both schedulers: nothing is dialled again
    with db.connect() as conn:
        callbacks = {r.number: r for r in conn.execute(sa.select(Callback.id, Callback.number, Callback.status,
                                                                 Callback.attempts))}
        tries = conn.execute(sa.select(CallbackAttempt.callback_id, CallbackAttempt.result,
                                       CallbackAttempt.owner)).all()
    dialled = Counter(n for e in pump.events("OriginateResponse") for n in numbers + [elsewhere]
                      if e.get("Channel", "").startswith(f"Local/{n}@"))
    assert dialled == {n: 1 for n in numbers}, dialled  # each once; pbx2's never through pbx1
    assert len(found) == CALLBACKS and all(e.get("Response") == "Success" for e in found)
    by_callback = Counter(t.callback_id for t in tries)
    assert all(by_callback[callbacks[n].id] == 1 for n in numbers)
    assert all(callbacks[n].status == "done" for n in numbers)
    assert {t.result for t in tries} == {"answered"}
    assert (callbacks[elsewhere].status, callbacks[elsewhere].attempts) == ("pending", 0)  # waits for pbx2
    pages = qa_call_pages(engines[0].config, ["booked-0", "booked-pbx2"])
    dialled_id, waiting_id = callbacks[numbers[0]].id, callbacks[elsewhere].id
    assert f'<dd id="callback-{dialled_id}-node"><span class="mono">pbx1</span></dd>' in pages["booked-0"]
    assert '<tr class="callback-try" data-result="answered">' in pages["booked-0"]
    assert f'<dd id="callback-{waiting_id}-node"><span class="mono">pbx2</span></dd>' in pages["booked-pbx2"]
    assert f'id="callback-{waiting_id}-status">pending<' in pages["booked-pbx2"]
    assert "Not dialled yet." in pages["booked-pbx2"]
    owners = Counter(t.owner.rsplit(":", 2)[1] for t in tries)  # the pid of the engine that dialled each
    print(f"\n{CALLBACKS} call-backs dialled in {took:.1f} s (engine b restarted after {restarted:.1f} s), "
          f"by engine process: {dict(owners)}")


def qa_call_pages(config: Path, call_ids: list[str]) -> dict[str, str]:
    """The QA app's call pages of the installation's calls, as a qa user reads them."""
    app = create_app(load_config(config), testing=True)
    try:
        add_user(app.extensions["ivr"].engine, "anna", "qa-password-1", "qa")
        client = app.test_client()
        token = re.search(r'name="csrf_token" value="([^"]+)"', client.get("/login").get_data(as_text=True)).group(1)
        form = {"name": "anna", "password": "qa-password-1", "csrf_token": token}
        assert client.post("/login", data=form).status_code == 302
        return {call_id: client.get(f"/calls/{call_id}").get_data(as_text=True) for call_id in call_ids}
    finally:
        app.extensions["ivr"].engine.dispose()
