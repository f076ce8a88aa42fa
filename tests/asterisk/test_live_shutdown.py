"""`ivr serve` stopped with a real call waiting in a queue: SIGTERM with a short grace period
ends the call as interrupted at the transfer node, the engine closes the AGI connection
without hanging up, and the generated dialplan's fail-safe takes the caller, still on the
line, to the fallback department's queue, where an agent answers. Asterisk reads the AGI
connection again only when the command it runs ends: a caller waiting in a queue keeps the
place there until the queue's wait (max_wait) is over, then goes to the fail-safe queue.

The caller is an AMI-originated Local channel that presses 1 (Polish) and 1 (sales); sales'
only member rings and never answers, so the caller waits there when the engine stops.
"""

from __future__ import annotations

import os
import signal
import subprocess
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable

import pytest
import sqlalchemy as sa
import yaml

from ivr.asterisk.dialplan import with_members
from ivr.settings.config import load_config
from ivr.store.db import create_db_engine
from ivr.store.models import Call, CallEvent
from ivr.testbed.ami_session import AmiSession
from ivr.testbed.server import REPO
from .live_support import AGENTS, Caller, EventPump, live_installation, wait_until
from .testbed_support import IVR

if TYPE_CHECKING:
    from ivr.testbed.server import Testbed

pytestmark = pytest.mark.asterisk

GRACE = 2  # seconds: `ivr serve --grace`
# sales' max_wait in the test's flow. Asterisk runs Queue() to its end before it reads the AGI
# connection again: a caller waiting when the engine stops keeps the place in line until then
MAX_WAIT = 12
RINGS_FOREVER = "Local/40800@testbed-callee/n"  # [testbed-callee] lets a 408X. number ring unanswered
NUMBER = "482200801"


@pytest.fixture(scope="module")
def built(testbed: "Testbed") -> None:
    done = subprocess.run([str(IVR), "--config", str(testbed.config_path), "prompts", "build"],
                          capture_output=True, text=True, cwd=REPO)
    assert done.returncode == 0, f"`ivr prompts build` failed:\n{done.stdout}{done.stderr}"


def installation(folder: Path, testbed: "Testbed") -> Path:
    """live_installation's config.yaml, and beside it flows/ whose sales queue waits MAX_WAIT."""
    config = live_installation(folder, testbed)
    flows = folder / "flows"
    flows.mkdir()
    main = yaml.safe_load((REPO / "flows" / "main.yaml").read_text(encoding="utf-8"))
    main["nodes"]["sales"].update(max_wait=f"{MAX_WAIT}s")
    (flows / "main.yaml").write_text(yaml.safe_dump(main, allow_unicode=True, sort_keys=False), encoding="utf-8")
    (flows / "faq.yaml").write_text((REPO / "flows" / "faq.yaml").read_text(encoding="utf-8"), encoding="utf-8")
    return config


def joined(pump: EventPump, queue: str) -> list[dict[str, str]]:
    return [e for e in pump.events("QueueCallerJoin") if e.get("Queue") == queue and e.get("CallerIDNum") == NUMBER]


def test_sigterm_sends_a_caller_waiting_in_a_queue_to_the_fail_safe_queue_and_stores_interrupted(
        testbed: "Testbed", built, tmp_path):
    config = installation(tmp_path, testbed)
    db = create_db_engine(load_config(config).raw["database"])
    # sales rings a phone nobody answers; the fallback (operator) and backup reach the fake agents
    testbed.reconfigure(with_members(load_config(config), lambda d: [RINGS_FOREVER] if d.name == "sales" else AGENTS))
    env = {**os.environ, "IVR_CONFIG": str(config), "IVR_AMI_SECRET": testbed.ami_secret}
    log_path = tmp_path / "serve.log"
    pump = EventPump(testbed)
    with open(log_path, "wb") as log_file:
        process = subprocess.Popen([str(IVR), "serve", "--grace", str(GRACE)], cwd=REPO, env=env,
                                   stdin=subprocess.DEVNULL, stdout=log_file, stderr=subprocess.STDOUT)
    try:
        wait_until("`ivr serve` started", lambda: process.poll() is not None or all(
            line in log_path.read_text(errors="replace") for line in ("FastAGI listening", "AMI connected")), 30)
        assert process.poll() is None, f"`ivr serve` exited:\n{log_path.read_text(errors='replace')}"
        with AmiSession(testbed.ami_host, testbed.ami_port) as ami:
            ami.login(testbed.ami_username, testbed.ami_secret)
            Caller("ami", NUMBER, "Waits in sales", keys="6s 1 1", hold=70).place(testbed, ami)
        [sales] = wait_until("the caller in the sales queue", lambda: joined(pump, "sales"), 60)
        time.sleep(3)  # waiting there, as callers do
        stopped_at = time.monotonic()
        process.send_signal(signal.SIGTERM)
        exit_code = process.wait(GRACE + 20)
        stop_seconds = time.monotonic() - stopped_at
        # the caller is handed back to Asterisk: the fail-safe queue (operator), an agent answers
        [failsafe] = wait_until("the caller in the fail-safe queue", lambda: joined(pump, "operator"), MAX_WAIT + 30)
        to_failsafe = time.monotonic() - stopped_at
        wait_until("an agent of the fail-safe queue answering", lambda: [
            e for e in pump.events("AgentConnect") if e.get("Queue") == "operator" and e.get("Channel") == failsafe["Channel"]], 30)
        with db.connect() as conn:
            [call] = conn.execute(sa.select(Call.__table__).where(Call.caller == NUMBER)).mappings().all()
            events = [CallEvent(**r).to_dict() for r in conn.execute(
                sa.select(CallEvent.__table__).where(CallEvent.call_id == call["id"]).order_by(CallEvent.seq)).mappings()]
    finally:
        if process.poll() is None:
            process.kill()
            process.wait(10)
        pump.close()
        db.dispose()
        testbed.reconfigure(testbed.config)
    log = log_path.read_text(errors="replace")

    assert exit_code == 0, log
    assert stop_seconds < GRACE + 10, (stop_seconds, log)
    assert failsafe["Channel"] == sales["Channel"]  # the same caller, still on the line
    # no sooner than sales' wait ended (the caller kept the place meanwhile), and not much later
    assert to_failsafe < MAX_WAIT + 10, to_failsafe
    assert call["outcome"] == "interrupted" and call["ended_at"] is not None and call["last_node"] == "sales"
    interrupted, outcome = events[-2:]
    assert interrupted["type"] == "interrupted" and (interrupted["flow"], interrupted["node"]) == ("main", "sales")
    assert interrupted["reason"] == f"ivr serve stopped (SIGTERM) with the call in progress after a {GRACE} s grace period"
    assert outcome["type"] == "outcome" and outcome["outcome"] == "interrupted"
    assert [e["type"] for e in events].count("transfer") == 1 and "transfer_result" not in [e["type"] for e in events]
    assert "stopped: 1 call in progress, 0 finished within 2 s, 1 ended as interrupted" in log
    assert "Traceback" not in log
    # Asterisk says why the caller went there: the fail-safe's own log line
    assert "did not finish the call (AGISTATUS=SUCCESS)" in testbed.log_tail(200)
    print(f"\nstopped {stop_seconds:.1f} s after SIGTERM (grace {GRACE} s); the caller joined the fail-safe queue "
          f"{to_failsafe:.1f} s after SIGTERM (sales' max_wait: {MAX_WAIT} s)")
