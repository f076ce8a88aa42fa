"""Overflow at peaks on real calls: callers fill the sales queue of a real Asterisk 22, the
engine's queue board (kept from AMI) sees them as Asterisk does, and the next caller goes
to the backup group with the reason stored on the call; so does a caller whose wait
reaches max_wait.

The example line (flows/main.yaml, config.yaml) with, for the test's sake, shorter limits:
sales overflows at 2 callers waiting or a longest wait of 20 s, and its max_wait is 35 s.
Sales has one agent, who logs in as a dynamic member (`queue add member`, as an agent's
phone or desk tool would) whose device state is a custom one the test sets: "in use" (on
another call) makes callers wait, "not in use" lets the queue ring the agent (the test
bed's [agents] context answers and plays tt-monkeys for 16 s). Backup has the pool of fake
agents, so its callers are answered at once.

One scenario, about two minutes, each step waiting for what Asterisk and the engine say:
1. A and B dial sales (1, 1 over the menus) and wait: the board shows 2 waiting, no free
   agent, 1 logged in, the same callers `queue show sales` and AMI QueueStatus list.
2. C dials: sales is at its limit, C goes to backup; its TRANSFER event says
   "2 callers waiting in sales (limit 2)". A and B joined sales without overflow.
3. The agent becomes free: A (and B) are answered in sales.
4. The agent is busy again. E joins sales alone (below every limit); once E has waited,
   F dials and goes to backup because of the longest wait; E's wait reaches max_wait and
   the flow's sales_overflow node queues E in backup with "sales: max_wait 35s passed".
"""

from __future__ import annotations

import asyncio
import re
import shutil
import subprocess
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable, Iterator

import pytest
import yaml

from ivr.asterisk.queue_board import QueueSnapshot
from ivr.testbed.ami_session import AmiSession
from ivr.testbed.server import REPO
from .live_support import AGENTS, Caller, Serving, live_installation, serving, wait_for_outcomes
from .testbed_support import IVR

if TYPE_CHECKING:  # imported for the hint only: pytest would try to collect a class named Test*
    from ivr.testbed.server import Testbed

pytestmark = pytest.mark.asterisk

SALES_AGENT = "Local/201@agents/n"
AGENT_STATE = "Custom:ivr-sales-agent"  # the sales agent's device state, set by the test
BACKUP_AGENTS = tuple(a for a in AGENTS if a != SALES_AGENT)
WAITING_LIMIT, LONGEST_WAIT, MAX_WAIT = 2, 20, 35
SALES_KEYS = "6s 1 1"  # Polish over the language menu, sales over the main menu
NUMBERS = {name: f"48230010{i}" for i, name in enumerate("ABCEF", 1)}


def _installation(folder: Path, testbed: "Testbed") -> tuple[Path, Path]:
    """config.yaml with sales' test limits, and the example flows with sales' max_wait shortened."""
    config = live_installation(folder, testbed)
    raw = yaml.safe_load(config.read_text(encoding="utf-8"))
    sales = raw["departments"]["sales"]
    assert sales.get("overflow") == "backup", "the example config.yaml no longer overflows sales to backup"
    sales["overflow_when"] = {"waiting": WAITING_LIMIT, "longest_wait": f"{LONGEST_WAIT}s"}
    config.write_text(yaml.safe_dump(raw, allow_unicode=True, sort_keys=False), encoding="utf-8")
    flows = folder / "flows"
    flows.mkdir()
    for source in (REPO / "flows").glob("*.yaml"):
        if not source.name.endswith(".test.yaml"):
            shutil.copy(source, flows / source.name)
    main = yaml.safe_load((flows / "main.yaml").read_text(encoding="utf-8"))
    node = main["nodes"]["sales"]
    assert node["on_timeout"] == "sales_overflow" and main["nodes"]["sales_overflow"]["department"] == "backup"
    node["max_wait"] = f"{MAX_WAIT}s"
    (flows / "main.yaml").write_text(yaml.safe_dump(main, allow_unicode=True, sort_keys=False), encoding="utf-8")
    return config, flows


def _members(department: Any) -> tuple[str, ...]:
    # sales: nobody in queues.conf; its agent logs in during the test
    return () if department.name == "sales" else BACKUP_AGENTS


def _until(what: str, check: Callable[[], Any], timeout: float, srv: Serving) -> Any:
    deadline = time.monotonic() + timeout
    while True:
        value = check()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"waited {timeout:g}s in vain for {what}\n{srv.testbed.rx('queue show sales')}\n"
                                 f"{srv.testbed.log_tail(30)}")
        time.sleep(0.25)


