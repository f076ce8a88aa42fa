"""Several machines' worth of the IVR on this one: Kamailio in front of two Asterisk 22 nodes
(ast1, ast2: one sid root, folders, ports and systemname of their own, one shared
recordings folder), HAProxy in front of two `ivr serve` engines (e1, e2), both engines
on one real PostgreSQL (ivr.testbed.cluster; docs/deployment.md). The installation names
both Asterisks under `asterisk.nodes`, as a site does (docs/nodes.md): each node runs the
dialplan `ivr asterisk-config` writes for it (its calls to HAProxy, naming the node), and
each engine talks AMI to both. Every call is a SIPp call that enters at Kamailio.

One set-up for the module (about 15 s); then, in this order:
1. calls through Kamailio land on both Asterisks and both engines, their keys (RFC 4733)
   reach the engine; each is stored once, with its recording linked by the index and
   played by the QA app, and recorded as come from the node it ran on; both engines'
   /metrics show both nodes' AMI connected;
2. `kill -9` of one engine while calls come in at a steady rate: no call placed after
   the kill fails (HAProxy retries a refused connection on the other engine), the calls
   that were on the dead engine are closed as interrupted by the surviving one, and
   their callers are taken by each Asterisk's fail-safe queue;
3. one Asterisk stopped (the killed engine started again first): Kamailio's probes take
   it out within seconds, and new calls go to the other; both engines stay ready (HAProxy
   keeps both) and their /metrics show the stopped node's AMI as 0.
"""

from __future__ import annotations

import json
import re
import subprocess
import sys
import time
from pathlib import Path
from typing import Any, Iterator

import pytest
import sqlalchemy as sa

from ivr.recordings.index import index_recordings
from ivr.settings.config import load_config
from ivr.store.db import create_db_engine, init_db
from ivr.store.engines import CRASHED
from ivr.store.models import Call, CallEvent, Recording
from ivr.testbed.cluster import Cluster, Layout
from ivr.testbed.postgres import PostgresUnavailable, start_postgres
from ivr.testbed import server
from ivr.testbed.server import REPO
from ivr.web import create_app
from ivr.web.users import add_user
from ivr.errors import IvrError
from .live_support import AGENTS, EventPump, asterisk_side
from .multinode_support import EngineProcess, http_get, SipCaller, engine_installation, named_installation
from .testbed_support import IVR

pytestmark = pytest.mark.asterisk

LAYOUT = Layout()
NODES = [node.name for node in LAYOUT.nodes]
FALLBACK_QUEUE = "operator"  # config.yaml fallback: the dialplan's fail-safe queue
WELCOME_HOLD = 8.0  # seconds on the line after SIPp's 2 s: the welcome prompt (6.7 s) plays into the recording


def _say(line: str) -> None:
    print(line, file=sys.stderr)


@pytest.fixture(scope="module")
def bed(tmp_path_factory) -> Iterator[dict[str, Any]]:
    started = time.monotonic()
    folder = tmp_path_factory.mktemp("multinode")
    try:
        postgres = start_postgres()
    except PostgresUnavailable as exc:
        pytest.fail(f"PostgreSQL could not be started for the multi-node test bed: {exc}", pytrace=False)
    engines: list[EngineProcess] = []
    pumps: dict[str, EventPump] = {}
    cluster = None
    try:
        database = postgres.create_database()
        init_db(database).dispose()  # migrated once, before two engines start on it
        # the installation as the nodes see it: the live tests' (prompts, recordings, members)
        probe = server.Testbed(REPO / "config.yaml", node=LAYOUT.nodes[0])
        (folder / "asterisk").mkdir()
        base = named_installation(folder / "asterisk", probe, LAYOUT)
        built = subprocess.run([str(IVR), "--config", str(base), "prompts", "build", str(REPO / "flows")],
                               capture_output=True, text=True, cwd=REPO)
        assert built.returncode == 0, f"`ivr prompts build` failed:\n{built.stdout}{built.stderr}"
        cluster = Cluster(base, asterisk_side(base, lambda department: AGENTS), LAYOUT, log=_say)
        try:
            cluster.start()
        except IvrError as exc:
            pytest.fail(f"the multi-node test bed cannot start: {exc}", pytrace=False)
        for engine in LAYOUT.engines:
            config = engine_installation(folder / engine.name, probe, engine, LAYOUT, database)
            engines.append(EngineProcess(engine, config, probe.ami_secret).spawn())
        for engine_process in engines:
            engine_process.wait_ready(NODES)
        assert cluster.haproxy is not None
        cluster.haproxy.wait_state({e.name: "UP" for e in LAYOUT.engines}, 10)
        pumps = {name: EventPump(node) for name, node in cluster.nodes.items()}
        _say(f"multi-node set-up: {time.monotonic() - started:.1f} s")
        yield {"cluster": cluster, "engines": {e.engine.name: e for e in engines}, "database": database,
               "pumps": pumps, "config": engines[0].config_path}
    finally:
        for pump in pumps.values():
            pump.close()
        for engine in engines:
            engine.stop()
        if cluster is not None:
            cluster.stop()
        postgres.stop()


