"""`ivr serve`'s health and metrics on real calls: the test bed's Asterisk 22, `ivr serve` as
a process (as the README starts it), three calls placed together (one to sales that an
agent answers, two that hang up in the language menu, by AMI and by SIPp), then /metrics
scraped over HTTP and parsed: the calls started and ended by outcome are the stored ones,
every AGI round trip Asterisk answered is in the histogram, AMI is connected, the writer
wrote them, and the engine says it is ready."""

from __future__ import annotations

import re
import subprocess
import time
import urllib.error
import urllib.request
from typing import TYPE_CHECKING, Any

import pytest
import sqlalchemy as sa

from ivr.live.metrics import parse_exposition
from ivr.settings.config import load_config
from ivr.store.db import create_db_engine
from ivr.store.models import Call, CallEvent
from ivr.testbed.ami_session import AmiSession
from ivr.testbed.server import REPO
from .live_support import Caller, live_installation, serve_process
from .testbed_support import IVR

if TYPE_CHECKING:
    from ivr.testbed.server import Testbed

pytestmark = pytest.mark.asterisk

CALLERS = {
    # an agent answers some 12.5 s after the answer and talks 16 s; the caller hangs up 31 s in, after the talk
    "answered": Caller("ami", "482200901", "Metrics sales", keys="6s 1 1", hold=20),
    "abandoned-ami": Caller("ami", "482200902", "Metrics gone", keys="", hold=7),
    "abandoned-sipp": Caller("sipp", "482200903", "Metrics gone SIP", keys="", hold=7),
}


def _get(url: str) -> tuple[int, str]:
    try:
        with urllib.request.urlopen(url, timeout=5) as response:
            return response.status, response.read().decode()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read().decode()


def _stored(config_path, count: int, timeout: float) -> list[dict[str, Any]]:
    db = create_db_engine(load_config(config_path).raw["database"])
    deadline = time.monotonic() + timeout
    try:
        while True:
            with db.connect() as conn:
                calls = [dict(row) for row in conn.execute(sa.select(Call.__table__)).mappings()]
                events = conn.execute(sa.select(sa.func.count()).select_from(CallEvent)).scalar_one()
            if len(calls) == count and all(c["outcome"] is not None for c in calls):
                return calls + [{"events": events}]
            if time.monotonic() > deadline:
                raise AssertionError(f"not {count} finished calls after {timeout:g}s: {calls}")
            time.sleep(0.5)
    finally:
        db.dispose()


def test_real_calls_are_counted_in_the_scraped_metrics(testbed: "Testbed", tmp_path):
    built = subprocess.run([str(IVR), "--config", str(testbed.config_path), "prompts", "build"],
                           capture_output=True, text=True, cwd=REPO)
    assert built.returncode == 0, f"`ivr prompts build` failed:\n{built.stdout}{built.stderr}"
    config_path = live_installation(tmp_path, testbed)
    (tmp_path / "flows").symlink_to(REPO / "flows", target_is_directory=True)
    port = load_config(config_path).asterisk.agi.metrics_port
    base = f"http://127.0.0.1:{port}"
    recordings_before = set(testbed.recordings_dir.glob("*/*.wav"))
    log_path = tmp_path / "serve.log"
    try:
        with serve_process(testbed, config_path, log_path):
            log = log_path.read_text(errors="replace")
            assert f"health and metrics on {base}/health/live, {base}/health/ready, {base}/metrics" in log, log
            before = parse_exposition(_get(f"{base}/metrics")[1])
            with AmiSession(testbed.ami_host, testbed.ami_port) as ami:
                ami.login(testbed.ami_username, testbed.ami_secret)
                for caller in CALLERS.values():
                    caller.place(testbed, ami)
            *rows, tally = _stored(config_path, len(CALLERS), timeout=150)
            for caller in CALLERS.values():
                caller.finish(60)
            ready = _get(f"{base}/health/ready")
            live = _get(f"{base}/health/live")
            # the writer's thread may still hold the last events for a moment: until they are written
            deadline = time.monotonic() + 15
            while True:
                status, text = _get(f"{base}/metrics")
                after = parse_exposition(text)
                if after[("ivr_writer_written_total", ())] >= tally["events"] or time.monotonic() > deadline:
                    break
                time.sleep(0.5)
    finally:
        for path in set(testbed.recordings_dir.glob("*/*.wav")) - recordings_before:
            path.unlink(missing_ok=True)

    assert before[("ivr_calls_started_total", ())] == 0 and before[("ivr_ami_connected", ())] == 1
    assert status == 200
    outcomes = {row["caller"]: row["outcome"] for row in rows}
    assert outcomes == {"482200901": "answered", "482200902": "abandoned", "482200903": "abandoned"}
    assert after[("ivr_calls_started_total", ())] == 3
    assert after[("ivr_calls_ended_total", (("outcome", "answered"),))] == 1
    assert after[("ivr_calls_ended_total", (("outcome", "abandoned"),))] == 2
    assert sum(v for (name, _), v in after.items() if name == "ivr_calls_ended_total") == 3
    assert after[("ivr_calls_in_progress", ())] == 0
    assert after[("ivr_ami_connected", ())] == 1 and after[("ivr_ami_reconnects_total", ())] == 0
    assert after[("ivr_writer_failures_total", ())] == 0 and after[("ivr_writer_spooled", ())] == 0
    assert after[("ivr_writer_written_total", ())] >= tally["events"] > 0

    counts = {dict(labels)["command"]: v for (name, labels), v in after.items()
              if name == "ivr_agi_command_seconds_count"}
    sums = {dict(labels)["command"]: v for (name, labels), v in after.items() if name == "ivr_agi_command_seconds_sum"}
    # every call played prompts and waited for keys; the answered one queued (EXEC Queue)
    assert counts["STREAM FILE"] >= 3 and counts["EXEC"] >= 1 and counts["GET FULL VARIABLE"] >= 1
    # a queue wait with an agent's 16 s of talk is one EXEC that takes that long
    assert sums["EXEC"] / counts["EXEC"] > 5
    quick = sums["GET FULL VARIABLE"] / counts["GET FULL VARIABLE"]
    assert quick < 0.25, f"GET FULL VARIABLE took {quick * 1000:.1f} ms on average"
    print(f"\nreal Asterisk round trips: GET FULL VARIABLE {counts['GET FULL VARIABLE']:g} commands, "
          f"mean {quick * 1000:.2f} ms; STREAM FILE mean {sums['STREAM FILE'] / counts['STREAM FILE']:.2f} s")
    assert ready[0] == 200 and ready[1].startswith("ready: taking calls on ")
    assert "flows generation 1, 0 calls in progress" in ready[1]
    assert live == (200, "live\n")
    assert re.search(r"process_resident_memory_bytes", text)