def _board(srv: Serving, queue: str = "sales") -> QueueSnapshot:
    """The runtime's queue board, read on the runtime's own loop (it is not shared across threads)."""
    async def read() -> QueueSnapshot:
        return srv.runtime.manager.client.board.snapshot(queue)  # type: ignore[union-attr]

    return asyncio.run_coroutine_threadsafe(read(), srv.loop).result(5)


def _board_waiting(srv: Serving, queue: str = "sales") -> list[str]:
    async def read() -> list[str]:
        return srv.runtime.manager.client.board.waiting(queue)  # type: ignore[union-attr]

    return asyncio.run_coroutine_threadsafe(read(), srv.loop).result(5)


def _events(srv: Serving, number: str) -> list[dict[str, Any]]:
    row = srv.calls_by_caller().get(number)
    return srv.record(row["id"])["events"] if row else []


def _transfers(srv: Serving, number: str) -> list[dict[str, Any]]:
    return [e for e in _events(srv, number) if e["type"] == "transfer"]


def _queue_status(testbed: "Testbed", queue: str) -> dict[str, list[dict[str, str]]]:
    """AMI QueueStatus of one queue, asked on a session of its own: its members and entries."""
    with AmiSession(testbed.ami_host, testbed.ami_port) as ami:
        ami.login(testbed.ami_username, testbed.ami_secret)
        reply = ami.action("QueueStatus", {"Queue": queue})
        assert reply.get("Response") == "Success", reply
        ami.wait_event("QueueStatusComplete", lambda e: e.get("ActionID") == reply.get("ActionID"))
        answer = [e for e in ami.events if e.get("ActionID") == reply.get("ActionID")]
    return {"members": [e for e in answer if e.get("Event") == "QueueMember"],
            "entries": [e for e in answer if e.get("Event") == "QueueEntry"]}


@pytest.fixture(scope="module")
def peak(testbed: "Testbed", tmp_path_factory) -> Iterator[dict[str, Any]]:
    built = subprocess.run([str(IVR), "--config", str(testbed.config_path), "prompts", "build",
                            str(testbed.config_path.parent / "flows")], capture_output=True, text=True)
    assert built.returncode == 0, f"`ivr prompts build` failed, so Asterisk could not play them:\n{built.stdout}{built.stderr}"
    config, flows = _installation(tmp_path_factory.mktemp("overflow"), testbed)
    seen: dict[str, Any] = {}
    with serving(testbed, config, flows=flows, members=_members) as srv:
        rx = testbed.rx
        rx(f"devstate change {AGENT_STATE} INUSE")
        rx(f"queue add member {SALES_AGENT} to sales penalty 0 as SalesAgent state_interface {AGENT_STATE}")
        try:
            with AmiSession(testbed.ami_host, testbed.ami_port) as ami:
                ami.login(testbed.ami_username, testbed.ami_secret)

                def call(name: str, hold: int) -> None:
                    Caller("ami", NUMBERS[name], f"Peak {name}", SALES_KEYS, hold).place(testbed, ami)

                # 1. two callers fill sales up to its limit
                _until("the sales agent on the board", lambda: _board(srv).logged_in == 1, 10, srv)
                seen["agent_busy"] = _board(srv)
                call("A", 75)
                time.sleep(3)
                call("B", 75)
                _until("2 callers waiting in sales on the board", lambda: _board(srv).waiting == 2, 40, srv)
                seen["full"] = _board(srv)
                seen["full_ids"] = _board_waiting(srv)
                seen["queue_show"] = rx("queue show sales")
                seen["queue_status"] = _queue_status(testbed, "sales")
                # 2. the next caller overflows
                call("C", 30)
                seen["C_transfers"] = _until("C's transfer", lambda: _transfers(srv, NUMBERS["C"]), 40, srv)
                # 3. the agent is free: the waiting callers are answered in sales
                rx(f"devstate change {AGENT_STATE} NOT_INUSE")
                _until("sales emptied by its agent", lambda: _board(srv).waiting == 0, 30, srv)
                # 4. busy again: one caller waits alone; the next finds its wait too long
                rx(f"devstate change {AGENT_STATE} INUSE")
                call("E", 85)
                _until("E waiting in sales", lambda: _board(srv).waiting == 1, 40, srv)
                # F needs about 13 s to reach the queue through the menus
                _until("E's wait past 10 s", lambda: _board(srv).longest_wait >= LONGEST_WAIT - 10, 30, srv)
                seen["E_alone"] = _board(srv)
                call("F", 30)
                rows = wait_for_outcomes(srv, list(NUMBERS.values()), timeout=150)
        finally:
            rx(f"queue remove member {SALES_AGENT} from sales")
            rx(f"devstate change {AGENT_STATE} NOT_INUSE")
        seen["records"] = {name: srv.record(rows[number]["id"]) for name, number in NUMBERS.items()}
        seen["logs"] = [r.getMessage() for r in srv.logs.records]
        yield seen