def _calls(database: str) -> list[dict[str, Any]]:
    db = create_db_engine(database)
    try:
        with db.connect() as conn:
            return [dict(row) for row in conn.execute(sa.select(Call.__table__)).mappings()]
    finally:
        db.dispose()


def _finished(database: str, numbers: list[str], timeout: float) -> dict[str, dict[str, Any]]:
    """The calls row of each number once all have an outcome; every number stored once."""
    deadline = time.monotonic() + timeout
    while True:
        rows = [c for c in _calls(database) if c["caller"] in numbers]
        by_number = {c["caller"]: c for c in rows}
        if len(by_number) == len(numbers) and all(c["outcome"] for c in rows):
            assert len(rows) == len(numbers), f"a call stored twice: {sorted(c['caller'] for c in rows)}"
            return by_number
        if time.monotonic() > deadline:
            state = {n: (by_number[n]["outcome"] if n in by_number else "not stored") for n in numbers}
            raise AssertionError(f"calls without an outcome after {timeout:g}s: {state}")
        time.sleep(0.5)


def _assert_came_from_their_nodes(database: str, rows: dict[str, dict[str, Any]], cluster: Cluster) -> None:
    """Each call's call_started event names the node its uniqueid begins with: the node's
    dialplan said `node=<name>` and the engine took it."""
    db = create_db_engine(database)
    try:
        with db.connect() as conn:
            started = {r["call_id"]: r["data"] for r in conn.execute(sa.select(CallEvent.__table__).where(
                CallEvent.type == "call_started",
                CallEvent.call_id.in_([row["id"] for row in rows.values()]))).mappings()}
    finally:
        db.dispose()
    for number, row in rows.items():
        data = started.get(row["id"])
        assert data is not None, f"the call of {number} has no call_started event"
        if isinstance(data, str):
            data = json.loads(data)
        assert data.get("asterisk_node") == cluster.node_of(row["uniqueid"]), (number, row["uniqueid"], data)


def _joined(pumps: dict[str, EventPump], queue: str) -> dict[str, dict[str, str]]:
    """QueueCallerJoin events of `queue` on every node, by the caller's uniqueid."""
    return {e["Uniqueid"]: e for pump in pumps.values() for e in pump.events("QueueCallerJoin")
            if e.get("Queue") == queue}


# --- 1. calls spread over both Asterisks and both engines -------------------------------------
SPREAD = [f"4822011{n:02d}" for n in range(4)]
# the first two (one on each node: Kamailio's round-robin) choose English with RFC 4733 key 2
# in the language menu, 9 s after the answer (2 s into its Polish line: the welcome before it
# takes no key), and hang up in the main menu; the other two press nothing
PRESSING = {SPREAD[0], SPREAD[1]}


