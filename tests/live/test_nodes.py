"""Several Asterisks known to one `ivr serve` (config.yaml asterisk.nodes): two fake AMI
servers over loopback stand for two nodes, and calls arrive over real FastAGI from a fake
Asterisk naming its node in the AGI argument `node=<name>`.

- A call's overflow decision reads its own node's queue board: the same call overflows to
  backup on the node whose sales queue is full, and queues for sales on the other.
- A call naming no node, or one config.yaml does not list, is taken for the first node,
  said once in the log.
- A call-back is booked with its node and dialled through that node's AMI only.
- One node's AMI down stops nothing on the other; /metrics and /health/ready say which.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import json
import logging
import shutil
import sys
from pathlib import Path

import sqlalchemy as sa

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "channels"))
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from asterisk_ami.fake_ami import FakeAmi  # noqa: E402
from fake_asterisk import Caller, environment, place_call  # noqa: E402
from ivr.channels.fastagi import node_argument  # noqa: E402
from ivr.engine.channel import CallbackRequest  # noqa: E402
from ivr.live.metrics import parse_exposition  # noqa: E402
from ivr.live.nodes import NodeRouter  # noqa: E402
from ivr.live.serve import AmiPart, build_runtime  # noqa: E402
from ivr.settings.config import Department  # noqa: E402
from ivr.store.db import create_db_engine  # noqa: E402
from ivr.store.models import Callback, CallbackAttempt, CallEvent  # noqa: E402

ROOT = Path(__file__).resolve().parents[2]
SECRET = "s3cret-Pa55"  # the fake AMI's
FULL = [{"Queue": "sales", "Uniqueid": f"9.{n}", "Wait": "40", "Position": str(n)} for n in range(1, 7)]


def _installation(tmp_path: Path, port_a: int, port_b: int) -> Path:
    shutil.copy(ROOT / "config.yaml", tmp_path / "config.yaml")
    shutil.copytree(ROOT / "data", tmp_path / "data")
    shutil.copytree(ROOT / "flows", tmp_path / "flows", ignore=shutil.ignore_patterns("*.test.yaml"))
    text = (tmp_path / "config.yaml").read_text()
    text = text.replace('weekly: {mon-fri: "08:00-18:00", sat: "09:00-13:00"}', 'weekly: {mon-sun: "00:00-24:00"}')
    text = text.replace("      - {country: PL}           # Polish public holidays, every year\n", "")
    text = text.replace("      - 2026-12-31              # company day off\n", "")
    start = text.index("  ami:")
    end = text.index("\n", start)
    nodes = ("  nodes:\n"
             f'    pbx-a: {{ami: {{host: 127.0.0.1, port: {port_a}, username: ivr, secret: "${{IVR_AMI_SECRET}}"}}}}\n'
             f'    pbx-b: {{ami: {{host: 127.0.0.1, port: {port_b}, username: ivr, secret: "${{IVR_AMI_SECRET}}"}}}}')
    (tmp_path / "config.yaml").write_text(text[:start] + nodes + text[end:])
    return tmp_path


def _queue_of(lines: list[bytes]) -> str:
    [queue] = [line.decode() for line in lines if line.startswith(b'EXEC "Queue"')]
    return queue.split('"')[3].split(",")[0]


def test_the_node_argument_is_read_and_left_out_of_the_call_variables():
    assert node_argument(["node=pbx-a"]) == ([], "pbx-a")
    assert node_argument(["x", "node=pbx-b", "node=c"]) == (["x", "node=c"], "pbx-b")
    assert node_argument(["nodes=a"]) == (["nodes=a"], None)
    assert node_argument([]) == ([], None)


def test_an_unknown_or_missing_node_is_the_first_said_once(caplog):
    a, b = object(), object()
    router = NodeRouter({"pbx-a": a, "pbx-b": b})
    with caplog.at_level(logging.WARNING, logger="ivr.live.nodes"):
        assert router.route("pbx-b", "1.1") == ("pbx-b", b)
        assert router.route(None, "1.2") == ("pbx-a", a)
        assert router.route(None, "1.3") == ("pbx-a", a)
        assert router.route("evil\nnode", "1.4") == ("pbx-a", a)
    said = [r.getMessage() for r in caplog.records]
    assert len(said) == 2 and "call 1.2 names no node" in said[0]
    assert "names node 'evil\\nnode', which config.yaml does not list" in said[1] and "\n" not in said[1]
    caplog.clear()
    one = NodeRouter({"default": a}, named=False)  # `ami:`: its dialplan names no node, which is no news
    with caplog.at_level(logging.WARNING, logger="ivr.live.nodes"):
        assert one.route(None, "1.5") == ("default", a)
    assert not caplog.records


def test_each_call_is_decided_on_its_own_node_and_one_node_down_stops_nothing(tmp_path, monkeypatch, caplog):
    monkeypatch.setenv("IVR_AMI_SECRET", SECRET)
    fake_a = FakeAmi()
    fake_b = FakeAmi(queue_params=[{"Queue": "sales", "Max": "0", "Strategy": "ringall", "Calls": "6",
                                    "Holdtime": "40", "Completed": "3", "Abandoned": "0"}],
                     queue_entries=list(FULL))

    async def originated(received, fake):
        if received.action.lower() == "originate":  # the customer answers at once, after the reply
            asyncio.get_running_loop().call_later(
                0.05, lambda: fake.push("OriginateResponse", ActionID=received.get("ActionID"), Response="Success",
                                        Reason="4", Uniqueid="pbx-b-1700000300.1", Channel=received.get("Channel")))

    fake_a.on_action = fake_b.on_action = originated

    async def main():
        port_a, port_b = await fake_a.start(), await fake_b.start()
        root = _installation(tmp_path, port_a, port_b)
        runtime = build_runtime([root / "flows"], root / "config.yaml", port=0, metrics_port=0)
        parts = {part.node: part for part in runtime.extras if isinstance(part, AmiPart)}
        assert sorted(parts) == ["pbx-a", "pbx-b"] and runtime.manager is parts["pbx-a"]
        await runtime.start()
        try:
            for part in parts.values():
                await part.client.wait_connected(5)
            await fake_b.wait_for(lambda: parts["pbx-b"].client.board.snapshot("sales").waiting == 6)
            await fake_a.wait_for(lambda: parts["pbx-a"].client.board.snapshot("sales").fresh)
            port = runtime.server.port
            lines = {}
            for uniqueid, extra in (("1700000301.1", {"agi_arg_1": "node=pbx-a"}),
                                    ("1700000301.2", {"agi_arg_1": "node=pbx-b"}),
                                    ("1700000301.3", {}),
                                    ("1700000301.4", {"agi_arg_1": "node=pbx-z"})):
                lines[uniqueid] = await place_call(port, Caller(keys=["1", "1"]), environment(uniqueid, **extra))

            # a call-back booked on node b is stored with it and dialled through b's AMI only
            request = CallbackRequest(Department("sales", "sales"), "600100200", call_id="1700000301.2",
                                      due_by=dt.datetime.now(dt.timezone.utc) - dt.timedelta(seconds=1))
            node, manager = runtime.nodes.route("pbx-b", "1700000301.2")
            await manager.book_callback(request)
            await fake_b.wait_for(lambda: fake_b.count("Originate") == 1, timeout=10)
            store = runtime.extras[0].writer.engine  # the writer's database

            def answered() -> bool:
                with store.connect() as conn:
                    return conn.execute(sa.select(Callback.status)).scalar() == "done"

            await fake_b.wait_for(answered, timeout=10)

            # node b's Asterisk goes away: node a's calls and figures go on
            await fake_b.close()
            await fake_a.wait_for(lambda: not parts["pbx-b"].client.connected)
            after = await place_call(port, Caller(keys=["1", "1"]), environment("1700000301.5", agi_arg_1="node=pbx-a"))
            exposition = parse_exposition(runtime.metrics.exposition().decode())
            ready, why = runtime.metrics.ready()
        finally:
            await runtime.close()
            await fake_a.close()
        return lines, after, exposition, ready, why

    with caplog.at_level(logging.WARNING, logger="ivr.live.nodes"):
        lines, after, exposition, ready, why = asyncio.run(main())
    # b's sales queue is past overflow_when (5 waiting): its caller goes to backup; a's to sales
    assert _queue_of(lines["1700000301.1"]) == "sales"
    assert _queue_of(lines["1700000301.2"]) == "backup"
    assert _queue_of(lines["1700000301.3"]) == "sales" and _queue_of(lines["1700000301.4"]) == "sales"
    assert _queue_of(after) == "sales"
    said = [r.getMessage() for r in caplog.records]
    assert any("1700000301.3" in m and "names no node" in m for m in said)
    assert any("1700000301.4" in m and "'pbx-z'" in m for m in said)

    db = create_db_engine(f"sqlite:///{tmp_path / 'ivr.db'}")
    with db.connect() as conn:
        started = dict(conn.execute(sa.select(CallEvent.call_id, CallEvent.data)
                                    .where(CallEvent.type == "call_started")).all())
        [callback] = conn.execute(sa.select(Callback.node, Callback.status)).all()
        tries = conn.execute(sa.select(CallbackAttempt.result)).scalars().all()
    db.dispose()
    nodes = {call: (data if isinstance(data, dict) else json.loads(data)).get("asterisk_node")
             for call, data in started.items()}
    assert nodes == {"1700000301.1": "pbx-a", "1700000301.2": "pbx-b", "1700000301.3": "pbx-a",
                     "1700000301.4": "pbx-a", "1700000301.5": "pbx-a"}
    assert tuple(callback) == ("pbx-b", "done") and tries == ["answered"]
    assert fake_a.count("Originate") == 0

    assert exposition[("ivr_ami_connected", (("node", "pbx-a"),))] == 1
    assert exposition[("ivr_ami_connected", (("node", "pbx-b"),))] == 0
    assert ("ivr_ami_connected", ()) not in exposition
    assert ready and "AMI of node pbx-b not connected" in why


def test_one_nodes_stale_queue_is_a_spell_of_its_own(caplog):
    # node b's AMI is down, node a's is up: calls alternate between them, and the log says
    # once that b's queue state is stale, not a line per call as the two alternate
    from types import SimpleNamespace

    from ivr.engine.channel import QueueLoad
    from ivr.engine.nodes import transfer
    from ivr.settings.overflow import OverflowWhen

    department = Department("sales", "sales", overflow_when=OverflowWhen(waiting=5))
    loads = {"pbx-a": QueueLoad(1, 10.0, 1, 1, True, "pbx-a"), "pbx-b": QueueLoad(0, 0.0, 0, 0, False, "pbx-b")}
    with caplog.at_level(logging.WARNING, logger="ivr.engine.nodes.transfer"):
        for node in ("pbx-a", "pbx-b") * 3:
            call = SimpleNamespace(channel=SimpleNamespace(queue_load=lambda queue, n=node: loads[n]))
            assert transfer.queue_load(call, department) == (loads[node] if node == "pbx-a" else None)
    said = [r.getMessage() for r in caplog.records]
    assert said == ["the state of queue sales on node pbx-b is not fresh (manager connection down?); overflow "
                    "limits not applied until it is"]
    transfer._stale_queues.clear()