def _overflows(record: dict[str, Any]) -> list[dict[str, Any]]:
    return [e for e in record["events"] if e["type"] == "transfer" and e.get("overflow")]


def test_the_board_sees_the_callers_and_agent_asterisk_sees(peak):
    busy, full = peak["agent_busy"], peak["full"]
    assert (busy.logged_in, busy.free_agents, busy.waiting, busy.fresh) == (1, 0, 0, True)
    assert (full.waiting, full.free_agents, full.logged_in, full.fresh) == (2, 0, 1, True)
    assert len(full.waiting_since) == 2 and full.longest_wait > 0
    # the same callers as Asterisk's own CLI and AMI say, first come first
    status = peak["queue_status"]
    assert [e["Uniqueid"] for e in sorted(status["entries"], key=lambda e: int(e["Position"]))] == peak["full_ids"]
    assert re.search(r"\bsales\b has 2 calls", peak["queue_show"]), peak["queue_show"]
    [member] = status["members"]
    assert member["Location"] == SALES_AGENT and member["Status"] == "2"  # AST_DEVICE_INUSE
    assert "(In use)" in peak["queue_show"]
    records = peak["records"]
    assert {records[n]["call"]["uniqueid"] for n in "AB"} == set(peak["full_ids"])


def test_the_caller_past_the_waiting_limit_goes_to_backup_with_the_reason(peak):
    record = peak["records"]["C"]
    transfers = [e for e in record["events"] if e["type"] == "transfer"]
    assert [(t["department"], t.get("overflow")) for t in transfers] == [("backup", True)]
    reason = transfers[0]["reason"]
    assert reason.startswith(f"2 callers waiting in sales (limit {WAITING_LIMIT})"), reason
    assert record["call"]["department"] == "backup" and record["call"]["outcome"] == "answered"
    # Asterisk saw the caller in backup, never in sales
    assert {q["queue"] for q in record["queue_events"]} == {"backup"}
    # the path: straight from sales to the overflow node, without a wait in sales
    nodes = [(e["node"], e["via"]) for e in record["events"] if e["type"] == "node_entered"]
    assert ("sales_overflow", "timeout") in nodes  # sent on at once: no transfer_result in sales
    assert not [e for e in record["events"] if e["type"] == "transfer_result" and e["department"] == "sales"]


def test_callers_below_the_limits_join_sales_and_are_answered_there(peak):
    for name in "AB":
        transfers = [e for e in peak["records"][name]["events"] if e["type"] == "transfer"]
        assert transfers[0]["department"] == "sales" and "overflow" not in transfers[0], transfers
    a = peak["records"]["A"]
    [result] = [e for e in a["events"] if e["type"] == "transfer_result"]
    assert (result["department"], result["status"], result["agent"]) == ("sales", "answered", "SalesAgent")
    assert a["call"]["outcome"] == "answered" and a["call"]["department"] == "sales"
    alone = peak["E_alone"]
    assert alone.waiting == 1 and alone.free_agents == 0
    e = peak["records"]["E"]
    assert [e_ for e_ in e["events"] if e_["type"] == "transfer"][0].get("overflow") is None


def test_the_longest_wait_sends_the_next_caller_to_backup(peak):
    [overflow] = _overflows(peak["records"]["F"])
    assert overflow["department"] == "backup"
    match = re.fullmatch(rf"longest wait (\d+)s in sales \(limit {LONGEST_WAIT}s\)", overflow["reason"])
    assert match and LONGEST_WAIT <= int(match.group(1)) < MAX_WAIT, overflow["reason"]
    assert peak["records"]["F"]["call"]["department"] == "backup"


def test_max_wait_overflow_on_a_real_call_stores_its_reason(peak):
    record = peak["records"]["E"]
    results = [e for e in record["events"] if e["type"] == "transfer_result"]
    assert [(r["department"], r["status"]) for r in results][:1] == [("sales", "timeout")]
    assert MAX_WAIT - 1 <= results[0]["wait"] <= MAX_WAIT + 5, results[0]
    [overflow] = _overflows(record)
    assert (overflow["department"], overflow["reason"]) == ("backup", f"sales: max_wait {MAX_WAIT}s passed")
    assert overflow["node"] == "sales_overflow"
    assert record["call"]["department"] == "backup" and record["call"]["outcome"] == "answered"
    # Asterisk's own events: E left sales and joined backup
    joined = [q["queue"] for q in record["queue_events"] if q["kind"] == "queue_joined"]
    assert joined == ["sales", "backup"], record["queue_events"]