def test_calls_through_kamailio_land_on_both_asterisks_and_both_engines_stored_once_and_playable(bed):
    cluster, engines = bed["cluster"], bed["engines"]
    callers = []
    for number in SPREAD:
        pressing = number in PRESSING
        callers.append(SipCaller(number, LAYOUT.sip_port, keys="7s 2" if pressing else "",
                                 hold=4 if pressing else WELCOME_HOLD).place())
        time.sleep(0.3)
    results = [caller.finish(60) for caller in callers]
    assert all(r.ok for r in results), [r.output for r in results if not r.ok]
    rows = _finished(bed["database"], SPREAD, 30)

    nodes = {cluster.node_of(row["uniqueid"]) for row in rows.values()}
    assert nodes == {"ast1", "ast2"}, {n: r["uniqueid"] for n, r in rows.items()}  # Kamailio's round-robin
    assert len({row["engine_id"] for row in rows.values()}) == 2  # HAProxy's leastconn
    ended = {name: engine.ended() for name, engine in engines.items()}
    assert all(sum(outcomes.values()) >= 1 for outcomes in ended.values()), ended
    assert sum(sum(outcomes.values()) for outcomes in ended.values()) == len(SPREAD), ended
    for number, row in rows.items():  # each caller heard the welcome; the keys reached the engine
        expected = ("abandoned", "main_menu", "2") if number in PRESSING else ("abandoned", "language", "")
        assert (row["outcome"], row["last_node"], row["keys"]) == expected, row
    assert {cluster.node_of(rows[n]["uniqueid"]) for n in PRESSING} == {"ast1", "ast2"}
    _assert_came_from_their_nodes(bed["database"], rows, cluster)
    connected = {name: engine.ami_connected() for name, engine in engines.items()}
    assert all(c == {"ast1": 1, "ast2": 1} for c in connected.values()), connected  # every engine knows both

    # the recordings: one shared folder, indexed as `ivr web` does it, played by the QA app
    config = load_config(bed["config"])
    report = index_recordings(config, settle_seconds=0)
    assert report.ok, report.summary()
    app = create_app(config, testing=True)
    db = app.extensions["ivr"].engine
    try:
        add_user(db, "qa-multinode", "qa-multinode-password-1", "qa")
        client = app.test_client()
        login = client.get("/login").get_data(as_text=True)
        token = re.search(r'name="csrf_token" value="([^"]+)"', login).group(1)
        response = client.post("/login", data={"name": "qa-multinode", "password": "qa-multinode-password-1",
                                               "csrf_token": token})
        assert response.status_code == 302, response.get_data(as_text=True)
        with db.connect() as conn:
            recordings = {r["call_id"]: dict(r) for r in conn.execute(sa.select(Recording.__table__).where(
                Recording.call_id.in_([row["id"] for row in rows.values()]))).mappings()}
        for number, row in rows.items():
            recording = recordings.get(row["id"])
            assert recording is not None, f"no recording linked to the call of {number} ({row['uniqueid']})"
            assert recording["path"].endswith(f"/{row['uniqueid']}.wav") and recording["duration"] > 6, recording
            page = client.get(f"/calls/{row['id']}").get_data(as_text=True)
            [src] = re.findall(r'<audio id="call-audio"[^>]*src="([^"]+)"', page) or [None]
            assert src, f"no player on the page of {number}"
            audio = client.get(src)
            assert audio.status_code == 200 and audio.mimetype == "audio/wav", audio.headers
            assert audio.get_data() == (config.recordings_dir / recording["path"]).read_bytes()
    finally:
        db.dispose()
    _say(f"calls by node: {sorted(cluster.node_of(r['uniqueid']) for r in rows.values())}; "
         f"by engine (its /metrics): { {n: sum(o.values()) for n, o in ended.items()} }")


# --- 2. one engine killed under load ------------------------------------------------------------------
STEADY = [f"4822012{n:02d}" for n in range(10)]
EVERY = 1.0  # seconds between two calls
KILL_AFTER = 4.5  # seconds after the first call: between two calls, with four or five in progress
STEADY_HOLD = 14.0  # every call is still in progress when the engine dies


def test_an_engine_killed_under_load_loses_no_new_call_and_its_calls_go_to_the_fail_safe_queue(bed):
    engines, pumps = bed["engines"], bed["pumps"]
    victim, survivor = engines["e1"], engines["e2"]
    callers: list[SipCaller] = []
    killed_at = None
    first = time.monotonic()
    for n, number in enumerate(STEADY):
        while time.monotonic() < first + n * EVERY:
            if killed_at is None and time.monotonic() >= first + KILL_AFTER:
                victim.kill()
                killed_at = time.monotonic()
            time.sleep(0.02)
        callers.append(SipCaller(number, LAYOUT.sip_port, hold=STEADY_HOLD).place())
    assert killed_at is not None
    results = {c.number: c.finish(90) for c in callers}
    failed = {n: r.output[-800:] for n, r in results.items() if not r.ok}
    assert not failed, failed

    # the survivor closes the dead engine's calls (ivr.store.engines: its pid is gone) within its repair period
    rows = _finished(bed["database"], STEADY, 45)
    dead = {n for n, r in rows.items() if r["engine_id"].split(":")[1] == str(victim.pid)}
    alive = set(STEADY) - dead
    after = {c.number for c in callers if c.placed_at > killed_at}
    assert dead, "no call was on the killed engine: the test proves nothing"
    assert after and after <= alive, (after, dead)  # every call placed after the kill: the other engine
    for number in dead:
        row = rows[number]
        assert row["outcome"] == "interrupted" and row["ended_at"] is not None, row
    for number in alive:
        assert (rows[number]["outcome"], rows[number]["last_node"]) != ("interrupted", None), rows[number]
        assert rows[number]["outcome"] in ("abandoned",), rows[number]
    db = create_db_engine(bed["database"])
    try:
        with db.connect() as conn:
            reasons = {r["call_id"]: r["data"] for r in conn.execute(sa.select(CallEvent.__table__).where(
                CallEvent.type == "interrupted",
                CallEvent.call_id.in_([rows[n]["id"] for n in dead]))).mappings()}
    finally:
        db.dispose()
    assert len(reasons) == len(dead) and all(CRASHED in str(data) for data in reasons.values()), reasons
    assert victim.process.returncode == -9
    [victim_id] = {rows[n]["engine_id"] for n in dead}
    assert f"closed {len(dead)} call(s) left open by engine {victim_id}" in survivor.log(), survivor.log()[-3000:]

    # their callers, still on the line, went to each Asterisk's fail-safe queue; nobody else did
    by_uniqueid = {rows[n]["uniqueid"]: n for n in STEADY}
    joined = _joined(pumps, FALLBACK_QUEUE)
    to_failsafe = {by_uniqueid[u] for u in joined if u in by_uniqueid}
    assert to_failsafe == dead, (to_failsafe, dead)
    _assert_came_from_their_nodes(bed["database"], rows, bed["cluster"])
    _say(f"engine e1 killed {killed_at - first:.1f} s into {len(STEADY)} calls ({EVERY:g} s apart): "
         f"{len(dead)} in progress on it went to the fail-safe queue and were stored as interrupted; "
         f"{len(after)} placed after the kill, all served by e2")


# --- 3. one Asterisk stopped ----------------------------------------------------------------------------
AFTER_STOP = [f"4822013{n:02d}" for n in range(2)]
MAX_SWITCH = 5.0  # seconds from the stop until Kamailio sends every new call to the other node


def test_an_asterisk_stopped_is_taken_out_by_kamailio_within_seconds_and_engines_stay_ready(bed):
    cluster, engines = bed["cluster"], bed["engines"]
    assert cluster.haproxy is not None
    if engines["e1"].process is not None and engines["e1"].process.poll() is not None:  # killed by test 2
        engines["e1"].spawn().wait_ready(NODES)
        cluster.haproxy.wait_state({e.name: "UP" for e in LAYOUT.engines}, 10)
    stopped_at = time.monotonic()
    cluster.nodes["ast2"].stop()
    switched = cluster.kamailio_waits({"ast2": False, "ast1": True}, 20)
    assert switched < MAX_SWITCH, switched
    # every engine sees ast2's AMI gone, and stays ready: ast1's calls need nothing of ast2
    for engine in engines.values():
        engine.wait_ami({"ast1": 1, "ast2": 0}, 15)
        code, text = http_get(f"{engine.metrics_url}/health/ready")
        assert code == 200 and "ast2" in text, (engine.engine.name, code, text)
    assert cluster.haproxy.servers() == {e.name: "UP" for e in LAYOUT.engines}, cluster.haproxy.servers()
    callers = [SipCaller(number, LAYOUT.sip_port, hold=3).place() for number in AFTER_STOP]
    results = [caller.finish(40) for caller in callers]
    assert all(r.ok for r in results), [r.output for r in results if not r.ok]
    # no fail-over wait in them: answered at once by the node that is up
    assert all(r.seconds < 3 + 2 + 4 for r in results), [r.seconds for r in results]
    rows = _finished(bed["database"], AFTER_STOP, 30)
    assert {cluster.node_of(r["uniqueid"]) for r in rows.values()} == {"ast1"}
    assert all(r["outcome"] == "abandoned" for r in rows.values()), rows
    _assert_came_from_their_nodes(bed["database"], rows, cluster)
    for engine in engines.values():  # still down, still ready
        assert engine.ami_connected() == {"ast1": 1, "ast2": 0}, engine.engine.name
        assert http_get(f"{engine.metrics_url}/health/ready")[0] == 200, engine.engine.name
    _say(f"ast2 stopped: Kamailio sent every new call to ast1 after {switched:.1f} s "
         f"({time.monotonic() - stopped_at:.1f} s to the end of the test)")
